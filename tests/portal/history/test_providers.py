"""Back-fills through QuickBooks batches and bexio's missing credit-note API."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.portal.sync.conftest import PROVIDERS, ledger_documents


def test_quickbooks_invoices_go_in_batches_each_exactly_once(
    app, sandbox, connect, old_invoices, backfill_of, monkeypatch
):
    from portal.integrations.quickbooks import QuickBooksAdapter

    monkeypatch.setitem(app.config, "HISTORY_CHUNK_SIZE", 50)
    connection_id = connect("quickbooks")
    numbers = old_invoices(40)
    batches = []
    real_batch = QuickBooksAdapter.batch

    def counted(self, operations):
        batches.append(len(operations))
        return real_batch(self, operations)

    monkeypatch.setattr(QuickBooksAdapter, "batch", counted)
    preview = backfill_of.preview(connection_id, ["invoice"])
    assert preview["kinds"]["invoice"]["create"] == 40
    assert preview["calls"] == 1 + 2 + 2 * 2  # the range's reads, then 40 invoices in 2 batches of 2 calls

    backfill_id = backfill_of.start(connection_id, ["invoice"])
    state = backfill_of.run(backfill_id)

    assert state["status"] == "succeeded", state["message"]
    assert state["counts"] == {"invoice": {"created": 40}}
    # A chunk of 40 goes as one batch of 30 and one of 10; the customer is created once, singly.
    assert batches == [30, 10]
    # Two calls per batch (a DocNumber lookup, the batch) plus the range's reads and the customer's look-ups
    # (by name, by e-mail) and creation: far below one per invoice.
    assert state["calls"] < 40 / 3
    assert all(len(ledger_documents(sandbox, "quickbooks", n)) == 1 for n in numbers)


def test_a_batch_repeated_after_a_lost_answer_creates_nothing_twice(
    app, sandbox, connect, old_invoices, backfill_of, monkeypatch
):
    from portal.integrations.base import Unavailable
    from portal.integrations.quickbooks import QuickBooksAdapter

    connection_id = connect("quickbooks")
    numbers = old_invoices(4)
    real_batch = QuickBooksAdapter.batch
    lost = []

    def answer_lost_once(self, operations):
        results = real_batch(self, operations)
        if not lost:
            lost.append(len(operations))
            raise Unavailable("connection reset after QuickBooks committed", outcome_unknown=True)
        return results

    monkeypatch.setattr(QuickBooksAdapter, "batch", answer_lost_once)
    backfill_id = backfill_of.start(connection_id, ["invoice"])
    stopped = backfill_of.run(backfill_id)
    assert stopped["status"] == "interrupted"
    backfill_of.call(backfill_id, "resume")
    state = backfill_of.run(backfill_id)

    assert state["status"] == "succeeded", state["message"]
    assert [len(ledger_documents(sandbox, "quickbooks", n)) for n in numbers] == [1, 1, 1, 1]
    assert sum(state["counts"]["invoice"].values()) == 4


def test_bexio_credit_notes_are_skipped_with_the_manual_step(
    app, sandbox, connect, org_unit, old_invoices, backfill_of
):
    from portal.extensions import db
    from portal.models import CreditNote, CreditNoteLine, Invoice

    connection_id = connect("bexio")
    [number] = old_invoices(1)
    with app.app_context():
        invoice = db.session.scalar(db.select(Invoice).filter_by(number=number))
        note = CreditNote(
            organization_id=org_unit["org_id"],
            business_unit_id=org_unit["unit_id"],
            customer_id=org_unit["customer_id"],
            invoice_id=invoice.id,
            external_id=f"cn-{number}",
            number=f"CN-{number}",
            issue_date=invoice.issue_date,
            currency="CHF",
            subtotal=Decimal("50.00"),
            total=Decimal("50.00"),
        )
        note.lines.append(
            CreditNoteLine(
                position=1,
                description="Refund",
                quantity=Decimal("1"),
                unit_price=Decimal("50"),
                tax_rate=Decimal("0"),
                net_amount=Decimal("50.00"),
                tax_amount=Decimal("0.00"),
            )
        )
        db.session.add(note)
        db.session.commit()

    preview = backfill_of.preview(connection_id, ["invoice", "credit_note"])
    assert preview["kinds"]["credit_note"]["skipped"] == 1
    assert any("bexio has no API for credit notes" in reason for reason in preview["skipped_reasons"])

    state = backfill_of.run(backfill_of.start(connection_id, ["invoice", "credit_note"]))
    assert state["status"] == "succeeded", state["message"]
    assert state["counts"] == {"invoice": {"created": 1}, "credit_note": {"skipped": 1}}


def test_payments_are_reported_as_not_yet_until_the_payment_push_exists(app, connect, backfill_of, monkeypatch):
    from portal.history import services
    from portal.sync import push

    connection_id = connect("exact-online")
    monkeypatch.delattr(push, "push_payment", raising=False)
    preview = backfill_of.preview(connection_id, ["payment"])
    assert not services.has_payment_push()
    assert any("Payments: not yet" in note for note in preview["notes"])


def test_records_in_a_closed_period_are_blocked_and_listed_not_pushed(app, sandbox, connect, old_invoices, backfill_of):
    from datetime import date, timedelta

    from tests.portal.connections.conftest import QBO_US
    from tests.portal.history.conftest import FROM
    from tests.portal.mappings.conftest import control

    connection_id = connect("quickbooks")
    numbers = old_invoices(4)  # dated FROM + 30 days, + 31, + 32, + 33
    control(
        sandbox,
        "quickbooks/set_preferences",
        {"realm_id": QBO_US, "closing_date": (FROM + timedelta(days=31)).isoformat()},
    )

    preview = backfill_of.preview(connection_id, ["invoice"])
    assert preview["kinds"]["invoice"]["blocked"] == 2 and preview["kinds"]["invoice"]["create"] == 2
    assert {b["label"] for b in preview["blocked"]} == set(numbers[:2])
    assert "closing date" in preview["blocked"][0]["reason"]
    assert preview["closed_periods"][0]["end"] == (FROM + timedelta(days=31)).isoformat()

    state = backfill_of.run(backfill_of.start(connection_id, ["invoice"]))
    assert state["counts"] == {"invoice": {"blocked": 2, "created": 2}}
    assert [len(ledger_documents(sandbox, "quickbooks", n)) for n in numbers] == [0, 0, 1, 1]
    assert date.fromisoformat(state["to"]).year == 2025


def test_a_refused_batch_item_fails_alone_and_every_outcome_is_counted(
    app, sandbox, connect, old_invoices, backfill_of, monkeypatch
):
    from dataclasses import replace

    from portal.integrations.base import Rejected
    from portal.integrations.quickbooks import QuickBooksAdapter

    connection_id = connect("quickbooks")
    numbers = old_invoices(4)
    real_batch = QuickBooksAdapter.batch

    def second_refused(self, operations):
        refused = operations[1]
        results = real_batch(self, [op for op in operations if op is not refused])
        error = Rejected("Invalid Reference Id", provider="quickbooks", provider_text="Invalid Reference Id : Item")
        results.insert(1, replace(results[0], id=refused.id, result=None, error=error))
        return results

    monkeypatch.setattr(QuickBooksAdapter, "batch", second_refused)
    state = backfill_of.run(backfill_of.start(connection_id, ["invoice"]))

    assert state["status"] == "succeeded", state["message"]
    assert state["counts"] == {"invoice": {"created": 3, "failed": 1}}
    assert [len(ledger_documents(sandbox, "quickbooks", n)) for n in numbers] == [1, 0, 1, 1]


@pytest.mark.parametrize("provider", ["quickbooks", "exact-online"])
def test_payments_follow_their_invoices_through_the_payment_push(
    app, sandbox, connect, org_unit, old_invoices, backfill_of, provider
):
    from datetime import timedelta

    from portal.extensions import db
    from portal.models import ExternalRecord, Invoice, Payment, PaymentMethod, RecordKind

    connection_id = connect(provider)
    _payments_mode(app, connection_id, "push")
    [number] = old_invoices(1)
    with app.app_context():
        invoice = db.session.scalar(db.select(Invoice).filter_by(number=number))
        payment = Payment(
            organization_id=org_unit["org_id"],
            invoice_id=invoice.id,
            external_id=f"pay-{number}",
            paid_on=invoice.issue_date + timedelta(days=3),
            amount=invoice.total,
            currency=invoice.currency,
            method=PaymentMethod.bank_transfer,
        )
        db.session.add(payment)
        db.session.commit()
        payment_id = payment.id

    preview = backfill_of.preview(connection_id, ["invoice", "payment"])
    assert preview["kinds"]["payment"]["create"] == 1
    state = backfill_of.run(backfill_of.start(connection_id, ["invoice", "payment"]))

    assert state["status"] == "succeeded", state["message"]
    assert state["counts"] == {"invoice": {"created": 1}, "payment": {"created": 1}}
    with app.app_context():
        record = db.session.scalar(db.select(ExternalRecord).filter_by(kind=RecordKind.payment, local_id=payment_id))
        assert record.state.value == "pushed" and record.external_id


def _payments_mode(app, connection_id: int, mode: str) -> None:
    from portal.extensions import db
    from portal.models import Connection

    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        connection.settings = {**(connection.settings or {}), "payments_mode": mode}
        db.session.commit()


def _old_payment(app, org_unit, number: str) -> int:
    from datetime import timedelta

    from portal.extensions import db
    from portal.models import Invoice, Payment, PaymentMethod

    with app.app_context():
        invoice = db.session.scalar(db.select(Invoice).filter_by(number=number))
        payment = Payment(
            organization_id=org_unit["org_id"],
            invoice_id=invoice.id,
            external_id=f"pay-{number}",
            paid_on=invoice.issue_date + timedelta(days=3),
            amount=invoice.total,
            currency=invoice.currency,
            method=PaymentMethod.bank_transfer,
        )
        db.session.add(payment)
        db.session.commit()
        return payment.id


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", ["pull", "off"])
def test_payments_are_not_back_filled_unless_the_payments_mode_is_push(
    app, sandbox, connect, org_unit, old_invoices, backfill_of, provider, mode
):
    from portal.extensions import db
    from portal.models import ExternalRecord, RecordKind

    connection_id = connect(provider)
    _payments_mode(app, connection_id, mode)
    numbers = old_invoices(2)
    payment_ids = [_old_payment(app, org_unit, number) for number in numbers]

    preview = backfill_of.preview(connection_id, ["invoice", "payment"])
    assert preview["kinds"]["payment"] == {
        "kind": "payment",
        "create": 0,
        "existing": 0,
        "skipped": 2,
        "blocked": 0,
        "total": 2,
    }
    assert f"payments mode “{mode}”" in " ".join(preview["notes"])
    state = backfill_of.run(backfill_of.start(connection_id, ["invoice", "payment"]))

    # The run does what the preview said: the invoices are created, the payments skipped with the reason.
    assert state["status"] == "succeeded", state["message"]
    assert state["counts"] == {"invoice": {"created": 2}, "payment": {"skipped": 2}}
    with app.app_context():
        assert (
            db.session.scalar(
                db.select(db.func.count(ExternalRecord.id)).where(
                    ExternalRecord.kind == RecordKind.payment, ExternalRecord.local_id.in_(payment_ids)
                )
            )
            == 0
        )


@pytest.mark.parametrize("provider", ["quickbooks", "exact-online"])
def test_a_payment_of_an_invoice_the_back_fill_blocks_is_blocked_in_the_preview_too(
    app, sandbox, connect, org_unit, old_invoices, backfill_of, provider
):
    connection_id = connect(provider, customer_mode="link_only")  # the customer is not linked: invoices blocked
    _payments_mode(app, connection_id, "push")
    [number] = old_invoices(1)
    _old_payment(app, org_unit, number)

    preview = backfill_of.preview(connection_id, ["invoice", "payment"])
    assert preview["kinds"]["invoice"]["blocked"] == 1
    assert preview["kinds"]["payment"]["blocked"] == 1 and preview["kinds"]["payment"]["create"] == 0
    state = backfill_of.run(backfill_of.start(connection_id, ["invoice", "payment"]))
    assert state["counts"] == {"invoice": {"blocked": 1}, "payment": {"blocked": 1}}
