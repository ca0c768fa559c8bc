"""ExternalRecord: the idempotency ledger, one row per object that must exist exactly once in a ledger."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Enum, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..database import Base, UTCDateTime, utcnow
from .connection import Connection
from .staff import StaffUser
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
    #: Taken off the ops console's lists by a person (resolved by hand in the ledger, or ignored);
    #: ``resolution`` says which. Back to pending when someone wants it pushed after all.
    dismissed = "dismissed"


class Resolution(enum.StrEnum):
    """Why a person dismissed a record."""

    #: The person made the record in the ledger by hand.
    resolved_manually = "resolved_manually"
    #: The record must not reach the ledger at all.
    ignored = "ignored"


class PdfState(enum.StrEnum):
    """What became of the invoice's PDF after the push."""

    #: Attached to the ledger's invoice (``pdf_attachment_id``).
    attached = "attached"
    #: The ledger keeps no attachments on invoices (bexio): nothing to do, never a failure.
    not_supported = "not_supported"
    #: The SaaS sent no PDF for this invoice.
    no_pdf = "no_pdf"
    #: The ledger refused or failed the attachment (``pdf_error``); retried on the next run.
    failed = "failed"


class FinalizeState(enum.StrEnum):
    """What became of the invoice after the push: made final (and sent) in the ledger, or not."""

    #: Final in the ledger (Exact printed, bexio issued; QuickBooks needs nothing), not e-mailed by it.
    finalized = "finalized"
    #: Final and e-mailed to the customer by the ledger (``sent_at``).
    sent = "sent"
    #: Final and numbered, but the ledger did not e-mail it (or cannot say it did); ``finalize_error``
    #: has the ledger's reason. Never retried by itself: a person fixes the cause, then "Send again".
    not_sent = "not_sent"
    #: The ledger's adapter cannot finalize; the invoice stays as pushed.
    not_supported = "not_supported"
    #: The ledger refused or failed it (``finalize_error``); retried on the next run.
    failed = "failed"


R = RecordState
#: The moves a record may make. Pushed is final: pushing again would create a second record.
RECORD_TRANSITIONS: dict[RecordState, frozenset[RecordState]] = {
    R.pending: frozenset({R.pending, R.pushed, R.failed, R.skipped, R.needs_action}),
    R.pushed: frozenset(),
    R.failed: frozenset({R.pending, R.dismissed}),
    R.skipped: frozenset({R.pending, R.dismissed}),
    R.needs_action: frozenset({R.pending, R.dismissed}),
    R.dismissed: frozenset({R.pending}),
}
#: States the push leaves alone until a person acts (the scheduler does not pick them up).
HELD_STATES = frozenset({R.failed, R.skipped, R.needs_action, R.dismissed})
#: Error classes of documents held before any ledger call until the mapping or the document
#: changes: a line at a rate no code is mapped to, a product's code at another rate
#: (errors_catalog.ErrorClass MAPPING_MISSING), totals the ledger would compute differently
#: (TAX_HELD). Changing a mapping, the invoice settings or the reference data sends them back to
#: the push (portal.mappings.services.release_mapping_holds), and so does a new version of the
#: document from the SaaS.
MAPPING_HOLD_CLASSES = frozenset({"mapping_missing", "tax_held"})
#: Error classes of needs-action records that wait for a person — link the customer, create it
#: anyway, give the document its own number, map its rate, correct it, or dismiss it — and are not
#: due until then (errors_catalog.ErrorClass CUSTOMER_NOT_LINKED, DUPLICATE and
#: :data:`MAPPING_HOLD_CLASSES`). Other needs-action records wait for something the push does
#: itself (an invoice to be pushed first) and stay due.
PERSON_HOLD_CLASSES = frozenset({"customer_not_linked", "duplicate"}) | MAPPING_HOLD_CLASSES
#: The error class (errors_catalog.ErrorClass.NOT_SUPPORTED) of a record its ledger cannot take at all.
NOT_SUPPORTED_CLASS = "not_supported"
#: States of a record held because its ledger cannot take it (skipped, or dismissed after that).
UNSUPPORTED_STATES = frozenset({R.skipped, R.dismissed})
#: The error class (errors_catalog.ErrorClass.TOTALS_DIFFER) of a document written to the ledger whose
#: totals there differ from the SaaS's: failed, with its ledger id kept ("differs from the SaaS").
TOTALS_DIFFER_CLASS = "totals_differ"


#: Predicates of the ops console's partial indexes (records waiting for a person; failed ones; pushed ones).
HELD_WHERE = "state IN ('failed', 'needs_action', 'skipped')"
FAILED_WHERE = "state IN ('failed', 'needs_action')"
PUSHED_WHERE = "state = 'pushed'"


