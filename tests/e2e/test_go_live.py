"""Per ledger, in Chromium: connect, walk the go-live checklist step by step, go live — and nothing reaches
the ledger before the go-live, while the same invoice is booked by the scheduler's next tick after it."""

from __future__ import annotations

import os
import re
from datetime import date

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import screenshot
from tests.e2e.journeys._bq_helpers import ingest_customer, pin_company, start_connect
from tests.e2e.journeys.conftest import (
    IngestApi,
    connect_exact,
    create_api_key,
    invoice_body,
    login,
    make_org,
    schedule_tick,
)
from tests.portal.connections.conftest import BEXIO_MAIN, QBO_US, sandbox  # noqa: F401 - fixture
from tests.portal.sync.conftest import ledger_documents
from tests.portal.sync.rq_workers import run_queued_jobs

pytestmark = pytest.mark.e2e

#: Per ledger: the organization's country and currency, the invoice's tax rate, and the defaults to
#: choose (field → code, from the sandboxes' demo data), the due days where the ledger needs them.
LEDGERS = {
    "exact-online": {
        "country": "NL",
        "currency": "EUR",
        "rate": "21",
        "defaults": {"item": "CONSULT", "tax_code": "2", "journal": "70", "payment_condition": "30"},
    },
    "quickbooks": {
        "country": "US",
        "currency": "USD",
        "rate": "8",
        "defaults": {"item": "1", "tax_code": "2"},
    },
    "bexio": {
        "country": "CH",
        "currency": "CHF",
        "rate": "8.1",
        "defaults": {"tax_code": "UN81", "gl_account": "3200", "bank_account": "1", "payment_condition": "4"},
        "due_days": "30",
    },
}


def _connect(page: Page, live_server: str, sandbox: str, org: dict, ledger: str) -> int:  # noqa: F811
    """Connect through the ledger's own consent page; the connection is left being set up (not live)."""
    if ledger == "exact-online":
        return connect_exact(page, live_server, sandbox, org, live=False)
    start_connect(page, live_server, org, ledger)
    if ledger == "quickbooks":
        page.get_by_label("Sign in as").select_option("u-ada")
        page.get_by_label("Company to connect").select_option(QBO_US)
        page.get_by_role("button", name="Connect").click()
        return pin_company(page, re.compile("Ledgerlink Demo Inc"), live=False)
    page.get_by_label("Benutzer").select_option("max.mustermann")
    page.get_by_label("Firma").select_option(BEXIO_MAIN)
    page.get_by_role("button", name="Ja").click()
    return pin_company(page, re.compile("Mustermann"), live=False)


def _step(page: Page, key: str):
    return page.locator(f"#onboarding [data-step='{key}']")


def _expect_step(page: Page, key: str, state: str) -> None:
    expect(_step(page, key)).to_have_attribute("data-step-state", state)


