"""QuickBooks Online onboarding of a US company: consent → defaults and a city's combined rate in the tax table →
an invoice with a non-taxable line booked as TAX/NON with the SaaS's sales tax → a combined-rate invoice whose
rounding differs, booked with the SaaS's tax → an invoice taxed in two states held with the reason."""

from __future__ import annotations

import os
import re
from datetime import date

import pytest
from playwright.sync_api import expect

from tests.e2e.journeys._bq_helpers import (
    ingest_customer,
    open_mappings_and_read,
    pick,
    pin_company,
    push_due_records,
    start_connect,
)
from tests.e2e.journeys.conftest import (
    IngestApi,
    create_api_key,
    invoice_body,
    ledger_dump,
    line,
    login,
    make_org,
    map_tax_rate,
    screenshot,
)

pytestmark = pytest.mark.e2e

REALM = "9341453908059321"  # "Ledgerlink Demo Inc.", US: TAX/NON lines, one sales tax code per invoice
SERVICES, CALIFORNIA, NEW_YORK_CITY, CLASS_RETAIL = "1", "2", "4", "1"


def test_quickbooks_us_books_taxable_and_non_taxable_lines_with_the_saas_tax(
    app, live_server, sandbox, page, make_staff
):
    org = make_org(app, "Journey Inc", country="US", currency="USD")
    api = IngestApi(live_server, create_api_key(app), org["org_external_id"])
    customer = ingest_customer(api, country="US", name="Client Brooklyn LLC")
    login(page, live_server, make_staff("ops"))

    # 1. Connect the US company through Intuit's consent page.
    start_connect(page, live_server, org, "quickbooks")
    page.get_by_label("Sign in as").select_option("u-ada")
    page.get_by_label("Company to connect").select_option(REALM)
    page.get_by_role("button", name="Connect").click()
    connection_id = pin_company(page, re.compile("Ledgerlink Demo Inc"))

    # 2. Defaults (the tax mode is US sales tax), and New York City's 8.875 % in the tax table.
    open_mappings_and_read(page, "QuickBooks")
    expect(page.locator("#qbo_tax_mode")).to_have_value("us")
    pick(page, "item", "Services", SERVICES)
    pick(page, "tax_code", "Calif", CALIFORNIA)
    pick(page, "class", "Retail", CLASS_RETAIL)
    page.get_by_role("button", name="Save defaults").click()
    expect(page.locator("#flashes")).to_contain_text("Defaults saved.")
    map_tax_rate(page, "8.875", NEW_YORK_CITY)
    expect(page.locator("#tax-table tr[data-rate='8.875 %']")).to_contain_text("4 (tax table)")
    screenshot(page, "journey-quickbooks-us-tax-table")
    page.get_by_role("link", name=re.compile("Connection of")).click()
    settings = page.locator("#settings-box")
    settings.get_by_label("Sync delay (minutes)").fill("0")
    settings.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-box [role=status]")).to_have_text("Settings saved.")

    # 3. Hours in California at 8 % and a non-taxable line at 0 %: TAX and NON, the SaaS's tax.
    today = date.today().isoformat()
    first = f"US-{os.urandom(2).hex().upper()}"
    body = invoice_body(
        org["unit_id"], customer, first, today, currency="USD", tax_rate="8",
        more_lines=(line("Shipping (not taxable)", "1", "50.00", "0"),),
    )  # fmt: skip
    assert api.put("invoices", f"inv-{first}", body)["total"] == "266.00"
    # 4. Brooklyn at 8.875 %: QuickBooks would round each of the city's three rates on the total
    # (8.87); it books the SaaS's 8.88 (the lines rounded one by one) as the invoice's TotalTax.
    second = f"US-{os.urandom(2).hex().upper()}"
    body = invoice_body(
        org["unit_id"], customer, second, today, currency="USD", quantity="1", unit_price="33.33",
        tax_rate="8.875", more_lines=(line("Hours", "1", "33.33", "8.875"), line("Hours", "1", "33.33", "8.875")),
    )  # fmt: skip
    assert api.put("invoices", f"inv-{second}", body)["tax_total"] == "8.88"
    # 5. Taxed in two states at once: QuickBooks US takes one rate per invoice, so it is held.
    third = f"US-{os.urandom(2).hex().upper()}"
    body = invoice_body(
        org["unit_id"], customer, third, today, currency="USD", tax_rate="8",
        more_lines=(line("Brooklyn hours", "1", "100.00", "8.875"),),
    )  # fmt: skip
    api.put("invoices", f"inv-{third}", body)

    counts = push_due_records(app, connection_id)
    assert counts.get("pushed") == 2 and counts.get("needs_action") == 1, counts
    invoices = {d["DocNumber"]: d for d in ledger_dump(sandbox, "quickbooks", REALM)["entities"]["Invoice"]}
    doc = invoices[first]
    codes = [x["SalesItemLineDetail"]["TaxCodeRef"]["value"] for x in doc["Line"] if "SalesItemLineDetail" in x]
    assert codes == ["TAX", "NON"] and doc["TxnTaxDetail"]["TxnTaxCodeRef"]["value"] == CALIFORNIA, doc
    assert (doc["TxnTaxDetail"]["TotalTax"], doc["TotalAmt"]) == (16, 266), doc
    doc = invoices[second]
    assert doc["TxnTaxDetail"]["TxnTaxCodeRef"]["value"] == NEW_YORK_CITY, doc
    assert (doc["TxnTaxDetail"]["TotalTax"], doc["TotalAmt"]) == (8.88, 108.87), doc
    assert third not in invoices
    assert api.get("invoices", f"inv-{first}")["ledger"]["state"] == "pushed"
    held = api.get("invoices", f"inv-{third}")["ledger"]
    assert held["state"] == "needs_action" and "one sales tax rate per document" in held["error"], held

    page.get_by_role("button", name="Records", exact=True).click()
    row = page.locator("tr[data-state]", has_text=f"invoice {third}")
    expect(row).to_have_attribute("data-state", "needs_action")
    expect(row).to_contain_text("QuickBooks US takes one sales tax rate per document")
    expect(row).to_contain_text("8 % and 8.875 %")
    expect(page.locator("tr[data-state='pushed']", has_text=f"invoice {first}")).to_have_count(1)
    screenshot(page, "journey-quickbooks-us-records")
