"""The job console: what RQ holds (running, queued, scheduled, deferred, failed) beside its SyncRun mirror.

Redis says where a job is; the SyncRun row says what it is and how far it got. Retry and
cancel change both, the row first (committed) so that a worker picking the job up finds the
state it expects (a cancelled run is skipped by ``jobs.runtime.tracked``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import BaseRegistry, ScheduledJobRegistry
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from .. import audit
from ..extensions import db, queue
from ..integrations import specs
from ..models import BusinessUnit, Connection, SyncRun, SyncRunStatus
from ..queue import QUEUE_NAMES

#: Jobs shown per state and queue; the counts say how many there are in all.
LIMIT = 50
#: The states of the console in the order they are shown.
STATES = ("running", "queued", "scheduled", "deferred", "failed")
_JOB_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


class JobActionError(Exception):
    """A retry or cancel that cannot be done; the message says why and what to do instead."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class JobRow:
    """One job as the console shows it."""

    job_id: str
    queue: str
    state: str
    func: str | None
    run: SyncRun | None
    enqueued_at: datetime | None = None
    scheduled_for: datetime | None = None
    error: str = ""
    #: The connection the run works on, with its business unit and organization loaded (None: no connection).
    connection: Connection | None = None

    @property
    def where(self) -> str:
        """Return "Organization · business unit · provider" of the job's connection ("" without one)."""
        return where(self.connection)

    @property
    def can_retry(self) -> bool:
        """Say whether the job may be put back on its queue."""
        return self.state == "failed"

    @property
    def can_cancel(self) -> bool:
        """Say whether the job may be cancelled."""
        return self.state in ("running", "queued", "scheduled", "deferred")

    @property
    def connection_id(self) -> int | None:
        """Return the connection the job works on, when its run names one."""
        value = (self.run.parameters or {}).get("connection_id") if self.run else None
        return value if isinstance(value, int) else None


@dataclass
class Console:
    """Everything the jobs page shows."""

    rows: dict[str, list[JobRow]]
    counts: dict[str, int]
    #: Runs the database says are queued or running that Redis no longer knows (lost jobs).
    orphans: list[SyncRun]
    #: Runs interrupted (job vanished, lease taken over) that nobody resumed or closed yet, newest first.
    interrupted: list[SyncRun] = field(default_factory=list)
    #: Connection id → connection (unit and organization loaded) of the runs shown.
    connections: dict[int, Connection] = field(default_factory=dict)

    def where(self, run: SyncRun) -> str:
        """Return "Organization · business unit · provider" of a run's connection ("" without one)."""
        connection_id = (run.parameters or {}).get("connection_id")
        return where(self.connections.get(connection_id)) if isinstance(connection_id, int) else ""

    @property
    def active(self) -> bool:
        """Say whether anything is running or waiting (the page keeps polling while it is)."""
        return bool(self.counts["running"] or self.counts["queued"] or self.counts["scheduled"])


def where(connection: Connection | None) -> str:
    """Return "Organization · business unit · provider" of a connection ("" for None)."""
    if connection is None:
        return ""
    unit = connection.business_unit
    return f"{unit.organization.name} · {unit.name} · {specs.get_spec(connection.provider).name}"


def _connections(ids: set[int]) -> dict[int, Connection]:
    """Load these connections with their unit and organization, in one query."""
    if not ids:
        return {}
    stmt = (
        select(Connection)
        .options(joinedload(Connection.business_unit).joinedload(BusinessUnit.organization))
        .where(Connection.id.in_(ids))
    )
    return {c.id: c for c in db.session.scalars(stmt)}


def _run_id(job: Job | None) -> int | None:
    """Return the SyncRun id a job was given (its first argument), when it is one."""
    args = job.args if job is not None else ()
    return args[0] if args and isinstance(args[0], int) else None


def _serializer():
    return queue.state.queues["default"].serializer


def _registries(name: str) -> dict[str, BaseRegistry]:
    q = queue.state.queues[name]
    return {
        "running": q.started_job_registry,
        "scheduled": q.scheduled_job_registry,
        "deferred": q.deferred_job_registry,
        "failed": q.failed_job_registry,
    }


