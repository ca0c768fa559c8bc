"""Periodic pushes: find connections with due records and enqueue one push job each (DESIGN.md "Jobs").

``flask --app app schedule tick`` (run by cron every minute) calls :func:`tick`. A connection
is due when it is live (past its go-live gate, ``Connection.live_since``), connected (not paused,
not waiting for re-authorization, not disconnected) and has an invoice dated on or after its
``sync_from``, not pushed, skipped or failed, that was created at least ``sync_delay_minutes``
(default 5, at most 60) minus one tick ago — so with a one-minute cron every due record starts
its push within the delay. A connection that has not gone live is never due: its records wait.
Nor is a record held before any ledger call until a person acts (a customer to link, a rate to
map, a document to correct: ``ExternalRecord.held_for_person``), so a connection whose only
records are held gets no run a minute that would do nothing; the person's act makes it due again.

Jobs have the deterministic id ``sync-<connection id>`` and ``unique=True``: while one is queued,
scheduled or running, a second tick enqueues nothing ("already queued" is fine). RQ 3 keeps a
finished job's hash for its result/failure TTL and refuses a unique enqueue while the hash
exists (DuplicateJobError), so a *finished* job of that id is deleted first.

The same tick enqueues a payments pull (job id ``payments-<connection id>``, ``unique=True``) for
each scheduled connection in payments mode "pull" whose last pull is older than its interval
(portal.sync.payments).

A run stopped by a provider outage re-enqueues itself with exponential backoff (1, 2, 4 … minutes,
at most an hour; :func:`backoff`), counted per connection in Redis and reset by a run that
reaches the end; while it lasts, the tick enqueues no push of that connection (:func:`backing_off`).
A run stopped by a rate limit re-enqueues itself with :func:`enqueue_push` at the window's reset
(RQ's scheduler: workers run ``--with-scheduler``), and a run that deferred records after outages
of their own (portal.sync.deferral) at the earliest of their next attempts. A connection has at
most one scheduled retry: scheduling one replaces any other (its id carries the time, so that
concurrent runs stopped by the same window schedule one). Mutual exclusion of runs of one
connection is the job's lease in the database (portal.sync.fencing) behind a Redis lock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from flask import current_app
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import exists, select

from ..database import utcnow
from ..extensions import db, queue
from ..models import (
    Connection,
    ConnectionStatus,
    CreditNote,
    ExternalRecord,
    Invoice,
    RecordKind,
    RecordState,
    SyncRun,
    SyncRunKind,
    SyncRunStatus,
)
from . import deferral, fencing, payments

log = logging.getLogger(__name__)

PUSH_JOB = "jobs.sync.push_connection"
PAYMENTS_JOB = "jobs.payments.pull_connection_payments"
QUEUE = "sync"
#: Backoff after a provider outage: 1, 2, 4 … minutes, at most this.
MAX_BACKOFF = timedelta(hours=1)
#: Consecutive runs stopped by an outage after which the connection counts as failing.
FAILING_AFTER = 3
MAX_DELAY_MINUTES = 60
#: Cron runs the tick every minute: a record is due one tick before its delay is over.
TICK = timedelta(minutes=1)
#: A push may pace under quotas for a while; RQ's default 180 s would kill it.
JOB_TIMEOUT = 3600
#: Seconds a push holds its connection's lock (jobs/sync.py) unless it renews it; it renews it
#: as it makes progress, so a run whose worker died frees the connection after this long.
LOCK_TIMEOUT = 120
#: A started push without its lock this long after starting has lost its worker (see :func:`_active`).
START_GRACE = timedelta(seconds=30)
#: Keep a finished job's hash briefly (a unique enqueue needs it gone).
RESULT_TTL = 60
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED})
#: Statuses whose connections are pushed by the scheduler (failing ones keep trying).
SCHEDULED_STATUSES = (ConnectionStatus.connected, ConnectionStatus.failing)
#: Why the records of a connection that has not gone live wait.
NOT_LIVE_WORDS = "not live yet: its records wait until support takes it live (the connection's checklist)"


def scheduled_clause():
    """Return the SQL condition of connections the scheduler pushes: live, and connected or failing."""
    return Connection.status.in_(SCHEDULED_STATUSES) & Connection.live_since.is_not(None)


def pushes_automatically(connection: Connection) -> bool:
    """Say whether the connection's due records are pushed without a person: live, and connected or failing."""
    return connection.status in SCHEDULED_STATUSES and connection.went_live


def job_id(connection_id: int) -> str:
    """Return the deterministic job id of a connection's push."""
    return f"sync-{connection_id}"


class HasSettings(Protocol):
    """What :func:`sync_delay` reads of a connection: its settings."""

    @property
    def settings(self) -> Mapping[str, Any] | None: ...


