"""Support previews a back-fill, starts it, watches the progress poll until the reconciliation shows."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.portal.connections.conftest import flow, sandbox  # noqa: F401 - fixtures
from tests.portal.history.conftest import backfill_of, backfill_settings, old_invoices  # noqa: F401 - fixtures
from tests.portal.sync.conftest import connect, make_invoice, org_unit  # noqa: F401 - fixtures

pytestmark = pytest.mark.e2e


def test_preview_start_watch_and_reconcile(app, live_server, page, make_staff, connect, old_invoices, backfill_of):  # noqa: F811
    connection_id = connect("exact-online")
    numbers = old_invoices(5)
    user = make_staff("ops")

    page.goto(f"{live_server}/connections/{connection_id}")
    page.get_by_label("E-mail address").fill(user["email"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Historical push").click()
    expect(page.get_by_role("heading", name=re.compile("Historical push"))).to_be_visible()

    page.get_by_label("From (invoice date)").fill("2025-01-01")
    page.get_by_label("To (invoice date)").fill("2025-12-31")
    page.get_by_label("Payments").uncheck()
    page.get_by_role("button", name="Preview").click()
    counts = page.locator("#preview-counts tr[data-kind='invoice']")
    expect(counts.locator("[data-count='create']")).to_have_text("5")
    expect(page.locator("#estimate")).to_contain_text("Exact Online allows 60 calls a minute")
    screenshot(page, "history-preview")

    page.get_by_role("button", name="Start the push").click()
    expect(page.get_by_role("heading", name=re.compile(r"Back-fill #\d+"))).to_be_visible()
    box = page.locator("article.run")
    expect(box).to_have_attribute("data-status", "queued")
    screenshot(page, "history-queued")
    backfill_id = int(re.search(r"/history/(\d+)", page.url).group(1))

    backfill_of.run(backfill_id)  # the history worker picks the job up

    # The component polls itself every 2 s and stops once finished.
    expect(box).to_have_attribute("data-status", "succeeded", timeout=15_000)
    expect(box.locator("tr[data-kind='invoice'] [data-count='created']")).to_have_text("5")
    expect(page.locator("#reconciliation tr[data-kind='invoice']")).to_have_attribute("data-matches", "true")
    expect(box).not_to_have_attribute("hx-trigger", re.compile("every"))
    # The record list reloads itself when the progress reports the end.
    expect(page.locator("#records tr[data-outcome='created']")).to_have_count(len(numbers) + 1)
    screenshot(page, "history-done")

    page.locator("#records-filter select[name='outcome']").select_option("created")
    page.locator("#records-filter select[name='kind']").select_option("invoice")
    expect(page.locator("#records tr[data-outcome='created']")).to_have_count(len(numbers))
    page.locator("#records-filter select[name='outcome']").select_option("blocked")
    expect(page.locator("#records")).to_contain_text("No records match the filter")
    screenshot(page, "history-records")
