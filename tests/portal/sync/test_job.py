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
