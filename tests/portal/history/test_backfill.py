"""Back-fills preview what they will do, then do exactly that, once per record, whatever interrupts them."""

from __future__ import annotations

from datetime import date

import pytest

from tests.portal.history.conftest import ledger_invoices


def _link_only_with_an_unlinked_customer(app, connection_id, org_unit):
    """Create the fixture customer in the ledger (linked by push), then switch to link-only mode."""
    from portal.customers import services as customers
    from portal.extensions import db
    from portal.models import Connection, Customer
    from portal.sync import push

    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        record = push.push_customer(connection, db.session.get(Customer, org_unit["customer_id"]))
        assert record.state.value == "pushed", record.last_error_text
        connection = db.session.get(Connection, connection_id)
        customers.set_customer_mode(connection, "link_only")
        db.session.commit()


def _push_now(app, connection_id, invoice_number):
    from portal.extensions import db
    from portal.models import Connection, Invoice
    from portal.sync import push

    with app.app_context():
        invoice = db.session.scalar(db.select(Invoice).filter_by(number=invoice_number))
        record = push.push_invoice(db.session.get(Connection, connection_id), invoice)
        assert record.state.value == "pushed", record.last_error_text


def test_the_preview_counts_what_the_push_then_does(
    app, sandbox, connect, org_unit, old_invoices, other_customer, invoice_for, backfill_of
):
    connection_id = connect("exact-online")
    numbers = old_invoices(5)
    _link_only_with_an_unlinked_customer(app, connection_id, org_unit)
    _push_now(app, connection_id, numbers[0])  # already in the ledger before the back-fill
    invoice_for(other_customer, "HBLOCKED-1", date(2025, 6, 1))

    preview = backfill_of.preview(connection_id, ["customer", "invoice"])

    assert preview["kinds"]["customer"] | {} == {
        "kind": "customer",
        "create": 0,
        "existing": 1,
        "skipped": 0,
        "blocked": 1,
        "total": 2,
    }
    assert preview["kinds"]["invoice"] == {
        "kind": "invoice",
        "create": 4,
        "existing": 1,
        "skipped": 0,
        "blocked": 1,
        "total": 6,
    }
    blocked_invoice = next(b for b in preview["blocked"] if b["kind"] == "invoice")
    assert blocked_invoice["label"] == "HBLOCKED-1"
    assert "not linked" in blocked_invoice["reason"] and blocked_invoice["fix_url"].endswith(
        f"/connections/{connection_id}/customers"
    )
    assert "Exact Online allows 60 calls a minute and 5,000 a day" in preview["estimate"]["text"]
    # The preview wrote nothing: only the invoice pushed by hand is in the ledger.
    assert [ledger_invoices(sandbox, n) for n in numbers] == [1, 0, 0, 0, 0]

    backfill_id = backfill_of.start(connection_id, ["customer", "invoice"])
    state = backfill_of.run(backfill_id)

    assert state["status"] == "succeeded", state["message"]
    assert state["counts"] == {
        "customer": {"existing": 1, "blocked": 1},
        "invoice": {"created": 4, "existing": 1, "blocked": 1},
    }
    assert [ledger_invoices(sandbox, n) for n in numbers] == [1, 1, 1, 1, 1]
    assert ledger_invoices(sandbox, "HBLOCKED-1") == 0  # blocked records are reported, not pushed
    assert state["summary"]["invoice"]["saas_count"] == 6
    assert state["summary"]["invoice"]["ledger_count"] == 5
    assert state["summary"]["invoice"]["matches"] is False


def test_a_push_that_crashes_mid_way_resumes_at_its_cursor_and_pushes_each_record_once(
    app, sandbox, connect, old_invoices, backfill_of, monkeypatch
):
    from portal.history import services

    connection_id = connect("exact-online")
    numbers = old_invoices(7)
    backfill_id = backfill_of.start(connection_id, ["invoice"])
    chunks = []

    def crash_after_two_chunks(backfill):
        chunks.append(backfill.cursor_id)
        if len(chunks) == 2:
            raise RuntimeError("worker killed")

    monkeypatch.setattr(services, "_after_chunk", crash_after_two_chunks)
    with pytest.raises(RuntimeError, match="worker killed"):
        backfill_of.run(backfill_id)

    crashed = backfill_of.state(backfill_id)
    assert crashed["status"] == "interrupted"
    assert crashed["cursor"]["kind"] == "invoice" and crashed["cursor"]["after_id"] == chunks[1]
    assert [ledger_invoices(sandbox, n) for n in numbers] == [1, 1, 1, 1, 0, 0, 0]

    monkeypatch.setattr(services, "_after_chunk", lambda backfill: None)
    assert "continues where it stopped" in backfill_of.call(backfill_id, "resume")
    state = backfill_of.run(backfill_id)

    assert state["status"] == "succeeded", state["message"]
    assert [ledger_invoices(sandbox, n) for n in numbers] == [1] * 7
    assert state["counts"] == {"invoice": {"created": 7}}


