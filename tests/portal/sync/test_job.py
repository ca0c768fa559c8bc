"""The push_connection job: every due invoice once, outcomes counted on its SyncRun."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.portal.sync.conftest import ledger_documents


def _run_job(app, connection_id: int):
    from jobs.sync import push_connection
    from portal.extensions import db
    from portal.models import SyncRun, SyncRunKind

    with app.app_context():
        run = SyncRun(kind=SyncRunKind.incremental, queue="sync", parameters={"connection_id": connection_id})
        db.session.add(run)
        db.session.commit()
        push_connection(run.id)
        db.session.expire_all()
        run = db.session.get(SyncRun, run.id)
        return run.status.value, dict(run.counts), run.message


@pytest.mark.parametrize("provider", ["quickbooks", "bexio"])
def test_the_job_pushes_due_invoices_once_and_counts_outcomes(app, sandbox, connect, make_invoice, provider):
    from portal.extensions import db
    from portal.mappings.services import pushed_record_count
    from portal.models import Connection

    connection_id = connect(provider)
    due = [make_invoice()[1], make_invoice()[1]]
    _old_id, old = make_invoice(issue_date=date.today() - timedelta(days=3))  # before the connection date

    status, counts, message = _run_job(app, connection_id)

    assert status == "succeeded", message
    assert counts == {"invoices": 2, "pushed": 2}
    assert message == "2 pushed"
    for number in due:
        assert len(ledger_documents(sandbox, provider, number)) == 1
    assert ledger_documents(sandbox, provider, old) == []
    with app.app_context():
        # The two invoices and the customer the first one created.
        assert pushed_record_count(db.session.get(Connection, connection_id)) == 3

    status, counts, message = _run_job(app, connection_id)

    assert (status, counts, message) == ("succeeded", {"invoices": 0}, "Nothing to push.")
    for number in due:
        assert len(ledger_documents(sandbox, provider, number)) == 1


@pytest.mark.faults
def test_a_rate_limit_stops_the_run_and_leaves_the_record_pending(app, sandbox, connect, make_invoice):
    from tests.portal.sync.conftest import fault

    connection_id = connect("bexio")
    make_invoice()
    make_invoice()
    fault(sandbox, provider="bexio", kind="rate_limit_storm", seconds=30)

    status, counts, message = _run_job(app, connection_id)

    assert status == "succeeded"
    assert counts == {"invoices": 2, "pending": 1, "rate_limited": 1}
    assert "rate limit" in message


def test_a_long_pacing_wait_renews_the_lock_of_the_run_for_its_whole_length(
    app, sandbox, connect, make_invoice, monkeypatch
):
    import time

    from portal.extensions import queue
    from portal.sync import limiter, schedule

    connection_id = connect("exact-online")
    make_invoice()
    lock_key = schedule.lock_key(connection_id)
    window = limiter.window_key("exact-online", "3010001", "minute")
    now = [time.time()]
    waits: list[tuple[float, float]] = []

    def sleep(seconds: float) -> None:
        """Stand in for a wait: note what the lock has left as it starts, then let the time pass."""
        left = queue.connection.pttl(lock_key) / 1000
        waits.append((seconds, left))
        now[0] += seconds
        if left > seconds:
            queue.connection.pexpire(lock_key, int((left - seconds) * 1000))
        else:
            queue.connection.delete(lock_key)  # the lock would have expired during the wait

    monkeypatch.setattr(
        limiter, "from_config", lambda config, rconn: limiter.RateLimiter(rconn, sleep=sleep, clock=lambda: now[0])
    )
    # The division's minute is spent until 85 s from now: the first call waits that long.
    with app.app_context():
        queue.connection.hset(window, mapping={"used": 60, "limit": 60, "reset": int((now[0] + 85) * 1000)})

    status, counts, message = _run_job(app, connection_id)

    assert status == "succeeded" and counts["pushed"] == 1, (counts, message)
    assert waits and waits[0][0] > 80
    for seconds, left in waits:  # renewed for the wait plus the lock's usual time before each wait
        assert left > seconds + schedule.LOCK_TIMEOUT - 5, waits
    with app.app_context():
        assert not queue.connection.exists(lock_key)  # released by the run, not expired under it
