"""Ledger reference data cached per connection, and the codes support mapped onto it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..database import Base, Rate, UTCDateTime, utcnow
from .billing import Product
from .connection import Connection
from .staff import StaffUser


class ReferenceData(Base):
    """One kind of a ledger's reference data (VAT codes, items…) as last fetched for a connection."""

    __tablename__ = "reference_data"
    __table_args__ = (UniqueConstraint("connection_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"))
    #: What the rows are: items, tax_codes, gl_accounts, journals, payment_conditions, classes, …
    kind: Mapped[str] = mapped_column(String(32))
    #: When the rows were read from the ledger.
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: [{"code", "name", "active", "type", "extra": {...}}] in the ledger's order.
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    connection: Mapped[Connection] = relationship()

    def find(self, code: str) -> dict[str, Any] | None:
        """Return the row whose code is ``code`` (surrounding blanks ignored), or None."""
        wanted = (code or "").strip()
        return next((row for row in self.items if row["code"] == wanted), None)


class Mapping(Base):
    """A ledger code for one field: the connection's default (no product) or a product's override."""

    __tablename__ = "mapping"
    __table_args__ = (
        # One default per field, and one override per product and field. Two partial indexes
        # because NULLs never collide in a plain unique constraint.
        Index(
            "uq_mapping_default",
            "connection_id",
            "field",
            unique=True,
            postgresql_where=text("product_id IS NULL"),
            sqlite_where=text("product_id IS NULL"),
        ),
        Index(
            "uq_mapping_override",
            "connection_id",
            "product_id",
            "field",
            unique=True,
            postgresql_where=text("product_id IS NOT NULL"),
            sqlite_where=text("product_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"), index=True)
    #: The product this override is for; None for the connection's default.
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id", ondelete="CASCADE"), index=True)
    #: What is mapped: item, tax_code, gl_account, journal, payment_condition, class, bank_account.
    field: Mapped[str] = mapped_column(String(32))
    #: The ledger's code (as listed in ReferenceData).
    value: Mapped[str] = mapped_column(String(128))
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    connection: Mapped[Connection] = relationship()
    product: Mapped[Product | None] = relationship()
    updated_by: Mapped[StaffUser | None] = relationship()


class TaxMapping(Base):
    """The ledger tax code a SaaS tax rate (and, at 0 %, kind) is booked with on one connection."""

    __tablename__ = "tax_mapping"
    __table_args__ = (UniqueConstraint("connection_id", "rate", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"), index=True)
    #: The SaaS's rate in percent, e.g. 9.000.
    rate: Mapped[Decimal] = mapped_column(Rate)
    #: "standard" for every positive rate; at 0 % the kind (zero, exempt, reverse_charge, outside_scope).
    kind: Mapped[str] = mapped_column(String(16))
    #: The ledger's tax code (as listed in ReferenceData ``tax_codes``).
    value: Mapped[str] = mapped_column(String(128))
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    connection: Mapped[Connection] = relationship()
    updated_by: Mapped[StaffUser | None] = relationship()
