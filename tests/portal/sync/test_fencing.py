"""Fencing: a push writes to a ledger only while it holds its connection's lease in the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm.exc import StaleDataError

from tests.portal.sync.conftest import ledger_documents
from tests.portal.sync.test_pipeline import run_push


def _take_over(app, connection_id: int, run_id: int = 999_999) -> int:
    """Do what a newer run does after this one stopped renewing: the lease expired, the new run takes it."""
    from portal.database import utcnow
    from portal.extensions import db
    from portal.models import ConnectionLease
    from portal.sync import fencing

    with db.engine.begin() as conn:
        conn.execute(
            update(ConnectionLease.__table__)
            .where(ConnectionLease.__table__.c.connection_id == connection_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    lease = fencing.acquire(connection_id, run_id)
    assert lease is not None
    return lease.token


@pytest.mark.parametrize("provider", ["exact-online", "bexio"])
def test_a_run_whose_lease_was_taken_over_stops_before_its_next_create_and_is_interrupted(
    app, sandbox, connect, make_invoice, monkeypatch, provider
):
    from portal.extensions import db
    from portal.models import ExternalRecord, RecordKind, RecordState
    from portal.sync import fencing

    connection_id = connect(provider)
    invoices = [make_invoice() for _ in range(4)]
    numbers = [number for _, number in invoices]
    original, newer = fencing.before_write, []

    def before_write() -> None:
        # Once the first invoice is in, this run freezes past its lease and a newer run takes over.
        if not newer and any(ledger_documents(sandbox, provider, n) for n in numbers):
            newer.append(_take_over(app, connection_id))
        original()

    monkeypatch.setattr(fencing, "before_write", before_write)
    status, counts, message = run_push(app, connection_id)

    assert status == "interrupted", (status, counts, message)
    assert counts.get("lease_lost") == 1 and "newer run" in message
    in_ledger = [n for n in numbers if ledger_documents(sandbox, provider, n)]
    assert len(in_ledger) == 1, "exactly the one create before the take-over reached the ledger"
    with app.app_context():
        tokens = {r.fence for r in db.session.query(ExternalRecord).filter_by(kind=RecordKind.invoice)}
        assert max(tokens) < newer[0]

    # The newer run's lease given up (its worker finished), the next push completes exactly once.
    monkeypatch.setattr(fencing, "before_write", original)
    with app.app_context():
        fencing.release(fencing.Lease(connection_id, 999_999, newer[0], 60))
    status, counts, message = run_push(app, connection_id)
    assert status == "succeeded", message
    for number in numbers:
        assert len(ledger_documents(sandbox, provider, number)) == 1, number
    with app.app_context():
        states = {r.state for r in db.session.query(ExternalRecord).filter_by(connection_id=connection_id)}
        assert states == {RecordState.pushed}


def test_a_push_finding_the_lease_held_by_a_live_run_writes_nothing_and_is_not_succeeded(
    app, sandbox, connect, make_invoice
):
    from portal.extensions import queue
    from portal.sync import fencing, schedule

    connection_id = connect("bexio")
    _id, number = make_invoice()
    with app.app_context():
        held = fencing.acquire(connection_id, 424242)
        # Redis lost its data (restart): no lock stands in the way, only the lease in the database.
        queue.connection.delete(schedule.lock_key(connection_id))

    status, counts, message = run_push(app, connection_id)

    assert status == "cancelled" and counts == {"already_running": 1}, (status, counts)
    assert "another push" in message
    assert ledger_documents(sandbox, "bexio", number) == []
    with app.app_context():
        assert fencing.holder(connection_id) == 424242
        fencing.release(held)
        assert fencing.holder(connection_id) is None
    assert run_push(app, connection_id)[0] == "succeeded"
    assert len(ledger_documents(sandbox, "bexio", number)) == 1


def test_a_run_whose_redis_lock_vanished_goes_on_while_its_lease_is_its_own(
    app, sandbox, connect, make_invoice, monkeypatch
):
    from portal.extensions import queue
    from portal.sync import fencing, schedule

    connection_id = connect("quickbooks")
    numbers = [make_invoice()[1] for _ in range(3)]
    original = fencing.before_write

    def before_write() -> None:
        queue.connection.delete(schedule.lock_key(connection_id))  # Redis restarted under the run
        original()

    monkeypatch.setattr(fencing, "before_write", before_write)
    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded" and counts.get("pushed") == 3, (counts, message)
    for number in numbers:
        assert len(ledger_documents(sandbox, "quickbooks", number)) == 1


def test_tokens_only_grow_and_a_given_up_lease_is_taken_at_once(app, connect):
    from portal.sync import fencing

    connection_id = connect("bexio")
    with app.app_context():
        first = fencing.acquire(connection_id, 1)
        assert fencing.acquire(connection_id, 2) is None, "held by a live run"
        fencing.release(first)
        second = fencing.acquire(connection_id, 2)
        assert second is not None and second.token == first.token + 1
        assert not fencing.renew(first), "the first run's token is fenced off"
        with pytest.raises(fencing.LeaseLost):
            fencing.check(first)
        fencing.check(second)


def test_a_record_marked_by_a_newer_run_refuses_the_older_runs_write(app, connect, make_invoice):
    from portal.extensions import db
    from portal.models import ExternalRecord, RecordKind, RecordState
    from portal.sync import fencing, push

    connection_id = connect("bexio")
    invoice_id, _ = make_invoice()
    with app.app_context():
        old = fencing.acquire(connection_id, 1)
        with fencing.holding(old):
            record = push.record_for(db.session.get(push.Connection, connection_id), RecordKind.invoice, invoice_id)
            push._begin(record, reference="X", payload={})
            assert record.fence == old.token
        # The old run froze; a newer run took the lease and marked the record with its token.
        newer = _take_over(app, connection_id, run_id=2)
        with db.engine.begin() as conn:
            conn.execute(
                update(ExternalRecord.__table__).where(ExternalRecord.__table__.c.id == record.id).values(fence=newer)
            )
        # The old run wakes up and stores its copy's id: refused, the newer run's record is kept.
        record.external_id = "stale-copy"
        record.transition(RecordState.pushed)
        with pytest.raises(StaleDataError):
            db.session.commit()
        db.session.rollback()
        fresh = db.session.get(ExternalRecord, record.id)
        assert fresh.external_id is None and fresh.fence == newer
        # Nor may it stamp the record with its older token when it marks it again.
        with fencing.holding(old), pytest.raises(fencing.LeaseLost):
            fencing.claim(fresh)
