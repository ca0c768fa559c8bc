"""Hyperline: connect Exact, set the division, map products and VAT, link existing customers, push, back-fill."""

from __future__ import annotations

import re
from datetime import date

import pytest
from playwright.sync_api import expect

from tests.e2e.journeys.conftest import (
    EXACT_NL_DIVISION,
    EXACT_NL_OTHER_DIVISION,
    IngestApi,
    connect_exact,
    create_api_key,
    credit_note_body,
    invoice_body,
    latest_run,
    ledger_dump,
    line,
    login,
    make_org,
    map_tax_rate,
    pick_option,
    sandbox_control,
    schedule_tick,
    screenshot,
)
from tests.portal.sync.rq_workers import run_queued_jobs

pytestmark = pytest.mark.e2e

#: SaaS customers that already exist in the demo division (sandbox/exact/demo.py), and how they match.
EXISTING = {
    "hl-c-jansen": {"name": "Bakkerij Jansen", "vat_number": "NL001234567B01", "country": "NL"},
    "hl-c-degroot": {"name": "De Groot Installatietechniek", "email": "facturen@degroot.example", "country": "NL"},
}
OLD_DATES = ("2025-03-10", "2025-06-12", "2025-09-15")


def _exact_rows(sandbox_url: str, table: str) -> list[dict]:
    return ledger_dump(sandbox_url, "exact-online", EXACT_NL_DIVISION)["tables"].get(table, [])