def test_a_record_pushed_but_not_noted_before_a_crash_is_not_pushed_again(
    app, sandbox, connect, old_invoices, backfill_of, monkeypatch
):
    from portal.history import services

    connection_id = connect("exact-online")
    numbers = old_invoices(3)
    backfill_id = backfill_of.start(connection_id, ["invoice"])
    real_note = services._note
    calls = []

    def die_before_noting_the_second(*args, **kwargs):
        calls.append(args[2].number)
        if len(calls) == 2:
            raise RuntimeError("killed between the ledger's answer and our note")
        return real_note(*args, **kwargs)

    monkeypatch.setattr(services, "_note", die_before_noting_the_second)
    with pytest.raises(RuntimeError):
        backfill_of.run(backfill_id)
    monkeypatch.setattr(services, "_note", real_note)
    backfill_of.call(backfill_id, "resume")
    state = backfill_of.run(backfill_id)

    assert state["status"] == "succeeded"
    assert [ledger_invoices(sandbox, n) for n in numbers] == [1, 1, 1]
    assert state["counts"]["invoice"] == {"created": 2, "existing": 1}


def test_pause_stops_at_a_chunk_boundary_and_resume_finishes(
    app, sandbox, connect, old_invoices, backfill_of, monkeypatch
):
    from portal.history import services

    connection_id = connect("exact-online")
    numbers = old_invoices(5)
    backfill_id = backfill_of.start(connection_id, ["invoice"])
    monkeypatch.setattr(services, "_after_chunk", lambda backfill: services.request_pause(backfill))

    paused = backfill_of.run(backfill_id)

    assert paused["status"] == "paused"
    assert [ledger_invoices(sandbox, n) for n in numbers] == [1, 1, 0, 0, 0]
    monkeypatch.setattr(services, "_after_chunk", lambda backfill: None)
    backfill_of.call(backfill_id, "resume")
    done = backfill_of.run(backfill_id)
    assert done["status"] == "succeeded"
    assert [ledger_invoices(sandbox, n) for n in numbers] == [1] * 5


def test_cancel_stops_for_good_and_keeps_what_was_pushed(app, sandbox, connect, old_invoices, backfill_of, monkeypatch):
    from portal.extensions import db
    from portal.history import services
    from portal.models import AuditEvent, Backfill

    connection_id = connect("exact-online")
    numbers = old_invoices(5)
    backfill_id = backfill_of.start(connection_id, ["invoice"])
    monkeypatch.setattr(services, "_after_chunk", lambda backfill: services.request_cancel(backfill))

    state = backfill_of.run(backfill_id)

    assert state["status"] == "cancelled"
    assert [ledger_invoices(sandbox, n) for n in numbers] == [1, 1, 0, 0, 0]
    with app.app_context():
        backfill = db.session.get(Backfill, backfill_id)
        assert backfill.sync_run.status.value == "cancelled"
        with pytest.raises(services.HistoryError, match="has ended"):
            services.resume(backfill)
        kinds = set(db.session.scalars(db.select(AuditEvent.kind).where(AuditEvent.kind.like("history.%"))))
        assert kinds == {"history.started", "history.cancelled"}
    assert backfill_of.run(backfill_id)["status"] == "cancelled"  # a stray job does nothing
    assert [ledger_invoices(sandbox, n) for n in numbers] == [1, 1, 0, 0, 0]


def test_a_spent_quota_share_waits_and_is_scheduled_for_the_reset(
    app, sandbox, connect, old_invoices, backfill_of, monkeypatch
):
    from datetime import UTC, datetime, timedelta

    from rq.registry import ScheduledJobRegistry

    from portal.extensions import queue
    from portal.integrations.base import RateLimited
    from portal.sync import push

    connection_id = connect("exact-online")
    numbers = old_invoices(3)
    backfill_id = backfill_of.start(connection_id, ["invoice"])
    reset = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    real_push = push.push_invoice
    pushed = []

    def quota_spent_after_one(connection, invoice, adapter=None):
        if pushed:
            raise RateLimited("daily budget spent", retry_at=reset, provider="exact-online")
        pushed.append(invoice.number)
        return real_push(connection, invoice, adapter)

    monkeypatch.setattr(push, "push_invoice", quota_spent_after_one)
    state = backfill_of.run(backfill_id)

    assert state["status"] == "waiting"
    assert state["resume_at"] == reset.isoformat()
    assert "continues by itself" in state["message"]
    with app.app_context():
        registry = ScheduledJobRegistry("history", connection=queue.connection)
        assert f"history-{backfill_id}" in registry.get_job_ids()
    assert [ledger_invoices(sandbox, n) for n in numbers] == [1, 0, 0]

    monkeypatch.setattr(push, "push_invoice", real_push)
    done = backfill_of.run(backfill_id)  # the scheduled job, once the quota is back
    assert done["status"] == "succeeded"
    assert [ledger_invoices(sandbox, n) for n in numbers] == [1, 1, 1]


