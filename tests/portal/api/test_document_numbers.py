"""A document number is unique per business unit and kind: the API refuses a second one, the push never merges two."""

from __future__ import annotations

import json
import os

import pytest

from tests.portal.api.test_ingestion import invoice_body, key, note_body, org, put  # noqa: F401 - fixtures
from tests.portal.connections.conftest import flow, sandbox  # noqa: F401 - fixtures
from tests.portal.sync.conftest import PROVIDERS, add_invoice, connect, ledger_documents, org_unit  # noqa: F401


def _count(app, model) -> int:
    from portal.extensions import db

    with app.app_context():
        return db.session.scalar(db.select(db.func.count(model.id)))


def test_a_second_invoice_with_a_number_in_use_is_refused_naming_the_other(app, put, org):  # noqa: F811
    from portal.models import Invoice

    assert put("invoices", "dup-a", invoice_body(org, number="DUP-US-7")).status_code == 201
    refused = put("invoices", "dup-b", invoice_body(org, number="DUP-US-7"))

    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert error["conflicting_id"] == "dup-a" and "DUP-US-7" in error["message"]
    assert _count(app, Invoice) == 1  # nothing saved
    # The same invoice again is still fine, and so is the second one with its own number.
    assert put("invoices", "dup-a", invoice_body(org, number="DUP-US-7")).status_code == 200
    assert put("invoices", "dup-b", invoice_body(org, number="DUP-US-8")).status_code == 201
    # Renumbering onto another's number is refused too; onto a free one it is not.
    moved = put("invoices", "dup-b", invoice_body(org, number="DUP-US-7"))
    assert moved.status_code == 409 and moved.get_json()["error"]["conflicting_id"] == "dup-a"
    assert put("invoices", "dup-b", invoice_body(org, number="DUP-US-9")).status_code == 200


def test_credit_notes_have_numbers_of_their_own_kind(app, put, org):  # noqa: F811
    assert put("invoices", "inv-1", invoice_body(org, number="X-1")).status_code == 201
    # A credit note may carry a number an invoice has: the kinds are numbered apart.
    assert put("credit-notes", "cn-1", note_body(number="X-1")).status_code == 201
    refused = put("credit-notes", "cn-2", note_body(number="X-1"))
    assert refused.status_code == 409 and refused.get_json()["error"]["conflicting_id"] == "cn-1"


def test_another_business_unit_may_use_the_same_number(app, put, org, org_unit):  # noqa: F811
    from portal.extensions import db
    from portal.models import BusinessUnit

    with app.app_context():
        other = BusinessUnit(organization_id=org_unit["org_id"], name="Second unit", country="NL", currency="EUR")
        db.session.add(other)
        db.session.commit()
        other_id = other.id
    assert put("invoices", "u1", invoice_body(org, number="SAME-1")).status_code == 201
    assert put("invoices", "u2", invoice_body(org, number="SAME-1", business_unit=other_id)).status_code == 201


def test_the_openapi_description_names_the_conflicting_id(client):
    schema = client.get("/api/v1/openapi.json").get_json()
    assert "conflicting_id" in json.dumps(schema["components"]["schemas"]["Error"])


