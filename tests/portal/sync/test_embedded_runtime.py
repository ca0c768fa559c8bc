"""The demo's embedded runtime: worker threads per queue group, RQ's scheduler and the minute tick.

Each test builds a second app on the test database with no Redis (the in-process fake Redis, as
``make run`` has) and runs an :class:`~portal.queue.EmbeddedRuntime` for it, stopped at the end.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from portal.models import Invoice, SyncRun, SyncRunStatus
from tests.portal.connections.conftest import ROOT, process_env
from tests.portal.sync.conftest import ledger_documents

#: Set by the test to let :func:`held_job` end.
RELEASE = threading.Event()
#: What the jobs below saw, in order.
SEEN: list[str] = []


def held_job(label: str) -> str:
    """A job that waits until the test releases it (a long back-fill, say)."""
    SEEN.append(f"{label} started")
    RELEASE.wait(30)
    SEEN.append(f"{label} ended")
    return label


def quick_job(label: str) -> str:
    """A job that ends at once."""
    SEEN.append(label)
    return label


def _wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


@pytest.fixture
def embedded(app):
    """Yield ``start(tick_seconds)``, which builds and runs an embedded app on the test database."""
    from portal import create_app
    from portal.queue import EmbeddedRuntime

    started = []

    def start(tick_seconds: float = 3600):
        demo = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                "REDIS_URL": "",
                "EMBEDDED_WORKER": False,
                "SECRET_KEY": app.config["SECRET_KEY"],
                "TOKEN_KEYS": app.config["TOKEN_KEYS"],
                "SANDBOX_URL": app.config["SANDBOX_URL"],
            }
        )
        state = demo.extensions["ledgerlink_queue"]
        state.connection.flushdb()
        state.runtime = EmbeddedRuntime(demo, state, tick_seconds=tick_seconds)
        state.runtime.start()
        started.append(state)
        return demo

    RELEASE.clear()
    SEEN.clear()
    yield start
    RELEASE.set()
    for state in started:
        state.runtime.stop()
        state.connection.flushdb()


def test_a_long_history_job_does_not_hold_up_the_sync_queue(embedded):
    from portal.extensions import queue

    demo = embedded()
    with demo.app_context():
        queue.enqueue(f"{__name__}.held_job", "back-fill", queue="history")
        assert _wait_for(lambda: "back-fill started" in SEEN)
        queue.enqueue(f"{__name__}.quick_job", "push", queue="sync")
        queue.enqueue(f"{__name__}.quick_job", "e-mail", queue="default")
    assert _wait_for(lambda: {"push", "e-mail"} <= set(SEEN), timeout=10), SEEN
    assert "back-fill ended" not in SEEN  # both ran while the back-fill held its thread
    RELEASE.set()
    assert _wait_for(lambda: "back-fill ended" in SEEN)


def test_a_job_scheduled_with_enqueue_at_runs_when_due(embedded):
    from portal.extensions import queue

    demo = embedded()
    with demo.app_context():
        due = datetime.now(UTC) + timedelta(seconds=2)
        queue.queues("sync").enqueue_at(due, f"{__name__}.quick_job", "rescheduled push")
    assert "rescheduled push" not in SEEN
    assert _wait_for(lambda: "rescheduled push" in SEEN, timeout=10)
    assert datetime.now(UTC) >= due


def test_an_invoice_put_through_the_api_reaches_the_ledger_with_no_click(
    app, embedded, sandbox, connect, org_unit, api
):
    """The demo's whole loop: ingest → the embedded tick finds it due → the sync worker pushes it."""
    from portal.extensions import db
    from portal.models import Connection, Invoice
    from tests.portal.sync.test_pipeline import ingest_invoice

    connection_id = connect("bexio")
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        connection.settings = {**(connection.settings or {}), "sync_delay_minutes": 1}
        db.session.commit()
    external_id, number = ingest_invoice(app, api, org_unit)
    with app.app_context():  # as if it came in a minute ago: due at the next tick
        invoice = db.session.scalar(db.select(Invoice).filter_by(external_id=external_id))
        invoice.created_at = datetime.now(UTC) - timedelta(minutes=1)
        db.session.commit()
    demo = embedded(tick_seconds=1)
    found = _wait_for(lambda: ledger_documents(sandbox, "bexio", number), timeout=60)
    assert len(found) == 1
    assert demo.extensions["ledgerlink_queue"].runtime.ticks >= 1

    def runs():
        with app.app_context():
            return [(run.kind.value, run.status, run.message) for run in db.session.scalars(db.select(SyncRun))]

    assert _wait_for(lambda: runs() and all(status.finished for _, status, _ in runs()), timeout=30), runs()
    assert all(status is SyncRunStatus.succeeded for _, status, _ in runs()), runs()


@pytest.mark.workers
def test_a_terminal_tick_against_the_demo_says_the_demo_runs_its_own_schedule(
    app, database_url, sandbox, connect, make_invoice
):
    """``flask schedule tick`` from a terminal without Redis makes no run that nothing would ever pick up."""
    from portal.extensions import db

    connection_id = connect("bexio")
    make_invoice()
    with app.app_context():
        invoices = db.session.scalars(db.select(Invoice)).all()
        for invoice in invoices:
            invoice.created_at = datetime.now(UTC) - timedelta(hours=1)  # due
        db.session.commit()
    env = {**process_env(app, database_url, ""), "REDIS_URL": ""}
    env.pop("LEDGERLINK_EMBEDDED_WORKER")  # the demo's default: true
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "schedule", "tick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "The demo (make run) runs this tick itself every minute" in done.stdout
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(SyncRun.id))) == 0
        assert connection_id  # still due: the running demo's own tick pushes it


def test_enqueueing_without_a_runtime_on_the_fake_redis_is_refused_before_a_run_is_made(app):
    from portal import create_app
    from portal.extensions import db
    from portal.models import SyncRunKind
    from portal.queue import EmbeddedQueueUnavailable
    from portal.runs import start_run

    terminal = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": "",
            "EMBEDDED_WORKER": False,
            "SECRET_KEY": app.config["SECRET_KEY"],
            "TOKEN_KEYS": app.config["TOKEN_KEYS"],
        }
    )
    with terminal.app_context():
        with pytest.raises(EmbeddedQueueUnavailable, match="the demo"):
            start_run(SyncRunKind.queue_check, "jobs.system.queue_check")
        assert db.session.scalar(db.select(db.func.count(SyncRun.id))) == 0
