"""Documents a back-fill finds in the ledger by our reference: adopted when they equal the SaaS's, else held.

The preview gives each the verdict the run then carries out: a ledger document with the SaaS's
total is adopted (existing, nothing written); one with another total is blocked and recorded as
"differs from the SaaS"; one another SaaS document's record holds already is blocked as a
duplicate. Nothing is created in the ledger for any of them.
"""

from __future__ import annotations

from decimal import Decimal

from tests.portal.history.conftest import ledger_invoices


def _pushed_then_forgotten(app, connection_id: int, number: str) -> str:
    """Push the invoice, then drop its push record: the ledger has it, Ledgerlink no longer knows. Return its id."""
    from portal.extensions import db
    from portal.models import Connection, ExternalRecord, Invoice
    from portal.sync import push

    with app.app_context():
        invoice = db.session.scalar(db.select(Invoice).filter_by(number=number))
        record = push.push_invoice(db.session.get(Connection, connection_id), invoice)
        assert record.state.value == "pushed", record.last_error_text
        external_id = record.external_id
        db.session.delete(db.session.get(ExternalRecord, record.id))
        db.session.commit()
        return external_id


def _record(app, connection_id: int, number: str):
    from portal.extensions import db
    from portal.models import ExternalRecord, Invoice, RecordKind

    with app.app_context():
        invoice = db.session.scalar(db.select(Invoice).filter_by(number=number))
        mine = {"connection_id": connection_id, "kind": RecordKind.invoice, "local_id": invoice.id}
        record = db.session.scalar(db.select(ExternalRecord).filter_by(**mine))
        return None if record is None else (record.state.value, record.last_error_class, record.external_id)


def test_documents_found_in_the_ledger_are_adopted_only_when_they_equal_the_saas_and_the_run_does_as_previewed(
    app, sandbox, connect, old_invoices, invoice_for, org_unit, backfill_of
):
    from portal.extensions import db
    from portal.models import Connection, Invoice, InvoiceLine
    from portal.sync import push

    connection_id = connect("exact-online")
    equal, changed, kept = old_invoices(3)
    equal_id = _pushed_then_forgotten(app, connection_id, equal)
    changed_id = _pushed_then_forgotten(app, connection_id, changed)
    with app.app_context():
        # The SaaS's copy changed after the ledger got it (stored before the API refused that).
        invoice = db.session.scalar(db.select(Invoice).filter_by(number=changed))
        line = db.session.scalar(db.select(InvoiceLine).filter_by(invoice_id=invoice.id))
        line.quantity, line.net_amount, line.tax_amount = Decimal("3"), Decimal("300.00"), Decimal("63.00")
        invoice.subtotal, invoice.tax_total, invoice.total = Decimal("300.00"), Decimal("63.00"), Decimal("363.00")
        # Another invoice was pushed, then renumbered; a newer one now has its old number.
        first = db.session.scalar(db.select(Invoice).filter_by(number=kept))
        record = push.push_invoice(db.session.get(Connection, connection_id), first)
        assert record.state.value == "pushed", record.last_error_text
        first.number, first.external_id = f"{kept}-R", f"inv-{kept}-R"
        db.session.commit()
        day = first.issue_date
    invoice_for(org_unit["customer_id"], kept, day)

    preview = backfill_of.preview(connection_id, ["invoice"])

    assert preview["kinds"]["invoice"] == {
        "kind": "invoice",
        "create": 0,
        "existing": 2,
        "skipped": 0,
        "blocked": 2,
        "total": 4,
    }
    reasons = {b["label"]: b for b in preview["blocked"]}
    assert set(reasons) == {changed, kept}
    assert "Exact Online booked invoice" in reasons[changed]["reason"]
    assert "363.00" in reasons[changed]["reason"] and "it differs from the SaaS" in reasons[changed]["reason"]
    assert f"is the ledger copy of the SaaS's invoice inv-{kept}-R" in reasons[kept]["reason"]
    assert all(b["fix_url"].startswith(f"/ops/connections/{connection_id}/records") for b in reasons.values())

    backfill_id = backfill_of.start(connection_id, ["invoice"])
    state = backfill_of.run(backfill_id)

    assert state["status"] == "succeeded", state["message"]
    assert state["counts"] == {"invoice": {"existing": 2, "blocked": 2}}
    assert _record(app, connection_id, equal) == ("pushed", None, equal_id)
    assert _record(app, connection_id, changed) == ("failed", "totals_differ", changed_id)
    assert _record(app, connection_id, kept)[:2] == ("needs_action", "duplicate")
    assert [ledger_invoices(sandbox, n) for n in (equal, changed, kept)] == [1, 1, 1]  # nothing created

    # A second preview says the same of the document that differs; a second run writes nothing either.
    again = backfill_of.preview(connection_id, ["invoice"])
    assert again["kinds"]["invoice"]["blocked"] == 2 and again["kinds"]["invoice"]["existing"] == 2
    with app.app_context():
        invoice = db.session.scalar(db.select(Invoice).filter_by(number=changed))
        record = push.push_invoice(db.session.get(Connection, connection_id), invoice)
        assert (record.state.value, record.last_error_class) == ("failed", "totals_differ")
    assert ledger_invoices(sandbox, changed) == 1  # a push of a differing record asks the ledger, never adds one
