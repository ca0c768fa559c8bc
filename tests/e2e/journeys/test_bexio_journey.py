"""bexio onboarding: consent → mappings and connection test → ledger sending → an invoice issued and sent,
its number back → paid in bexio and pulled → a credit note refused with bexio's manual step."""

from __future__ import annotations

import os
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests.e2e.journeys._bq_helpers import (
    ingest_customer,
    open_mappings_and_read,
    pick,
    pin_company,
    pull_payments,
    push_due_records,
    run_checks,
    start_connect,
)
from tests.e2e.journeys.conftest import (
    IngestApi,
    create_api_key,
    credit_note_body,
    invoice_body,
    ledger_dump,
    line,
    login,
    make_org,
    map_tax_rate,
    mark_paid,
    screenshot,
)

pytestmark = pytest.mark.e2e

COMPANY = "q69vysq7fkzl"  # "Mustermann AG" in the bexio sandbox
MAIL = "Guten Tag\n\nIhre Rechnung finden Sie hier: [Network Link]\n\nFreundliche Grüsse"


def test_bexio_from_consent_to_a_sent_invoice_paid_in_bexio(app, live_server, sandbox, page, make_staff):
    org = make_org(app, "Journey Bexio", country="CH", currency="CHF")
    api = IngestApi(live_server, create_api_key(app), org["org_external_id"])
    customer = ingest_customer(api, country="CH", name="Kunde Zürich AG")
    login(page, live_server, make_staff("ops"))

    # 1. Connect through bexio's own consent page (another site: the sandbox's auth.bexio.com).
    start_connect(page, live_server, org, "bexio")
    expect(page.get_by_role("heading", name="Bei bexio anmelden")).to_be_visible()
    assert page.url.startswith(sandbox)
    page.get_by_label("Benutzer").select_option("max.mustermann")
    page.get_by_label("Firma").select_option(COMPANY)
    screenshot(page, "journey-bexio-consent")
    page.get_by_role("button", name="Ja").click()
    connection_id = pin_company(page, re.compile("Mustermann"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("bexio")
    screenshot(page, "journey-bexio-connected")

    # 2. Mappings: revenue account and sales tax from bexio's own lists (and the bank account bexio needs).
    open_mappings_and_read(page, "bexio")
    pick(page, "tax_code", "UN81", "UN81")
    pick(page, "gl_account", "Handelserl", "3200")
    page.locator("#default-bank_account").select_option("1")
    page.get_by_role("button", name="Save defaults").click()
    expect(page.locator("#flashes")).to_contain_text("Defaults saved.")
    # Books are at the reduced rate: 2.6 % goes to bexio's UR26 (the standard 8.1 % to the default UN81).
    map_tax_rate(page, "2.6", "UR26")
    expect(page.locator("#default-tax_code")).to_have_value("UN81")
    expect(page.locator("#default-gl_account")).to_have_value("3200")
    page.get_by_role("button", name="Check mappings").click()
    expect(page.locator("[data-outcome='clean']")).to_contain_text("No problems")
    screenshot(page, "journey-bexio-mappings")

    # 3. The connection test on the connection page.
    page.get_by_role("link", name=re.compile("Connection of")).click()
    run_checks(page)
    screenshot(page, "journey-bexio-checks")

    # 4. Ledger sending with auto-send: a text without [Network Link] is refused, with one it is kept.
    settings = page.locator("#settings-box")
    settings.get_by_role("radio", name=re.compile("Via the ledger")).check()
    settings.get_by_label(re.compile("Send automatically")).check()
    settings.get_by_label("Sync delay (minutes)").fill("0")
    settings.get_by_label("E-mail text (ledger sending)").fill("Guten Tag, anbei Ihre Rechnung.")
    settings.get_by_role("button", name="Save settings").click()
    error = page.locator("#settings-box .field-error")
    expect(error).to_contain_text("bexio needs the placeholder [Network Link] in the e-mail text")
    expect(page.get_by_label("E-mail text (ledger sending)")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#settings-box [role=status]")).to_have_count(0)
    screenshot(page, "journey-bexio-mail-text-refused")
    with app.app_context():
        assert _settings(connection_id).get("sending_method") != "ledger"  # nothing half-saved
    page.get_by_label("E-mail text (ledger sending)").fill(MAIL)
    page.locator("#settings-box").get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-box [role=status]")).to_have_text("Settings saved.")
    expect(page.locator("#settings-box .field-error")).to_have_count(0)
    page.reload()
    expect(page.get_by_role("radio", name=re.compile("Via the ledger"))).to_be_checked()
    expect(page.get_by_label(re.compile("Send automatically"))).to_be_checked()
    expect(page.get_by_label("E-mail text (ledger sending)")).to_have_value(MAIL)
    expect(page.locator("#flashes")).not_to_contain_text("Settings saved.")  # shown once, in the box
    with app.app_context():
        stored = _settings(connection_id)
        assert stored["sending_method"] == "ledger" and stored["auto_send"] is True
        assert stored["email_message"].replace("\r\n", "\n") == MAIL

    # 5. The SaaS sends an invoice through the API; the scheduler pushes it: created, issued, sent.
    today = date.today().isoformat()
    suffix = _suffix()
    invoice_id, number = f"inv-{suffix}", f"LL-{suffix.upper()}"
    book = (line("Fachbuch", "1", "40.00", "2.6"),)
    # Due in 30 days: bexio reads a pending invoice past its due date (in Zurich) as overdue, and
    # Zurich's day starts an hour or two before this machine's UTC one.
    due = (date.today() + timedelta(days=30)).isoformat()
    body = invoice_body(
        org["unit_id"], customer, number, today, currency="CHF", tax_rate="8.1", more_lines=book, due_date=due
    )
    assert api.put("invoices", invoice_id, body)["total"] == "257.24"  # 240.00 + 16.20 + 1.04
    counts = push_due_records(app, connection_id)
    assert counts.get("pushed") == 1 and counts.get("sent") == 1, counts
    [document] = [d for d in ledger_dump(sandbox, "bexio", COMPANY)["invoices"] if d.get("api_reference") == number]
    assert document["kb_item_status_id"] == 8, document  # issued (open)
    # Each position at its own rate; bexio rounds the CHF total to 0.05: 257.25, the SaaS's 257.24 rounded.
    assert [p["tax_id"] for p in document["positions"]] == [14, 15], document["positions"]
    assert (document["total_taxes"], document["total"]) == ("17.2400", "257.250000"), document
    assert document["network_link"], document  # e-mailed with its link, once, to the customer
    assert [(m["kind"], m["to"]) for m in document["communications"]] == [("mail", "billing@journey.example")], document
    ledger = api.get("invoices", invoice_id)["ledger"]
    assert ledger["state"] == "pushed" and ledger["error"] is None
    assert ledger["number"] == document["document_nr"] and ledger["number"].startswith("RE-")
    assert ledger["sent"]["state"] == "sent" and ledger["finalized_at"] and ledger["paid_status"] == "open"

    # The number is visible on the connection's records too.
    page.get_by_role("button", name="Records", exact=True).click()
    invoice_row = page.locator("tr[data-state]", has_text=number)
    expect(invoice_row).to_have_attribute("data-state", "pushed")
    expect(invoice_row).to_contain_text(document["document_nr"])
    screenshot(page, "journey-bexio-pushed")

    # 6. The bookkeeper books the payment in bexio; the payments pull marks the SaaS invoice paid.
    mark_paid(sandbox, "bexio", company=COMPANY, invoice_id=int(document["id"]))
    counts = pull_payments(app, connection_id)
    assert counts == {"checked": 1, "paid": 1}, counts
    ledger = api.get("invoices", invoice_id)["ledger"]
    assert ledger["paid_status"] == "paid"
    with app.app_context():
        status, paid = _saas_invoice(invoice_id)
        assert status == "paid" and paid == Decimal("257.24")

    # 7. A credit note: bexio has no API for it, so the record is skipped with the manual step.
    documents_before = len(ledger_dump(sandbox, "bexio", COMPANY)["invoices"])
    suffix = _suffix()
    note_id, note_number = f"cn-{suffix}", f"CN-{suffix.upper()}"
    api.put("credit-notes", note_id, credit_note_body(invoice_id, note_number, today, currency="CHF", tax_rate="8.1"))
    counts = push_due_records(app, connection_id)
    assert counts.get("skipped") == 1 and not counts.get("pushed"), counts
    answer = api.get("credit-notes", note_id)["ledger"]
    assert answer["state"] == "skipped"
    assert f"create credit note {note_number} by hand in bexio → Sales → Invoices" in answer["error"], answer
    assert "(Gutschrift)" in answer["error"], answer
    assert len(ledger_dump(sandbox, "bexio", COMPANY)["invoices"]) == documents_before  # nothing written
    page.reload()
    note_row = page.locator("tr[data-state]", has_text=note_number)
    expect(note_row).to_have_attribute("data-state", "skipped")
    expect(note_row).to_contain_text("by hand in bexio")
    # The manual step is Ledgerlink's instruction, not bexio's words, and no re-sync can make bexio take it.
    expect(note_row).not_to_contain_text("bexio said")
    expect(note_row.get_by_role("button", name="Re-sync")).to_have_count(0)
    screenshot(page, "journey-bexio-credit-note-skipped")


def _suffix() -> str:
    return os.urandom(3).hex()


def _settings(connection_id: int) -> dict:
    from portal.extensions import db
    from portal.models import Connection

    db.session.expire_all()
    return dict(db.session.get(Connection, connection_id).settings or {})


def _saas_invoice(external_id: str) -> tuple[str, Decimal]:
    from portal.extensions import db
    from portal.models import Invoice

    invoice = db.session.scalar(db.select(Invoice).filter_by(external_id=external_id))
    return invoice.status.value, invoice.amount_paid
