"""Exactly-once pushes of invoices into each sandbox ledger through ExternalRecord."""

from __future__ import annotations

import pytest

from tests.portal.mappings.conftest import control
from tests.portal.sync.conftest import PROVIDERS, fault, ledger_documents


def _snapshot(record):
    from types import SimpleNamespace

    from portal.extensions import db

    db.session.refresh(record)
    return SimpleNamespace(**{c.key: getattr(record, c.key) for c in record.__table__.columns})


def _push(app, connection_id: int, invoice_id: int):
    from portal.extensions import db
    from portal.models import Connection, Invoice
    from portal.sync import push

    with app.app_context():
        record = push.push_invoice(db.session.get(Connection, connection_id), db.session.get(Invoice, invoice_id))
        return _snapshot(record)


def _record(app, connection_id: int, invoice_id: int):
    from portal.extensions import db
    from portal.models import Connection, RecordKind
    from portal.sync import push

    with app.app_context():
        record = push.record_for(db.session.get(Connection, connection_id), RecordKind.invoice, invoice_id)
        return _snapshot(record)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_invoice_is_pushed_once_and_its_number_comes_back(app, sandbox, connect, make_invoice, provider):
    if provider == "exact-online":
        # Exact numbers an invoice when it is printed unless the division numbers at entry; printing
        # (the sending method) is not part of the push yet, so the test division numbers at entry.
        control(sandbox, "exact-online/set_division_settings", {"division": 3010001, "invoice_number_at_entry": True})
    connection_id = connect(provider)
    invoice_id, number = make_invoice()

    record = _push(app, connection_id, invoice_id)

    assert record.state.value == "pushed", record.last_error_text
    assert record.external_id and record.attempts == 1 and record.reference == number
    [document] = ledger_documents(sandbox, provider, number)
    ledger_number = document.get("InvoiceNumber") or document.get("DocNumber") or document.get("document_nr")
    assert record.external_number and record.external_number == str(ledger_number)
    again = _push(app, connection_id, invoice_id)
    assert (again.state.value, again.attempts, again.external_id) == ("pushed", 1, record.external_id)
    assert len(ledger_documents(sandbox, provider, number)) == 1


#: POST path of each ledger's invoice create.
CREATE_PATH = {"exact-online": "salesinvoice/SalesInvoices", "quickbooks": "/invoice", "bexio": "2.0/kb_invoice"}


@pytest.mark.faults
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_timeout_after_the_ledger_committed_is_adopted_not_pushed_twice(
    app, sandbox, connect, make_invoice, provider
):
    from portal.integrations.base import Unavailable

    connection_id = connect(provider)
    invoice_id, number = make_invoice()
    _push_customer(app, connection_id)  # the fault must hit the invoice create, not the customer's
    fault(
        sandbox,
        provider=provider,
        kind="timeout_after_commit",
        mode="504",
        methods=["POST"],
        path_contains=CREATE_PATH[provider],
        count=1,
    )
    # A first attempt creates without searching first: the fault meets the create itself.
    with pytest.raises(Unavailable) as raised:
        _push(app, connection_id, invoice_id)

    assert raised.value.outcome_unknown
    left = _record(app, connection_id, invoice_id)
    assert (left.state.value, left.attempts, left.external_id) == ("pending", 1, None)
    assert left.last_error_class == "provider_down"
    assert len(ledger_documents(sandbox, provider, number)) == 1  # the ledger did commit it

    adopted = _push(app, connection_id, invoice_id)

    [document] = ledger_documents(sandbox, provider, number)
    assert (adopted.state.value, adopted.attempts) == ("pushed", 2)
    assert adopted.external_id == str(document.get("InvoiceID") or document.get("Id") or document.get("id"))
    assert adopted.last_error_class is None


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_crash_between_the_ledger_write_and_our_commit_ends_with_exactly_one(
    app, sandbox, connect, make_invoice, provider, monkeypatch
):
    """The worker dies after the ledger created the invoice, before our commit (simulated in-process)."""
    from portal.models import RecordKind
    from portal.sync import push

    connection_id = connect(provider)
    invoice_id, number = make_invoice()
    real_store = push._store_document

    def die_before_commit(connection, record, document, result):
        if record.kind is RecordKind.invoice:
            raise SystemExit("worker killed")  # not an Exception: nothing in the push may catch it
        return real_store(connection, record, document, result)

    monkeypatch.setattr(push, "_store_document", die_before_commit)
    with pytest.raises(SystemExit):
        _push(app, connection_id, invoice_id)  # the app context ends: the session rolls back
    monkeypatch.undo()

    left = _record(app, connection_id, invoice_id)
    assert (left.state.value, left.attempts, left.external_id) == ("pending", 1, None)
    assert len(ledger_documents(sandbox, provider, number)) == 1

    adopted = _push(app, connection_id, invoice_id)

    assert (adopted.state.value, adopted.attempts) == ("pushed", 2)
    assert len(ledger_documents(sandbox, provider, number)) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_link_only_mode_holds_an_unlinked_customer_as_needs_action(app, sandbox, connect, make_invoice, provider):
    connection_id = connect(provider, customer_mode="link_only")
    invoice_id, number = make_invoice()

    record = _push(app, connection_id, invoice_id)

    assert record.state.value == "needs_action"
    assert record.last_error_class == "customer_not_linked"
    assert "is not linked" in record.last_error_text
    assert ledger_documents(sandbox, provider, number) == []


