"""The push pipeline end to end: ingest through the API, push job, steps after the push, number back."""

from __future__ import annotations

import base64
import os
from datetime import date

import pytest
import requests

from tests.portal.mappings.conftest import control
from tests.portal.sync.conftest import CONNECT, PROVIDERS, ledger_documents, unit_rate


def today() -> str:
    """Today's date, read when a document is made (a run may cross midnight)."""
    return date.today().isoformat()


PDF = b"%PDF-1.4 Ledgerlink pipeline test\n%%EOF\n"


def ingest_invoice(app, api, org_unit, *, pdf: bytes | None = PDF, rate: str | None = None) -> tuple[str, str]:
    """PUT an invoice (with a PDF) through the ingestion API; return its SaaS id and number.

    Its line is at ``rate`` %, by default the rate of the connection's default tax code.
    """
    from portal.extensions import db
    from portal.models import Customer

    with app.app_context():
        customer = db.session.get(Customer, org_unit["customer_id"]).external_id
        rate = rate or str(unit_rate(org_unit["unit_id"]))  # the connection's default tax code's rate
    number = f"LL-{os.urandom(3).hex().upper()}"
    body = {
        "business_unit": org_unit["unit_id"],
        "number": number,
        "customer": customer,
        "issue_date": today(),
        "due_date": today(),
        "currency": "EUR",
        "lines": [
            {"position": 1, "description": "Consulting", "quantity": 2, "unit_price": "100.00", "tax_rate": rate}
        ],
    }
    if pdf is not None:
        body["pdf"] = base64.b64encode(pdf).decode()
    api[0](f"invoices/inv-{number}", body)
    return f"inv-{number}", number


def run_push(app, connection_id: int) -> tuple[str, dict, str]:
    """Run the push job of a connection in this process; return (status, counts, message)."""
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
        return run.status.value, dict(run.counts or {}), run.message


def set_settings(app, connection_id: int, **settings) -> None:
    from portal.extensions import db
    from portal.models import Connection

    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        connection.settings = {**(connection.settings or {}), **settings}
        db.session.commit()


def ledger_number(provider: str, document: dict) -> str:
    return str(document.get("InvoiceNumber") or document.get("DocNumber") or document.get("document_nr"))


def ledger_state(sandbox: str, provider: str) -> dict:
    company = CONNECT[provider][1]
    response = requests.get(f"{sandbox}/_control/ledger/{provider}/{company}", timeout=10)
    response.raise_for_status()
    return response.json()


def times_sent(sandbox: str, provider: str, document: dict) -> int:
    """Return how often the sandbox ledger e-mailed the invoice (Exact's outbox; QBO/bexio keep a flag)."""
    if provider == "exact-online":
        outbox = ledger_state(sandbox, provider).get("outbox", [])
        return sum(1 for mail in outbox if str(mail["invoice_number"]) == str(document["InvoiceNumber"]))
    if provider == "quickbooks":
        return int(document.get("EmailStatus") == "EmailSent")
    return int(bool(document.get("network_link")))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_ingested_invoice_is_pushed_with_its_pdf_finalized_sent_once_and_its_number_comes_back(
    app, sandbox, connect, org_unit, api, provider
):
    connection_id = connect(provider)
    set_settings(app, connection_id, sending_method="ledger", auto_send=True)
    external_id, number = ingest_invoice(app, api, org_unit)

    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded", message
    assert counts["pushed"] == 1 and counts.get("sent") == 1, (counts, message)
    [document] = ledger_documents(sandbox, provider, number)
    assert times_sent(sandbox, provider, document) == 1, document
    answer = api[1](f"invoices/{external_id}").get_json()
    ledger = answer["ledger"]
    assert ledger["state"] == "pushed" and ledger["error"] is None
    assert ledger["number"] == ledger_number(provider, document)
    assert ledger["sent"]["state"] == "sent" and ledger["sent"]["sent_at"] and ledger["finalized_at"]
    assert ledger["paid_status"] == "open"
    if provider == "bexio":
        assert ledger["pdf"]["state"] == "not_supported"
    else:
        assert ledger["pdf"]["state"] == "attached" and ledger["pdf"]["attachment_id"]

    # A second run pushes, attaches and sends nothing again.
    status, counts, message = run_push(app, connection_id)
    assert (status, counts, message) == ("succeeded", {"invoices": 0}, "Nothing to push.")
    [document] = ledger_documents(sandbox, provider, number)
    assert times_sent(sandbox, provider, document) == 1
    assert api[1](f"invoices/{external_id}").get_json()["ledger"]["sent"] == ledger["sent"]