def console(state: str | None = None) -> Console:
    """Collect the jobs of every queue by state, with their runs, in three database queries at most."""
    found: list[tuple[str, str, str]] = []  # (state, queue, job id)
    counts = dict.fromkeys(STATES, 0)
    scheduled_at: dict[str, datetime | None] = {}
    for name in QUEUE_NAMES:
        q = queue.state.queues[name]
        counts["queued"] += q.count
        found += [("queued", name, job_id) for job_id in q.get_job_ids(0, LIMIT - 1)]
        for key, registry in _registries(name).items():
            counts[key] += registry.count
            ids = registry.get_job_ids(0, LIMIT - 1, desc=key == "failed")
            found += [(key, name, job_id) for job_id in ids]
            if isinstance(registry, ScheduledJobRegistry):  # the "scheduled" one
                for job_id in ids:
                    scheduled_at[job_id] = registry.get_scheduled_time(job_id)
    if state:
        found = [f for f in found if f[0] == state]
    ids = [job_id for _, _, job_id in found]
    jobs = {job.id: job for job in Job.fetch_many(ids, connection=queue.connection, serializer=_serializer()) if job}
    runs: dict[str, SyncRun] = {}
    if ids:
        # A job is shown with the run it was given (its argument), never an older run of the same job id.
        given = {job_id: _run_id(job) for job_id, job in jobs.items()}
        stmt = (
            select(SyncRun)
            .options(joinedload(SyncRun.started_by))
            .where(SyncRun.rq_job_id.in_(ids) | SyncRun.id.in_([i for i in given.values() if i is not None]))
        )
        by_id = {run.id: run for run in db.session.scalars(stmt)}
        for job_id in ids:
            run_id = given.get(job_id)
            if run_id is not None:
                if run_id in by_id:
                    runs[job_id] = by_id[run_id]
                continue
            mirrors = [run for run in by_id.values() if run.rq_job_id == job_id]
            if mirrors:
                runs[job_id] = max(mirrors, key=lambda run: run.id)
    rows: dict[str, list[JobRow]] = {key: [] for key in STATES}
    for key, name, job_id in found:
        job = jobs.get(job_id)
        rows[key].append(
            JobRow(
                job_id=job_id,
                queue=name,
                state=key,
                func=(job.func_name if job else "(gone from Redis)"),
                run=runs.get(job_id),
                enqueued_at=job.enqueued_at if job else None,
                scheduled_for=scheduled_at.get(job_id),
                error=_failure_words(job, runs.get(job_id)) if key == "failed" and job else "",
            )
        )
    orphan_stmt = (
        select(SyncRun)
        .options(joinedload(SyncRun.started_by))
        .where(SyncRun.status.in_([SyncRunStatus.queued, SyncRunStatus.running]))
        .order_by(SyncRun.id.desc())
        .limit(LIMIT)
    )
    known = set(ids) if not state else None
    orphans = []
    if known is not None:
        orphans = [run for run in db.session.scalars(orphan_stmt) if run.rq_job_id and run.rq_job_id not in known]
        orphans = [run for run in orphans if run.rq_job_id and not _exists(run.rq_job_id)]
    interrupted = list(
        db.session.scalars(
            select(SyncRun).where(SyncRun.status == SyncRunStatus.interrupted).order_by(SyncRun.id.desc()).limit(LIMIT)
        )
    )
    shown = [row.run for rows_ in rows.values() for row in rows_ if row.run] + orphans + interrupted
    connection_ids = {(run.parameters or {}).get("connection_id") for run in shown}
    connections = _connections({i for i in connection_ids if isinstance(i, int)})
    for rows_ in rows.values():
        for row in rows_:
            row.connection = connections.get(row.connection_id) if row.connection_id else None
    return Console(rows=rows, counts=counts, orphans=orphans, interrupted=interrupted, connections=connections)


def _failure_words(job: Job, run: SyncRun | None) -> str:
    """Return why a job failed in words: its run's message (the ledger's error explained), else the exception's line."""
    if run is not None and run.message and run.status is SyncRunStatus.failed:
        return run.message[:300]
    return _last_line(job)


