"""Starting, pausing, resuming and cancelling a back-fill, and the SyncRun that mirrors it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from .. import audit
from ..extensions import db, queue
from ..models import (
    Backfill,
    BackfillStatus,
    Connection,
    StaffUser,
    SyncRun,
    SyncRunKind,
    SyncRunStatus,
)

# -- starting, pausing, resuming, cancelling ------------------------------------------------------
from .scope import JOB, KIND_LABELS, QUEUE, HistoryError, Scope


def start(
    connection: Connection,
    scope: Scope,
    *,
    started_by: StaffUser | None,
    preview_data: dict | None = None,
    enqueue_job: bool = True,
):
    """Create the back-fill and its job mirror, audit it, commit, and enqueue the job.

    ``enqueue_job=False``: the caller runs it in its own process (:func:`run`) instead.

    :raise HistoryError: when a back-fill of this connection is still unfinished.
    """
    active = db.session.scalar(
        select(Backfill).where(
            Backfill.connection_id == connection.id,
            Backfill.status.not_in([BackfillStatus.succeeded, BackfillStatus.cancelled]),
        )
    )
    if active is not None:
        raise HistoryError(
            f"Back-fill #{active.id} of this connection is {active.status.label.lower()}: "
            "finish, resume or cancel it before starting another."
        )
    parameters = {
        "connection_id": connection.id,
        "date_from": scope.date_from.isoformat(),
        "date_to": scope.date_to.isoformat(),
        "kinds": list(scope.kinds),
    }
    run = SyncRun(kind=SyncRunKind.historical, queue=QUEUE, parameters=parameters, started_by=started_by)
    backfill = Backfill(
        connection=connection,
        sync_run=run,
        date_from=scope.date_from,
        date_to=scope.date_to,
        kinds=list(scope.kinds),
        status=BackfillStatus.queued,
        counts={},
        calls=0,
        cursor_id=0,
        busy_seconds=0.0,
        preview=preview_data,
        started_by=started_by,
    )
    if preview_data:
        run.progress_total = sum(k["total"] for k in preview_data.get("kinds", {}).values())
    db.session.add_all([run, backfill])
    db.session.flush()
    run.parameters = {**parameters, "backfill_id": backfill.id}
    _audit(backfill, "history.started", f"Back-fill #{backfill.id} started: {_describe(backfill)}")
    db.session.commit()
    if enqueue_job:
        enqueue(backfill)
    return backfill


def _describe(backfill: Backfill) -> str:
    kinds = ", ".join(KIND_LABELS[k].lower() for k in backfill.kinds)
    return f"{kinds} dated {backfill.date_from} to {backfill.date_to} into {backfill.connection.company_label}"


def _audit(backfill: Backfill, kind: str, summary: str, *, actor: str | None = None) -> None:
    audit.record(
        kind,
        subject_type="Connection",
        subject_id=backfill.connection_id,
        organization_id=backfill.connection.business_unit.organization_id,
        summary=summary,
        after={"backfill_id": backfill.id, "status": backfill.status.value},
        actor_label=actor,
    )


def enqueue(backfill: Backfill, *, at: datetime | None = None):
    """Put the back-fill's job on the history queue, now or at ``at``; store the job id."""
    job_id = f"history-{backfill.id}"
    if at is None:
        job = queue.enqueue(JOB, backfill.id, queue=QUEUE, job_id=job_id, timeout=6 * 3600)
    else:
        job = queue.queues(QUEUE).enqueue_at(at, JOB, backfill.id, job_id=job_id, job_timeout=6 * 3600)
    if backfill.sync_run is not None:
        backfill.sync_run.rq_job_id = job.id
    db.session.commit()
    return job


def request_pause(backfill: Backfill, *, actor: str | None = None) -> str:
    """Pause the back-fill (at its next chunk boundary when running); return what happened.

    :raise HistoryError: when it has already ended.
    """
    if backfill.status.finished:
        raise HistoryError(f"Back-fill #{backfill.id} has ended ({backfill.status.label.lower()}); nothing to pause.")
    if backfill.status is BackfillStatus.paused:
        return "Already paused."
    if backfill.status is BackfillStatus.running:
        backfill.requested = "pause"
        said = "Pausing after the current chunk."
    else:
        backfill.transition(BackfillStatus.paused, "Paused.")
        mirror_run(backfill, SyncRunStatus.queued, "Paused.")
        said = "Paused."
    _audit(backfill, "history.paused", f"Back-fill #{backfill.id} paused", actor=actor)
    db.session.commit()
    return said