class ExternalRecord(Base):
    """(connection, kind, local id) → the ledger's id and number, with the push's state."""

    __tablename__ = "external_record"
    __table_args__ = (
        UniqueConstraint("connection_id", "kind", "local_id"),
        Index("ix_external_record_connection_state", "connection_id", "state"),
        # The ops console reads held and pushed records across every connection: partial indexes keep
        # those reads to the rows they count (held records are a few percent of the table).
        Index(
            "ix_external_record_held",
            "connection_id",
            "state",
            "last_error_class",
            "updated_at",
            postgresql_where=text(HELD_WHERE),
            sqlite_where=text(HELD_WHERE),
        ),
        Index(
            "ix_external_record_waiting_since",
            text("coalesce(last_attempt_at, created_at)"),
            "id",
            postgresql_where=text(FAILED_WHERE),
            sqlite_where=text(FAILED_WHERE),
        ),
        Index(
            "ix_external_record_failed_attempt",
            "last_attempt_at",
            postgresql_where=text(FAILED_WHERE),
            sqlite_where=text(FAILED_WHERE),
        ),
        Index(
            "ix_external_record_pushed_at",
            "pushed_at",
            postgresql_where=text(PUSHED_WHERE),
            sqlite_where=text(PUSHED_WHERE),
        ),
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
    #: Invoices: the ledger's id of the attached PDF.
    pdf_attachment_id: Mapped[str | None] = mapped_column(String(64))
    #: Invoices: the PDF step after the push (None: not done yet).
    pdf_state: Mapped[PdfState | None] = mapped_column(Enum(PdfState, name="pdf_state", native_enum=False, length=16))
    #: Invoices: why the PDF could not be attached, with the provider's text.
    pdf_error: Mapped[str | None] = mapped_column(Text)
    #: Invoices: the finalize (and send) step after the push (None: not done yet).
    finalize_state: Mapped[FinalizeState | None] = mapped_column(
        Enum(FinalizeState, name="finalize_state", native_enum=False, length=16)
    )
    #: Invoices: why finalizing or sending failed, with the provider's text.
    finalize_error: Mapped[str | None] = mapped_column(Text)
    #: Invoices: when the ledger made the invoice final.
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Invoices: when the ledger e-mailed the invoice to the customer.
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Customers: a person confirmed that none of the ledger customers the push found is this one
    #: ("Create anyway"); the next push creates the customer without looking again.
    create_confirmed: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    #: Dismissed records: resolved by hand or ignored.
    resolution: Mapped[Resolution | None] = mapped_column(
        Enum(Resolution, name="record_resolution", native_enum=False, length=24)
    )
    #: Dismissed records: the person's note on what they did or why.
    resolution_note: Mapped[str | None] = mapped_column(Text)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="SET NULL"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Pending records deferred after a transient error of their own: not due before this time.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The fencing token of the push run that last marked the record (portal.sync.fencing). It is the
    #: row's version: an UPDATE carries ``WHERE fence = <as read>``, so a run whose lease was taken
    #: over cannot overwrite what the newer run stored (StaleDataError instead).
    fence: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __mapper_args__ = {"version_id_col": fence, "version_id_generator": False}

    connection: Mapped[Connection] = relationship()
    resolved_by: Mapped[StaffUser | None] = relationship()

    @property
    def waits_for_person(self) -> bool:
        """Say whether the record is held until a person acts (see :data:`PERSON_HOLD_CLASSES`)."""
        return self.state is RecordState.needs_action and self.last_error_class in PERSON_HOLD_CLASSES

    @classmethod
    def held_for_person(cls):
        """Return the SQL condition of :attr:`waits_for_person`."""
        return (cls.state == RecordState.needs_action) & cls.last_error_class.in_(sorted(PERSON_HOLD_CLASSES))

    @property
    def unsupported_by_ledger(self) -> bool:
        """Say whether the record is held because its ledger cannot take it at all (e.g. bexio credit notes).

        A re-sync would only skip it again: the step is done by hand in the ledger. The error's text is
        then Ledgerlink's own instruction, not words of the provider.
        """
        return self.state in UNSUPPORTED_STATES and self.last_error_class == NOT_SUPPORTED_CLASS

    @property
    def differs(self) -> bool:
        """Say whether the document is in the ledger with totals other than the SaaS's ("differs from the SaaS")."""
        return self.state is RecordState.failed and self.last_error_class == TOTALS_DIFFER_CLASS

    @property
    def state_label(self) -> str:
        """Return the state as pages and the API name it: "differs" for :attr:`differs`, else the state."""
        return "differs" if self.differs else self.state.value

    def transition(
        self,
        target: RecordState,
        *,
        error_class: str | None = None,
        error_text: str | None = None,
        resolution: Resolution | None = None,
        note: str | None = None,
        by: StaffUser | None = None,
    ) -> None:
        """Move to ``target``; errors are kept on failures and cleared once pushed.

        Dismissing needs a ``resolution`` (with the person ``by`` and an optional ``note``);
        leaving dismissed clears it.

        :raise IllegalTransition: when the life cycle does not allow the move.
        :raise ValueError: when dismissing without a resolution.
        """
        if target not in RECORD_TRANSITIONS[self.state]:
            raise IllegalTransition("ExternalRecord", self.state, target)
        if target is RecordState.dismissed:
            if resolution is None:
                raise ValueError("dismissing a record needs a resolution (resolved_manually or ignored)")
            self.resolution, self.resolution_note = Resolution(resolution), note
            self.resolved_by_id = by.id if by is not None else None
            self.resolved_at = utcnow()
        elif self.state is RecordState.dismissed:
            self.resolution = self.resolution_note = self.resolved_by_id = self.resolved_at = None
        self.state = target
        if target is RecordState.pushed:
            self.pushed_at = utcnow()
            self.last_error_class = self.last_error_text = None
        elif error_class is not None or error_text is not None:
            self.last_error_class, self.last_error_text = error_class, error_text
