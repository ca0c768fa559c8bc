"""PSOhub: connect Exact NL, map, choose ledger sending, push an API invoice, get its number back, see it paid."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from playwright.sync_api import expect

from tests.e2e.journeys.conftest import (
    EXACT_NL_DIVISION,
    IngestApi,
    connect_exact,
    create_api_key,
    invoice_body,
    ledger_dump,
    line,
    login,
    make_org,
    map_tax_rate,
    mark_paid,
    pick_option,
    schedule_tick,
    screenshot,
)
from tests.portal.sync.rq_workers import run_queued_jobs

pytestmark = pytest.mark.e2e


def test_psohub_connect_map_push_number_back_and_paid(app, live_server, sandbox, page, make_staff):
    from portal.extensions import db
    from portal.models import Connection, ConnectionStatus

    org = make_org(app, "PSOhub Demo")
    user = make_staff("ops")
    today = date.today().isoformat()

    # 1. Connect Exact NL through the ledger's consent page and pin the division.
    login(page, live_server, user)
    connection_id = connect_exact(page, live_server, sandbox, org, shot="journey-psohub-1")
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        assert connection.status is ConnectionStatus.connected
        assert (connection.external_company_id, connection.region) == (EXACT_NL_DIVISION, "nl")

    # 2. Mappings: item, VAT code, journal and payment condition from the ledger's own lists.
    page.get_by_role("button", name="Mappings").click()
    page.get_by_role("button", name="Read reference data now").click()
    expect(page.locator("#flashes")).to_contain_text("Reference data read from Exact Online")
    pick_option(page, "default-item", "consult", "CONSULT")
    pick_option(page, "default-tax_code", "21", "2")
    pick_option(page, "default-journal", "verkoop", "70")
    pick_option(page, "default-payment_condition", "30", "30")
    page.get_by_role("button", name="Save defaults").click()
    expect(page.locator("#flashes")).to_contain_text("Defaults saved.")
    # PSOhub invoices books at 9 % and travel outside the EU at 0 % too: each rate to its own VAT code.
    map_tax_rate(page, "9", "1")
    map_tax_rate(page, "0", "6", kind="outside_scope")
    expect(page.locator("#tax-table")).to_contain_text("9 %")
    expect(page.locator("#tax-table")).to_contain_text("0 % outside scope / export")
    page.get_by_role("button", name="Check mappings").click()
    expect(page.locator("[data-outcome='clean']")).to_contain_text("No problems")
    screenshot(page, "journey-psohub-2-mappings")

    # 3. The connection test: the checks pass and a test invoice is created and removed again.
    page.goto(f"{live_server}/connections/{connection_id}")
    page.get_by_role("button", name="Run checks").click()
    expect(page.locator("#test-result")).to_contain_text("All checks passed")
    page.get_by_role("button", name="Create a test invoice").click()
    expect(page.locator("#test-result [data-outcome='created']")).to_contain_text("Created in the ledger")
    expect(page.locator("#test-result [data-test-lines]")).to_contain_text("21 %, 9 %, 0 % outside scope / export")
    expect(page.locator("#test-result [data-totals='equal']")).to_contain_text("33.00 EUR (net 30.00, tax 3.00)")
    expect(page.locator("#test-result")).to_contain_text("Everything the test created was removed again.")
    screenshot(page, "journey-psohub-3-test")
    page.wait_for_load_state("networkidle")

    # 4. Sending method: the ledger e-mails the invoice, automatically; records of today on; no delay.
    box = page.locator("#settings-box")
    box.get_by_label(re.compile("Via the ledger")).check()
    box.get_by_label(re.compile("Send automatically when pushed")).check()
    box.get_by_label("Connection date (UTC)").fill(f"{today}T00:00")
    box.get_by_label("Sync delay (minutes)").fill("0")
    box.locator("input[name=payments_mode][value=pull]").check()
    box.get_by_role("button", name="Save settings").click()
    # The saved box is swapped in with its confirmation; reloading before that would race the save.
    expect(page.locator("#settings-box [role=status]")).to_have_text("Settings saved.")
    expect(page.locator("#settings-box").get_by_label(re.compile("Via the ledger"))).to_be_checked()
    page.reload()
    expect(page.locator("#settings-box").get_by_label(re.compile("Via the ledger"))).to_be_checked()
    expect(page.locator("#settings-box").get_by_label(re.compile("Send automatically when pushed"))).to_be_checked()
    expect(page.locator("#settings-box input[name=payments_mode][value=pull]")).to_be_checked()
    expect(page.locator("#settings-box").get_by_label("Sync delay (minutes)")).to_have_value("0")
    screenshot(page, "journey-psohub-4-settings")
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        assert connection.setting("sending_method") == "ledger" and connection.setting("auto_send") is True
        assert connection.sync_from.replace(tzinfo=UTC) == datetime.fromisoformat(today).replace(tzinfo=UTC)

    # 5. The SaaS sends a customer, a product and an invoice through the API (key made with the CLI).
    api = IngestApi(live_server, create_api_key(app), org["org_external_id"])
    customer = {"name": "Bakkerij Voorbeeld B.V.", "email": "ap@bakkerij.example", "country": "NL"}
    assert api.put("customers", "pso-c-1", customer)["name"] == customer["name"]
    product = {"code": "PSO-HOURS", "name": "Project hours", "unit_price": "100.00", "tax_rate": "21"}
    assert api.put("products", "pso-p-1", product)["code"] == "PSO-HOURS"
    mixed = (
        line("Handbook", "2", "25.00", "9"),
        line("Travel (Switzerland)", "1", "80.00", "0", tax_kind="outside_scope"),
    )
    ingested = api.put(
        "invoices",
        "pso-i-1",
        invoice_body(org["unit_id"], "pso-c-1", "PSO-2026-001", today, product="pso-p-1", more_lines=mixed),
    )
    assert (ingested["tax_total"], ingested["total"]) == ("46.50", "376.50")  # 42.00 + 4.50 + 0
    assert api.get("invoices", "pso-i-1")["ledger"] is None  # not pushed yet

    # 6. The scheduler's tick enqueues the push; a worker runs it; the number comes back.
    assert "1 push(es) enqueued" in schedule_tick(app)
    run_queued_jobs(app)
    ledger = api.get("invoices", "pso-i-1")["ledger"]
    assert ledger["state"] == "pushed", ledger
    assert ledger["ledger"] == "Exact Online" and ledger["number"], ledger
    assert ledger["sent"]["state"] == "sent" and ledger["sent"]["sent_at"], ledger  # Exact e-mailed it
    assert ledger["paid_status"] == "open"
    number = ledger["number"]
    in_exact = [
        r
        for r in ledger_dump(sandbox, "exact-online", EXACT_NL_DIVISION)["tables"]["SalesInvoices"]
        if r.get("YourRef") == "PSO-2026-001"
    ]
    assert len(in_exact) == 1 and str(in_exact[0]["InvoiceNumber"]) == str(number)
    # Booked at the SaaS's rates, line by line, to the SaaS's total.
    assert (in_exact[0]["VATAmountFC"], in_exact[0]["AmountFC"]) == (46.5, 376.5), in_exact[0]
    lines = sorted(
        (r for r in ledger_dump(sandbox, "exact-online", EXACT_NL_DIVISION)["tables"]["SalesInvoiceLines"]
         if r["InvoiceID"] == in_exact[0]["InvoiceID"]),
        key=lambda r: r["LineNumber"],
    )  # fmt: skip
    assert [(r["VATCode"].strip(), r["VATPercentage"]) for r in lines] == [("2", 0.21), ("1", 0.09), ("6", 0.0)]
    page.goto(f"{live_server}/connections/{connection_id}")
    page.get_by_role("button", name="Records", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Records")
    records = page.locator("#ops-records tbody tr[data-state='pushed']")
    expect(records).to_have_count(2)  # the invoice and the customer it created in Exact
    expect(records.filter(has_text="customer")).to_have_count(1)
    pushed = records.filter(has_text="PSO-2026-001")
    expect(pushed).to_have_count(1)
    expect(pushed).to_contain_text(str(number))
    screenshot(page, "journey-psohub-5-number-back")

    # 7. The bookkeeper books the payment in Exact; the next payments pull marks the SaaS invoice paid.
    mark_paid(sandbox, "exact-online", division=int(EXACT_NL_DIVISION), invoice=int(number))
    tick = schedule_tick(app, minutes_later=125)
    assert "1 payments pull(s) enqueued" in tick, tick
    run_queued_jobs(app)
    ledger = api.get("invoices", "pso-i-1")["ledger"]
    assert ledger["paid_status"] == "paid" and ledger["amount_paid"] == "376.50", ledger
    page.goto(f"{live_server}/organizations/{org['org_id']}/invoices")
    invoice_row = page.get_by_role("row", name=re.compile("PSO-2026-001"))
    expect(invoice_row.locator(".badge")).to_have_text("paid")
    screenshot(page, "journey-psohub-6-paid")