def request_cancel(backfill: Backfill, *, actor: str | None = None) -> str:
    """Cancel the back-fill (at its next chunk boundary when running); records pushed stay pushed.

    :raise HistoryError: when it has already ended.
    """
    if backfill.status.finished:
        raise HistoryError(f"Back-fill #{backfill.id} has ended ({backfill.status.label.lower()}); nothing to cancel.")
    if backfill.status is BackfillStatus.running:
        backfill.requested = "cancel"
        said = "Cancelling after the current chunk."
    else:
        finish_cancel(backfill)
        said = "Cancelled."
    _audit(backfill, "history.cancelled", f"Back-fill #{backfill.id} cancelled", actor=actor)
    db.session.commit()
    return said


def finish_cancel(backfill: Backfill) -> None:
    done = backfill.total()
    backfill.transition(BackfillStatus.cancelled, f"Cancelled after {done:,} record(s); those pushed stay pushed.")
    mirror_run(backfill, SyncRunStatus.cancelled, backfill.message)


def resume(backfill: Backfill, *, actor: str | None = None) -> str:
    """Re-enqueue a paused, interrupted or waiting back-fill; it continues at its cursor.

    :raise HistoryError: when it has ended or is running.
    """
    if backfill.status.finished:
        raise HistoryError(f"Back-fill #{backfill.id} has ended ({backfill.status.label.lower()}); start a new one.")
    if backfill.status is BackfillStatus.running and history_lock(backfill.connection_id).locked():
        raise HistoryError(f"Back-fill #{backfill.id} is running; there is nothing to resume.")
    # Still marked running without a live job: its worker was killed; it resumes at its cursor.
    if backfill.status is not BackfillStatus.queued:
        backfill.transition(BackfillStatus.queued, "Resumed; continues where it stopped.")
    backfill.requested = None
    backfill.resume_at = None
    mirror_run(backfill, SyncRunStatus.queued, "Resumed.")
    _audit(backfill, "history.resumed", f"Back-fill #{backfill.id} resumed", actor=actor)
    db.session.commit()
    enqueue(backfill)
    return "Resumed; it continues where it stopped."


def mirror_run(backfill: Backfill, status: SyncRunStatus, message: str | None = None) -> None:
    run = backfill.sync_run
    if run is None:
        return
    if run.status is not status and status in _RUN_MOVES.get(run.status, ()):
        run.transition(status, message)
    elif message is not None:
        run.message = message
    run.progress_done = backfill.total()
    run.counts = {
        "calls": backfill.calls,
        **{f"{k}.{o}": n for k, per in backfill.counts.items() for o, n in per.items()},
    }


# The SyncRun life cycle, reached in one or two moves from where it is.
_RUN_MOVES = {
    SyncRunStatus.queued: {
        SyncRunStatus.running,
        SyncRunStatus.cancelled,
        SyncRunStatus.failed,
        SyncRunStatus.interrupted,
    },
    SyncRunStatus.running: {
        SyncRunStatus.succeeded,
        SyncRunStatus.failed,
        SyncRunStatus.cancelled,
        SyncRunStatus.queued,
        SyncRunStatus.interrupted,
    },
    SyncRunStatus.failed: {SyncRunStatus.queued},
    SyncRunStatus.interrupted: {SyncRunStatus.queued, SyncRunStatus.cancelled},
}


#: Seconds the running job's lock lives without being renewed: a worker killed outright frees it then.
LOCK_SECONDS = 600
#: How long a job waits for the lock of a job that is ending.
LOCK_WAIT_SECONDS = 30


def history_lock(connection_id: int):
    """Return the Redis lock one back-fill of the connection holds while it runs."""
    return queue.connection.lock(f"ledgerlink:history-lock:{connection_id}", timeout=LOCK_SECONDS)
