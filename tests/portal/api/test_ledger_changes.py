"""A change the ledger copy could not follow is refused (409, with what to send instead); the same body stays 200.

The ledger holds a document once it is pushed, when it is there with other totals ("differs
from the SaaS"), when a person made it there by hand, and — maybe — while a push of it is under
way or ended before the ledger answered. A document the ledger refused, or one held before any
write, can still be changed: that is often the fix.
"""

from __future__ import annotations

from datetime import date

import pytest

from tests.portal.api.test_ingestion import counts, invoice_body, key, note_body, org, put  # noqa: F401 - fixtures
from tests.portal.connections.conftest import flow, sandbox  # noqa: F401 - fixtures
from tests.portal.sync.conftest import connect, ledger_documents, org_unit  # noqa: F401 - fixtures

CHANGED_LINES = [{"position": 1, "description": "Consulting", "quantity": 3, "unit_price": "100.00", "tax_rate": 21}]


def _stored(app, model, external_id: str):
    from portal.extensions import db

    with app.app_context():
        row = db.session.scalar(db.select(model).filter_by(external_id=external_id))
        return row.number if hasattr(row, "number") else row.amount, row.total if hasattr(row, "total") else None


#: provider → (its name, the rate of its mapped default tax code).
LEDGERS = {"exact-online": ("Exact Online", "21"), "quickbooks": ("QuickBooks Online", "8"), "bexio": ("bexio", "8.1")}


@pytest.mark.parametrize("provider", list(LEDGERS))
def test_a_pushed_invoice_and_credit_note_refuse_a_change_naming_the_ledger_and_the_fix(
    app,
    sandbox,  # noqa: F811
    connect,  # noqa: F811
    put,  # noqa: F811
    org,  # noqa: F811
    provider,
):
    from portal.extensions import db
    from portal.models import Connection, CreditNote, Invoice
    from portal.sync import push

    name, rate = LEDGERS[provider]
    connection_id = connect(provider)
    number = f"LC-{org['id'][-6:]}"
    lines = [{**line, "tax_rate": rate} for line in invoice_body(org)["lines"]]
    body = invoice_body(org, number=number, lines=lines)
    note = note_body(number=f"LCN-{org['id'][-6:]}")
    note["lines"][0]["tax_rate"] = rate
    assert put("invoices", "inv-1", body).status_code == 201
    assert put("credit-notes", "cn-1", note).status_code == 201
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        invoice = db.session.scalar(db.select(Invoice).filter_by(external_id="inv-1"))
        assert push.push_invoice(connection, invoice).state.value == "pushed"
        credit = db.session.scalar(db.select(CreditNote).filter_by(external_id="cn-1"))
        note_state = push.push_credit_note(db.session.get(Connection, connection_id), credit).state.value
    assert note_state == ("skipped" if provider == "bexio" else "pushed")
    [ledger_invoice] = ledger_documents(sandbox, provider, number)
    before = counts(app), _stored(app, Invoice, "inv-1")

    assert put("invoices", "inv-1", body).status_code == 200  # the same body changes nothing
    assert put("credit-notes", "cn-1", note).status_code == 200

    changed = put("invoices", "inv-1", {**body, "lines": lines[:1], "due_date": "2099-01-01"})
    assert changed.status_code == 409
    message = changed.get_json()["error"]["message"]
    assert message.startswith(f"Invoice {number} is in {name} already (as ")
    assert "this body changes its due_date, lines" in message and "nothing was changed" in message
    assert "send a credit note for it, and the corrected invoice as a new invoice with a number of its own" in message
    assert (counts(app), _stored(app, Invoice, "inv-1")) == before
    assert ledger_documents(sandbox, provider, number) == [ledger_invoice]  # the ledger untouched too

    answer = put("credit-notes", "cn-1", {**note, "reason": "Another reason"})
    if provider == "bexio":  # no credit-note API: skipped, in no ledger, so the change is taken
        assert answer.status_code == 200 and answer.get_json()["reason"] == "Another reason"
        return
    assert answer.status_code == 409
    note_message = answer.get_json()["error"]["message"]
    assert f"is in {name} already" in note_message and "this body changes its reason" in note_message
    assert "send a new credit note for the difference" in note_message
    with app.app_context():
        assert db.session.scalar(db.select(CreditNote.reason).filter_by(external_id="cn-1")) is None  # unchanged