def test_bad_requests_say_what_to_fix(app, connect, backfill_of):
    from portal.history import services

    connection_id = connect("exact-online")
    with pytest.raises(services.HistoryError, match="starts after it ends"):
        backfill_of.preview(connection_id, None, date_from=date(2025, 5, 1), date_to=date(2025, 4, 1))
    with pytest.raises(services.HistoryError, match="YYYY-MM-DD, not '2025-13-01'"):
        backfill_of.preview(connection_id, None, date_from="2025-13-01")
    with pytest.raises(services.HistoryError, match=r"Unknown kind.*refunds"):
        backfill_of.preview(connection_id, ["refunds"])


def test_one_unfinished_back_fill_per_connection(app, connect, old_invoices, backfill_of):
    from portal.history import services

    connection_id = connect("exact-online")
    old_invoices(1)
    first = backfill_of.start(connection_id, ["invoice"])
    with pytest.raises(services.HistoryError, match=f"#{first} of this connection is queued"):
        backfill_of.start(connection_id, ["invoice"])


def test_a_back_fill_whose_worker_was_killed_outright_can_be_resumed(
    app, sandbox, connect, old_invoices, backfill_of, monkeypatch
):
    from portal.extensions import db
    from portal.history import services
    from portal.models import Backfill

    connection_id = connect("exact-online")
    numbers = old_invoices(4)
    backfill_id = backfill_of.start(connection_id, ["invoice"])

    class Killed(BaseException):
        """Like SIGKILL: no handler of the job runs."""

    def kill_after_first_chunk(backfill):
        raise Killed

    monkeypatch.setattr(services, "_after_chunk", kill_after_first_chunk)
    with app.app_context(), pytest.raises(Killed):
        services.run(backfill_id, __import__("logging").getLogger("test"))
    with app.app_context():
        backfill = db.session.get(Backfill, backfill_id)
        assert backfill.status.value == "running"  # nobody recorded the end
        lock = services._lock(connection_id)
        assert lock.acquire(blocking=False)  # the killed worker's lock is gone (released or expired)
        with pytest.raises(services.HistoryError, match="is running"):
            services.resume(backfill)
        lock.release()
    monkeypatch.setattr(services, "_after_chunk", lambda backfill: None)
    backfill_of.call(backfill_id, "resume")
    assert backfill_of.run(backfill_id)["status"] == "succeeded"
    assert [ledger_invoices(sandbox, n) for n in numbers] == [1, 1, 1, 1]


def test_the_estimate_says_when_the_daily_quota_makes_a_back_fill_span_days(app, connect):
    from portal.extensions import db
    from portal.history import services
    from portal.models import Connection

    connection_id = connect("exact-online")
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        big = services.estimate(connection, 12_000)
        small = services.estimate(connection, 600)
    assert big["days"] == 5 and "spans 5 days" in big["text"] and "5,000 a day" in big["text"]
    assert small["days"] == 1 and "20 minutes" in small["text"]


def test_the_back_fill_leaves_its_reserved_share_of_each_window_to_the_live_sync(app, redis_url):
    import redis

    from portal.integrations.base import RateLimited
    from portal.sync.limiter import RateLimiter

    now = [1_800_000_000.0]
    shared = RateLimiter(redis.Redis.from_url(redis_url), max_wait=0.0, clock=lambda: now[0])
    shared.acquire("exact-online", "3010001")  # the live sync is at work
    for _ in range(29):
        shared.acquire("exact-online", "3010001", share=0.5)  # the back-fill: half of 60 a minute
    with pytest.raises(RateLimited):
        shared.acquire("exact-online", "3010001", share=0.5)
    for _ in range(30):
        shared.acquire("exact-online", "3010001")  # the live sync still has the other half
    with pytest.raises(RateLimited):
        shared.acquire("exact-online", "3010001")


