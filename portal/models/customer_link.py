"""Which ledger customer each SaaS customer is, per connection: the cache, the links, the suggestions."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..database import Base, UTCDateTime, utcnow
from .billing import Customer
from .connection import Connection
from .staff import StaffUser


class LinkMethod(enum.StrEnum):
    """How a link was made (shown in lists and audited)."""

    manual = "manual"
    vat = "vat"
    coc = "coc"
    email = "email"
    email_domain = "email_domain"
    name = "name"
    csv = "csv"
    push = "push"
    #: Found in the ledger by the push before it would create the customer.
    push_vat = "push_vat"
    push_coc = "push_coc"
    push_email = "push_email"

    @property
    def label(self) -> str:
        """Return the method in words."""
        return _METHOD_LABELS[self]


_METHOD_LABELS = {
    LinkMethod.manual: "linked by hand",
    LinkMethod.vat: "suggested by VAT number",
    LinkMethod.coc: "suggested by company number",
    LinkMethod.email: "suggested by e-mail",
    LinkMethod.email_domain: "suggested by e-mail domain",
    LinkMethod.name: "suggested by name",
    LinkMethod.csv: "imported from CSV",
    LinkMethod.push: "created by a push",
    LinkMethod.push_vat: "matched by VAT number at push",
    LinkMethod.push_coc: "matched by company number at push",
    LinkMethod.push_email: "matched by e-mail at push",
}


class LedgerCustomerCache(Base):
    """A ledger customer as last fetched for a connection (Exact account, QBO customer, bexio contact)."""

    __tablename__ = "ledger_customer_cache"
    __table_args__ = (
        UniqueConstraint("connection_id", "external_id"),
        Index("ix_ledger_customer_cache_connection_name", "connection_id", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"))
    #: The ledger's id (Exact GUID, QBO Id, bexio contact id).
    external_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    #: The ledger's own number for the customer (Exact code, bexio nr), where it has one.
    code: Mapped[str | None] = mapped_column(String(64))
    vat_number: Mapped[str | None] = mapped_column(String(64))
    coc_number: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(254))
    country: Mapped[str | None] = mapped_column(String(8))
    #: False when the ledger keeps it but as archived / inactive / blocked.
    active: Mapped[bool] = mapped_column(default=True)
    #: Set when the last full fetch no longer found it (deleted in the ledger).
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def state(self) -> str:
        """Return "deleted", "archived" or "active"."""
        if self.deleted_at is not None:
            return "deleted"
        return "active" if self.active else "archived"


class CustomerLink(Base):
    """A SaaS customer is this ledger customer on this connection; pushes use it instead of creating one."""

    __tablename__ = "customer_link"
    __table_args__ = (
        UniqueConstraint("connection_id", "customer_id"),
        # Conflict checks look a ledger customer up across links.
        Index("ix_customer_link_connection_external", "connection_id", "external_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(64))
    method: Mapped[LinkMethod] = mapped_column(Enum(LinkMethod, name="link_method", native_enum=False, length=16))
    #: The suggestion's score when the link came from one.
    score: Mapped[int | None]
    #: Who made it; None for the system (a push) or when the account is gone.
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The SaaS customer's name, address, e-mail, VAT and company number as the ledger last got
    #: them (or as they were when the link was made): a later change of any is pushed as an update.
    synced: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: When the ledger customer last got the SaaS customer's values (or the link was made).
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Why the last update of the ledger customer failed, in plain words with the ledger's text.
    update_error: Mapped[str | None] = mapped_column(Text)

    connection: Mapped[Connection] = relationship()
    customer: Mapped[Customer] = relationship()
    created_by: Mapped[StaffUser | None] = relationship()


class LinkSuggestion(Base):
    """A candidate ledger customer for an unlinked SaaS customer, from one suggestion run."""

    __tablename__ = "link_suggestion"
    __table_args__ = (
        UniqueConstraint("connection_id", "customer_id", "external_id"),
        Index("ix_link_suggestion_connection_score", "connection_id", "score"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(64))
    #: 0 to 100; the strongest evidence plus a little for each further agreeing piece.
    score: Mapped[int]
    #: The evidence kind that carried the score (vat, coc, email, email_domain, name).
    method: Mapped[str] = mapped_column(String(16))
    #: [{"kind", "score", "saas", "ledger", …}]: both sides' values, for showing side by side.
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: Two good candidates: never confirmed in bulk, a human picks one.
    ambiguous: Mapped[bool] = mapped_column(default=False)
    #: The SyncRun that made it.
    run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_run.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    customer: Mapped[Customer] = relationship()