def sync_delay(connection: HasSettings) -> timedelta:
    """Return how long a record waits before the scheduler pushes it (setting, clamped to 0 to 60 min)."""
    raw = (connection.settings or {}).get("sync_delay_minutes")
    try:
        minutes = int(raw) if raw is not None else int(current_app.config.get("SYNC_DELAY_MINUTES", 5))
    except (TypeError, ValueError):
        minutes = 5
    return timedelta(minutes=max(0, min(MAX_DELAY_MINUTES, minutes)))


#: Record states the scheduler does not push again by itself.
FINISHED = (RecordState.pushed, RecordState.skipped, RecordState.failed, RecordState.dismissed)


def has_due_records(connection: Connection, now: datetime | None = None) -> bool:
    """Say whether the connection has an invoice or credit note waiting for a push past its delay.

    Payments to push (payments mode "push") and changes of linked customers count too. Records
    held until a person acts do not.
    """
    now = now or utcnow()
    created_before = now - max(sync_delay(connection) - TICK, timedelta(0))
    for model, kind in ((Invoice, RecordKind.invoice), (CreditNote, RecordKind.credit_note)):
        finished = select(ExternalRecord.id).where(
            ExternalRecord.connection_id == connection.id,
            ExternalRecord.kind == kind,
            ExternalRecord.local_id == model.id,
            ExternalRecord.state.in_(FINISHED) | ExternalRecord.held_for_person() | deferral.not_due(now),
        )
        stmt = select(model.id).where(
            model.business_unit_id == connection.business_unit_id,
            model.issue_date >= connection.sync_from.date(),
            model.created_at <= created_before,
            ~exists(finished),
        )
        if db.session.scalar(stmt.limit(1)) is not None:
            return True
    if payments.mode(connection) == payments.PUSH:
        from .push import due_payments  # push imports the vault; keep this module light

        if due_payments(connection):
            return True
    from ..customers import updates  # a linked customer changed in the SaaS: its ledger customer follows

    return updates.has_due(connection)


def lock_key(connection_id: int) -> str:
    """Return the Redis key of the lock a push of the connection holds while it runs."""
    return f"ledgerlink:sync-lock:{connection_id}"


def _backoff_key(connection_id: int) -> str:
    return f"ledgerlink:sync-backoff:{connection_id}"


def _until_key(connection_id: int) -> str:
    return f"ledgerlink:sync-backoff-until:{connection_id}"


#: What the wait of a connection the tick leaves alone is for (the value of its Redis key).
OUTAGE, QUOTA = "outage", "quota"


def backoff(connection_id: int) -> tuple[int, timedelta]:
    """Count one more run stopped by an outage; return the count and how long to wait before the next.

    Until then the tick leaves the connection alone (:func:`backing_off`): its scheduled retry comes first.
    """
    key = _backoff_key(connection_id)
    count = int(queue.connection.incr(key))
    queue.connection.expire(key, int(timedelta(days=1).total_seconds()))
    delay = min(timedelta(minutes=2 ** min(count - 1, 10)), MAX_BACKOFF)
    queue.connection.set(_until_key(connection_id), OUTAGE, ex=max(1, int(delay.total_seconds()) - 5))
    return count, delay


def hold_until(connection_id: int, at: datetime) -> None:
    """Let the tick leave the connection alone until ``at`` (a spent quota's reset: its retry is scheduled then)."""
    seconds = int((at - datetime.now(UTC)).total_seconds())
    if seconds > 0:
        queue.connection.set(_until_key(connection_id), f"{QUOTA} {at.astimezone(UTC).isoformat()}", ex=seconds)


def backing_off(connection_id: int) -> bool:
    """Say whether the connection waits out a backoff after outages or a spent quota (the tick enqueues no push)."""
    return bool(queue.connection.exists(_until_key(connection_id)))


def waiting(connection_id: int) -> tuple[str, datetime | None] | None:
    """Return what the connection waits for — (:data:`OUTAGE`, None) or (:data:`QUOTA`, its reset) — or None."""
    raw = queue.connection.get(_until_key(connection_id))
    if raw is None:
        return None
    words = (raw.decode() if isinstance(raw, bytes) else str(raw)).split(" ", 1)
    if words[0] != QUOTA:
        return OUTAGE, None
    try:
        return QUOTA, datetime.fromisoformat(words[1]) if len(words) > 1 else None
    except ValueError:
        return QUOTA, None


def reset_backoff(connection_id: int) -> None:
    """Forget the outage count of a connection (a run reached the end)."""
    queue.connection.delete(_backoff_key(connection_id), _until_key(connection_id))


