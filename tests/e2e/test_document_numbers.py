"""In Chromium: a SaaS document number belongs to one document, and a document in the ledger is not changed under it.

The API refuses a second invoice with a number in use (409 naming the other id); two invoices
stored with one number before the API refused that reach the ledger once each: the second is
held on the records page until the SaaS gives it its own number, then pushed by the next run. A change of an
invoice the ledger holds is refused (409 naming Exact and what to send instead); the same body
is still 200.
"""

from __future__ import annotations

import os
from datetime import date
from decimal import Decimal

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.journeys.conftest import (
    EXACT_NL_DIVISION,
    IngestApi,
    connect_exact,
    create_api_key,
    invoice_body,
    ledger_dump,
    login,
    make_org,
    pick_option,
    schedule_tick,
)
from tests.e2e.test_tax_by_rate import start_today_without_delay
from tests.portal.connections.conftest import sandbox  # noqa: F401 - fixture: the sandbox at its demo data
from tests.portal.sync.rq_workers import run_queued_jobs

pytestmark = pytest.mark.e2e


def _stored_before_the_api_refused_it(app, org: dict, customer: str, number: str) -> str:
    """Store an invoice with ``number`` as an older database would hold it (a second one of that number)."""
    from portal.extensions import db
    from portal.models import Customer, Invoice, InvoiceLine

    with app.app_context():
        customer_id = db.session.scalar(db.select(Customer.id).filter_by(external_id=customer))
        invoice = Invoice(
            organization_id=org["org_id"],
            business_unit_id=org["unit_id"],
            customer_id=customer_id,
            external_id="dup-old",
            number=number,
            issue_date=date.today(),
            due_date=date.today(),
            currency="EUR",
            subtotal=Decimal("50.00"),
            tax_total=Decimal("10.50"),
            total=Decimal("60.50"),
        )
        invoice.lines.append(
            InvoiceLine(
                position=1,
                description="Consulting hours",
                quantity=Decimal("1"),
                unit_price=Decimal("50.00"),
                tax_rate=Decimal("21"),
                net_amount=Decimal("50.00"),
                tax_amount=Decimal("10.50"),
            )
        )
        db.session.add(invoice)
        db.session.commit()
        return invoice.external_id


def _ledger_numbers(sandbox_url: str) -> list[str]:
    rows = ledger_dump(sandbox_url, "exact-online", EXACT_NL_DIVISION)["tables"]["SalesInvoices"]
    return sorted(r["YourRef"] for r in rows if r.get("YourRef"))


def test_a_number_in_use_is_refused_a_stored_duplicate_is_held_until_renumbered_and_a_booked_invoice_stays(
    app,
    live_server,
    sandbox,  # noqa: F811 - the fixture imported above
    page,
    make_staff,
):
    org = make_org(app, "Number Truth")
    login(page, live_server, make_staff("ops"))
    connection_id = connect_exact(page, live_server, sandbox, org)
    start_today_without_delay(app, connection_id)
    page.get_by_role("button", name="Mappings").click()
    page.get_by_role("button", name="Read reference data now").click()
    expect(page.locator("#flashes")).to_contain_text("Reference data read from Exact Online")
    pick_option(page, "default-item", "consult", "CONSULT")
    pick_option(page, "default-tax_code", "21", "2")
    pick_option(page, "default-journal", "verkoop", "70")
    pick_option(page, "default-payment_condition", "30", "30")
    page.get_by_role("button", name="Save defaults").click()
    expect(page.locator("#flashes")).to_contain_text("Defaults saved.")

    key = create_api_key(app)
    api = IngestApi(live_server, key, org["org_external_id"])
    api.put("customers", "nt-c-1", {"name": "Drukkerij Voorbeeld", "email": "ap@druk.example", "country": "NL"})
    today = date.today().isoformat()
    number = f"DUP-NL-{os.urandom(2).hex().upper()}"
    first = invoice_body(org["unit_id"], "nt-c-1", number, today)
    assert api.put("invoices", "dup-a", first)["number"] == number

    # 1. A second invoice with that number: refused, naming the invoice that has it; nothing stored.
    second = requests.put(
        f"{api.base}/invoices/dup-b",
        json=invoice_body(org["unit_id"], "nt-c-1", number, today),
        headers=api.headers,
        timeout=10,
    )
    assert second.status_code == 409, second.text
    error = second.json()["error"]
    assert error["conflicting_id"] == "dup-a" and number in error["message"], error
    assert requests.get(f"{api.base}/invoices/dup-b", headers=api.headers, timeout=10).status_code == 404

    # 2. One stored with that number before the API refused it: the push keeps the number for the first.
    old = _stored_before_the_api_refused_it(app, org, "nt-c-1", number)
    assert "1 push(es) enqueued" in schedule_tick(app)
    run_queued_jobs(app)
    assert api.get("invoices", "dup-a")["ledger"]["state"] == "pushed"
    held = api.get("invoices", old)["ledger"]
    assert held["state"] == "needs_action" and "give this invoice its own number in the SaaS" in held["error"], held
    assert _ledger_numbers(sandbox).count(number) == 1

    page.goto(f"{live_server}/ops/connections/{connection_id}/records")
    row = page.locator("#ops-records tr[data-state='needs_action']", has_text=number)
    expect(row).to_contain_text(f"Invoice number {number} is also the number of the SaaS's invoice dup-a")
    expect(row).to_contain_text("give this invoice its own number in the SaaS")
    expect(page.locator("#ops-records tr[data-state='pushed']", has_text=number)).to_have_count(1)
    screenshot(page, "document-numbers-1-held")

    # 3. The SaaS renumbers it (it is in no ledger, so the change is taken); the next push takes it.
    renumbered = f"{number}-B"
    body = {**invoice_body(org["unit_id"], "nt-c-1", renumbered, today, quantity="1", unit_price="50.00")}
    assert api.put("invoices", old, body)["number"] == renumbered
    page.reload()  # its own number sends it back to the push: no longer held
    expect(page.locator("#ops-records tr[data-state='pending']", has_text=renumbered)).to_have_count(1)
    assert "1 push(es) enqueued" in schedule_tick(app)
    run_queued_jobs(app)
    assert api.get("invoices", old)["ledger"]["state"] == "pushed"
    assert _ledger_numbers(sandbox).count(number) == 1 and _ledger_numbers(sandbox).count(renumbered) == 1
    page.reload()
    expect(page.locator("#ops-records tr[data-state='pushed']", has_text=renumbered)).to_have_count(1)
    screenshot(page, "document-numbers-2-renumbered")

    # 4. The booked invoice: the same body is fine, a change is refused naming Exact and the fix.
    assert requests.put(f"{api.base}/invoices/dup-a", json=first, headers=api.headers, timeout=10).status_code == 200
    changed = requests.put(
        f"{api.base}/invoices/dup-a", json={**first, "due_date": "2099-12-31"}, headers=api.headers, timeout=10
    )
    assert changed.status_code == 409, changed.text
    message = changed.json()["error"]["message"]
    assert f"Invoice {number} is in Exact Online already" in message and "send a credit note for it" in message
    assert api.get("invoices", "dup-a")["due_date"] == today
