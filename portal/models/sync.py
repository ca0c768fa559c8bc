"""SyncRun: the database mirror of one background job, which pages render from."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..database import Base, UTCDateTime, utcnow
from .staff import StaffUser


class SyncRunKind(enum.StrEnum):
    """What a job does."""

    incremental = "incremental"
    historical = "historical"
    resync = "resync"
    payment_poll = "payment_poll"
    test = "test"
    reference_refresh = "reference_refresh"
    #: Fetch the ledger's customers and suggest links for the unlinked SaaS customers.
    customer_match = "customer_match"
    #: A no-op round trip through the queue that proves workers are alive.
    queue_check = "queue_check"


class SyncRunStatus(enum.StrEnum):
    """Where a job is in its life."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    #: Stopped before its end without failing: its job vanished (worker killed, Redis lost) or it lost
    #: its connection's lease to a newer run. Resume (queued again) or Close (cancelled).
    interrupted = "interrupted"

    @property
    def finished(self) -> bool:
        """Say whether the run has ended (no further progress will come)."""
        return self in (
            SyncRunStatus.succeeded,
            SyncRunStatus.failed,
            SyncRunStatus.cancelled,
            SyncRunStatus.interrupted,
        )


class IllegalTransition(Exception):
    """A status change that the model's life cycle does not allow."""

    def __init__(self, model: str, current: enum.Enum, target: enum.Enum) -> None:
        super().__init__(f"{model} cannot go from {current.value} to {target.value}")
        self.current, self.target = current, target


#: The moves a run may make; a finished run never moves again, except a failed one re-queued.
SYNC_RUN_TRANSITIONS: dict[SyncRunStatus, frozenset[SyncRunStatus]] = {
    SyncRunStatus.queued: frozenset(
        {SyncRunStatus.running, SyncRunStatus.cancelled, SyncRunStatus.failed, SyncRunStatus.interrupted}
    ),
    SyncRunStatus.running: frozenset(
        {
            SyncRunStatus.succeeded,
            SyncRunStatus.failed,
            SyncRunStatus.cancelled,
            SyncRunStatus.queued,
            SyncRunStatus.interrupted,
        }
    ),
    SyncRunStatus.succeeded: frozenset(),
    SyncRunStatus.failed: frozenset({SyncRunStatus.queued}),
    SyncRunStatus.cancelled: frozenset(),
    SyncRunStatus.interrupted: frozenset({SyncRunStatus.queued, SyncRunStatus.cancelled}),
}


class SyncRun(Base):
    """One job: its parameters, status, progress and outcome."""

    __tablename__ = "sync_run"
    __table_args__ = (Index("ix_sync_run_status_created", "status", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[SyncRunKind] = mapped_column(Enum(SyncRunKind, name="sync_run_kind", native_enum=False, length=24))
    status: Mapped[SyncRunStatus] = mapped_column(
        Enum(SyncRunStatus, name="sync_run_status", native_enum=False, length=16),
        default=SyncRunStatus.queued,
    )
    #: RQ queue the job was put on.
    queue: Mapped[str] = mapped_column(String(32))
    #: RQ job id, to find the job in Redis while it lives there.
    rq_job_id: Mapped[str | None] = mapped_column(String(128), index=True)
    #: The job's inputs (date range, dry run, kinds…), as given.
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int | None]
    #: Outcome counts by state, e.g. {"pushed": 10, "failed": 1}.
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: A sentence about the outcome, or the error that ended the run.
    message: Mapped[str | None] = mapped_column(Text)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    started_by: Mapped[StaffUser | None] = relationship()

    def transition(self, target: SyncRunStatus, message: str | None = None) -> None:
        """Move to ``target``, stamping start and finish times.

        :raise IllegalTransition: when the life cycle does not allow the move.
        """
        if target not in SYNC_RUN_TRANSITIONS[self.status]:
            raise IllegalTransition("SyncRun", self.status, target)
        self.status = target
        if target is SyncRunStatus.running:
            self.started_at = utcnow()
        elif target is SyncRunStatus.queued:
            self.finished_at = None
        if target.finished:
            self.finished_at = utcnow()
        if message is not None:
            self.message = message