@pytest.mark.parametrize("ledger", list(LEDGERS))
def test_connect_walk_the_checklist_and_go_live_nothing_pushed_before(
    app,
    live_server,
    sandbox,  # noqa: F811
    page,
    make_staff,
    ledger,
):
    spec = LEDGERS[ledger]
    org = make_org(app, f"Golive {ledger}", country=spec["country"], currency=spec["currency"])
    api = IngestApi(live_server, create_api_key(app), org["org_external_id"])
    login(page, live_server, make_staff("support"))

    # 1. Connected: the page says it is not live yet and shows the checklist; the first data run is queued.
    connection_id = _connect(page, live_server, sandbox, org, ledger)
    connection_url = f"{live_server}/connections/{connection_id}"
    expect(page.locator("#status [data-not-live]")).to_have_text("Not live yet")
    expect(page.locator("#status")).to_contain_text("nothing is pushed automatically")
    _expect_step(page, "connected", "done")
    _expect_step(page, "reference", "running")
    _expect_step(page, "live", "todo")
    expect(page.locator("#push-now")).to_have_count(0)
    screenshot(page, f"go-live-{ledger}-1-connected")

    # An invoice comes in over the API and is due at once (no sync delay) — but the connection is not live.
    settings = page.locator("#settings-box")
    settings.get_by_label("Sync delay (minutes)").fill("0")
    settings.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-box [role=status]")).to_have_text("Settings saved.")
    customer = ingest_customer(api, country=spec["country"], name=f"Golive Client {os.urandom(2).hex()}")
    number = f"GL-{os.urandom(3).hex().upper()}"
    today = date.today().isoformat()
    body = invoice_body(org["unit_id"], customer, number, today, currency=spec["currency"], tax_rate=spec["rate"])
    api.put("invoices", f"inv-{number}", body)
    assert "0 push(es) enqueued" in schedule_tick(app)

    # 2. Reference data: the first data run, worked by a worker; the checklist polls itself to "Done".
    run_queued_jobs(app)
    _expect_step(page, "reference", "done")
    assert ledger_documents(sandbox, ledger, number) == []  # the queue held no push of it
    _expect_step(page, "defaults", "todo")

    # 3. Defaults, from the link of their step.
    _step(page, "defaults").locator("[data-fix='defaults']").click()
    expect(page.get_by_role("heading", name=re.compile("Mappings"))).to_be_visible()
    for field, code in spec["defaults"].items():
        page.locator(f"#default-{field}").select_option(code)
    if spec.get("due_days"):
        page.locator("#due_days").fill(spec["due_days"])
    page.get_by_role("button", name="Save defaults").click()
    expect(page.locator("#flashes")).to_contain_text("Defaults saved.")

    # 4. "Check mappings", clean.
    page.get_by_role("button", name="Check mappings").click()
    expect(page.locator("[data-outcome='clean']")).to_contain_text("No problems")

    # 5. Customers: the ledger's customers fetched for suggestions, the mode chosen.
    page.goto(connection_url)
    _expect_step(page, "defaults", "done")
    _expect_step(page, "check", "done")
    _step(page, "customers").locator("[data-fix='customers']").click()
    page.get_by_role("button", name="Fetch ledger customers and suggest links").click()
    expect(page.locator("#flashes")).to_contain_text("Fetching the ledger's customers")
    run_queued_jobs(app)
    page.reload()
    page.get_by_label(re.compile("Create the customer in the ledger")).check()
    page.get_by_role("button", name="Save mode").click()
    expect(page.locator("#flashes")).to_contain_text("Customer mode")

    # 6. The test invoice made from the mappings.
    page.goto(connection_url)
    _expect_step(page, "customers", "done")
    _expect_step(page, "test", "todo")
    page.get_by_role("button", name="Create a test invoice").click()
    expect(page.locator("#test-result [data-outcome='created']")).to_be_visible()
    expect(page.locator("#test-result [data-totals='equal']")).to_be_visible()
    page.reload()
    for key in ("connected", "reference", "defaults", "check", "customers", "test"):
        _expect_step(page, key, "done")
    screenshot(page, f"go-live-{ledger}-2-checklist-done")

    # Still nothing of the SaaS's invoice in the ledger: the tick skips a connection that is not live.
    assert "0 push(es) enqueued" in schedule_tick(app)
    run_queued_jobs(app)
    assert ledger_documents(sandbox, ledger, number) == []

    # 7. Go live from today; the form offers the historical push for older records and asks nothing more.
    go_live = page.locator("#go-live")
    expect(go_live.get_by_role("link", name="historical push")).to_be_visible()
    expect(go_live.get_by_label(re.compile("Go live although steps"))).to_have_count(0)
    go_live.get_by_label(re.compile("Live from")).fill(f"{today}T00:00")
    go_live.get_by_role("button", name="Go live").click()
    expect(page.locator("#flashes")).to_contain_text("is live")
    expect(page.locator("#status [data-not-live]")).to_have_count(0)
    expect(page.locator("#status")).to_contain_text("Live since")
    _expect_step(page, "live", "done")
    expect(page.locator("#push-now")).to_be_visible()
    screenshot(page, f"go-live-{ledger}-3-live")

    # The scheduler's next tick pushes the invoice that waited: one document in the ledger.
    assert "1 push(es) enqueued" in schedule_tick(app)
    run_queued_jobs(app)
    assert len(ledger_documents(sandbox, ledger, number)) == 1

    # Support need not wait for the tick: "Push now" queues the push and its box follows the run.
    second = f"GL-{os.urandom(3).hex().upper()}"
    body = invoice_body(org["unit_id"], customer, second, today, currency=spec["currency"], tax_rate=spec["rate"])
    api.put("invoices", f"inv-{second}", body)
    page.get_by_role("button", name="Push now").click()
    expect(page.locator("#sync [data-sync-message]")).to_contain_text("Push queued")
    run_box = page.locator("#sync [data-run='push'] .run [data-status]")
    expect(run_box).to_have_text("queued")
    run_queued_jobs(app)
    expect(run_box).to_have_text("succeeded")  # the box polls its run
    assert len(ledger_documents(sandbox, ledger, second)) == 1
