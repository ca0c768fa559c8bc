"""Back-fills: pushing a connection's records from before its connection date, and their outcomes.

A :class:`Backfill` is one historical push of a date range (by document date) and a set of kinds.
Its cursor (the kind being pushed and the last local id done) is committed after every chunk, so
a job that crashed or was paused resumes exactly there. Each record the push handled leaves one
:class:`BackfillItem` with its outcome, which the page lists and filters.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Enum, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..database import Base, UTCDateTime, utcnow
from .connection import Connection
from .staff import StaffUser
from .sync import IllegalTransition, SyncRun

#: The kinds a back-fill pushes, in dependency order.
BACKFILL_KINDS = ("customer", "invoice", "credit_note", "payment")


class BackfillStatus(enum.StrEnum):
    """Where a back-fill is in its life."""

    queued = "queued"
    running = "running"
    #: Stopped at a chunk boundary on request; resume continues at the cursor.
    paused = "paused"
    #: The ledger's quota share is spent; the job is scheduled for the window's reset.
    waiting = "waiting"
    #: Stopped by an error (outage, lost grant, crash); resume continues at the cursor.
    interrupted = "interrupted"
    succeeded = "succeeded"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        """Say whether the back-fill has ended for good."""
        return self in (BackfillStatus.succeeded, BackfillStatus.cancelled)

    @property
    def label(self) -> str:
        """Return the status in words."""
        return {"waiting": "Waiting for quota"}.get(self.value, self.value.capitalize())


B = BackfillStatus
#: The moves a back-fill may make; finished ones never move again.
BACKFILL_TRANSITIONS: dict[BackfillStatus, frozenset[BackfillStatus]] = {
    B.queued: frozenset({B.running, B.paused, B.cancelled, B.interrupted}),
    B.running: frozenset({B.running, B.paused, B.waiting, B.interrupted, B.succeeded, B.cancelled, B.queued}),
    B.paused: frozenset({B.queued, B.cancelled}),
    B.waiting: frozenset({B.running, B.queued, B.paused, B.cancelled, B.interrupted}),
    B.interrupted: frozenset({B.queued, B.running, B.cancelled, B.paused}),
    B.succeeded: frozenset(),
    B.cancelled: frozenset(),
}


class ItemOutcome(enum.StrEnum):
    """What the back-fill did with one record."""

    #: Created in the ledger by this back-fill.
    created = "created"
    #: Already in the ledger (pushed earlier, or found by our reference).
    existing = "existing"
    #: The ledger cannot take it (the reason says what to do by hand).
    skipped = "skipped"
    #: Held before reaching the ledger (mapping gap, unlinked customer, closed period).
    blocked = "blocked"
    #: The ledger refused it.
    failed = "failed"


class Backfill(Base):
    """One historical push of a connection: range, kinds, cursor, counts and status."""

    __tablename__ = "backfill"
    __table_args__ = (Index("ix_backfill_connection_created", "connection_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"))
    #: The job mirror that pages and the jobs list render.
    sync_run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_run.id", ondelete="SET NULL"))
    #: First and last document date of the range (inclusive).
    date_from: Mapped[date] = mapped_column(Date)
    date_to: Mapped[date] = mapped_column(Date)
    #: The kinds asked for, a subset of BACKFILL_KINDS.
    kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[BackfillStatus] = mapped_column(
        Enum(BackfillStatus, name="backfill_status", native_enum=False, length=16), default=BackfillStatus.queued
    )
    #: The kind being pushed now (None before the first chunk and when done).
    cursor_kind: Mapped[str | None] = mapped_column(String(16))
    #: The last local id of ``cursor_kind`` fully handled; the next chunk starts after it.
    cursor_id: Mapped[int] = mapped_column(default=0)
    #: Outcome counts per kind, e.g. {"invoice": {"created": 10, "blocked": 1}}.
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Ledger calls made, and the preview's numbers when it was started.
    calls: Mapped[int] = mapped_column(default=0)
    preview: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: A request the job honours at its next chunk boundary: "pause" or "cancel".
    requested: Mapped[str | None] = mapped_column(String(16))
    #: When a quota wait ends (status waiting).
    resume_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Why the status is what it is, in plain words.
    message: Mapped[str | None] = mapped_column(Text)
    #: The reconciliation of the range once done: SaaS vs ledger counts and totals per kind.
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Seconds spent running (summed over resumes), for the rate.
    busy_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    #: Written by the running job every few seconds (and ahead of a quota wait): a running back-fill
    #: whose heartbeat stopped has lost its worker (portal.sync.mirrors).
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    connection: Mapped[Connection] = relationship()
    sync_run: Mapped[SyncRun | None] = relationship()
    started_by: Mapped[StaffUser | None] = relationship()

    def transition(self, target: BackfillStatus, message: str | None = None) -> None:
        """Move to ``target``, stamping start and finish times.

        :raise IllegalTransition: when the life cycle does not allow the move.
        """
        if target not in BACKFILL_TRANSITIONS[self.status]:
            raise IllegalTransition("Backfill", self.status, target)
        self.status = target
        if target is BackfillStatus.running and self.started_at is None:
            self.started_at = utcnow()
        if target.finished:
            self.finished_at = utcnow()
            self.requested = None
        if message is not None:
            self.message = message

    def count(self, kind: str, outcome: str, n: int = 1) -> None:
        """Add ``n`` to the count of ``outcome`` for ``kind``."""
        counts = {k: dict(v) for k, v in (self.counts or {}).items()}
        counts.setdefault(kind, {})
        counts[kind][outcome] = counts[kind].get(outcome, 0) + n
        self.counts = counts

    def total(self, outcome: str | None = None) -> int:
        """Return the number of records handled, or of one outcome, over every kind."""
        return sum(n for per in (self.counts or {}).values() for o, n in per.items() if outcome in (None, o))


class BackfillItem(Base):
    """The outcome of one record in a back-fill."""

    __tablename__ = "backfill_item"
    __table_args__ = (
        UniqueConstraint("backfill_id", "kind", "local_id"),
        Index("ix_backfill_item_backfill_outcome", "backfill_id", "outcome"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    backfill_id: Mapped[int] = mapped_column(ForeignKey("backfill.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    local_id: Mapped[int]
    #: The SaaS's number or name of the record, as people know it.
    label: Mapped[str] = mapped_column(String(200))
    document_date: Mapped[date | None] = mapped_column(Date)
    outcome: Mapped[ItemOutcome] = mapped_column(
        Enum(ItemOutcome, name="backfill_outcome", native_enum=False, length=16)
    )
    external_id: Mapped[str | None] = mapped_column(String(64))
    #: Why it was blocked, skipped or failed, with the provider's text where it came from the ledger.
    reason: Mapped[str | None] = mapped_column(Text)
    #: Where the cause is fixed (mapping screen, customer links…).
    fix_url: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