def test_a_long_back_fill_hands_over_to_a_fresh_job_at_a_chunk_boundary(
    app, sandbox, connect, old_invoices, backfill_of, monkeypatch
):
    from rq import Queue
    from rq.serializers import JSONSerializer

    from portal.extensions import queue

    connection_id = connect("exact-online")
    numbers = old_invoices(5)
    backfill_id = backfill_of.start(connection_id, ["invoice"])
    monkeypatch.setitem(app.config, "HISTORY_JOB_SECONDS", 0)  # every chunk is the job's last

    first = backfill_of.run(backfill_id)

    assert first["status"] == "queued" and "Continuing in a fresh job" in first["message"]
    assert [ledger_invoices(sandbox, n) for n in numbers] == [1, 1, 0, 0, 0]
    with app.app_context():
        history = Queue("history", connection=queue.connection, serializer=JSONSerializer)
        assert f"history-{backfill_id}" in history.get_job_ids()
    while backfill_of.state(backfill_id)["status"] == "queued":
        backfill_of.run(backfill_id)  # each next job
    assert backfill_of.state(backfill_id)["status"] == "succeeded"
    assert [ledger_invoices(sandbox, n) for n in numbers] == [1] * 5


def test_a_back_fill_whose_heartbeat_stopped_is_interrupted_and_resumed_from_the_jobs_page(
    app, sandbox, connect, old_invoices, backfill_of, monkeypatch
):
    from datetime import timedelta

    from portal.database import utcnow
    from portal.extensions import db
    from portal.history import services
    from portal.models import Backfill
    from portal.sync import mirrors

    connection_id = connect("exact-online")
    numbers = old_invoices(4)
    backfill_id = backfill_of.start(connection_id, ["invoice"])

    class Killed(BaseException):
        """Like SIGKILL: no handler of the job runs."""

    def kill_after_first_chunk(backfill):
        raise Killed

    monkeypatch.setattr(services, "_after_chunk", kill_after_first_chunk)
    with app.app_context(), pytest.raises(Killed):
        services.run(backfill_id, __import__("logging").getLogger("test"))
    monkeypatch.setattr(services, "_after_chunk", lambda backfill: None)
    with app.app_context():
        assert services._lock(connection_id).acquire(blocking=False)  # the dead worker's lock, never released
        backfill = db.session.get(Backfill, backfill_id)
        assert backfill.heartbeat_at is not None
        assert mirrors.reconcile() == [], "a heartbeat younger than a minute: alive"
        backfill.heartbeat_at = backfill.started_at = utcnow() - mirrors.BACKFILL_DEAD - timedelta(seconds=1)
        backfill.sync_run.created_at = utcnow() - timedelta(minutes=5)
        db.session.commit()

        assert mirrors.reconcile() == [backfill.sync_run_id]
        db.session.expire_all()
        backfill = db.session.get(Backfill, backfill_id)
        assert backfill.status.value == "interrupted" and backfill.sync_run.status.value == "interrupted"
        mirrors.resume(backfill.sync_run)
    assert backfill_of.run(backfill_id)["status"] == "succeeded"
    assert [ledger_invoices(sandbox, n) for n in numbers] == [1, 1, 1, 1]


def test_pause_takes_effect_before_the_next_ledger_call_not_at_the_end_of_the_chunk(
    app, sandbox, connect, old_invoices, backfill_of, monkeypatch
):
    from portal.extensions import db
    from portal.history import services
    from portal.models import Backfill

    connection_id = connect("exact-online")
    numbers = old_invoices(6)
    backfill_id = backfill_of.start(connection_id, ["invoice"])
    monkeypatch.setattr(services, "chunk_size", lambda: 50)  # the whole range is one chunk
    monkeypatch.setattr(services, "REQUEST_CHECK_SECONDS", 0.0)
    original, calls = services._Beat.__call__, []

    def beat(self, ahead: float = 0.0) -> None:
        calls.append(1)
        if (
            sum(ledger_invoices(sandbox, n) for n in numbers) == 2
            and not db.session.get(Backfill, backfill_id).requested
        ):
            with db.engine.begin() as conn:  # a person presses Pause on the page
                conn.execute(
                    Backfill.__table__.update().where(Backfill.__table__.c.id == backfill_id).values(requested="pause")
                )
        original(self, ahead)

    monkeypatch.setattr(services._Beat, "__call__", beat)
    paused = backfill_of.run(backfill_id)

    assert paused["status"] == "paused"
    assert sum(ledger_invoices(sandbox, n) for n in numbers) == 2, "stopped within the chunk"
    monkeypatch.setattr(services._Beat, "__call__", original)
    backfill_of.call(backfill_id, "resume")
    assert backfill_of.run(backfill_id)["status"] == "succeeded"
    assert [ledger_invoices(sandbox, n) for n in numbers] == [1] * 6
