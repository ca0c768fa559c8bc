"""Tax by rate in Chromium: an unmapped 9 % line is held with the fix link; mapped, it is booked at 9 %."""

from __future__ import annotations

import re
from datetime import date

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
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
    pick_option,
    schedule_tick,
)
from tests.portal.connections.conftest import sandbox  # noqa: F401 - fixture: the sandbox at its demo data
from tests.portal.sync.rq_workers import run_queued_jobs

pytestmark = pytest.mark.e2e


def start_today_without_delay(app, connection_id: int) -> None:
    """Let the scheduler push today's records at its next tick (connection date today, no delay)."""
    from portal.extensions import db
    from portal.models import Connection

    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        connection.sync_from = connection.sync_from.replace(hour=0, minute=0, second=0, microsecond=0)
        connection.settings = {**(connection.settings or {}), "sync_delay_minutes": 0}
        db.session.commit()


def test_an_unmapped_rate_is_held_with_the_fix_link_then_mapped_and_booked_at_its_rate(
    app,
    live_server,
    sandbox,  # noqa: F811 - the fixture imported above
    page,
    make_staff,
):
    org = make_org(app, "Tax By Rate")
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

    # The SaaS invoices hours at 21 % and a book at 9 %; only 21 % has a code (the default).
    api = IngestApi(live_server, create_api_key(app), org["org_external_id"])
    api.put("customers", "tx-c-1", {"name": "Boekhandel Voorbeeld", "email": "ap@boek.example", "country": "NL"})
    today = date.today().isoformat()
    body = invoice_body(
        org["unit_id"], "tx-c-1", "TX-2026-009", today, more_lines=(line("Reference book", "2", "24.95", "9"),)
    )
    assert api.put("invoices", "tx-i-1", body)["total"] == "296.39"  # 200 + 42 + 49.90 + 4.49
    assert "1 push(es) enqueued" in schedule_tick(app)
    run_queued_jobs(app)
    held = api.get("invoices", "tx-i-1")["ledger"]
    assert held["state"] == "needs_action", held
    assert held["error"].startswith("Line 2 of invoice TX-2026-009 is at 9 %; no VAT code is mapped to 9 %"), held
    assert [r for r in _exact_invoices(sandbox) if r.get("YourRef") == "TX-2026-009"] == []  # nothing written

    # The records page says why, in plain words, with the link to the tax table.
    page.goto(f"{live_server}/ops/connections/{connection_id}/records")
    row = page.locator("#ops-records tr[data-state='needs_action']", has_text="TX-2026-009")
    expect(row).to_contain_text("Line 2 of invoice TX-2026-009 is at 9 %")
    expect(row).to_contain_text("map 9 % to one of Exact Online's VAT codes")
    screenshot(page, "tax-by-rate-1-held")
    row.get_by_role("link", name="Map the tax rate").click()
    expect(page).to_have_url(re.compile(rf"/connections/{connection_id}/mappings#tax-table$"))

    # The tax table lists the 9 % invoiced today, prefilled with Exact's VAT code at 9 %.
    nine = page.locator("#tax-table tr[data-rate='9 %']")
    expect(nine).to_have_attribute("data-state", "held")
    expect(nine.locator("select")).to_have_value("1")
    expect(nine.locator("[data-prefilled]")).to_contain_text("Prefilled")
    expect(page.locator("#tax-table tr[data-rate='21 %']")).to_contain_text("connection default")
    screenshot(page, "tax-by-rate-2-table")
    page.locator("#tax-table").get_by_role("button", name="Save tax table").click()
    expect(page.locator("#flashes")).to_contain_text("Tax table saved: 1 rate(s) changed.")
    expect(page.locator("#tax-table tr[data-rate='9 %']")).to_have_attribute("data-state", "ok")
    expect(page.locator("#tax-table tr[data-rate='9 %']")).to_contain_text("1 (tax table)")

    # Mapping the rate sent the held invoice back to the push: the next tick books it, each line at
    # its own rate, to the SaaS's total (no Re-sync needed).
    assert api.get("invoices", "tx-i-1")["ledger"]["state"] == "pending"
    assert "1 push(es) enqueued" in schedule_tick(app)
    run_queued_jobs(app)
    pushed = api.get("invoices", "tx-i-1")["ledger"]
    assert pushed["state"] == "pushed", pushed
    [invoice] = [r for r in _exact_invoices(sandbox) if r.get("YourRef") == "TX-2026-009"]
    assert (invoice["VATAmountFC"], invoice["AmountFC"]) == (46.49, 296.39), invoice
    lines = sorted(
        (r for r in ledger_dump(sandbox, "exact-online", EXACT_NL_DIVISION)["tables"]["SalesInvoiceLines"]
         if r["InvoiceID"] == invoice["InvoiceID"]),
        key=lambda r: r["LineNumber"],
    )  # fmt: skip
    assert [(r["VATCode"].strip(), r["VATPercentage"], r["VATAmountFC"]) for r in lines] == [
        ("2", 0.21, 42.0),
        ("1", 0.09, 4.49),
    ]
    page.goto(f"{live_server}/ops/connections/{connection_id}/records")
    expect(page.locator("#ops-records tr[data-state='pushed']", has_text="TX-2026-009")).to_have_count(1)
    screenshot(page, "tax-by-rate-3-booked")


def _exact_invoices(sandbox_url: str) -> list[dict]:
    # A division the sandbox never wrote an invoice to has no table of them yet.
    return ledger_dump(sandbox_url, "exact-online", EXACT_NL_DIVISION)["tables"].get("SalesInvoices", [])
