"""Browser and job steps the bexio and QuickBooks journeys share (the shared journey conftest has the rest)."""

from __future__ import annotations

import os
import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import search
from tests.e2e.journeys.conftest import IngestApi, go_live_now, latest_run, schedule_tick
from tests.portal.sync.rq_workers import run_queued_jobs


def start_connect(page: Page, live_server: str, org: dict, ledger: str) -> None:
    """From the organization page, start connecting its unit to ``ledger`` (ends on the ledger's consent page)."""
    page.goto(f"{live_server}/organizations/{org['org_id']}")
    row = page.get_by_role("row", name=re.compile(re.escape(org["unit_name"])))
    row.get_by_role("link", name="Connect ledger").click()
    page.get_by_label("Ledger").select_option(ledger)
    page.get_by_role("button", name="Continue to the ledger").click()


def pin_company(page: Page, company_name: str, *, live: bool = True) -> int:
    """Pick the company the consent reached and pin it; return the new connection's id.

    With ``live`` (the default) the connection is taken live at once, so that the journey's pushes happen.
    """
    expect(page.get_by_role("heading", name="Pick the company")).to_be_visible()
    page.get_by_label(company_name).check()
    page.get_by_role("button", name="Pin and connect").click()
    expect(page.locator("[data-status]").first).to_have_text("Connected")
    match = re.search(r"/connections/(\d+)$", page.url)
    assert match, page.url
    if live:
        go_live_now(page)
    return int(match.group(1))


def run_checks(page: Page) -> None:
    """Run the connection test on the connection page: every check passes."""
    page.get_by_role("button", name="Run checks").click()
    expect(page.locator("#test-result [data-outcome]")).to_have_attribute("data-outcome", "ok")
    expect(page.locator("#test-result")).to_contain_text("All checks passed")
    expect(page.locator("#test-result li.problem")).to_have_count(0)


def open_mappings_and_read(page: Page, ledger_name: str) -> None:
    """Open the mappings of the connection shown and read the ledger's reference data."""
    page.get_by_role("button", name="Mappings").click()
    expect(page.get_by_role("heading", name=re.compile("Mappings"))).to_be_visible()
    page.get_by_role("button", name="Read reference data now").click()
    expect(page.locator("#flashes")).to_contain_text(f"Reference data read from {ledger_name}")
    page.wait_for_load_state("networkidle")


def pick(page: Page, field: str, query: str, value: str, *, matches: int = 1) -> None:
    """Type in a default's pick-list search and choose ``value`` among the ``matches`` options the server sent."""
    search(page.locator(f"#default-{field}-box input[type=search]"), query)
    select = page.locator(f"#default-{field}")
    expect(select.locator("option")).to_have_count(1 + matches)  # the blank choice and the matches
    expect(select.locator(f"option[value='{value}']")).to_have_count(1)
    select.select_option(value)


def ingest_customer(api: IngestApi, *, country: str, name: str) -> str:
    """PUT a customer through the API; return its external id."""
    external_id = f"cus-{os.urandom(3).hex()}"
    api.put(
        "customers",
        external_id,
        {
            "name": name,
            "email": "billing@journey.example",
            "street": "Main Street 1",
            "city": "Town",
            "country": country,
        },
    )
    return external_id


def push_due_records(app, connection_id: int) -> dict:
    """Run the scheduler's tick (it enqueues the connection's push) and work the queue; return the run's counts."""
    schedule_tick(app)
    run_queued_jobs(app)
    run = latest_run(app, "incremental")
    assert run["status"] == "succeeded", run
    return run["counts"]


def pull_payments(app, connection_id: int) -> dict:
    """Enqueue the connection's payments pull (as the tick does once it is due), work it; return its counts."""
    from portal.extensions import db
    from portal.models import Connection
    from portal.sync import schedule

    with app.app_context():
        assert schedule.enqueue_payments_pull(db.session.get(Connection, connection_id), reason="Pull now.")
    run_queued_jobs(app)
    run = latest_run(app, "payment_poll")
    assert run["status"] == "succeeded", run
    return run["counts"]
