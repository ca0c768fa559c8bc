"""Periodic pushes: find connections with due records and enqueue one push job each (DESIGN.md "Jobs").

``flask --app app schedule tick`` (run by cron every minute) calls :func:`tick`. A connection
is due when it is connected (not paused, not waiting for re-authorization, not disconnected)
and has an invoice dated on or after its ``sync_from``, not pushed, skipped or failed, that was
created at least ``sync_delay_minutes`` (default 5, at most 60) minus one tick ago — so with a
one-minute cron every due record starts its push within the delay.

Jobs have the deterministic id ``sync-<connection id>`` and ``unique=True``: while one is queued,
scheduled or running, a second tick enqueues nothing ("already queued" is fine). RQ 3 keeps a
finished job's hash for its result/failure TTL and refuses a unique enqueue while the hash
exists (DuplicateJobError), so a *finished* job of that id is deleted first.

A run stopped by a rate limit re-enqueues itself with :func:`enqueue_push` at the window's reset
(RQ's scheduler: workers run ``--with-scheduler``); its id carries the time, so that concurrent
runs of one connection stopped by the same window schedule one retry. Mutual exclusion of runs
of one connection is the job's own Redis lock (jobs/sync.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import exists, select

from ..database import utcnow
from ..extensions import db, queue
from ..models import (
    Connection,
    ConnectionStatus,
    ExternalRecord,
    Invoice,
    RecordKind,
    RecordState,
    SyncRun,
    SyncRunKind,
    SyncRunStatus,
)

log = logging.getLogger(__name__)

PUSH_JOB = "jobs.sync.push_connection"
QUEUE = "sync"
MAX_DELAY_MINUTES = 60
#: Cron runs the tick every minute: a record is due one tick before its delay is over.
TICK = timedelta(minutes=1)
#: A push may pace under quotas for a while; RQ's default 180 s would kill it.
JOB_TIMEOUT = 3600
#: Keep a finished job's hash briefly (a unique enqueue needs it gone).
RESULT_TTL = 60
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED})
#: Statuses whose connections are pushed by the scheduler (failing ones keep trying).
SCHEDULED_STATUSES = (ConnectionStatus.connected, ConnectionStatus.failing)


def job_id(connection_id: int) -> str:
    """Return the deterministic job id of a connection's push."""
    return f"sync-{connection_id}"


def sync_delay(connection: Connection) -> timedelta:
    """Return how long a record waits before the scheduler pushes it (setting, clamped to 0 to 60 min)."""
    raw = (connection.settings or {}).get("sync_delay_minutes")
    try:
        minutes = int(raw) if raw is not None else int(current_app.config.get("SYNC_DELAY_MINUTES", 5))
    except (TypeError, ValueError):
        minutes = 5
    return timedelta(minutes=max(0, min(MAX_DELAY_MINUTES, minutes)))


def has_due_records(connection: Connection, now: datetime | None = None) -> bool:
    """Say whether the connection has an invoice waiting for a push past its delay."""
    now = now or utcnow()
    created_before = now - max(sync_delay(connection) - TICK, timedelta(0))
    finished = select(ExternalRecord.id).where(
        ExternalRecord.connection_id == connection.id,
        ExternalRecord.kind == RecordKind.invoice,
        ExternalRecord.local_id == Invoice.id,
        ExternalRecord.state.in_([RecordState.pushed, RecordState.skipped, RecordState.failed]),
    )
    stmt = select(Invoice.id).where(
        Invoice.business_unit_id == connection.business_unit_id,
        Invoice.issue_date >= connection.sync_from.date(),
        Invoice.created_at <= created_before,
        ~exists(finished),
    )
    return db.session.scalar(stmt.limit(1)) is not None


def _active(job_key: str) -> bool:
    """Say whether a job of that id is queued, scheduled or running; delete it when it is finished."""
    try:
        job = Job.fetch(job_key, connection=queue.connection, serializer=queue.state.queues[QUEUE].serializer)
    except NoSuchJobError:
        return False
    if job.get_status(refresh=True) in ACTIVE:
        return True
    job.delete()
    return False


def enqueue_push(connection: Connection, *, at: datetime | None = None, reason: str = "") -> SyncRun | None:
    """Enqueue one push of ``connection`` (at ``at`` through RQ's scheduler); None when one is already queued.

    The SyncRun is committed before the job is enqueued so that a worker always finds it.
    """
    key = job_id(connection.id) + (f"-at-{int(at.timestamp())}" if at is not None else "")
    if _active(key):
        return None
    run = SyncRun(
        kind=SyncRunKind.incremental,
        queue=QUEUE,
        parameters={"connection_id": connection.id},
        message=reason or None,
    )
    db.session.add(run)
    db.session.commit()
    options = {"job_id": key, "unique": True, "result_ttl": RESULT_TTL}
    rq_queue = queue.state.queues[QUEUE]
    try:
        if at is None:
            job = rq_queue.enqueue_call(PUSH_JOB, args=(run.id,), timeout=JOB_TIMEOUT, **options)
        else:
            job = rq_queue.enqueue_at(at, PUSH_JOB, run.id, job_timeout=JOB_TIMEOUT, **options)
    except DuplicateJobError:
        # Another tick or worker enqueued it between our check and now: theirs will do.
        run.transition(SyncRunStatus.cancelled, message="Another push of this connection was already queued.")
        db.session.commit()
        return None
    run.rq_job_id = job.id
    db.session.commit()
    return run


@dataclass(frozen=True)
class TickResult:
    """What one tick did."""

    enqueued: list[int]
    already_queued: list[int]
    not_due: int


def tick(now: datetime | None = None) -> TickResult:
    """Enqueue a push for every scheduled connection with due records."""
    now = now or datetime.now(UTC)
    enqueued, already, not_due = [], [], 0
    stmt = select(Connection).where(Connection.status.in_(SCHEDULED_STATUSES)).order_by(Connection.id)
    for connection in db.session.scalars(stmt).all():
        if not has_due_records(connection, now):
            not_due += 1
            continue
        run = enqueue_push(connection, reason="Scheduled push of due records.")
        (enqueued if run is not None else already).append(connection.id)
    return TickResult(enqueued, already, not_due)
