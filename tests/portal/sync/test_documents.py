"""Credit notes and payments in the push job: dependency order, exactly once, bexio's manual step."""

from __future__ import annotations

import os

import pytest

from tests.portal.sync.conftest import PROVIDERS, fault
from tests.portal.sync.test_pipeline import ingest_invoice, run_push, set_settings, today


def ingest_credit_note(api, invoice_external_id: str) -> str:
    """PUT a credit note of 50.00 at the rate of the invoice's first line; return its SaaS id."""
    number = f"CN-{os.urandom(3).hex().upper()}"
    rate = api[1](f"invoices/{invoice_external_id}").get_json()["lines"][0]["tax_rate"]
    api[0](
        f"credit-notes/cn-{number}",
        {
            "invoice": invoice_external_id,
            "number": number,
            "issue_date": today(),
            "currency": "EUR",
            "reason": "Two hours too many",
            "lines": [{"position": 1, "description": "Refund", "quantity": 1, "unit_price": "50.00", "tax_rate": rate}],
        },
    )
    return f"cn-{number}"


def ingest_payment(api, invoice_external_id: str, amount: str = "100.00") -> str:
    external_id = f"pay-{os.urandom(3).hex()}"
    api[0](
        f"payments/{external_id}",
        {"invoice": invoice_external_id, "paid_on": today(), "amount": amount, "currency": "EUR", "method": "card"},
    )
    return external_id


def records(app, connection_id: int, kind: str) -> list:
    from types import SimpleNamespace

    from portal.extensions import db
    from portal.models import ExternalRecord, RecordKind

    with app.app_context():
        rows = db.session.scalars(
            db.select(ExternalRecord).filter_by(connection_id=connection_id, kind=RecordKind(kind))
        ).all()
        return [SimpleNamespace(**{c.key: getattr(r, c.key) for c in r.__table__.columns}) for r in rows]


def open_amount(app, connection_id: int, external_id: str):
    from portal.connections import vault
    from portal.extensions import db
    from portal.models import Connection

    with app.app_context():
        return vault.fresh_adapter(db.session.get(Connection, connection_id)).payment_status(external_id).amount_open


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_credit_note_follows_its_invoice_and_bexio_skips_it_with_the_manual_step(
    app, sandbox, connect, org_unit, api, provider
):
    connection_id = connect(provider)
    invoice_id, _ = ingest_invoice(app, api, org_unit)
    note_id = ingest_credit_note(api, invoice_id)

    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded", message
    [note] = records(app, connection_id, "credit_note")
    answer = api[1](f"credit-notes/{note_id}").get_json()["ledger"]
    if provider == "bexio":
        assert counts["skipped"] == 1 and note.state.value == "skipped"
        assert "by hand in bexio" in note.last_error_text and answer["error"] == note.last_error_text
        [invoice] = records(app, connection_id, "invoice")
        assert f"bexio invoice id {invoice.external_id}" in note.last_error_text  # names the invoice to correct
    else:
        assert counts["pushed"] == 2 and note.state.value == "pushed" and note.external_id, note.last_error_text
        assert answer["state"] == "pushed" and answer["external_id"] == note.external_id
    if provider == "exact-online":
        # Exact books a credit note once processed, like an invoice: it then has its number.
        assert note.finalize_state.value == "finalized" and note.external_number, note.finalize_error
        assert answer["number"] == note.external_number
    assert run_push(app, connection_id)[1] == {"invoices": 0}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_payments_are_pushed_once_in_push_mode(app, sandbox, connect, org_unit, api, provider):
    connection_id = connect(provider)
    set_settings(app, connection_id, payments_mode="push")
    invoice_id, _ = ingest_invoice(app, api, org_unit)
    ingest_payment(api, invoice_id, "100.00")

    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded" and counts["payments"] == 1 and counts["pushed"] == 2, (counts, message)
    [invoice_record] = records(app, connection_id, "invoice")
    [payment] = records(app, connection_id, "payment")
    assert payment.state.value == "pushed" and payment.external_id, payment.last_error_text
    total = open_amount(app, connection_id, invoice_record.external_id)
    assert run_push(app, connection_id)[1] == {"invoices": 0}
    assert open_amount(app, connection_id, invoice_record.external_id) == total  # not booked twice


@pytest.mark.faults
def test_a_payment_whose_answer_was_lost_is_found_by_reference_not_booked_twice(app, sandbox, connect, org_unit, api):
    connection_id = connect("quickbooks")
    set_settings(app, connection_id, payments_mode="push")
    invoice_id, _ = ingest_invoice(app, api, org_unit)
    assert run_push(app, connection_id)[1]["pushed"] == 1
    ingest_payment(api, invoice_id, "100.00")
    [invoice_record] = records(app, connection_id, "invoice")
    before = open_amount(app, connection_id, invoice_record.external_id)
    fault(sandbox, provider="quickbooks", kind="timeout_after_commit", mode="504", methods=["POST"], count=1)

    status, counts, message = run_push(app, connection_id)

    # The lost answer deferred the payment; at the run's end it was looked up by reference and adopted.
    assert status == "succeeded" and counts["pending"] == 1 and counts["pushed"] == 1, (counts, message)
    assert counts["payments"] == 2, "the payment was due once more in the run's second pass"
    [payment] = records(app, connection_id, "payment")
    assert payment.state.value == "pushed" and payment.attempts == 2
    assert before - open_amount(app, connection_id, invoice_record.external_id) == 100


def test_payments_are_not_pushed_in_pull_mode(app, sandbox, connect, org_unit, api):
    connection_id = connect("bexio")
    invoice_id, _ = ingest_invoice(app, api, org_unit)
    ingest_payment(api, invoice_id)

    _, counts, _ = run_push(app, connection_id)

    assert counts == {"invoices": 1, "pushed": 1} and records(app, connection_id, "payment") == []


def test_an_exact_credit_note_whose_booking_was_refused_is_booked_on_the_next_run(
    app, sandbox, connect, org_unit, api, monkeypatch
):
    from portal.integrations.base import Rejected, get_adapter_class

    connection_id = connect("exact-online")
    invoice_id, _ = ingest_invoice(app, api, org_unit)
    assert run_push(app, connection_id)[1]["pushed"] == 1
    ingest_credit_note(api, invoice_id)
    cls = get_adapter_class("exact-online")
    printed = []

    def refuse(self, external_id, **kwargs):
        printed.append(external_id)
        raise Rejected(
            provider="exact-online",
            status=400,
            provider_text="PrintedSalesInvoices: the document could not be processed",
        )

    monkeypatch.setattr(cls, "finalize_invoice", refuse)
    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded" and counts["pushed"] == 1 and counts["finalize_failed"] == 1, (counts, message)
    [note] = records(app, connection_id, "credit_note")
    assert note.state.value == "pushed" and note.finalize_state.value == "failed" and printed == [note.external_id]
    assert "could not be processed" in note.finalize_error
    monkeypatch.undo()

    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded" and counts == {"invoices": 0, "credit_note_steps": 1}, (counts, message)
    [note] = records(app, connection_id, "credit_note")
    assert note.finalize_state.value == "finalized" and note.finalize_error is None and note.external_number
    assert run_push(app, connection_id)[1] == {"invoices": 0}
