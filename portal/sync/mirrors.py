"""Run mirrors kept honest: a SyncRun whose job is gone is shown interrupted, with Resume and Close.

A run is the database mirror of one RQ job. When the job vanishes — its worker was SIGKILLed,
Redis restarted and lost it, a key expired — nothing will ever move the run on, whatever its job
id looks like (``sync-<id>``, ``sync-<id>-at-<time>``, ``history-<id>``, a random one).
:func:`reconcile` (run by every schedule tick) finds runs queued or running for longer than
:data:`GRACE` whose job Redis no longer holds, whose job ended without them, or whose job a
killed worker left "started", and marks them interrupted, unless the run is
visibly alive another way: a push holding its connection's lease (portal.sync.fencing), a
back-fill whose heartbeat is recent (``Backfill.heartbeat_at``). A back-fill whose heartbeat
stopped for :data:`BACKFILL_DEAD` is interrupted even while RQ still calls its job started (a
killed worker that did not fork leaves it so).

:func:`resume` queues an interrupted run's work again (pushes, payments pulls, reference reads,
customer suggestions, back-fills at their cursor); :func:`close` ends it as cancelled.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import select

from ..database import utcnow
from ..extensions import db, queue
from ..models import Backfill, BackfillStatus, Connection, SyncRun, SyncRunKind, SyncRunStatus
from . import fencing

#: A run younger than this is left alone (its job may be on its way into Redis).
GRACE = timedelta(seconds=30)
#: A running back-fill whose heartbeat is older than this has lost its worker.
BACKFILL_DEAD = timedelta(seconds=60)
#: A job started longer ago than its timeout and this is abandoned: RQ would have ended a live one.
TIMEOUT_SLACK = timedelta(seconds=60)
#: Job states after which the job never moves its run on.
_ENDED = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})
#: The words of a run whose job vanished.
VANISHED = (
    "Interrupted: its job is no longer in the queue (the worker stopped or Redis lost it) after {done} of {total} "
    "records. Resume queues it again; what was done is kept."
)

#: The job each resumable kind of run runs (all take the run id), and their queue.
_JOBS = {
    SyncRunKind.incremental: ("jobs.sync.push_connection", "sync"),
    SyncRunKind.resync: ("jobs.sync.push_connection", "sync"),
    SyncRunKind.payment_poll: ("jobs.payments.pull_connection_payments", "sync"),
    SyncRunKind.reference_refresh: ("jobs.reference.refresh_reference_data", "default"),
    SyncRunKind.customer_match: ("jobs.customers.suggest_links", "default"),
}


class ResumeError(Exception):
    """A run that cannot be resumed or closed; the message says why and what to do instead."""


def _job_gone(run: SyncRun, now: datetime) -> bool:
    """Say whether the run's job will never move it on: vanished, ended without it, or left by a dead worker.

    A job RQ still calls started is abandoned when its worker was killed: for a push, when the
    run holds neither its connection's lock nor its lease past the start's grace
    (:func:`portal.sync.schedule.abandoned`); for any other run, when it has been started longer
    than its timeout (RQ would have ended a live one). An abandoned job is deleted, so a resumed
    or scheduled push can take its id again.
    """
    from . import schedule

    if not run.rq_job_id:
        return True
    try:
        job = Job.fetch(run.rq_job_id, connection=queue.connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return True
    status = job.get_status(refresh=False)
    if status in _ENDED:
        return True  # the job ended and left its run unfinished (it cannot finish it any more)
    if status is not JobStatus.STARTED or job.started_at is None:
        return False
    connection_id = (run.parameters or {}).get("connection_id")
    if run.kind in (SyncRunKind.incremental, SyncRunKind.resync) and isinstance(connection_id, int):
        abandoned = schedule.abandoned(job, connection_id, now)
    else:
        started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=UTC)
        abandoned = now - started > timedelta(seconds=job.timeout or schedule.JOB_TIMEOUT) + TIMEOUT_SLACK
    if abandoned:
        job.delete()
    return abandoned


def _backfill_of(run: SyncRun) -> Backfill | None:
    return db.session.scalar(select(Backfill).where(Backfill.sync_run_id == run.id))


def _alive(run: SyncRun, now: datetime) -> bool:
    """Say whether the run shows life apart from its job: a push's lease, a back-fill's heartbeat."""
    connection_id = (run.parameters or {}).get("connection_id")
    if run.kind in (SyncRunKind.incremental, SyncRunKind.resync) and isinstance(connection_id, int):
        return fencing.holder(connection_id, now) == run.id
    if run.kind is SyncRunKind.historical:
        backfill = _backfill_of(run)
        beat = backfill.heartbeat_at if backfill is not None else None
        return beat is not None and now - beat < BACKFILL_DEAD
    return False


def reconcile(now: datetime | None = None) -> list[int]:
    """Mark interrupted every queued or running run whose job vanished (and dead back-fills); return their ids."""
    now = now or utcnow()
    stmt = select(SyncRun).where(
        SyncRun.status.in_([SyncRunStatus.queued, SyncRunStatus.running]),
        SyncRun.created_at < now - GRACE,
    )
    marked = []
    for run in db.session.scalars(stmt).all():
        if _alive(run, now):
            continue
        gone = _job_gone(run, now)
        if not gone and run.kind is SyncRunKind.historical and run.status is SyncRunStatus.running:
            gone = _backfill_dead(run, now)
        if gone:
            _interrupt(run)
            marked.append(run.id)
    if marked:
        db.session.commit()
    return marked


def _backfill_dead(run: SyncRun, now: datetime) -> bool:
    backfill = _backfill_of(run)
    if backfill is None or backfill.status is not BackfillStatus.running:
        return False
    beat = backfill.heartbeat_at or backfill.started_at
    return beat is not None and now - beat > BACKFILL_DEAD


def _interrupt(run: SyncRun) -> None:
    message = VANISHED.format(done=run.progress_done or 0, total=run.progress_total or 0)
    run.transition(SyncRunStatus.interrupted, message=message)
    if run.kind is SyncRunKind.historical:
        backfill = _backfill_of(run)
        if backfill is not None and not backfill.status.finished and backfill.status is not BackfillStatus.paused:
            if backfill.status is not BackfillStatus.interrupted:
                backfill.transition(
                    BackfillStatus.interrupted,
                    "Interrupted: its worker stopped (no heartbeat). Resume continues where it stopped.",
                )
            # The dead worker cannot release its lock: let the resumed job take the connection.
            queue.connection.delete(f"ledgerlink:history-lock:{backfill.connection_id}")


def resume(run: SyncRun) -> SyncRun:
    """Queue an interrupted run's work again (the same run); return it.

    :raise ResumeError: when the run is not interrupted or its kind cannot be resumed from here.
    """
    if run.status is not SyncRunStatus.interrupted:
        raise ResumeError(f"Run #{run.id} is {run.status.value}: only interrupted runs are resumed.")
    if run.kind is SyncRunKind.historical:
        from ..history import services as history

        backfill = _backfill_of(run)
        if backfill is None:
            raise ResumeError(f"Run #{run.id} has no back-fill any more; start a new one from the connection.")
        try:
            history.resume(backfill, actor="jobs page")
        except history.HistoryError as exc:
            raise ResumeError(str(exc)) from None
        return run
    spec = _JOBS.get(run.kind)
    connection_id = (run.parameters or {}).get("connection_id")
    connection = db.session.get(Connection, connection_id) if isinstance(connection_id, int) else None
    if spec is None or connection is None:
        raise ResumeError(f"A {run.kind.value.replace('_', ' ')} run is not resumed from here; start it from its page.")
    func, queue_name = spec
    run.transition(SyncRunStatus.queued, message="Resumed from the jobs page.")
    db.session.commit()
    options: dict = {"job_timeout": 3600, "result_ttl": 60}
    if func == "jobs.sync.push_connection":
        from .schedule import job_id

        options.update(job_id=job_id(connection.id), unique=True)
    try:
        job = queue.state.queues[queue_name].enqueue(func, run.id, **options)
    except DuplicateJobError:
        run.transition(SyncRunStatus.cancelled, message="Not resumed: a push of this connection is queued already.")
        db.session.commit()
        return run
    run.rq_job_id = job.id
    db.session.commit()
    return run


def close(run: SyncRun) -> SyncRun:
    """End an interrupted run as cancelled (nobody will resume it); return it.

    :raise ResumeError: when the run is not interrupted.
    """
    if run.status is not SyncRunStatus.interrupted:
        raise ResumeError(f"Run #{run.id} is {run.status.value}: only interrupted runs are closed.")
    run.transition(SyncRunStatus.cancelled, message=f"Closed from the jobs page. {run.message or ''}".strip())
    db.session.commit()
    return run