def _exists(job_id: str) -> bool:
    """Say whether Redis still has the job (it may sit beyond the first page of a registry)."""
    return bool(queue.connection.exists(Job.key_for(job_id)))


def _last_line(job: Job) -> str:
    try:
        result = job.latest_result()
        text = result.exc_string if result is not None else (job.exc_info or "")
    except Exception:  # an unreadable result is not worth failing the page for
        text = ""
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def fetch(job_id: str) -> Job:
    """Return the RQ job ``job_id``.

    :raise JobActionError: for a malformed id (400) or a job Redis does not hold (404).
    """
    if not _JOB_ID.match(job_id):
        raise JobActionError(f"{job_id!r} is not a job id.", 400)
    try:
        return Job.fetch(job_id, connection=queue.connection, serializer=_serializer())
    except NoSuchJobError:
        raise JobActionError(
            f"Job {job_id} is no longer in Redis (finished jobs expire); start the work again from its page.", 404
        ) from None


def _run_of(job_id: str) -> SyncRun | None:
    return db.session.scalar(select(SyncRun).where(SyncRun.rq_job_id == job_id).order_by(SyncRun.id.desc()).limit(1))


def _organization_id(run: SyncRun | None) -> int | None:
    connection_id = (run.parameters or {}).get("connection_id") if run else None
    if not isinstance(connection_id, int):
        return None
    connection = db.session.get(Connection, connection_id)
    return connection.business_unit.organization_id if connection else None


def retry(job_id: str) -> SyncRun | None:
    """Put a failed job back on its queue and its run back to queued; audited. Return the run.

    :raise JobActionError: when the job is not failed (409) or gone (404).
    """
    job = fetch(job_id)
    if job.get_status(refresh=True) != JobStatus.FAILED:
        raise JobActionError(f"Job {job_id} is {job.get_status().value}, not failed: only failed jobs are retried.")
    run = _run_of(job_id)
    if run is not None and run.status is SyncRunStatus.failed:
        run.transition(SyncRunStatus.queued, message="Retried from the jobs page.")
    audit.record(
        "job.retried",
        subject_type="SyncRun" if run else "Job",
        subject_id=run.id if run else None,
        organization_id=_organization_id(run),
        summary=f"Retried job {job_id} ({job.func_name}) on queue {job.origin}.",
        before={"status": "failed"},
        after={"status": "queued"},
    )
    db.session.commit()
    job.requeue()
    return run


def cancel(job_id: str) -> SyncRun | None:
    """Cancel a queued, scheduled, deferred or running job and its run; audited. Return the run.

    A running job is stopped through its worker; one whose worker is gone is cancelled in Redis.

    :raise JobActionError: when the job has already ended (409) or is gone (404).
    """
    job = fetch(job_id)
    status = job.get_status(refresh=True)
    if status not in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.STARTED):
        said = status.value if status else "unknown"
        raise JobActionError(f"Job {job_id} is {said}: only waiting or running jobs are cancelled.")
    run = _run_of(job_id)
    if run is not None and not run.status.finished:
        run.transition(SyncRunStatus.cancelled, message="Cancelled from the jobs page.")
    audit.record(
        "job.cancelled",
        subject_type="SyncRun" if run else "Job",
        subject_id=run.id if run else None,
        organization_id=_organization_id(run),
        summary=f"Cancelled job {job_id} ({job.func_name}) on queue {job.origin}, which was {status.value}.",
        before={"status": status.value},
        after={"status": "cancelled"},
    )
    db.session.commit()  # the run is cancelled before Redis: a worker picking the job up now skips it
    if status == JobStatus.STARTED:
        try:
            # A forking worker kills the job's work horse at once; a worker that runs jobs in
            # its own process cannot interrupt one, and the job ends on its own.
            send_stop_job_command(queue.connection, job_id, serializer=_serializer())
            return run
        except InvalidJobOperation:
            pass  # no worker holds it any more: cancel it in Redis below
    if status == JobStatus.SCHEDULED and job.origin in queue.state.queues:
        queue.state.queues[job.origin].scheduled_job_registry.remove(job)
    job.cancel()
    return run
