"""Scheduling: the cron tick, one job per connection, 429 reschedules, and two real workers under one quota."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from tests.portal.sync.conftest import CONNECT, NO_TAX_LINE, fault, ledger_documents

ROOT = Path(__file__).resolve().parents[3]


def _backdate_invoices(app, minutes: int) -> None:
    from portal.extensions import db
    from portal.models import Invoice

    with app.app_context():
        for invoice in db.session.scalars(db.select(Invoice)):
            invoice.created_at = datetime.now(UTC) - timedelta(minutes=minutes)
        db.session.commit()


def test_tick_enqueues_one_push_per_due_connection_and_never_two(app, sandbox, connect, make_invoice):
    from portal.extensions import db, queue
    from portal.models import Connection, SyncRun
    from portal.sync import schedule

    connection_id = connect("bexio")
    make_invoice()
    with app.app_context():
        # Just created: within the 5-minute delay, not due yet.
        assert schedule.tick().not_due == 1
        assert db.session.scalar(db.select(db.func.count(SyncRun.id))) == 0
    _backdate_invoices(app, 5)

    with app.app_context():
        first = schedule.tick()
        second = schedule.tick()
        jobs = queue.state.queues["sync"].get_job_ids()

    assert first.enqueued == [connection_id] and second.already_queued == [connection_id]
    assert jobs == [f"sync-{connection_id}"]

    # Once the job has run, the next tick may enqueue again (a finished job does not block).
    with app.app_context():
        job = queue.state.queues["sync"].fetch_job(f"sync-{connection_id}")
        run_id = job.args[0]
        from jobs.sync import push_connection

        push_connection(run_id)
        queue.state.queues["sync"].remove(job.id)
        job.set_status("finished")
        assert db.session.get(SyncRun, run_id).counts["pushed"] == 1
        make_invoice()
    _backdate_invoices(app, 10)
    with app.app_context():
        assert schedule.tick().enqueued == [connection_id]
        # Paused connections are not scheduled.
        connection = db.session.get(Connection, connection_id)
        from portal.models import ConnectionStatus

        connection.transition(ConnectionStatus.paused, "test")
        db.session.commit()
        assert schedule.tick().enqueued == []


def test_a_record_held_for_its_tax_rate_is_not_due_until_the_rate_is_mapped(app, sandbox, connect, flow, org_unit):
    from portal.extensions import db, queue
    from portal.models import ExternalRecord, RecordState, SyncRun
    from portal.sync import schedule
    from tests.portal.sync.conftest import add_invoice
    from tests.portal.sync.test_pipeline import run_push
    from tests.portal.sync.test_tax_guard import field, map_rates

    connection_id = connect("exact-online")
    _, number = add_invoice(app, org_unit, org_unit["unit_id"], tax_rate=Decimal("9"))  # no code at 9 % yet
    _backdate_invoices(app, 6)
    status, counts, _ = run_push(app, connection_id)
    assert status == "succeeded" and counts.get("pushed", 0) == 0
    with app.app_context():
        [record] = db.session.scalars(db.select(ExternalRecord).filter_by(connection_id=connection_id)).all()
        assert (record.state, record.last_error_class) == (RecordState.needs_action, "mapping_missing")
        runs = db.session.scalar(db.select(db.func.count(SyncRun.id)))
        # Held before any ledger call: minute after minute, the tick makes no run that would do nothing.
        for _ in range(3):
            result = schedule.tick()
            assert result.enqueued == [] and result.already_queued == [] and result.not_due == 1
        assert db.session.scalar(db.select(db.func.count(SyncRun.id))) == runs
        assert queue.state.queues["sync"].get_job_ids() == []
        # Reading the ledger's reference data again changes nothing there: the hold stays.
        from portal.mappings import services as mappings
        from portal.models import Connection

        mappings.refresh_reference(db.session.get_one(Connection, connection_id))
        db.session.commit()
        assert db.session.get_one(ExternalRecord, record.id).state is RecordState.needs_action

    # A person maps the rate: the record is due again, and the tick's push takes it into the ledger.
    assert map_rates(flow, connection_id, **{field("9"): "1"}).status_code == 302
    with app.app_context():
        assert schedule.tick().enqueued == [connection_id]
        job = queue.state.queues["sync"].fetch_job(f"sync-{connection_id}")
        from jobs.sync import push_connection

        push_connection(job.args[0])
        db.session.expire_all()
        assert db.session.get(SyncRun, job.args[0]).counts.get("pushed") == 1
        assert db.session.get(ExternalRecord, record.id).state is RecordState.pushed
    assert len(ledger_documents(sandbox, "exact-online", number)) == 1


def test_a_document_held_for_its_rate_is_due_again_when_the_saas_corrects_it(app, sandbox, connect, org_unit, api):
    from portal.extensions import db
    from portal.models import Customer, ExternalRecord, RecordState
    from portal.sync import schedule
    from tests.portal.sync.test_pipeline import run_push

    connection_id = connect("exact-online")
    with app.app_context():
        customer = db.session.get(Customer, org_unit["customer_id"]).external_id
    number = f"TH-{os.urandom(3).hex().upper()}"
    today = datetime.now(UTC).date().isoformat()

    def body(rate: str) -> dict:
        line = {"position": 1, "description": "Hours", "quantity": 1, "unit_price": 100, "tax_rate": rate}
        return {
            "business_unit": org_unit["unit_id"],
            "number": number,
            "customer": customer,
            "issue_date": today,
            "due_date": today,
            "currency": "EUR",
            "lines": [line],
        }

    api[0](f"invoices/inv-{number}", body("9"))  # a rate no code is mapped to
    _backdate_invoices(app, 6)
    run_push(app, connection_id)
    with app.app_context():
        [record] = db.session.scalars(db.select(ExternalRecord).filter_by(connection_id=connection_id)).all()
        assert record.state is RecordState.needs_action
        assert schedule.tick().enqueued == []
    # The SaaS sends the invoice again at the mapped rate: it is due, with no other change needed.
    api[0](f"invoices/inv-{number}", body("21"))
    _backdate_invoices(app, 6)
    with app.app_context():
        assert db.session.get(ExternalRecord, record.id).state is RecordState.pending
        assert schedule.tick().enqueued == [connection_id]


def test_the_delay_setting_is_clamped_to_an_hour(app, sandbox, connect):
    from portal.extensions import db
    from portal.models import Connection
    from portal.sync.schedule import sync_delay

    connection_id = connect("bexio")
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        assert sync_delay(connection) == timedelta(minutes=5)
        connection.settings = {**connection.settings, "sync_delay_minutes": 240}
        assert sync_delay(connection) == timedelta(minutes=60)
        connection.settings = {**connection.settings, "sync_delay_minutes": 0}
        assert sync_delay(connection) == timedelta(0)


def test_the_schedule_tick_command(app, sandbox, connect, make_invoice):
    connect("bexio")
    make_invoice()
    _backdate_invoices(app, 6)
    result = app.test_cli_runner().invoke(args=["schedule", "tick"])
    assert result.exit_code == 0, result.output
    assert "1 push(es) enqueued" in result.output


@pytest.mark.faults
def test_the_schedule_tick_command_counts_the_connections_it_left_alone(app, sandbox, flow):
    from portal.extensions import db
    from portal.models import Connection
    from portal.sync import schedule
    from tests.portal.sync.conftest import add_invoice, connect_unit, new_organization

    org = new_organization(app, "Tick", ["Tick NL", "Tick BE", "Tick DE"])
    live_unit, *waiting_units = org["unit_ids"]
    live = connect_unit(app, flow, live_unit, "bexio")
    not_live = []
    for unit_id, provider in zip(waiting_units, ("exact-online", "quickbooks"), strict=True):
        region, company, choices = CONNECT[provider]
        not_live.append(flow.connected(unit_id, provider, region, company=company, live=False, **choices))
    for unit_id in org["unit_ids"]:
        add_invoice(app, org, unit_id)
    _backdate_invoices(app, 6)
    reset = datetime.now(UTC) + timedelta(hours=3)
    with app.app_context():
        # The live connection's push stopped on its spent daily quota: it waits for the reset.
        schedule.hold_until(live, reset)
        assert all(db.session.get(Connection, c).live_since is None for c in not_live)

    result = app.test_cli_runner().invoke(args=["schedule", "tick"])

    assert result.exit_code == 0, result.output
    assert "0 push(es) enqueued" in result.output
    assert "2 connections not live yet" in result.output
    assert f"1 waiting for the daily quota (until {reset:%H:%M} UTC)" in result.output
    assert "0 backing off after outages" in result.output
    with app.app_context():
        done = schedule.tick()
        assert done.not_live == not_live and list(done.quota_waits) == [live] and done.enqueued == []
        schedule.reset_backoff(live)  # the quota is back: the next tick pushes
        assert schedule.tick().enqueued == [live]
    # Once they are live, the tick pushes them too.
    with app.app_context():
        for connection_id in not_live:
            db.session.get(Connection, connection_id).live_since = datetime.now(UTC) - timedelta(hours=1)
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["schedule", "tick"])
    assert "2 push(es) enqueued, 1 already queued" in result.output
    assert "0 connections not live yet" in result.output and "0 waiting for the ledger's quota" in result.output


def test_a_429_reschedules_the_push_at_the_reset_and_fails_no_record(app, sandbox, connect, make_invoice):
    from rq.registry import ScheduledJobRegistry

    from jobs.sync import push_connection
    from portal.extensions import db, queue
    from portal.models import ExternalRecord, RecordState, SyncRun, SyncRunKind, SyncRunStatus

    connection_id = connect("bexio")
    make_invoice()
    make_invoice()
    fault(sandbox, provider="bexio", kind="rate_limit_storm", seconds=30)

    with app.app_context():
        run = SyncRun(kind=SyncRunKind.incremental, queue="sync", parameters={"connection_id": connection_id})
        db.session.add(run)
        db.session.commit()
        push_connection(run.id)
        db.session.expire_all()
        run = db.session.get(SyncRun, run.id)
        assert run.status is SyncRunStatus.succeeded and "rate limit" in run.message, run.message
        registry = ScheduledJobRegistry(
            "sync", connection=queue.connection, serializer=queue.state.queues["sync"].serializer
        )
        scheduled = registry.get_job_ids()
        assert len(scheduled) == 1 and scheduled[0].startswith(f"sync-{connection_id}-at-")
        retry = db.session.scalars(db.select(SyncRun).where(SyncRun.id != run.id)).one()
        assert retry.status is SyncRunStatus.queued and retry.parameters == {"connection_id": connection_id}
        states = {r.state for r in db.session.scalars(db.select(ExternalRecord))}
        assert RecordState.failed not in states and RecordState.pending in states


def _away_from_midnight(seconds: float = 120) -> None:
    """Sleep past 00:00 UTC when it is this close: a daily quota resets then."""
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    if (midnight - now).total_seconds() < seconds:
        time.sleep((midnight - now).total_seconds() + 1)


def test_no_run_a_minute_while_the_daily_quota_is_spent(app, sandbox, connect, make_invoice):
    from portal.extensions import db, queue
    from portal.models import ExternalRecord, RecordState, SyncRun
    from portal.sync import schedule
    from tests.portal.sync.rq_workers import control
    from tests.portal.sync.test_pipeline import run_push

    _away_from_midnight()
    connection_id = connect("exact-online")
    make_invoice()
    make_invoice()
    _backdate_invoices(app, 6)
    # The division's 5,000 calls of the day are spent: Exact answers 429 until 00:00 UTC.
    control(sandbox, "exact-online/set_settings", {"daily_limit": 1})

    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded" and counts.get("rate_limited") == 1, (counts, message)
    assert "rate limit" in message
    midnight = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    with app.app_context():
        assert {r.state for r in db.session.scalars(db.select(ExternalRecord))} <= {RecordState.pending}
        runs = db.session.scalar(db.select(db.func.count(SyncRun.id)))
        # One push is scheduled for the quota's reset, none more.
        [retry] = db.session.scalars(db.select(SyncRun).where(SyncRun.status == "queued")).all()
        assert retry.rq_job_id.startswith(f"sync-{connection_id}-at-{int(midnight.timestamp())}")
        # Minute after minute the tick leaves the connection alone: no run, no job.
        for minute in range(3):
            result = schedule.tick(datetime.now(UTC) + timedelta(minutes=minute))
            assert result.enqueued == [] and result.already_queued == []
            assert result.quota_waits == {connection_id: midnight}
        assert db.session.scalar(db.select(db.func.count(SyncRun.id))) == runs
        assert queue.state.queues["sync"].get_job_ids() == []
    outcome = app.test_cli_runner().invoke(args=["schedule", "tick"]).output
    assert "0 push(es) enqueued" in outcome and "1 waiting for the " in outcome and "(until 00:00 UTC)" in outcome


# -- two real workers, one Exact division ---------------------------------------------------------


def _connect_unit(app, flow, unit_id: int) -> int:
    """Connect a business unit to Exact division 3010001 with working mappings (as the connect fixture)."""
    from portal.extensions import db
    from portal.mappings import services
    from portal.models import Connection
    from tests.portal.mappings.conftest import GOOD_DEFAULTS

    region, company, choices = CONNECT["exact-online"]
    connection_id = flow.connected(unit_id, "exact-online", region, company=company, **choices)
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        services.refresh_reference(connection)
        services.set_mappings(connection, {**GOOD_DEFAULTS["exact-online"], **NO_TAX_LINE.get("exact-online", {})})
        connection.sync_from = connection.sync_from.replace(hour=0, minute=0, second=0, microsecond=0)
        db.session.commit()
    return connection_id


def _wait_for_a_good_second(low: float = 25.0, high: float = 45.0) -> float:
    """Sleep until the clock minute is between ``low`` and ``high`` s old; return the minute's end.

    The sandbox's windows are clock minutes: starting inside this range, the first window is
    spent long before its end, and the test shows the pacing across one reset without lasting
    a whole extra minute.
    """
    second = time.time() % 60
    if second < low:
        time.sleep(low - second)
    elif second > high:
        time.sleep(60 - second + low)
    now = time.time()
    return now - (now % 60) + 60


@pytest.mark.workers
@pytest.mark.faults
@pytest.mark.slow
def test_two_real_workers_on_one_exact_division_stay_under_its_quota(
    app, sandbox, flow, org_unit, make_invoice, database_url, redis_url
):
    from portal.extensions import db, queue
    from portal.models import BusinessUnit, ExternalRecord, Invoice, RecordState, SyncRun, SyncRunStatus
    from portal.sync import schedule
    from portal.sync.limiter import RateLimiter

    with app.app_context():
        unit = BusinessUnit(organization_id=org_unit["org_id"], name="Pushtest BE", country="NL", currency="EUR")
        db.session.add(unit)
        db.session.commit()
        second_unit = unit.id
    connections = [_connect_unit(app, flow, org_unit["unit_id"]), _connect_unit(app, flow, second_unit)]
    numbers = {connections[0]: [], connections[1]: []}
    for connection_id, unit_id in zip(connections, (org_unit["unit_id"], second_unit), strict=True):
        for _ in range(2):
            invoice_id, number = make_invoice()
            numbers[connection_id].append(number)
            with app.app_context():
                db.session.get(Invoice, invoice_id).business_unit_id = unit_id
                db.session.commit()
    # 15 calls a minute for the division: each connection makes 1 customer call and, per invoice,
    # 2 to push it and 3 to print (finalize) it, 22 in all, so the two workers together must
    # wait for one reset.
    requests.post(f"{sandbox}/_control/quotas", json={"scale": 0.25}, timeout=10).raise_for_status()
    # A little latency per call, so that one run's 11 calls outlast the other worker's start-up.
    fault(sandbox, provider="exact-online", kind="latency", ms=100)
    boundary = _wait_for_a_good_second()
    with app.app_context():
        RateLimiter(queue.connection).reset("exact-online", CONNECT["exact-online"][1])
        from portal.models import Connection

        runs = [schedule.enqueue_push(db.session.get(Connection, c)).id for c in connections]

    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LEDGERLINK_SECRET_KEY": app.config["SECRET_KEY"],
        "LEDGERLINK_TOKEN_KEYS": app.config["TOKEN_KEYS"],
        "LEDGERLINK_SANDBOX_URL": sandbox,
        "LEDGERLINK_EMBEDDED_WORKER": "false",
    }
    command = [
        sys.executable,
        *("-m", "rq.cli", "worker", "--burst", "-w", "jobs.worker.LedgerlinkWorker"),
        *("-S", "rq.serializers.JSONSerializer", "-u", redis_url, "sync"),
    ]
    workers = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), "\n".join(o[-2000:] for o in outputs)

    with app.app_context():
        db.session.expire_all()
        done = [db.session.get(SyncRun, r) for r in runs]
        for run in done:
            assert run.status is SyncRunStatus.succeeded, run.message
            assert run.counts == {"invoices": 2, "pushed": 2}, (run.counts, run.message)
        # Both workers were at it at the same time.
        assert done[0].started_at < done[1].finished_at and done[1].started_at < done[0].finished_at
        # The last call waited for the division's window to reset: that is the pacing.
        assert max(r.finished_at for r in done).timestamp() >= boundary
        states = [r.state for r in db.session.scalars(db.select(ExternalRecord))]
        assert states and set(states) == {RecordState.pushed}
        errors = [r.last_error_text for r in db.session.scalars(db.select(ExternalRecord)) if r.last_error_text]
        assert errors == []
    for connection_id in connections:
        for number in numbers[connection_id]:
            assert len(ledger_documents(sandbox, "exact-online", number)) == 1


def _start_as_a_worker_would(app, run_id: int, job_id: str, *, started_ago: timedelta) -> None:
    """Mark the queued job started (as a worker taking it does) and its run running."""
    from rq.job import Job, JobStatus

    from portal.extensions import db, queue
    from portal.models import SyncRun, SyncRunStatus
    from portal.sync import schedule

    with app.app_context():
        rq_queue = queue.state.queues[schedule.QUEUE]
        job = Job.fetch(job_id, connection=queue.connection, serializer=rq_queue.serializer)
        rq_queue.remove(job)
        job.set_status(JobStatus.STARTED)
        job.started_at = datetime.now(UTC) - started_ago
        job.worker_name = "killed-worker"
        job.save()
        run = db.session.get(SyncRun, run_id)
        run.transition(SyncRunStatus.running)
        db.session.commit()


def test_a_started_push_whose_worker_died_no_longer_blocks_the_connection(app, sandbox, connect):
    from portal.extensions import db, queue
    from portal.models import Connection, SyncRun
    from portal.sync import schedule

    connection_id = connect("bexio")
    with app.app_context():
        first = schedule.enqueue_push(db.session.get(Connection, connection_id), reason="first")
        first_id, job_id = first.id, first.rq_job_id
    _start_as_a_worker_would(app, first_id, job_id, started_ago=timedelta(minutes=5))

    with app.app_context():
        lock = queue.connection.lock(schedule.lock_key(connection_id), timeout=schedule.LOCK_TIMEOUT)
        assert lock.acquire(blocking=False)
        # Its run still holds (renews) the lock: it is running, nothing more is enqueued.
        assert schedule.enqueue_push(db.session.get(Connection, connection_id)) is None
        # The worker was killed: the lock expires after LOCK_TIMEOUT, and the job is given up.
        lock.release()
        again = schedule.enqueue_push(db.session.get(Connection, connection_id), reason="again")
        assert again is not None and again.rq_job_id == job_id
        db.session.expire_all()
        dead = db.session.get(SyncRun, first_id)
        assert dead.status.value == "interrupted" and "stopped before it finished" in dead.message


def test_a_push_that_just_started_and_has_no_lock_yet_is_still_running(app, sandbox, connect):
    from portal.extensions import db
    from portal.models import Connection, SyncRun
    from portal.sync import schedule

    connection_id = connect("bexio")
    with app.app_context():
        first = schedule.enqueue_push(db.session.get(Connection, connection_id), reason="first")
        first_id, job_id = first.id, first.rq_job_id
    _start_as_a_worker_would(app, first_id, job_id, started_ago=timedelta(seconds=1))

    with app.app_context():
        assert schedule.enqueue_push(db.session.get(Connection, connection_id)) is None
        assert db.session.get(SyncRun, first_id).status.value == "running"


def test_the_push_lock_is_short_and_renewed_while_the_run_makes_progress(
    app, sandbox, connect, make_invoice, monkeypatch
):
    from jobs import sync as job
    from portal.extensions import queue
    from portal.sync import schedule

    connection_id = connect("bexio")
    make_invoice()
    ttls: list[int] = []
    original = job._Lease.keep

    def keep(self):
        self.renewed -= schedule.LOCK_TIMEOUT  # as if a long chunk had passed: renew now
        held = original(self)
        ttls.append(queue.connection.ttl(schedule.lock_key(connection_id)))
        return held

    from tests.portal.sync.test_pipeline import run_push

    monkeypatch.setattr(job._Lease, "keep", keep)
    status, counts, _ = run_push(app, connection_id)
    assert status == "succeeded" and counts.get("pushed") == 1
    assert ttls and all(0 < ttl <= schedule.LOCK_TIMEOUT for ttl in ttls)
    with app.app_context():
        assert not queue.connection.exists(schedule.lock_key(connection_id)), "released at the end"