def _active(job_key: str, connection_id: int | None = None) -> bool:
    """Say whether a job of that id is queued, scheduled or running; delete it when it is finished.

    With ``connection_id`` (a push), a job RQ still calls started but whose run holds no lock of
    the connection (past :data:`START_GRACE` after its start) is abandoned: its worker was killed
    or lost. RQ cannot tell (a worker that does not fork beats no heartbeat during a job and its
    registration lives for the whole job timeout), but the run renews its short lock as long as
    it works (:data:`LOCK_TIMEOUT`), and its lease in the database (portal.sync.fencing). The
    abandoned job is deleted and its run marked interrupted.
    """
    try:
        job = Job.fetch(job_key, connection=queue.connection, serializer=queue.state.queues[QUEUE].serializer)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=True)
    if status is JobStatus.STARTED and connection_id is not None and abandoned(job, connection_id):
        log.warning("push job %s of connection %s lost its worker; it is given up", job.id, connection_id)
        _fail_run(job)
        job.delete()
        return False
    if status in ACTIVE:
        return True
    job.delete()
    return False


def abandoned(job: Job, connection_id: int, now: datetime | None = None) -> bool:
    """Say whether a started push job has lost its worker: no lock of its connection, and not just started."""
    if queue.connection.exists(lock_key(connection_id)):
        return False
    run_id = job.args[0] if job.args else None
    now = now or datetime.now(UTC)
    if run_id is not None and fencing.holder(connection_id, now) == run_id:
        return False  # its run holds the connection's lease: alive, whatever Redis lost
    started = job.started_at
    if started is None:
        return False
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return now - started > START_GRACE


def _fail_run(job: Job) -> None:
    """Mark the SyncRun of an abandoned job interrupted (it never finished; Resume or a new push goes on)."""
    run = db.session.get(SyncRun, job.args[0]) if job.args else None
    if run is None or run.status is not SyncRunStatus.running:
        return
    run.transition(
        SyncRunStatus.interrupted, message="Interrupted: the worker running this push stopped before it finished."
    )
    db.session.commit()


def enqueue_push(connection: Connection, *, at: datetime | None = None, reason: str = "") -> SyncRun | None:
    """Enqueue one push of ``connection`` (at ``at`` through RQ's scheduler); None when one is already queued.

    The SyncRun is committed before the job is enqueued so that a worker always finds it.
    """
    key = job_id(connection.id) + (f"-at-{int(at.timestamp())}" if at is not None else "")
    if _active(key, connection.id):
        return None
    rq_queue = queue.queues(QUEUE)  # refuses before a run is made where nothing would run it
    if at is not None:
        _drop_other_retries(connection.id, key)
    run = SyncRun(
        kind=SyncRunKind.incremental,
        queue=QUEUE,
        parameters={"connection_id": connection.id},
        message=reason or None,
    )
    db.session.add(run)
    db.session.commit()
    options: dict[str, Any] = {"job_id": key, "unique": True, "result_ttl": RESULT_TTL}
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


def _drop_other_retries(connection_id: int, keep: str) -> None:
    """Cancel the connection's other scheduled retries: a connection has one at most, the latest one asked for."""
    rq_queue = queue.state.queues[QUEUE]
    registry = rq_queue.scheduled_job_registry
    prefix = job_id(connection_id) + "-at-"
    for other in registry.get_job_ids():
        if not other.startswith(prefix) or other == keep:
            continue
        try:
            job = Job.fetch(other, connection=queue.connection, serializer=rq_queue.serializer)
        except NoSuchJobError:
            registry.remove(other)
            continue
        registry.remove(job)
        job.delete()
        run = db.session.scalar(select(SyncRun).where(SyncRun.rq_job_id == other).order_by(SyncRun.id.desc()).limit(1))
        if run is not None and not run.status.finished:
            run.transition(SyncRunStatus.cancelled, message="Replaced by a later retry of this connection.")
            db.session.commit()


def payments_job_id(connection_id: int) -> str:
    """Return the deterministic job id of a connection's payments pull."""
    return f"payments-{connection_id}"


