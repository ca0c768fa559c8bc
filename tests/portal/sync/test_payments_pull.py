"""Pulling payments from the ledger into the SaaS, and the tick that schedules it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.portal.mappings.conftest import control
from tests.portal.sync.conftest import CONNECT
from tests.portal.sync.test_documents import records
from tests.portal.sync.test_pipeline import ingest_invoice, run_push


def run_pull(app, connection_id: int) -> tuple[str, dict, str]:
    from jobs.payments import pull_connection_payments
    from portal.extensions import db
    from portal.models import SyncRun, SyncRunKind

    with app.app_context():
        run = SyncRun(kind=SyncRunKind.payment_poll, queue="sync", parameters={"connection_id": connection_id})
        db.session.add(run)
        db.session.commit()
        pull_connection_payments(run.id)
        db.session.expire_all()
        run = db.session.get(SyncRun, run.id)
        return run.status.value, dict(run.counts or {}), run.message


def mark_paid(sandbox: str, provider: str, external_id: str, amount: str | None = None) -> None:
    """Book a payment in the sandbox ledger as a bookkeeper would (``amount`` None: the rest)."""
    company = CONNECT[provider][1]
    if provider == "quickbooks":
        body = {"realm_id": company, "invoice_id": external_id}
    elif provider == "bexio":
        body = {"company": company, "invoice_id": int(external_id)}
    else:
        body = {"division": int(company), "invoice": external_id}
    if amount is not None:
        body["amount"] = amount
    control(sandbox, f"{provider}/mark_paid", body)


def saas_invoice(app, external_id: str):
    from portal.extensions import db
    from portal.models import Invoice

    with app.app_context():
        invoice = db.session.scalar(db.select(Invoice).filter_by(external_id=external_id))
        return invoice.status.value, invoice.amount_paid, invoice.id


@pytest.mark.parametrize("provider", ["quickbooks", "bexio"])
def test_a_payment_booked_in_the_ledger_marks_the_saas_invoice_partially_then_fully_paid(
    app, sandbox, connect, org_unit, api, provider
):
    from portal.extensions import db
    from portal.models import AuditEvent

    connection_id = connect(provider)
    invoice_id, _ = ingest_invoice(app, api, org_unit)
    assert run_push(app, connection_id)[1]["pushed"] == 1
    [record] = records(app, connection_id, "invoice")
    mark_paid(sandbox, provider, record.external_id, "50.00")

    status, counts, message = run_pull(app, connection_id)

    assert status == "succeeded" and counts == {"checked": 1, "partially_paid": 1}, message
    state, paid, local_id = saas_invoice(app, invoice_id)
    assert state == "partially_paid" and paid == Decimal("50.00")
    mark_paid(sandbox, provider, record.external_id)

    status, counts, message = run_pull(app, connection_id)

    assert counts == {"checked": 1, "paid": 1}, message
    state, paid, _ = saas_invoice(app, invoice_id)
    total = Decimal(api[1](f"invoices/{invoice_id}").get_json()["total"])  # at the ledger's default rate
    assert state == "paid" and paid == total
    assert api[1](f"invoices/{invoice_id}").get_json()["ledger"]["paid_status"] == "paid"
    # Paid invoices are not asked about again.
    assert run_pull(app, connection_id)[1] == {"checked": 0}
    with app.app_context():
        events = db.session.scalars(
            db.select(AuditEvent)
            .where(AuditEvent.subject_type == "Invoice", AuditEvent.subject_id == local_id)
            .order_by(AuditEvent.id)
        ).all()
        assert [(e.kind, e.after["status"]) for e in events] == [
            ("invoice.payment_pulled", "partially_paid"),
            ("invoice.payment_pulled", "paid"),
        ]


def test_the_tick_enqueues_a_payments_pull_once_per_interval(app, sandbox, connect):
    from portal.extensions import db, queue
    from portal.models import Connection
    from portal.sync import payments, schedule

    connection_id = connect("bexio")
    now = datetime.now(UTC)
    with app.app_context():
        # Connected just now: the first pull waits one interval (default two hours).
        assert schedule.tick(now).payments_enqueued == []
        later = now + timedelta(minutes=121)
        first = schedule.tick(later)
        second = schedule.tick(later)
        assert first.payments_enqueued == [connection_id] and second.payments_enqueued == []
        assert f"payments-{connection_id}" in queue.state.queues["sync"].get_job_ids()

        # Once pulled, the next one is due an interval after that pull; "off" never pulls.
        connection = db.session.get(Connection, connection_id)
        payments.mark_pulled(connection, later)
        connection.settings = {**connection.settings, "payments_pull_minutes": 30}
        db.session.commit()
        assert not payments.pull_due(connection, later + timedelta(minutes=29))
        assert payments.pull_due(connection, later + timedelta(minutes=30))
        connection.settings = {**connection.settings, "payments_mode": "off"}
        db.session.commit()
        assert not payments.pull_due(connection, later + timedelta(days=1))


def test_an_exact_invoice_paid_in_the_ledger_is_paid_in_the_saas(app, sandbox, connect, org_unit, api):
    connection_id = connect("exact-online")
    invoice_id, _ = ingest_invoice(app, api, org_unit)
    assert run_push(app, connection_id)[1]["pushed"] == 1
    [record] = records(app, connection_id, "invoice")
    assert run_pull(app, connection_id)[1] == {"checked": 1, "unchanged": 1}
    mark_paid(sandbox, "exact-online", record.external_number)

    status, counts, message = run_pull(app, connection_id)

    assert status == "succeeded" and counts == {"checked": 1, "paid": 1}, message
    assert saas_invoice(app, invoice_id)[:2] == ("paid", Decimal("242.00"))
