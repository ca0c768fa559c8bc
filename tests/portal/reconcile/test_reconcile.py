"""Reconciliation against the sandbox ledgers: missing and extra invoices, mismatches, the re-push."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from tests.conftest import csrf_token_of
from tests.portal.sync.conftest import PROVIDERS
from tests.portal.sync.rq_workers import run_queued_jobs


def _extra_in_ledger(app, connection_id: int, make_invoice) -> str:
    """Put an invoice into the ledger that the SaaS does not have; return its number."""
    from portal.connections import vault
    from portal.extensions import db
    from portal.models import Connection, Invoice
    from portal.sync import push

    invoice_id, number = make_invoice()
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        invoice = db.session.get(Invoice, invoice_id)
        adapter = vault.fresh_adapter(connection)
        customer_id = push._ledger_customer_id(connection, invoice.customer, adapter)
        adapter.push_invoice(push.invoice_draft(connection, invoice, customer_id))
        db.session.delete(invoice)
        db.session.commit()
    return number


def _pushed(app, connection_id: int, invoice_id: int) -> None:
    from portal.extensions import db
    from portal.models import Connection, Invoice
    from portal.sync import push

    with app.app_context():
        record = push.push_invoice(db.session.get(Connection, connection_id), db.session.get(Invoice, invoice_id))
        assert record.state.value == "pushed", record.last_error_text


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_report_finds_a_missing_and_an_extra_invoice(app, sandbox, connect, make_invoice, provider):
    from portal.extensions import db
    from portal.models import Connection
    from portal.models.external_record import RecordKind
    from portal.reconcile import services

    connection_id = connect(provider)
    today = date.today()
    period = (today - timedelta(days=3), today)

    def invoices_report():
        with app.app_context():
            report = services.build_report(db.session.get(Connection, connection_id), *period)
        found = next(k for k in report.kinds if k.kind is RecordKind.invoice)
        assert found.error == "", found.error
        return found

    def extras(found) -> set[str]:
        return {line.ledger.reference or line.ledger.number for line in found.of("extra")}

    before = invoices_report()  # the demo company's own invoices of these days are extra too
    matched_id, _ = make_invoice()
    _pushed(app, connection_id, matched_id)
    _, missing_number = make_invoice()
    extra_number = _extra_in_ledger(app, connection_id, make_invoice)
    after = invoices_report()
    assert [line.number for line in after.of("missing")] == [missing_number]
    assert extras(after) - extras(before) == {extra_number}
    # QuickBooks US computes its own sales tax, so its total may differ: matched either way.
    assert after.matched + len(after.of("mismatch")) == 1
    assert after.saas_count == 2 and after.ledger_count == before.ledger_count + 2


def test_the_re_push_makes_a_missing_invoice_match(app, sandbox, connect, make_invoice, ops_client):
    from portal.extensions import db
    from portal.models import AuditEvent, ExternalRecord

    connection_id = connect("quickbooks")
    _, missing_number = make_invoice()
    client, _ = ops_client
    today = date.today().isoformat()
    url = f"/connections/{connection_id}/reconcile?from={today}&to={today}"
    page = client.get(url).get_data(as_text=True)
    assert missing_number in page and 'data-count="missing">1<' in page

    response = client.post(
        f"/connections/{connection_id}/reconcile/repush",
        data={"csrf_token": csrf_token_of(page), "from": today, "to": today},
    )
    assert response.status_code == 302
    with app.app_context():
        record = db.session.scalar(select(ExternalRecord).where(ExternalRecord.connection_id == connection_id))
        assert record.state.value == "pending"
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "reconcile.repushed"))
        assert missing_number in event.summary
    run_queued_jobs(app)
    page = client.get(url).get_data(as_text=True)
    assert 'data-count="missing">0<' in page and 'data-count="extra">0<' in page


def test_a_missing_invoice_the_ledger_lost_is_re_pushed_without_a_duplicate(app, sandbox, connect, make_invoice):
    from portal.extensions import db
    from portal.models import Connection, ExternalRecord, RecordState
    from portal.reconcile import services

    connection_id = connect("bexio")
    invoice_id, number = make_invoice()
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        report = services.build_report(connection, date.today(), date.today())
        numbers, run = services.repush(report)
        assert numbers == [number] and run is not None
    run_queued_jobs(app)
    with app.app_context():
        record = db.session.scalar(select(ExternalRecord).where(ExternalRecord.local_id == invoice_id))
        assert record.state is RecordState.pushed
        # The SaaS now thinks the invoice is pushed; a second re-push finds nothing missing.
        report = services.build_report(db.session.get(Connection, connection_id), date.today(), date.today())
        assert report.missing_invoices == []
        with pytest.raises(services.ReconcileError, match="No missing invoice"):
            services.repush(report)


def _doc(external_id, reference, total, number=None):
    from decimal import Decimal

    from portal.integrations.base import LedgerDocument

    return LedgerDocument(
        external_id=external_id, reference=reference, number=number, issue_date=date.today(),
        total=Decimal(total), currency="EUR",
    )  # fmt: skip


def test_documents_match_by_reference_then_by_remembered_ledger_id_and_differences_show():
    from decimal import Decimal
    from types import SimpleNamespace

    from portal.models import RecordKind
    from portal.reconcile.services import compare

    saas = [
        SimpleNamespace(id=1, number="INV-1", total=Decimal("121.00")),
        SimpleNamespace(id=2, number="INV-2", total=Decimal("50.00")),
        SimpleNamespace(id=3, number="INV-3", total=Decimal("10.00")),
        SimpleNamespace(id=4, number="INV-4", total=Decimal("99.99")),
    ]
    records = {2: SimpleNamespace(reference=None, external_id="L-77")}
    ledger = [
        _doc("L-1", "INV-1", "121.00"),
        _doc("L-77", None, "50.00", number="2024-0077"),  # no reference kept: found by the remembered id
        _doc("L-4", "INV-4", "100.00"),
        _doc("L-9", "MANUAL-9", "5.00"),
    ]
    report = compare(RecordKind.invoice, saas, records, ledger)
    assert report.matched == 2
    assert [line.local.number for line in report.of("missing")] == ["INV-3"]
    assert [line.ledger.external_id for line in report.of("extra")] == ["L-9"]
    (mismatch,) = report.of("mismatch")
    assert mismatch.local.number == "INV-4" and mismatch.difference == Decimal("0.01")
    assert report.saas_total == Decimal("280.99") and report.ledger_total == Decimal("276.00")


def test_a_period_is_checked_before_the_ledger_is_read():
    from portal.reconcile.services import MAX_DAYS, ReconcileError, check_range

    today = date.today()
    with pytest.raises(ReconcileError, match="after it ends"):
        check_range(today, today - timedelta(days=1))
    with pytest.raises(ReconcileError, match=f"at most {MAX_DAYS} days"):
        check_range(today - timedelta(days=MAX_DAYS), today)
    with pytest.raises(ReconcileError, match="both dates"):
        check_range(None, today)
    assert check_range(today, today) == (today, today)
