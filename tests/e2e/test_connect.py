"""Support connects a business unit to Exact Online through the ledger's own consent page."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.e2e


def test_connect_exact_through_the_consent_page(app, live_server, sandbox_server, page, make_staff, demo_data):
    from portal.extensions import db
    from portal.models import BusinessUnit, Connection, ConnectionStatus

    requests.post(f"{sandbox_server}/_control/reset", timeout=10).raise_for_status()
    with app.app_context():
        unit = db.session.scalars(db.select(BusinessUnit).order_by(BusinessUnit.id)).first()
        org_id, unit_name = unit.organization_id, unit.name
    user = make_staff("support")

    page.goto(f"{live_server}/login")
    page.get_by_label("E-mail address").fill(user["email"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    page.goto(f"{live_server}/organizations/{org_id}")
    page.get_by_role("row", name=re.compile(re.escape(unit_name))).get_by_role("link", name="Connect ledger").click()

    page.get_by_label("Ledger").select_option("exact-online")
    page.get_by_label("Exact Online instance").select_option("nl")
    page.get_by_role("button", name="Continue to the ledger").click()

    # The sandbox's consent page: a different site, as at start.exactonline.nl.
    expect(page.get_by_role("heading", name=re.compile("Exact Online"))).to_be_visible()
    assert page.url.startswith(sandbox_server)
    page.get_by_label("Sign in as").select_option("jan.devries")
    page.get_by_label(re.compile("3010002")).uncheck()
    screenshot(page, "connect-consent")
    page.get_by_role("button", name="Approve").click()

    # Back in Ledgerlink: pick the division to pin; the excluded ones say why.
    expect(page.get_by_role("heading", name="Pick the division")).to_be_visible()
    expect(page.get_by_text("not usable").first).to_be_visible()
    page.get_by_label(re.compile("Ledgerlink Demo B.V.")).check()
    screenshot(page, "connect-pick")
    page.get_by_role("button", name="Pin and connect").click()

    expect(page.locator("[data-status]").first).to_have_text("Connected")
    expect(page.get_by_role("heading", level=1)).to_contain_text("3010001")
    page.get_by_role("button", name="Run checks").click()
    expect(page.locator("#test-result")).to_contain_text("All checks passed")
    screenshot(page, "connect-connected")

    with app.app_context():
        connection = db.session.scalars(db.select(Connection)).one()
        assert connection.status is ConnectionStatus.connected
        assert connection.external_company_id == "3010001" and connection.region == "nl"
