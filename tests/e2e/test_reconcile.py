"""Ops reconciles a connection: an invoice missing in the ledger is found and re-pushed from the browser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.portal.oplog.conftest import connect, flow, make_invoice, org_unit, sandbox  # noqa: F401
from tests.portal.sync.rq_workers import run_queued_jobs

pytestmark = pytest.mark.e2e


def test_a_missing_invoice_is_found_and_re_pushed(app, live_server, page, make_staff, connect, make_invoice):  # noqa: F811
    connection_id = connect("bexio")
    _, number = make_invoice()
    user = make_staff("ops")

    page.goto(f"{live_server}/login")
    page.get_by_label("E-mail address").fill(user["email"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    page.goto(f"{live_server}/connections/{connection_id}")
    page.get_by_role("button", name="Reconcile").click()
    expect(page.get_by_role("heading", name="Reconciliation")).to_be_visible()
    page.get_by_role("button", name="Compare").click()

    summary = page.locator("#summary-invoice")
    expect(summary.locator('[data-count="missing"]')).to_have_text("1")
    missing_row = page.get_by_role("row", name=re.compile(re.escape(number)))
    expect(missing_row).to_be_visible()
    expect(missing_row.get_by_role("checkbox")).to_be_checked()
    screenshot(page, "reconcile-missing")

    page.get_by_role("button", name="Re-push the chosen invoices").click()
    expect(page.locator("#flashes")).to_contain_text(f"1 invoice(s) marked for a re-push ({number})")

    run_queued_jobs(app)  # the worker takes the queued push
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#summary-invoice").locator('[data-count="missing"]')).to_have_text("0")
    expect(page.locator("[id^=missing-invoice-]")).to_have_count(0)
    screenshot(page, "reconcile-matched")