#: A mapped code that has since disappeared from the ledger, per provider: (field, value).
GONE = {
    "exact-online": ("item", "00000000-0000-0000-0000-000000000000"),
    "quickbooks": ("item", "99999"),
    "bexio": ("gl_account", "99999"),
}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_mapping_the_ledger_rejects_fails_the_record_with_the_providers_text(
    app, sandbox, connect, make_invoice, provider
):
    from portal.extensions import db
    from portal.models import Mapping

    connection_id = connect(provider)
    field, value = GONE[provider]
    with app.app_context():  # as if the code were deleted in the ledger after it was mapped
        mapping = db.session.scalar(db.select(Mapping).filter_by(connection_id=connection_id, field=field))
        mapping.value = value
        db.session.commit()
    invoice_id, number = make_invoice()

    record = _push(app, connection_id, invoice_id)

    assert record.state.value == "failed"
    assert record.last_error_class == "mapping_missing", record.last_error_text
    assert "Fix the mapping" in record.last_error_text
    said = record.last_error_text.split("(", 1)[1]
    assert len(said) > 20, record.last_error_text  # the provider's own words are kept
    assert ledger_documents(sandbox, provider, number) == []


def test_a_bexio_credit_note_is_skipped_with_the_manual_step(app, sandbox, connect, make_invoice, org_unit):
    from decimal import Decimal

    from portal.extensions import db
    from portal.models import Connection, CreditNote, CreditNoteLine, Invoice
    from portal.sync import push

    connection_id = connect("bexio")
    invoice_id, number = make_invoice()
    with app.app_context():
        invoice = db.session.get(Invoice, invoice_id)
        note = CreditNote(
            organization_id=invoice.organization_id,
            business_unit_id=invoice.business_unit_id,
            customer_id=invoice.customer_id,
            invoice_id=invoice.id,
            external_id=f"cn-{number}",
            number=f"CN-{number}",
            issue_date=invoice.issue_date,
            currency="EUR",
            total=Decimal("121.00"),
        )
        note.lines.append(
            CreditNoteLine(
                position=1,
                description="Refund",
                quantity=Decimal(1),
                unit_price=Decimal(100),
                tax_rate=Decimal(21),
                net_amount=Decimal(100),
                tax_amount=Decimal(21),
            )
        )
        db.session.add(note)
        db.session.commit()
        record = _snapshot(push.push_credit_note(db.session.get(Connection, connection_id), note))

    assert record.state.value == "skipped"
    assert record.last_error_class == "not_supported"
    assert "by hand in bexio" in record.last_error_text and f"CN-{number}" in record.last_error_text


def _push_customer(app, connection_id: int) -> None:
    from portal.extensions import db
    from portal.models import Connection, Customer, Invoice
    from portal.sync import push

    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        customer = db.session.scalar(
            db.select(Customer).join(Invoice, Invoice.customer_id == Customer.id).order_by(Invoice.id.desc())
        )
        assert push.push_customer(connection, customer).state.value == "pushed"
