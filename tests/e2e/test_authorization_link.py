"""Support sends an authorization link; a person with no Ledgerlink session approves at the ledger."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.e2e


def test_support_creates_a_link_and_a_fresh_browser_approves_it(
    app, live_server, sandbox_server, browser, page, make_staff, demo_data
):
    from portal.extensions import db
    from portal.models import AuthorizationLink, BusinessUnit, Connection, ConnectionStatus, LinkStatus

    requests.post(f"{sandbox_server}/_control/reset", timeout=10).raise_for_status()
    with app.app_context():
        unit = db.session.scalars(db.select(BusinessUnit).order_by(BusinessUnit.id)).first()
        org_id, unit_name, org_name = unit.organization_id, unit.name, unit.organization.name
    user = make_staff("support")

    # Support: log in, open the organization, create the link.
    page.goto(f"{live_server}/login")
    page.get_by_label("E-mail address").fill(user["email"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    page.goto(f"{live_server}/organizations/{org_id}")
    row = page.get_by_role("row", name=re.compile(re.escape(unit_name)))
    row.get_by_role("link", name="Send an authorization link").click()
    expect(page.get_by_role("heading", name="Send an authorization link")).to_be_visible()
    page.get_by_label("Ledger").select_option("exact-online")
    page.get_by_label("Exact Online instance").select_option("nl")
    page.get_by_label("Expected division or company (optional)").fill("3010001")
    page.get_by_label("Note to the approver (why access is needed)").fill("So your invoices are booked for you.")
    page.get_by_role("button", name="Create the link").click()
    url_field = page.locator("[data-link-url]")
    expect(url_field).to_be_visible()
    url = url_field.input_value()
    assert url.startswith(live_server + "/authorize/")
    screenshot(page, "link-created")

    # The approver: a fresh browser context, no session, in Dutch.
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="nl-NL")
    try:
        approver = context.new_page()
        approver.set_default_timeout(10_000)
        approver.goto(url)
        expect(approver.get_by_role("heading", name="Toegang tot Exact Online goedkeuren")).to_be_visible()
        expect(approver.locator("[data-fact=organization]")).to_have_text(org_name)
        expect(approver.get_by_text("So your invoices are booked for you.")).to_be_visible()
        screenshot(approver, "link-approver-landing")
        approver.get_by_role("button", name="Verder naar Exact Online").click()

        # The sandbox's own consent page (another site, as start.exactonline.nl would be).
        expect(approver.get_by_role("heading", name=re.compile("Exact Online"))).to_be_visible()
        assert approver.url.startswith(sandbox_server)
        approver.get_by_label("Sign in as").select_option("jan.devries")
        screenshot(approver, "link-approver-consent")
        approver.get_by_role("button", name="Approve").click()

        expect(approver.get_by_role("heading", name="Toegang verleend")).to_be_visible()
        expect(approver.locator("[data-outcome=completed]")).to_contain_text("3010001")
        screenshot(approver, "link-approver-done")
    finally:
        context.close()

    with app.app_context():
        link = db.session.scalars(db.select(AuthorizationLink)).one()
        connection = db.session.get(Connection, link.connection_id)
        assert link.status is LinkStatus.completed
        assert connection.status is ConnectionStatus.connected and connection.external_company_id == "3010001"
        connection_id = connection.id

    # Support sees the connection live and the link completed on the connection page.
    page.goto(f"{live_server}/connections/{connection_id}")
    expect(page.locator("[data-status]").first).to_have_text("Connected")
    expect(page.locator(f"#link-{link.id} [data-link-status]")).to_have_text("Completed")
    screenshot(page, "link-connection-page")