def test_the_status_of_an_invoice_waits_before_go_live_and_then_gives_its_hold(app, sandbox, flow, org_unit, api):
    from portal.extensions import db
    from portal.mappings import services
    from portal.models import Connection, ExternalRecord
    from tests.portal.connections.conftest import make_live
    from tests.portal.mappings.conftest import GOOD_DEFAULTS

    region, company, choices = CONNECT["exact-online"]
    connection_id = flow.connected(org_unit["unit_id"], "exact-online", region, company=company, live=False, **choices)
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        services.refresh_reference(connection)
        services.set_mappings(connection, GOOD_DEFAULTS["exact-online"])
        db.session.commit()
    external_id, _ = ingest_invoice(app, api, org_unit, rate="9")  # no code is mapped at 9 %

    ledger = api[1](f"invoices/{external_id}").get_json()["ledger"]

    assert (ledger["provider"], ledger["ledger"], ledger["state"]) == ("exact-online", "Exact Online", "waiting")
    assert ledger["error"] == (
        "The connection to Exact Online is not live yet: nothing is pushed automatically until support takes it "
        "live on its checklist."
    )
    assert ledger["number"] is None and ledger["external_id"] is None and ledger["pushed_at"] is None
    assert ledger["pdf"]["state"] is None and ledger["sent"]["state"] is None and ledger["paid_status"] == "open"

    # Live: the push holds it before any ledger call, and the answer gives the hold — the cause and the fix.
    make_live(app, connection_id)
    status, counts, message = run_push(app, connection_id)
    assert status == "succeeded" and not counts.get("pushed"), (counts, message)
    ledger = api[1](f"invoices/{external_id}").get_json()["ledger"]
    with app.app_context():
        record = db.session.scalar(db.select(ExternalRecord).filter_by(connection_id=connection_id))
        hold = record.last_error_text
    assert ledger["state"] == "needs_action" and ledger["error"] == hold
    assert hold.startswith("Line 1 of invoice ") and "is at 9 %" in hold and "tax table" in hold
    assert ledger_documents(sandbox, "exact-online", external_id.removeprefix("inv-")) == []


def test_exact_numbers_the_invoice_at_print_and_that_number_comes_back(app, sandbox, connect, org_unit, api):
    control(sandbox, "exact-online/set_division_settings", {"division": 3010001, "invoice_number_at_entry": False})
    connection_id = connect("exact-online")
    external_id, number = ingest_invoice(app, api, org_unit, pdf=None)

    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded" and counts["pushed"] == 1, message
    [document] = ledger_documents(sandbox, "exact-online", number)
    assert document.get("InvoiceNumber"), document  # numbered when printed (finalized)
    ledger = api[1](f"invoices/{external_id}").get_json()["ledger"]
    assert ledger["number"] == str(document["InvoiceNumber"])
    assert ledger["pdf"]["state"] == "no_pdf" and ledger["sent"]["state"] == "finalized"
    assert times_sent(sandbox, "exact-online", document) == 0


def test_the_status_of_an_invoice_never_pushed_is_null_and_unknown_ids_are_404(app, api, org_unit):
    external_id, _ = ingest_invoice(app, api, org_unit)

    answer = api[1](f"invoices/{external_id}")
    missing = api[1]("invoices/no-such-invoice")

    assert answer.status_code == 200 and answer.get_json()["ledger"] is None
    assert missing.status_code == 404 and "no-such-invoice" in missing.get_json()["error"]["message"]
    assert api[1]("credit-notes/no-such-note").status_code == 404


def test_the_openapi_document_describes_the_ledger_status():
    from portal.api.openapi import document

    doc = document()
    get = doc["paths"]["/api/v1/organizations/{org_id}/invoices/{external_id}"]["get"]
    schema = doc["components"]["schemas"]["InvoiceLedgerStatus"]

    assert get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("InvoiceWithLedger")
    assert {"state", "number", "external_id", "error", "pdf", "sent", "paid_status"} <= set(schema["properties"])
    assert "get" in doc["paths"]["/api/v1/organizations/{org_id}/credit-notes/{external_id}"]
