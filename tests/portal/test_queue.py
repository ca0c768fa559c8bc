"""Jobs: enqueued from a view, run by a real `rq worker` process or the embedded thread, mirrored."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portal.models import SyncRun, SyncRunStatus

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def _run_status(app, run_id):
    from portal.extensions import db

    with app.app_context():
        db.session.expire_all()
        run = db.session.get(SyncRun, run_id)
        return run.status, run.message, run.started_at, run.finished_at


@pytest.mark.workers
def test_a_real_rq_worker_process_runs_a_job_enqueued_from_a_view(
    app, client, make_staff, login, database_url, redis_url
):
    token = login(make_staff("ops"))
    response = client.post("/jobs/queue-check", data={"csrf_token": token})
    assert response.status_code == 302
    run_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert _run_status(app, run_id)[0] is SyncRunStatus.queued

    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LEDGERLINK_SECRET_KEY": app.config["SECRET_KEY"],
        "LEDGERLINK_TOKEN_KEYS": app.config["TOKEN_KEYS"],
        "LEDGERLINK_EMBEDDED_WORKER": "false",
    }
    worker = subprocess.run(
        [
            sys.executable,
            "-m",
            "rq.cli",
            "worker",
            "--burst",
            "-w",
            "jobs.worker.LedgerlinkWorker",
            "-S",
            "rq.serializers.JSONSerializer",
            "-u",
            redis_url,
            "sync",
            "history",
            "default",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stderr[-2000:]
    status, message, started, finished = _run_status(app, run_id)
    assert status is SyncRunStatus.succeeded, message
    assert started is not None and finished is not None and finished >= started
    assert f"pid {os.getpid()}" not in message  # another process did it
    page = client.get(f"/jobs/{run_id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'data-status="succeeded"' in page and "hx-trigger" not in page  # polling stops when done


def test_the_embedded_worker_thread_runs_jobs_in_the_web_process(database_url, tmp_path):
    from portal import create_app
    from portal.extensions import db
    from portal.models import SyncRunKind
    from portal.runs import start_run

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": "",
            "EMBEDDED_WORKER": True,
            "SECRET_KEY": "x" * 40,
            "TOKEN_KEYS": "nKxGk3sSgq3I5YcdwHcXjzD0Q4oC8bVtPvyZ6J1mQ2E=",
        }
    )
    with app.app_context():
        run_id = start_run(SyncRunKind.queue_check, "jobs.system.queue_check").id

    def done():
        with app.app_context():
            db.session.expire_all()
            run = db.session.get(SyncRun, run_id)
            return run.status.finished and run

    try:
        run = _wait_for(done)
    finally:
        app.extensions["ledgerlink_queue"].runtime.stop()
    assert run and run.status is SyncRunStatus.succeeded, run and run.message
    assert f"pid {os.getpid()}" in run.message
    with app.app_context():
        db.session.execute(db.delete(SyncRun))
        db.session.commit()


def test_a_failing_job_marks_its_run_failed(app, db):
    from jobs.runtime import tracked

    @tracked
    def broken(run, log):
        raise RuntimeError("the ledger said no")

    run = SyncRun(kind="test", queue="default")
    db.session.add(run)
    db.session.commit()
    with pytest.raises(RuntimeError, match="the ledger said no"):
        broken(run.id)
    db.session.expire_all()
    run = db.session.get(SyncRun, run.id)
    assert run.status is SyncRunStatus.failed and "the ledger said no" in run.message


def test_sync_run_refuses_illegal_transitions():
    from portal.models import IllegalTransition

    run = SyncRun(kind="test", queue="default", status=SyncRunStatus.succeeded)
    with pytest.raises(IllegalTransition):
        run.transition(SyncRunStatus.running)