def _legacy_duplicate(app, org_unit, number: str) -> tuple[int, int]:  # noqa: F811
    """Two invoices of the unit sharing ``number``, as stored before the API refused that; return their ids."""
    first, _ = add_invoice(app, org_unit, org_unit["unit_id"], number)
    second, _ = add_invoice(app, org_unit, org_unit["unit_id"], f"{number}-tmp")
    from portal.extensions import db
    from portal.models import Invoice

    with app.app_context():
        db.session.get(Invoice, second).number = number
        db.session.commit()
    return first, second


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stored_duplicates_are_listed_held_with_words_and_pushed_once_renumbered(
    app,
    sandbox,  # noqa: F811
    connect,  # noqa: F811
    org_unit,  # noqa: F811
    put,  # noqa: F811
    org,  # noqa: F811
    provider,
):
    from portal.extensions import db
    from portal.models import Connection, Invoice
    from portal.sync import push

    connection_id = connect(provider)
    number = f"DUP-{os.urandom(2).hex().upper()}"
    first, second = _legacy_duplicate(app, org_unit, number)

    listed = app.test_cli_runner().invoke(args=["documents", "duplicates", "--json"])
    assert listed.exit_code == 0, listed.output
    [group] = [g for g in json.loads(listed.output) if g["number"] == number]
    assert [d[0] for d in group["documents"]] == [f"inv-{number}", f"inv-{number}-tmp"]
    strict = app.test_cli_runner().invoke(args=["documents", "duplicates", "--strict"])
    assert strict.exit_code == 1 and f"invoice number {number} is used 2 times" in strict.output

    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        push.push_invoices(connection, push.due_invoice_ids(connection), push.vault.fresh_adapter(connection))
        kept, held = (push.record_for(connection, push.RecordKind.invoice, i) for i in (first, second))
        assert kept.state.value == "pushed"
        assert (held.state.value, held.last_error_class, held.external_id) == ("needs_action", "duplicate", None)
        assert f"also the number of the SaaS's invoice inv-{number}, which goes to the ledger first" in (
            held.last_error_text
        )
        assert second not in push.due_invoice_ids(connection)  # held until a person acts
    assert len(ledger_documents(sandbox, provider, number)) == 1

    # The SaaS gives the second invoice its own number: the hold is released, and it is pushed as itself.
    with app.app_context():
        stored = db.session.get(Invoice, second)
        body = invoice_body(org, number=f"{number}-B")
        body["customer"] = stored.customer.external_id
        # Same lines at the rate the connection's tax table maps: only the number changes.
        for line in body["lines"]:
            line["tax_rate"] = str(stored.lines[0].tax_rate)
    assert put("invoices", f"inv-{number}-tmp", body).status_code == 200
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        assert second in push.due_invoice_ids(connection)
        record = push.push_invoice(connection, db.session.get(Invoice, second))
        assert record.state.value == "pushed", record.last_error_text
        assert record.external_id != push.record_for(connection, push.RecordKind.invoice, first).external_id
    assert len(ledger_documents(sandbox, provider, f"{number}-B")) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_ledger_document_another_record_holds_is_never_adopted(app, sandbox, connect, org_unit, provider):  # noqa: F811
    """Even when the look-up by reference finds it (an old record kept the document's number)."""
    from portal.extensions import db
    from portal.models import Connection, ExternalRecord, Invoice
    from portal.sync import push

    connection_id = connect(provider)
    number = f"ADOPT-{os.urandom(2).hex().upper()}"
    first, _ = add_invoice(app, org_unit, org_unit["unit_id"], number)
    second, _ = add_invoice(app, org_unit, org_unit["unit_id"], f"{number}-2")
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        assert push.push_invoice(connection, db.session.get(Invoice, first)).state.value == "pushed"
        # The first invoice moved to another business unit's numbering meanwhile; the second took its number.
        db.session.get(Invoice, first).number = f"{number}-moved"
        db.session.get(Invoice, second).number = number
        record = push.record_for(connection, push.RecordKind.invoice, second)
        record.attempts = 1  # an earlier attempt's outcome is unknown: the push looks the number up first
        db.session.commit()

        held = push.push_invoice(connection, db.session.get(Invoice, second))

        assert (held.state.value, held.last_error_class) == ("needs_action", "duplicate")
        assert "is the ledger copy of the SaaS's invoice inv-" in held.last_error_text
        ids = list(db.session.scalars(db.select(ExternalRecord.external_id).filter_by(connection_id=connection_id)))
        assert len([i for i in ids if i]) == len({i for i in ids if i})  # no ledger document held twice
    assert len(ledger_documents(sandbox, provider, number)) == 1
