"""Ledger connections of business units, and consents waiting for support to pick a company."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..database import Base, UTCDateTime, utcnow
from .organization import BusinessUnit
from .staff import StaffUser
from .sync import IllegalTransition


class ConnectionStatus(enum.StrEnum):
    """Where a connection is in its life."""

    pending_authorization = "pending_authorization"
    connected = "connected"
    needs_reauthorization = "needs_reauthorization"
    failing = "failing"
    paused = "paused"
    disconnected = "disconnected"

    @property
    def label(self) -> str:
        """Return the status in words."""
        return self.value.replace("_", " ").capitalize()


S = ConnectionStatus
#: The moves a connection may make. Disconnected is final: reconnecting after a disconnect
#: creates a new connection (the old one keeps its history).
CONNECTION_TRANSITIONS: dict[ConnectionStatus, frozenset[ConnectionStatus]] = {
    S.pending_authorization: frozenset({S.connected, S.disconnected}),
    S.connected: frozenset({S.connected, S.needs_reauthorization, S.failing, S.paused, S.disconnected}),
    S.needs_reauthorization: frozenset({S.connected, S.disconnected, S.paused, S.needs_reauthorization}),
    S.failing: frozenset({S.connected, S.needs_reauthorization, S.paused, S.disconnected, S.failing}),
    S.paused: frozenset({S.connected, S.needs_reauthorization, S.disconnected}),
    S.disconnected: frozenset(),
}


class SendingMethod(enum.StrEnum):
    """Who e-mails the invoice to the customer."""

    #: The SaaS sends it; the ledger only books it.
    saas = "saas"
    #: The ledger e-mails it (Exact PrintedSalesInvoices, QBO send, bexio send).
    ledger = "ledger"


DEFAULT_SETTINGS: dict[str, Any] = {"sending_method": SendingMethod.saas.value, "auto_send": False}


class Connection(Base):
    """A business unit's link to one company in one ledger."""

    __tablename__ = "connection"
    __table_args__ = (
        # At most one live connection per business unit; disconnected ones stay as history.
        Index(
            "uq_connection_live_business_unit",
            "business_unit_id",
            unique=True,
            postgresql_where=text("status <> 'disconnected'"),
            sqlite_where=text("status <> 'disconnected'"),
        ),
        Index("ix_connection_status", "status"),
        Index("ix_connection_business_unit_id", "business_unit_id"),
        # The ops console's search matches words anywhere in these (pg_trgm GIN on PostgreSQL).
        *(
            Index(name, column, postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"})
            for name, column in (
                ("ix_connection_company_name_trgm", "external_company_name"),
                ("ix_connection_company_number_trgm", "external_company_number"),
                ("ix_connection_company_id_trgm", "external_company_id"),
            )
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    business_unit_id: Mapped[int] = mapped_column(ForeignKey("business_unit.id", ondelete="CASCADE"))
    #: Provider key: exact-online, quickbooks or bexio.
    provider: Mapped[str] = mapped_column(String(32))
    #: Exact Online instance (nl, be, de, uk, us, es, fr); None for the others.
    region: Mapped[str | None] = mapped_column(String(8))
    #: The pinned external company: Exact division, QBO realm id, bexio company id.
    external_company_id: Mapped[str | None] = mapped_column(String(64), index=True)
    external_company_name: Mapped[str | None] = mapped_column(String(200))
    #: Human-facing number where it differs from the id (Exact division code).
    external_company_number: Mapped[str | None] = mapped_column(String(64))
    external_company_country: Mapped[str | None] = mapped_column(String(2))
    status: Mapped[ConnectionStatus] = mapped_column(
        Enum(ConnectionStatus, name="connection_status", native_enum=False, length=32),
        default=ConnectionStatus.pending_authorization,
    )
    #: Why the status is what it is, in plain words (with the provider's text where it had one).
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The OAuth token set, encrypted with TOKEN_KEYS (Fernet). Never shown, never logged.
    token_ciphertext: Mapped[str | None] = mapped_column(Text, deferred=True)
    #: Expiry facts kept in the clear for health checks (they reveal no secret).
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    token_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Records dated on or after this moment sync automatically (the connection date).
    sync_from: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Sending method, auto-send and later settings; see DEFAULT_SETTINGS.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=lambda: dict(DEFAULT_SETTINGS))
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disconnected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When support took the connection live (the go-live gate); None while it is being set up.
    #: Until then nothing is pushed automatically: its records wait as "not live yet".
    live_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Outcomes of the onboarding steps that are not facts of other tables: the last "Check
    #: mappings" and test invoice ({"at", "passed", "errors"}), the confirmed customer mode.
    onboarding: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    business_unit: Mapped[BusinessUnit] = relationship()
    created_by: Mapped[StaffUser | None] = relationship()

    @property
    def went_live(self) -> bool:
        """Say whether the connection passed its go-live gate (its records are pushed automatically)."""
        return self.live_since is not None

    def onboarding_step(self, key: str) -> dict[str, Any]:
        """Return the stored outcome of one onboarding step ({} when it never ran)."""
        return dict((self.onboarding or {}).get(key) or {})

    def note_onboarding(self, key: str, **facts: Any) -> None:
        """Store the outcome of one onboarding step (a new dict, so the JSON column is seen as changed)."""
        self.onboarding = {**(self.onboarding or {}), key: {"at": utcnow().isoformat(), **facts}}

    @property
    def company_label(self) -> str:
        """Return the pinned company as people know it: name and number."""
        if not self.external_company_id:
            return "no company pinned yet"
        number = self.external_company_number or self.external_company_id
        return f"{self.external_company_name or 'Unnamed'} ({number})"

    @property
    def is_live(self) -> bool:
        """Say whether the connection still counts as the business unit's connection."""
        return self.status is not ConnectionStatus.disconnected

    def transition(self, target: ConnectionStatus, reason: str | None = None) -> None:
        """Move to ``target`` with a reason, stamping the time.

        :raise IllegalTransition: when the life cycle does not allow the move.
        """
        if target not in CONNECTION_TRANSITIONS[self.status]:
            raise IllegalTransition("Connection", self.status, target)
        self.status = target
        self.status_reason = reason
        self.status_changed_at = utcnow()
        if target is ConnectionStatus.connected:
            self.connected_at = self.connected_at or utcnow()
        elif target is ConnectionStatus.disconnected:
            self.disconnected_at = utcnow()

    def setting(self, key: str) -> Any:
        """Return one setting, falling back to the default."""
        return (self.settings or {}).get(key, DEFAULT_SETTINGS.get(key))


class GrantPurpose(enum.StrEnum):
    """Why a consent was asked for."""

    connect = "connect"
    reconnect = "reconnect"
    #: An approver without an account, through an AuthorizationLink (no login).
    link = "link"


class GrantOutcome(enum.StrEnum):
    """How a consent grant ended; an ended grant holds no tokens."""

    #: Its tokens became a connection's (a company was pinned, or a connection re-authorized in place).
    pinned = "pinned"
    #: Refused (another company than the one required); revoked at the ledger where it can.
    refused = "refused"
    #: Nobody picked a company within GRANT_TTL; revoked at the ledger where it can.
    expired = "expired"
    #: Dropped by support or the approver; revoked at the ledger where it can.
    discarded = "discarded"
    #: Its link was revoked, resent or expired; revoked at the ledger where it can.
    superseded = "superseded"


class OAuthGrant(Base):
    """Tokens from a completed consent, held until a company is pinned (or the grant ends).

    Nothing becomes a connection until a company is picked. The pick page is reached by a secret
    handle (only its SHA-256 is stored) by the staff member who started the consent, or by the
    approver through the link's own pages; every ending purges the tokens.
    """

    __tablename__ = "oauth_grant"
    # ``handle`` below is a plain attribute of a grant just made, not a column.
    __allow_unmapped__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[GrantPurpose] = mapped_column(
        Enum(GrantPurpose, name="grant_purpose", native_enum=False, length=16)
    )
    business_unit_id: Mapped[int] = mapped_column(ForeignKey("business_unit.id", ondelete="CASCADE"), index=True)
    #: The connection being re-authorized (purpose reconnect).
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(8))
    #: The consent's token set, encrypted like a connection's; None once the grant ended.
    token_ciphertext: Mapped[str | None] = mapped_column(Text, deferred=True)
    #: SHA-256 (hex) of the secret handle in the pick page's URL; the handle itself is never stored.
    handle_hash: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    #: The secret handle itself, on the grant the consent just made (shown once, never stored).
    handle: str | None = None
    #: What the token can reach: [{"id", "name", "number", "country", "accessible", "reason"}].
    companies: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When and how the grant ended (its tokens purged); None while it waits for a pick.
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[GrantOutcome | None] = mapped_column(
        Enum(GrantOutcome, name="grant_outcome", native_enum=False, length=32)
    )

    business_unit: Mapped[BusinessUnit] = relationship()
    created_by: Mapped[StaffUser | None] = relationship()

    @property
    def waiting(self) -> bool:
        """Say whether the grant still waits for a company to be picked (not ended, not expired)."""
        return self.ended_at is None and self.expires_at > utcnow()
