"""Run mirrors reconciled with the queue: a run whose job vanished is interrupted, resumed or closed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from tests.portal.sync.conftest import ledger_documents
from tests.portal.sync.rq_workers import run_queued_jobs


@pytest.fixture
def ops_client(app, make_staff, login):
    client = app.test_client()
    token = login(make_staff("ops"), client=client)
    return client, token


def _age(app, run_id: int, seconds: int = 120) -> None:
    """Make the run older than the reconciliation's grace."""
    from portal.database import utcnow
    from portal.extensions import db
    from portal.models import SyncRun

    with app.app_context():
        db.session.execute(
            update(SyncRun).where(SyncRun.id == run_id).values(created_at=utcnow() - timedelta(seconds=seconds))
        )
        db.session.commit()


def _lost_push(app, connection_id: int, job_id: str) -> int:
    """A push run whose job Redis lost (restart), left queued, with any job id shape."""
    from portal.extensions import db
    from portal.models import SyncRun, SyncRunKind

    with app.app_context():
        run = SyncRun(
            kind=SyncRunKind.incremental, queue="sync", parameters={"connection_id": connection_id}, rq_job_id=job_id
        )
        db.session.add(run)
        db.session.commit()
        run_id = run.id
    _age(app, run_id)
    return run_id


def _status(app, run_id: int) -> str:
    from portal.extensions import db
    from portal.models import SyncRun

    with app.app_context():
        db.session.expire_all()
        return db.session.get(SyncRun, run_id).status.value


@pytest.mark.parametrize("job_id", ["sync-{c}", "sync-{c}-at-1765000000", "9f1c2d3e-random"])
def test_a_run_whose_job_vanished_is_interrupted_by_the_tick_and_resumed_from_the_console(
    app, sandbox, connect, make_invoice, ops_client, job_id
):
    from portal.sync import schedule

    connection_id = connect("bexio")
    _, number = make_invoice()
    run_id = _lost_push(app, connection_id, job_id.format(c=connection_id))

    with app.app_context():
        schedule.tick()
    assert _status(app, run_id) == "interrupted"

    client, token = ops_client
    page = client.get("/ops/jobs").get_data(as_text=True)
    assert f'id="interrupted-{run_id}"' in page and "Pushtest" in page  # the organization is named
    assert f"/ops/jobs/runs/{run_id}/resume" in page and f"/ops/jobs/runs/{run_id}/close" in page

    response = client.post(f"/ops/jobs/runs/{run_id}/resume", data={"csrf_token": token})
    assert response.status_code == 302
    assert _status(app, run_id) == "queued"
    run_queued_jobs(app)
    assert _status(app, run_id) == "succeeded"
    assert len(ledger_documents(sandbox, "bexio", number)) == 1


def test_an_interrupted_run_is_closed_and_a_live_push_is_left_alone(app, sandbox, connect, ops_client):
    from portal.extensions import db
    from portal.sync import fencing, mirrors

    connection_id = connect("quickbooks")
    lost = _lost_push(app, connection_id, "sync-gone")
    live = _lost_push(app, connection_id, "sync-gone-too")
    with app.app_context():
        lease = fencing.acquire(connection_id, live)  # its worker renews the lease: alive without a job
        assert mirrors.reconcile() == [lost]
        fencing.release(lease)
        db.session.remove()
    assert _status(app, live) == "queued"

    client, token = ops_client
    client.post(f"/ops/jobs/runs/{lost}/close", data={"csrf_token": token})
    assert _status(app, lost) == "cancelled"
    refused = client.post(f"/ops/jobs/runs/{lost}/resume", data={"csrf_token": token}, follow_redirects=True)
    assert "only interrupted runs are resumed" in refused.get_data(as_text=True)
    assert client.post(f"/ops/jobs/runs/{lost}/close", data={}).status_code == 400  # CSRF


def _started_job(app, connection_id: int, kind: str, job_id: str, started_ago: timedelta) -> int:
    """A run whose RQ job a worker took (status started, ``started_ago``) and then died holding."""
    from portal.database import utcnow
    from portal.extensions import db, queue
    from portal.models import SyncRun, SyncRunKind, SyncRunStatus

    with app.app_context():
        run = SyncRun(
            kind=SyncRunKind(kind), queue="sync", parameters={"connection_id": connection_id}, rq_job_id=job_id
        )
        db.session.add(run)
        db.session.commit()
        run.transition(SyncRunStatus.running)
        db.session.commit()
        job = queue.state.queues["sync"].enqueue_call(
            "jobs.payments.pull_connection_payments", args=(run.id,), job_id=job_id, timeout=300
        )
        job.set_status("started")
        job.started_at = utcnow() - started_ago
        job.save()
        run_id = run.id
    _age(app, run_id, seconds=int(started_ago.total_seconds()) + 60)
    return run_id


def test_a_run_whose_worker_died_holding_its_job_is_interrupted_and_its_job_freed(app, sandbox, connect):
    from portal.extensions import queue
    from portal.sync import mirrors

    connection_id = connect("bexio")
    # A payments pull started 7 minutes ago with a 5-minute timeout: RQ would have ended a live one.
    dead = _started_job(app, connection_id, "payment_poll", "payments-dead", timedelta(minutes=7))
    # One started 2 minutes ago is still within its timeout: left alone.
    working = _started_job(app, connection_id, "payment_poll", "payments-working", timedelta(minutes=2))
    # A push started a minute ago whose run holds neither its connection's lock nor its lease.
    push = _started_job(app, connection_id, "incremental", f"sync-{connection_id}", timedelta(minutes=1))

    with app.app_context():
        assert sorted(mirrors.reconcile()) == sorted([dead, push])
        # The abandoned jobs are deleted: the scheduler and Resume can take their ids again.
        assert not queue.connection.exists("rq:job:payments-dead", f"rq:job:sync-{connection_id}")
        assert queue.connection.exists("rq:job:payments-working")
    assert (_status(app, dead), _status(app, push), _status(app, working)) == ("interrupted", "interrupted", "running")


def test_a_failed_jobs_message_names_the_ledger_error_in_words_not_database_text(app):
    from sqlalchemy.exc import IntegrityError

    from jobs.runtime import describe
    from portal.integrations.base import Unavailable

    words = describe(IntegrityError("INSERT INTO external_record ...", {}, Exception("duplicate key")))
    assert "INSERT" not in words and "database" in words
    words = describe(Unavailable(provider="bexio", status=503, provider_text="Service Unavailable"))
    assert "bexio: Service Unavailable" in words and "status=" not in words
