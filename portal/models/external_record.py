"""ExternalRecord: the idempotency ledger, one row per object that must exist exactly once in a ledger."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..database import UTCDateTime, utcnow
from ..extensions import db
from .connection import Connection
from .sync import IllegalTransition


class RecordKind(enum.StrEnum):
    """What a local object is."""

    customer = "customer"
    invoice = "invoice"
    credit_note = "credit_note"
    payment = "payment"


class RecordState(enum.StrEnum):
    """Where a record is on its way into the ledger."""

    #: Being pushed, or an attempt ended with its outcome unknown / a transient error: retry.
    pending = "pending"
    #: In the ledger, with its external id (final).
    pushed = "pushed"
    #: The ledger refused it; someone must change something, then retry.
    failed = "failed"
    #: The ledger cannot take it at all (e.g. bexio credit notes); the manual step is in the error text.
    skipped = "skipped"
    #: Held before reaching the ledger until a person acts (e.g. customer not linked).
    needs_action = "needs_action"


R = RecordState
#: The moves a record may make. Pushed is final: pushing again would create a second record.
RECORD_TRANSITIONS: dict[RecordState, frozenset[RecordState]] = {
    R.pending: frozenset({R.pending, R.pushed, R.failed, R.skipped, R.needs_action}),
    R.pushed: frozenset(),
    R.failed: frozenset({R.pending}),
    R.skipped: frozenset({R.pending}),
    R.needs_action: frozenset({R.pending}),
}


class ExternalRecord(db.Model):
    """(connection, kind, local id) → the ledger's id and number, with the push's state."""

    __tablename__ = "external_record"
    __table_args__ = (
        UniqueConstraint("connection_id", "kind", "local_id"),
        Index("ix_external_record_connection_state", "connection_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"))
    kind: Mapped[RecordKind] = mapped_column(Enum(RecordKind, name="record_kind", native_enum=False, length=16))
    #: Id of the local row (Customer, Invoice, CreditNote, Payment).
    local_id: Mapped[int]
    #: Our idempotency key as the ledger stores it (Exact YourRef, QBO DocNumber, bexio api_reference).
    reference: Mapped[str | None] = mapped_column(String(64))
    #: The ledger's id, once known.
    external_id: Mapped[str | None] = mapped_column(String(64))
    #: The ledger's document number (invoice number) to sync back to the SaaS.
    external_number: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[RecordState] = mapped_column(
        Enum(RecordState, name="record_state", native_enum=False, length=16), default=RecordState.pending
    )
    #: How many times a push was started (a crash counts too).
    attempts: Mapped[int] = mapped_column(default=0)
    #: SHA-256 of what was last pushed, to notice later changes of the local record.
    payload_hash: Mapped[str | None] = mapped_column(String(64))
    #: Cause group of the last error (errors_catalog.ErrorClass value).
    last_error_class: Mapped[str | None] = mapped_column(String(32))
    #: The last error in plain words, with the provider's own text.
    last_error_text: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    connection: Mapped[Connection] = relationship()

    def transition(self, target: RecordState, *, error_class: str | None = None, error_text: str | None = None) -> None:
        """Move to ``target``; errors are kept on failures and cleared once pushed.

        :raise IllegalTransition: when the life cycle does not allow the move.
        """
        if target not in RECORD_TRANSITIONS[self.state]:
            raise IllegalTransition("ExternalRecord", self.state, target)
        self.state = target
        if target is RecordState.pushed:
            self.pushed_at = utcnow()
            self.last_error_class = self.last_error_text = None
        elif error_class is not None or error_text is not None:
            self.last_error_class, self.last_error_text = error_class, error_text
