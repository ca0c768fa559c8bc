"""Authorization links: a one-time URL that lets someone without an account approve a ledger."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..database import Base, UTCDateTime, utcnow
from .connection import Connection, OAuthGrant
from .organization import BusinessUnit
from .staff import StaffUser
from .sync import IllegalTransition


class LinkStatus(enum.StrEnum):
    """Where an authorization link is in its life."""

    created = "created"
    #: The approver opened the page at least once; the link is still usable.
    opened = "opened"
    completed = "completed"
    expired = "expired"
    revoked = "revoked"

    @property
    def label(self) -> str:
        """Return the status in words."""
        return self.value.capitalize()

    @property
    def usable(self) -> bool:
        """Say whether a link in this status may still be used to authorize."""
        return self in (LinkStatus.created, LinkStatus.opened)


L = LinkStatus
#: The moves a link may make; completed, expired and revoked are final (single use).
LINK_TRANSITIONS: dict[LinkStatus, frozenset[LinkStatus]] = {
    L.created: frozenset({L.opened, L.completed, L.expired, L.revoked}),
    L.opened: frozenset({L.completed, L.expired, L.revoked}),
    L.completed: frozenset(),
    L.expired: frozenset(),
    L.revoked: frozenset(),
}


class LinkEventKind(enum.StrEnum):
    """What happened to a link (its lifecycle, as shown to support)."""

    created = "created"
    emailed = "emailed"
    opened = "opened"
    completed = "completed"
    expired = "expired"
    revoked = "revoked"
    wrong_division_attempted = "wrong_division_attempted"
    #: The provider or Ledgerlink refused the approver's attempt (denial, failure, conflict).
    refused = "refused"
    #: The requester was told about the completion (e-mail) or the SaaS (webhook).
    notified = "notified"
    webhook_delivered = "webhook_delivered"
    webhook_failed = "webhook_failed"

    @property
    def label(self) -> str:
        """Return the kind in words."""
        return self.value.replace("_", " ").capitalize()


class AuthorizationLink(Base):
    """A shareable, single-use URL scoped to one business unit, one provider and region."""

    __tablename__ = "authorization_link"
    __table_args__ = (Index("ix_authorization_link_unit_created", "business_unit_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    business_unit_id: Mapped[int] = mapped_column(ForeignKey("business_unit.id", ondelete="CASCADE"))
    #: Provider key: exact-online, quickbooks or bexio.
    provider: Mapped[str] = mapped_column(String(32))
    #: Exact Online instance; None for the others.
    region: Mapped[str | None] = mapped_column(String(8))
    #: The division / realm / company the approver must grant; None lets them pick.
    expected_company_id: Mapped[str | None] = mapped_column(String(64))
    #: SHA-256 (hex) of the URL's token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Why access is asked for, from the sender; shown to the approver.
    note: Mapped[str] = mapped_column(Text, default="")
    #: The SaaS user the link was requested for (free text, e.g. an e-mail address).
    requested_for: Mapped[str] = mapped_column(String(254), default="")
    #: Where the completion notice goes (the requester); None sends none.
    notify_email: Mapped[str | None] = mapped_column(String(254))
    #: Completing may replace the business unit's current connection (decided by the sender).
    replace_existing: Mapped[bool] = mapped_column(default=False)
    #: The staff member who created it; None for the API.
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    #: "portal" or "api:<client name>".
    created_via: Mapped[str] = mapped_column(String(80))
    status: Mapped[LinkStatus] = mapped_column(
        Enum(LinkStatus, name="link_status", native_enum=False, length=16), default=LinkStatus.created
    )
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The consent waiting for the approver to pick a company, if any.
    grant_id: Mapped[int | None] = mapped_column(ForeignKey("oauth_grant.id", ondelete="SET NULL"))
    #: The connection the link created.
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connection.id", ondelete="SET NULL"))
    #: The link this one replaced (resend).
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("authorization_link.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    business_unit: Mapped[BusinessUnit] = relationship()
    created_by: Mapped[StaffUser | None] = relationship()
    connection: Mapped[Connection | None] = relationship()
    grant: Mapped[OAuthGrant | None] = relationship()
    events: Mapped[list[AuthorizationLinkEvent]] = relationship(
        back_populates="link", order_by="AuthorizationLinkEvent.id", cascade="all, delete-orphan"
    )

    def is_past_expiry(self, now: datetime | None = None) -> bool:
        """Say whether the expiry time has passed."""
        return self.expires_at <= (now or utcnow())

    @property
    def shown_status(self) -> LinkStatus:
        """Return the status to show: a usable link past its expiry shows as expired."""
        return LinkStatus.expired if self.status.usable and self.is_past_expiry() else self.status

    def transition(self, target: LinkStatus) -> None:
        """Move to ``target``, stamping the time.

        :raise IllegalTransition: when the life cycle does not allow the move.
        """
        if target not in LINK_TRANSITIONS[self.status]:
            raise IllegalTransition("AuthorizationLink", self.status, target)
        self.status = target
        self.status_changed_at = utcnow()


class AuthorizationLinkEvent(Base):
    """One step in a link's life: created, e-mailed, opened, completed, refused…"""

    __tablename__ = "authorization_link_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("authorization_link.id", ondelete="CASCADE"), index=True)
    kind: Mapped[LinkEventKind] = mapped_column(
        Enum(LinkEventKind, name="link_event_kind", native_enum=False, length=32)
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: What happened, in words (never a token).
    detail: Mapped[str] = mapped_column(Text, default="")

    link: Mapped[AuthorizationLink] = relationship(back_populates="events")


__all__ = ["AuthorizationLink", "AuthorizationLinkEvent", "IllegalTransition", "LinkEventKind", "LinkStatus"]
