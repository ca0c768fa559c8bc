"""The SaaS's customer accounts and their invoicing entities."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..database import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from .billing import Customer


class Organization(Base):
    """A customer account of the invoicing SaaS."""

    __tablename__ = "organization"
    __table_args__ = (
        # The ops console's search matches words anywhere in these (pg_trgm GIN on PostgreSQL).
        Index("ix_organization_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
        Index(
            "ix_organization_external_id_trgm",
            "external_id",
            postgresql_using="gin",
            postgresql_ops={"external_id": "gin_trgm_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The SaaS's own id of the account; unique.
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    #: ISO 3166-1 alpha-2 country of the account's head office.
    country: Mapped[str] = mapped_column(String(2))
    #: Where the SaaS reaches the account's administrator.
    contact_email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    business_units: Mapped[list[BusinessUnit]] = relationship(
        back_populates="organization", order_by="BusinessUnit.id", cascade="all, delete-orphan"
    )
    customers: Mapped[list[Customer]] = relationship(back_populates="organization", lazy="raise")


class BusinessUnit(Base):
    """An invoicing entity of an organization; a ledger connection belongs to one."""

    __tablename__ = "business_unit"
    __table_args__ = (
        Index("ix_business_unit_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    #: ISO 3166-1 alpha-2 country whose tax rules the entity invoices under.
    country: Mapped[str] = mapped_column(String(2))
    #: ISO 4217 currency the entity invoices in.
    currency: Mapped[str] = mapped_column(String(3))
    #: The entity's own VAT number, as registered.
    vat_number: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organization: Mapped[Organization] = relationship(back_populates="business_units")