def test_hyperline_division_mappings_links_push_and_backfill(app, live_server, sandbox, page, make_staff):
    from portal.extensions import db
    from portal.models import Connection, CustomerLink

    # A division with a larger minute quota than the demo's 60 calls: the journey's calls fit one
    # window, so the back-fill does not wait for the next minute (its pacing is measured in bench/).
    sandbox_control(sandbox, "exact-online/set_settings", {"minutely_limit": 600})
    org = make_org(app, "Hyperline Demo")
    today = date.today().isoformat()
    api = IngestApi(live_server, create_api_key(app), org["org_external_id"])
    for external_id, body in EXISTING.items():
        api.put("customers", external_id, body)
    api.put("products", "hl-p-seats", {"code": "HL-SEATS", "name": "Seats", "unit_price": "49", "tax_rate": "21"})
    for i, day in enumerate(OLD_DATES):  # the SaaS's history, before the connection
        handbook = (line("Admin handbook", "1", "19.95", "9"),)  # the reduced rate
        body = invoice_body(
            org["unit_id"], "hl-c-jansen", f"HL-2025-{i:03d}", day, product="hl-p-seats", more_lines=handbook
        )
        api.put("invoices", f"hl-old-{i}", body)
    accounts_before = len(_exact_rows(sandbox, "Accounts"))

    # 1. Connect Exact granting both divisions; pin the second for now.
    user = make_staff("ops")
    login(page, live_server, user)
    connection_id = connect_exact(
        page,
        live_server,
        sandbox,
        org,
        divisions=(EXACT_NL_DIVISION, EXACT_NL_OTHER_DIVISION),
        pick=EXACT_NL_OTHER_DIVISION,
        shot="journey-hyperline-1",
    )

    # 2. Support sets the division number: the list is read live, the current one marked.
    page.goto(f"{live_server}/connections/{connection_id}/mappings")
    page.get_by_role("link", name="Division", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Division of Exact Online")
    expect(page.get_by_role("row", name=re.compile(EXACT_NL_OTHER_DIVISION))).to_contain_text("current")
    expect(page.locator("#division-consequences")).to_be_visible()
    counts = page.locator("#division-counts")
    expect(counts.get_by_role("row", name=re.compile("Customer links"))).to_contain_text("cleared")
    expect(counts.get_by_role("row", name=re.compile("Reference lists"))).to_contain_text("read again from the new one")
    page.locator("#number").select_option(EXACT_NL_DIVISION)
    screenshot(page, "journey-hyperline-2-division")
    page.get_by_role("button", name="Use this division").click()
    expect(page.locator("#flashes")).to_contain_text(
        f"The connection now uses Ledgerlink Demo B.V. ({EXACT_NL_DIVISION})"
    )
    with app.app_context():
        assert db.session.get(Connection, connection_id).external_company_id == EXACT_NL_DIVISION

    # 3. Mappings: defaults, and the product mapped to its own Exact item.
    pick_option(page, "default-item", "consult", "CONSULT")
    pick_option(page, "default-tax_code", "21", "2")
    pick_option(page, "default-journal", "verkoop", "70")
    pick_option(page, "default-payment_condition", "30", "30")
    page.get_by_role("button", name="Save defaults").click()
    expect(page.locator("#flashes")).to_contain_text("Defaults saved.")
    # Hyperline's handbooks are at 9 %: the rate goes to Exact's VAT code at 9 %.
    map_tax_rate(page, "9", "1")
    expect(page.locator("#tax-table tr[data-rate='9 %']")).to_have_attribute("data-state", "ok")
    page.get_by_label("Search products").fill("HL-SEATS")
    page.locator("#products-table tr:has-text('HL-SEATS')").get_by_role("link", name="Override").first.click()
    expect(page.get_by_role("heading", name=re.compile("HL-SEATS"))).to_be_visible()
    pick_option(page, "override-item", "LIC", "LIC-STD")
    page.get_by_role("button", name="Save overrides").click()
    expect(page.locator("#effective tr[data-field='item']")).to_contain_text("product override")
    expect(page.locator("#effective tr[data-field='tax_code']")).to_contain_text("connection default")
    screenshot(page, "journey-hyperline-3-product")
    page.get_by_role("link", name=re.compile("Mappings of")).click()
    page.get_by_role("button", name="Check mappings").click()
    expect(page.locator("[data-outcome='clean']")).to_contain_text("No problems")

    # 4. Customer links: link only; fetch the ledger's customers, confirm the suggestions.
    page.goto(f"{live_server}/connections/{connection_id}")
    page.get_by_role("button", name="Customer links", exact=True).click()
    page.locator("#mode-box input[name=customer_mode][value=link_only]").check()
    page.locator("#mode-box").get_by_role("button", name="Save mode").click()
    expect(page.locator("#mode-box input[name=customer_mode][value=link_only]")).to_be_checked()
    page.get_by_role("button", name="Fetch ledger customers and suggest links").click()
    expect(page.locator("[data-status]").first).to_have_text("queued")
    run_queued_jobs(app)
    match = latest_run(app, "customer_match")
    assert match["status"] == "succeeded", match
    expect(page.locator(f"#run-{match['id']} [data-status]")).to_have_text("succeeded")
    page.reload()
    expect(page.locator("#suggestions tbody tr")).to_have_count(2)
    expect(page.locator("#suggestions")).to_contain_text("Bakkerij Jansen B.V.")
    screenshot(page, "journey-hyperline-4-suggestions")
    page.get_by_role("button", name="Confirm every clear suggestion at this score or above").click()
    expect(page.locator("#flashes")).to_contain_text("Linked 2 customer(s).")
    expect(page.locator("#links tbody tr")).to_have_count(2)
    expect(page.locator("[data-count=linked]")).to_have_text("2")
    expect(page.locator("[data-count=unlinked]")).to_have_text("0")
    screenshot(page, "journey-hyperline-5-linked")
    with app.app_context():
        links = {
            link.customer.external_id: link.external_id
            for link in db.session.scalars(db.select(CustomerLink).filter_by(connection_id=connection_id))
        }
    assert set(links) == set(EXISTING)

    # 5. New invoices and a credit note: pushed onto the linked Exact customers, no new account.
    page.goto(f"{live_server}/connections/{connection_id}")
    box = page.locator("#settings-box")
    box.get_by_label("Connection date (UTC)").fill(f"{today}T00:00")
    box.get_by_label("Sync delay (minutes)").fill("0")
    box.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-box [role=status]")).to_have_text("Settings saved.")
    expect(page.locator("#settings-box").get_by_label("Sync delay (minutes)")).to_have_value("0")
    api.put("invoices", "hl-i-1", invoice_body(org["unit_id"], "hl-c-jansen", "HL-1001", today, product="hl-p-seats"))
    handbook = (line("Onboarding handbook", "1", "19.95", "9"),)
    api.put("invoices", "hl-i-2", invoice_body(org["unit_id"], "hl-c-degroot", "HL-1002", today, more_lines=handbook))
    api.put("credit-notes", "hl-cn-1", credit_note_body("hl-i-2", "HL-CN-1", today, unit_price="19.95", tax_rate="9"))
    assert "1 push(es) enqueued" in schedule_tick(app)
    run_queued_jobs(app)
    push_run = latest_run(app, "incremental")
    assert push_run["status"] == "succeeded", push_run
    for resource, external_id in (("invoices", "hl-i-1"), ("invoices", "hl-i-2"), ("credit-notes", "hl-cn-1")):
        ledger = api.get(resource, external_id)["ledger"]
        assert ledger is not None and ledger["state"] == "pushed", (external_id, ledger)
        assert ledger["external_id"], (external_id, ledger)
        if resource == "invoices":  # sending via the SaaS: Exact books and numbers it, sends nothing
            assert ledger["number"], ledger
            assert ledger["sent"]["state"] == "finalized" and ledger["sent"]["sent_at"] is None, ledger
    for external_id in ("hl-old-0", "hl-old-1", "hl-old-2"):  # older than the connection date: not pushed
        assert api.get("invoices", external_id)["ledger"] is None
    invoices = {r["YourRef"]: r for r in _exact_rows(sandbox, "SalesInvoices")}
    assert invoices["HL-1001"]["InvoiceTo"] == links["hl-c-jansen"]
    assert invoices["HL-1002"]["InvoiceTo"] == links["hl-c-degroot"]
    assert invoices["HL-CN-1"]["InvoiceTo"] == links["hl-c-degroot"] and invoices["HL-CN-1"]["Type"] == 8021
    assert len(_exact_rows(sandbox, "Accounts")) == accounts_before
    lines = {r["InvoiceID"]: r for r in _exact_rows(sandbox, "SalesInvoiceLines")}
    assert lines[invoices["HL-1001"]["InvoiceID"]]["ItemCode"] == "LIC-STD"  # the product override
    assert lines[invoices["HL-1002"]["InvoiceID"]]["ItemCode"] == "CONSULT"  # the default
    by_invoice = {}
    for row in _exact_rows(sandbox, "SalesInvoiceLines"):
        by_invoice.setdefault(row["InvoiceID"], []).append(row["VATCode"].strip())
    assert by_invoice[invoices["HL-1002"]["InvoiceID"]] == ["2", "1"]  # each line at its own rate
    assert by_invoice[invoices["HL-CN-1"]["InvoiceID"]] == ["1"]
    assert (invoices["HL-1002"]["AmountFC"], invoices["HL-CN-1"]["AmountFC"]) == (263.75, -21.75)
    page.goto(f"{live_server}/ops/connections/{connection_id}/records")
    expect(page.locator("#ops-records tbody tr[data-state='pushed']")).to_have_count(3)
    expect(page.locator("#ops-records")).to_contain_text("HL-CN-1")
    screenshot(page, "journey-hyperline-6-pushed")

    # 6. The back-fill: preview the 2025 invoices, start, watch the summary.
    page.goto(f"{live_server}/connections/{connection_id}")
    page.get_by_role("button", name="Historical push").click()
    page.get_by_label("From (invoice date)").fill("2025-01-01")
    page.get_by_label("To (invoice date)").fill("2025-12-31")
    page.get_by_label("Payments").uncheck()
    page.get_by_role("button", name="Preview").click()
    counts = page.locator("#preview-counts tr[data-kind='invoice']")
    expect(counts.locator("[data-count='create']")).to_have_text("3")
    screenshot(page, "journey-hyperline-7-preview")
    page.get_by_role("button", name="Start the push").click()
    expect(page.get_by_role("heading", name=re.compile(r"Back-fill #\d+"))).to_be_visible()
    run_box = page.locator("article.run")
    expect(run_box).to_have_attribute("data-status", "queued")
    run_queued_jobs(app)
    expect(run_box).to_have_attribute("data-status", "succeeded", timeout=15_000)
    expect(run_box.locator("tr[data-kind='invoice'] [data-count='created']")).to_have_text("3")
    expect(page.locator("#reconciliation tr[data-kind='invoice']")).to_have_attribute("data-matches", "true")
    screenshot(page, "journey-hyperline-8-backfill")
    for i in range(len(OLD_DATES)):
        ledger = api.get("invoices", f"hl-old-{i}")["ledger"]
        assert ledger is not None and ledger["state"] == "pushed", ledger
    refs = [r["YourRef"] for r in _exact_rows(sandbox, "SalesInvoices")]
    assert sorted(r for r in refs if r.startswith("HL-2025-")) == ["HL-2025-000", "HL-2025-001", "HL-2025-002"]
