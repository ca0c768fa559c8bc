"""Start background jobs with their SyncRun mirror."""

from __future__ import annotations

from typing import Any

from .extensions import db, queue
from .models import StaffUser, SyncRun, SyncRunKind


def start_run(
    kind: SyncRunKind,
    func: str,
    *,
    queue_name: str = "default",
    parameters: dict[str, Any] | None = None,
    started_by: StaffUser | None = None,
    **options: Any,
) -> SyncRun:
    """Create a SyncRun, commit it, and enqueue ``func(sync_run_id)`` on ``queue_name``.

    The run is committed before the job is enqueued so that a worker always finds it.
    """
    queue.queues(queue_name)  # refuses before a run is made where nothing would run it
    run = SyncRun(kind=kind, queue=queue_name, parameters=parameters or {}, started_by=started_by)
    db.session.add(run)
    db.session.commit()
    job = queue.enqueue(func, run.id, queue=queue_name, **options)
    run.rq_job_id = job.id
    db.session.commit()
    return run
