"""QuickBooks Online onboarding of a UK company: consent → default product, VAT code and class → an invoice
pushed and e-mailed by QuickBooks → the check catches a category as default product and custom transaction
numbers turned off, and is clean again once both are put right."""

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
    run_checks,
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
    sandbox_control,
    screenshot,
)

pytestmark = pytest.mark.e2e

REALM = "9341453908061187"  # "Ledgerlink Demo Ltd", UK: VAT codes on every line
CONSULTING, TRAINING = "1", "2"  # items
VAT_20, VAT_5, VAT_ZERO = "2", "3", "4"  # TaxCodes "20.0% S", "5.0% R", "0.0% Z"
CLASS_CONSULTING = "1"


def test_quickbooks_uk_from_consent_to_an_emailed_invoice_and_the_checks(app, live_server, sandbox, page, make_staff):
    # The UK company tracks classes per line (the demo company starts with class tracking off).
    sandbox_control(sandbox, "quickbooks/set_preferences", {"realm_id": REALM, "class_tracking": True})
    org = make_org(app, "Journey Books", country="GB", currency="GBP")
    api = IngestApi(live_server, create_api_key(app), org["org_external_id"])
    customer = ingest_customer(api, country="GB", name="Client London Ltd")
    login(page, live_server, make_staff("ops"))

    # 1. Connect through Intuit's consent page, choosing the UK company.
    start_connect(page, live_server, org, "quickbooks")
    expect(page.get_by_role("heading", name="Connect your QuickBooks company")).to_be_visible()
    assert page.url.startswith(sandbox)
    page.get_by_label("Sign in as").select_option("u-ada")
    page.get_by_label("Company to connect").select_option(REALM)
    screenshot(page, "journey-quickbooks-consent")
    page.get_by_role("button", name="Connect").click()
    connection_id = pin_company(page, re.compile("Ledgerlink Demo Ltd"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ledgerlink Demo Ltd")
    run_checks(page)
    screenshot(page, "journey-quickbooks-connected")

    # 2. Defaults: product/service, VAT code and class from the company's lists; the tax mode is non-US.
    open_mappings_and_read(page, "QuickBooks")
    expect(page.locator("#qbo_tax_mode")).to_have_value("non_us")
    pick(page, "item", "Consult", CONSULTING)
    pick(page, "tax_code", "20.0", VAT_20)
    pick(page, "class", "Consult", CLASS_CONSULTING)
    page.get_by_role("button", name="Save defaults").click()
    expect(page.locator("#flashes")).to_contain_text("Defaults saved.")
    expect(page.locator("#default-item")).to_have_value(CONSULTING)
    expect(page.locator("#default-tax_code")).to_have_value(VAT_20)
    expect(page.locator("#default-class")).to_have_value(CLASS_CONSULTING)
    # The reduced rate and zero-rated lines: each to QuickBooks' own VAT code at that rate.
    map_tax_rate(page, "5", VAT_5)
    map_tax_rate(page, "0", VAT_ZERO, kind="zero")
    page.get_by_role("button", name="Check mappings").click()
    expect(page.locator("[data-outcome='clean']")).to_contain_text("No problems")
    screenshot(page, "journey-quickbooks-mappings")

    # 3. QuickBooks e-mails the invoices: ledger sending with auto-send, no delay.
    page.get_by_role("link", name=re.compile("Connection of")).click()
    settings = page.locator("#settings-box")
    settings.get_by_role("radio", name=re.compile("Via the ledger")).check()
    settings.get_by_label(re.compile("Send automatically")).check()
    settings.get_by_label("Sync delay (minutes)").fill("0")
    settings.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-box [role=status]")).to_have_text("Settings saved.")
    expect(page.locator("#settings-box .field-error")).to_have_count(0)
    page.reload()
    expect(page.get_by_role("radio", name=re.compile("Via the ledger"))).to_be_checked()
    expect(page.get_by_label(re.compile("Send automatically"))).to_be_checked()

    # 4. An invoice from the API is pushed with the defaults and sent by QuickBooks.
    suffix = os.urandom(3).hex()
    invoice_id, number = f"inv-{suffix}", f"LL-{suffix.upper()}"
    api.put(
        "invoices",
        invoice_id,
        invoice_body(
            org["unit_id"],
            customer,
            number,
            date.today().isoformat(),
            currency="GBP",
            tax_rate="20",
            more_lines=(line("Home energy", "1", "30.00", "5"), line("Books", "1", "12.00", "0")),
        ),
    )
    counts = push_due_records(app, connection_id)
    assert counts.get("pushed") == 1 and counts.get("sent") == 1, counts
    [document] = [
        d for d in ledger_dump(sandbox, "quickbooks", REALM)["entities"]["Invoice"] if d.get("DocNumber") == number
    ]
    assert document["EmailStatus"] == "EmailSent", document
    sales = [x["SalesItemLineDetail"] for x in document["Line"] if x.get("DetailType") == "SalesItemLineDetail"]
    detail = sales[0]
    assert detail["ItemRef"]["value"] == CONSULTING
    assert detail["ClassRef"]["value"] == CLASS_CONSULTING
    assert [d["TaxCodeRef"]["value"] for d in sales] == [VAT_20, VAT_5, VAT_ZERO]  # each line at its own rate
    assert document["TotalAmt"] == 283.5, document  # 242.00 net + 40.00 + 1.50 VAT
    ledger = api.get("invoices", invoice_id)["ledger"]
    assert ledger["state"] == "pushed" and ledger["number"] == number and ledger["external_id"] == document["Id"]
    assert ledger["sent"]["state"] == "sent" and ledger["pdf"]["state"] == "no_pdf"
    page.get_by_role("button", name="Records", exact=True).click()
    row = page.locator("tr[data-state]", has_text=f"invoice {number}")
    expect(row).to_have_attribute("data-state", "pushed")
    screenshot(page, "journey-quickbooks-pushed")

    # 5. Later, in QuickBooks: the default product becomes a category and custom numbers are turned off.
    sandbox_control(sandbox, "quickbooks/make_item_category", {"realm_id": REALM, "item_id": CONSULTING})
    sandbox_control(sandbox, "quickbooks/set_preferences", {"realm_id": REALM, "custom_txn_numbers": False})
    page.goto(f"{live_server}/connections/{connection_id}/mappings")
    page.get_by_role("button", name="Refresh reference data now").click()
    expect(page.locator("#flashes")).to_contain_text("Reference data read from QuickBooks")
    page.get_by_role("button", name="Check mappings").click()
    result = page.locator("#preflight-result")
    expect(result.locator("[data-outcome]")).to_have_attribute("data-outcome", "problems")
    expect(result.locator("li[data-severity='error']")).to_have_count(2)
    category = result.locator("li", has_text="is a category")
    expect(category).to_contain_text("Default product/service: 1 Consulting is a category, not a product or service")
    expect(result.locator("li", has_text="Custom transaction numbers are off in QuickBooks")).to_contain_text(
        "a retried push cannot find the invoice it made"
    )
    screenshot(page, "journey-quickbooks-preflight-problems")

    # 6. Put both right: another product as default, custom numbers on again → the check is clean.
    category.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"#default-item$"))
    expect(page.locator("#default-item option:checked")).to_contain_text("not usable")
    pick(page, "item", "Training", TRAINING, matches=2)  # the match, and the current value flagged
    page.get_by_role("button", name="Save defaults").click()
    expect(page.locator("#flashes")).to_contain_text("Defaults saved.")
    sandbox_control(sandbox, "quickbooks/set_preferences", {"realm_id": REALM, "custom_txn_numbers": True})
    page.get_by_role("button", name="Refresh reference data now").click()
    expect(page.locator("#flashes")).to_contain_text("Reference data read from QuickBooks")
    page.get_by_role("button", name="Check mappings").click()
    expect(page.locator("[data-outcome='clean']")).to_contain_text("No problems")
    expect(page.locator("#history")).to_contain_text("Product/service 1 → 2")
    screenshot(page, "journey-quickbooks-preflight-clean")
