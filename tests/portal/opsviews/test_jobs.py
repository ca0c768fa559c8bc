"""The job console on a real Redis: states from RQ's registries beside the SyncRun mirror, retry, cancel."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from rq.job import Job, JobStatus
from sqlalchemy import select

from tests.conftest import csrf_token_of
from tests.portal.sync.rq_workers import run_queued_jobs

EXPLODE = "tests.portal.opsviews.sample_jobs.explode"
SETTLE = "tests.portal.opsviews.sample_jobs.settle"


def _start(app, func: str, **options) -> tuple[int, str]:
    from portal.models import SyncRunKind
    from portal.runs import start_run

    with app.app_context():
        run = start_run(SyncRunKind.queue_check, func, **options)
        return run.id, run.rq_job_id


def _run(app, run_id: int):
    from portal.extensions import db
    from portal.models import SyncRun

    with app.app_context():
        run = db.session.get(SyncRun, run_id)
        db.session.expunge(run)
        return run


def _job_status(app, job_id: str) -> JobStatus:
    from portal.extensions import queue

    with app.app_context():
        return Job.fetch(job_id, connection=queue.connection).get_status()


def _audit_kinds(app) -> list[str]:
    from portal.extensions import db
    from portal.models import AuditEvent

    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.kind).order_by(AuditEvent.id)))


def test_a_failed_job_is_shown_with_its_error_and_retried(app, ops_client):
    run_id, job_id = _start(app, EXPLODE)
    run_queued_jobs(app)
    assert _run(app, run_id).status.value == "failed"
    client, token = ops_client

    page = client.get("/ops/jobs?state=failed").get_data(as_text=True)
    assert f'id="job-{job_id}" data-state="failed"' in page
    assert "RuntimeError: the ledger answered 500 three times" in page
    assert f"/ops/jobs/{job_id}/retry" in page

    response = client.post(f"/ops/jobs/{job_id}/retry", data={"csrf_token": token}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'id="job-{job_id}" data-state="queued"' in html and 'hx-trigger="every 2s"' in html
    assert _run(app, run_id).status.value == "queued"
    assert _job_status(app, job_id) == JobStatus.QUEUED
    assert _audit_kinds(app)[-1] == "job.retried"


def test_queued_and_scheduled_jobs_are_cancelled_with_their_runs(app, ops_client):
    from portal.extensions import db, queue
    from portal.models import SyncRun, SyncRunKind

    queued_run, queued_job = _start(app, SETTLE)
    with app.app_context():
        run = SyncRun(kind=SyncRunKind.incremental, queue="sync", parameters={})
        db.session.add(run)
        db.session.commit()
        at = datetime.now(UTC) + timedelta(hours=1)
        job = queue.state.queues["sync"].enqueue_at(at, SETTLE, run.id, job_id=f"sync-test-at-{run.id}")
        run.rq_job_id = job.id
        db.session.commit()
        scheduled_run, scheduled_job = run.id, job.id
    client, token = ops_client
    page = client.get("/ops/jobs").get_data(as_text=True)
    assert f'id="job-{queued_job}" data-state="queued"' in page
    assert f'id="job-{scheduled_job}" data-state="scheduled"' in page
    assert 'hx-trigger="every 2s"' in page  # work waits: the console polls

    for job_id in (queued_job, scheduled_job):
        response = client.post(f"/ops/jobs/{job_id}/cancel", data={"csrf_token": token})
        assert response.status_code == 302
    assert _run(app, queued_run).status.value == "cancelled"
    assert _run(app, scheduled_run).status.value == "cancelled"
    assert _job_status(app, queued_job) == JobStatus.CANCELED
    with app.app_context():
        assert queue.state.queues["default"].count == 0
        assert queue.state.queues["sync"].scheduled_job_registry.count == 0
    assert _audit_kinds(app)[-2:] == ["job.cancelled", "job.cancelled"]

    page = client.get("/ops/jobs").get_data(as_text=True)
    assert 'data-active="no"' in page and "every 2s" not in page  # nothing waits: polling stops
    run_queued_jobs(app)
    assert _run(app, queued_run).status.value == "cancelled"


def test_a_finished_job_is_neither_retried_nor_cancelled(app, ops_client):
    run_id, job_id = _start(app, SETTLE, result_ttl=600)
    run_queued_jobs(app)
    assert _run(app, run_id).status.value == "succeeded"
    client, token = ops_client
    response = client.post(f"/ops/jobs/{job_id}/retry", data={"csrf_token": token}, follow_redirects=True)
    assert "only failed jobs are retried" in response.get_data(as_text=True)
    response = client.post(f"/ops/jobs/{job_id}/cancel", data={"csrf_token": token}, follow_redirects=True)
    assert "only waiting or running jobs are cancelled" in response.get_data(as_text=True)
    assert _run(app, run_id).status.value == "succeeded"
    assert client.post("/ops/jobs/no-such-job/cancel", data={"csrf_token": token}).status_code == 404
    assert client.post("/ops/jobs/bad$id/cancel", data={"csrf_token": token}).status_code == 400


def test_retry_and_cancel_need_the_ops_role_and_a_csrf_token(app, make_staff, login, ops_client):
    _, job_id = _start(app, SETTLE)
    support = app.test_client()
    token = login(make_staff("support"), client=support)
    assert support.get("/ops/jobs").status_code == 200
    assert support.post(f"/ops/jobs/{job_id}/cancel", data={"csrf_token": token}).status_code == 403
    client, _ = ops_client
    assert client.post(f"/ops/jobs/{job_id}/cancel").status_code == 400
    assert _job_status(app, job_id) == JobStatus.QUEUED


def test_the_console_reads_a_constant_number_of_queries_and_exports_csv(app, ops_client, count_queries):
    client, _ = ops_client
    _start(app, SETTLE)
    with count_queries() as few:
        assert client.get("/ops/jobs").status_code == 200
    for _ in range(8):
        _start(app, SETTLE, queue_name="history")
    with count_queries() as many:
        page = client.get("/ops/jobs").get_data(as_text=True)
    assert len(many) == len(few)
    assert page.count('data-state="queued"') == 9
    response = client.get("/ops/jobs.csv?state=queued")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:3] == ["state", "queue", "job_id"] and len(rows) == 10
    assert {row[1] for row in rows[1:]} == {"default", "history"}
    assert csrf_token_of(client.get("/ops/jobs").get_data(as_text=True))


def _forking_worker(app, database_url: str, redis_url: str, log_path):
    """Start ``rq worker`` with RQ's forking worker class, which can stop a running job."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.portal.connections.conftest import process_env

    env = process_env(app, database_url, redis_url)
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process below
    command = [sys.executable, "-m", "rq.cli", "worker", "-w", "rq.worker.Worker"]
    command += ["-S", "rq.serializers.JSONSerializer", "-u", redis_url, "default"]
    process = subprocess.Popen(
        command, cwd=Path(__file__).resolve().parents[3], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    return process, log


@pytest.mark.workers
def test_a_running_job_is_stopped_through_its_worker(app, ops_client, database_url, redis_url, tmp_path):
    from tests.portal.sync.rq_workers import wait_for

    run_id, job_id = _start(app, "tests.portal.opsviews.sample_jobs.linger", timeout=120)
    process, log = _forking_worker(app, database_url, redis_url, tmp_path / "worker.log")
    try:
        wait_for(lambda: _run(app, run_id).status.value == "running", what="the job to start")
        client, token = ops_client
        page = client.get("/ops/jobs?state=running").get_data(as_text=True)
        assert f'id="job-{job_id}" data-state="running"' in page and "<progress" in page

        response = client.post(f"/ops/jobs/{job_id}/cancel", data={"csrf_token": token})
        assert response.status_code == 302
        assert _run(app, run_id).status.value == "cancelled"
        wait_for(lambda: _job_status(app, job_id) == JobStatus.STOPPED, what="the worker to stop the job")
        assert _audit_kinds(app)[-1] == "job.cancelled"
        assert _run(app, run_id).status.value == "cancelled"
    finally:
        process.terminate()
        process.wait(30)
        log.close()