#: (state, error class, attempts, external id, resolution) of the invoice's record → refused, and the words.
RECORDS = [
    pytest.param("failed", "totals_differ", 1, "L-7", None, "where its totals differ from the SaaS's", id="differs"),
    pytest.param("dismissed", "validation", 1, None, "resolved_manually", "made in Exact Online by hand", id="by-hand"),
    pytest.param("pending", None, 1, None, None, "is being pushed to Exact Online", id="under-way"),
    pytest.param("pending", "provider_down", 2, None, None, "may hold it already", id="outcome-unknown"),
    pytest.param("pending", "validation", 1, None, None, None, id="retried-after-a-refusal"),
    pytest.param("pending", None, 0, None, None, None, id="never-tried"),
    pytest.param("failed", "validation", 1, None, None, None, id="refused-by-the-ledger"),
    pytest.param("needs_action", "mapping_missing", 1, None, None, None, id="held-before-writing"),
    pytest.param("dismissed", "validation", 1, None, "ignored", None, id="ignored"),
]


@pytest.mark.parametrize(("state", "error_class", "attempts", "external_id", "resolution", "words"), RECORDS)
def test_a_change_is_refused_exactly_while_a_ledger_holds_or_may_hold_the_invoice(
    app,
    connect,  # noqa: F811
    put,  # noqa: F811
    org,  # noqa: F811
    state,
    error_class,
    attempts,
    external_id,
    resolution,
    words,
):
    from portal.extensions import db
    from portal.models import ExternalRecord, Invoice, RecordKind, RecordState
    from portal.models.external_record import Resolution

    connection_id = connect("exact-online")
    body = invoice_body(org)
    assert put("invoices", "inv-1", body).status_code == 201
    with app.app_context():
        invoice = db.session.scalar(db.select(Invoice).filter_by(external_id="inv-1"))
        total = invoice.total
        db.session.add(
            ExternalRecord(
                connection_id=connection_id,
                kind=RecordKind.invoice,
                local_id=invoice.id,
                state=RecordState(state),
                attempts=attempts,
                external_id=external_id,
                external_number=external_id,
                last_error_class=error_class,
                last_error_text="earlier words" if error_class else None,
                resolution=Resolution(resolution) if resolution else None,
            )
        )
        db.session.commit()

    assert put("invoices", "inv-1", body).status_code == 200
    answer = put("invoices", "inv-1", {**body, "lines": CHANGED_LINES})

    if words is None:
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["total"] == "363.00"
        return
    assert answer.status_code == 409
    message = answer.get_json()["error"]["message"]
    assert words in message and "this body changes its lines" in message and "nothing was changed" in message
    if state == "pending":
        assert "Send it again once the push has settled" in message
    with app.app_context():
        assert db.session.scalar(db.select(Invoice.total).filter_by(external_id="inv-1")) == total


def test_a_payment_booked_in_the_ledger_refuses_a_change(
    app,
    connect,  # noqa: F811
    put,  # noqa: F811
    org,  # noqa: F811
):
    from portal.extensions import db
    from portal.models import ExternalRecord, Payment, RecordKind, RecordState

    connection_id = connect("exact-online")
    assert put("invoices", "inv-1", invoice_body(org)).status_code == 201
    paid = {"invoice": "inv-1", "paid_on": date.today().isoformat(), "amount": "100.00", "currency": "EUR"}
    paid["method"] = "bank_transfer"
    assert put("payments", "pay-1", paid).status_code == 201
    with app.app_context():
        payment = db.session.scalar(db.select(Payment).filter_by(external_id="pay-1"))
        db.session.add(
            ExternalRecord(
                connection_id=connection_id,
                kind=RecordKind.payment,
                local_id=payment.id,
                state=RecordState.pushed,
                external_id="P-1",
            )
        )
        db.session.commit()

    assert put("payments", "pay-1", paid).status_code == 200
    refused = put("payments", "pay-1", {**paid, "amount": "50.00"})

    assert refused.status_code == 409
    message = refused.get_json()["error"]["message"]
    assert message.startswith("Payment pay-1 is in Exact Online already (as P-1)")
    assert "this body changes its amount" in message and "correct the booking in the ledger by hand" in message
    with app.app_context():
        assert db.session.scalar(db.select(Payment.amount).filter_by(external_id="pay-1")) == 100