def enqueue_payments_pull(connection: Connection, *, reason: str = "") -> SyncRun | None:
    """Enqueue one payments pull of ``connection``; None when one is already queued or running."""
    key = payments_job_id(connection.id)
    if _active(key):
        return None
    rq_queue = queue.queues(QUEUE)  # refuses before a run is made where nothing would run it
    run = SyncRun(
        kind=SyncRunKind.payment_poll,
        queue=QUEUE,
        parameters={"connection_id": connection.id},
        message=reason or None,
    )
    db.session.add(run)
    db.session.commit()
    try:
        job = rq_queue.enqueue_call(
            PAYMENTS_JOB, args=(run.id,), timeout=JOB_TIMEOUT, job_id=key, unique=True, result_ttl=RESULT_TTL
        )
    except DuplicateJobError:
        run.transition(SyncRunStatus.cancelled, message="Another payments pull of this connection was already queued.")
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
    #: Connections whose payments pull was enqueued.
    payments_enqueued: list[int] = field(default_factory=list)
    #: Connections with due records left alone while they wait out a backoff after outages.
    backing_off: list[int] = field(default_factory=list)
    #: Connections with due records left alone while the ledger's quota is spent → when it resets
    #: (their push is scheduled then); their payments pull waits too.
    quota_waits: dict[int, datetime | None] = field(default_factory=dict)
    #: Connected connections with due records that have not gone live: their records wait for go-live.
    not_live: list[int] = field(default_factory=list)


def tick(now: datetime | None = None) -> TickResult:
    """Enqueue a push for every scheduled connection with due records, and the payments pulls due.

    First, runs whose job vanished are marked interrupted (:func:`portal.sync.mirrors.reconcile`).
    Connections left alone are counted with the reason: nothing due, not live yet (connected,
    with due records, before go-live), waiting for the ledger's spent quota to reset (their push
    is scheduled for then, :func:`hold_until`, and their payments pull waits too), or backing off after outages.
    """
    from . import mirrors

    mirrors.reconcile()
    now = now or datetime.now(UTC)
    enqueued: list[int] = []
    already: list[int] = []
    outages: list[int] = []
    quota: dict[int, datetime | None] = {}
    not_live: list[int] = []
    not_due, pulls = 0, []
    stmt = select(Connection).where(Connection.status.in_(SCHEDULED_STATUSES)).order_by(Connection.id)
    for connection in db.session.scalars(stmt).all():
        if not connection.went_live:
            if has_due_records(connection, now):
                not_live.append(connection.id)
            continue
        wait = waiting(connection.id)
        if (
            (wait is None or wait[0] != QUOTA)
            and payments.pull_due(connection, now)
            and enqueue_payments_pull(connection, reason="Scheduled payments pull.")
        ):
            pulls.append(connection.id)
        if not has_due_records(connection, now):
            not_due += 1
            continue
        if wait is not None and wait[0] == QUOTA:
            quota[connection.id] = wait[1]
            continue
        if wait is not None:
            outages.append(connection.id)
            continue
        run = enqueue_push(connection, reason="Scheduled push of due records.")
        (enqueued if run is not None else already).append(connection.id)
    return TickResult(enqueued, already, not_due, pulls, outages, quota, not_live)


@dataclass(frozen=True)
class TickOutcome:
    """What one whole tick did: the pushes and pulls, the purged log entries and expired consents."""

    result: TickResult
    purged: int
    expired: int

    def describe(self) -> str:
        """Return the outcome in one line: what was enqueued, and every connection left alone and why."""
        r = self.result
        return (
            f"{len(r.enqueued)} push(es) enqueued, {len(r.already_queued)} already queued, "
            f"{r.not_due} connection(s) with nothing due, {_not_live_words(len(r.not_live))}, "
            f"{_quota_words(r.quota_waits)}, {len(r.backing_off)} backing off after outages, "
            f"{len(r.payments_enqueued)} payments pull(s) "
            f"enqueued, {self.purged} operation log entr{'y' if self.purged == 1 else 'ies'} purged, "
            f"{self.expired} waiting consent(s) expired."
        )


def _not_live_words(count: int) -> str:
    return f"{count} connection{'' if count == 1 else 's'} not live yet (their due records wait for go-live)"


def _quota_words(waits: Mapping[int, datetime | None]) -> str:
    """Return "N waiting for the ledger's quota", with the first reset when one is known."""
    resets = [at for at in waits.values() if at is not None]
    if not resets:
        return f"{len(waits)} waiting for the ledger's quota"
    first = min(resets).astimezone(UTC)
    daily = first - datetime.now(UTC) > timedelta(hours=1)
    which = "daily quota" if daily else "ledger's quota"
    return f"{len(waits)} waiting for the {which} (until {first:%H:%M} UTC)"


def run_tick(now: datetime | None = None) -> TickOutcome:
    """The periodic work of one minute, committed: due pushes and payments pulls enqueued, the
    operation log purged, consents nobody finished expired.

    Run by ``flask schedule tick`` from cron, and every minute by the embedded runtime of the demo.
    """
    from ..connections.services import expire_grants
    from ..oplog.services import purge_expired

    result = tick(now)
    db.session.commit()
    purged = purge_expired(now)
    expired = expire_grants(now)
    db.session.commit()
    return TickOutcome(result, purged, expired)
