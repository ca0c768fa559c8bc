"""Exopen: a SaaS non-admin asks for access, support sends a link, the Exact admin approves without an account.

Recreating the connection through a new link is refused when the approver grants another
division (the approver reads why, nothing changes) and accepted with the same division.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.journeys.conftest import (
    EXACT_NL_DIVISION,
    EXACT_NL_OTHER_DIVISION,
    EXACT_NL_USER,
    login,
    make_org,
    screenshot,
)

pytestmark = pytest.mark.e2e

REQUESTER = "controller@exopen-customer.example"


def _send_link(page: Page, live_server: str, org: dict, *, replace: bool) -> str:
    """Create a link for the unit from the organization page; return its public URL."""
    page.goto(f"{live_server}/organizations/{org['org_id']}")
    row = page.get_by_role("row", name=re.compile(re.escape(org["unit_name"])))
    row.get_by_role("link", name="Send an authorization link").click()
    expect(page.get_by_role("heading", name="Send an authorization link")).to_be_visible()
    page.get_by_label("Ledger").select_option("exact-online")
    page.get_by_label("Exact Online instance").select_option("nl")
    page.get_by_label("Expected division or company (optional)").fill(EXACT_NL_DIVISION)
    page.get_by_label("Note to the approver (why access is needed)").fill("Our controller asked to connect Exopen.")
    page.get_by_label("Requested for (optional)").fill(REQUESTER)
    if replace:
        page.get_by_label("The approval may replace this business unit's current connection").check()
    page.get_by_role("button", name="Create the link").click()
    url_field = page.locator("[data-link-url]")
    expect(url_field).to_be_visible()
    url = url_field.input_value()
    assert url.startswith(f"{live_server}/authorize/"), url
    return url


def _approve(browser: Browser, url: str, org: dict, sandbox_url: str, *, divisions: tuple[str, ...], shot: str) -> Page:
    """Open the link in a browser without a Ledgerlink session and approve at Exact; return the result page."""
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-GB")
    approver = context.new_page()
    approver.set_default_timeout(10_000)
    approver.goto(url)
    expect(approver.get_by_role("heading", name="Approve access to Exact Online")).to_be_visible()
    expect(approver.locator("[data-fact=organization]")).to_have_text(org["org_name"])
    expect(approver.locator("[data-fact=expected]")).to_have_text(EXACT_NL_DIVISION)
    expect(approver.get_by_role("link", name=re.compile("Log ?out", re.I))).to_have_count(0)
    screenshot(approver, f"{shot}-landing")
    approver.get_by_role("button", name="Continue to Exact Online").click()
    expect(approver.get_by_role("heading", name=re.compile("Exact Online"))).to_be_visible()
    assert approver.url.startswith(sandbox_url), approver.url
    approver.get_by_label("Sign in as").select_option(EXACT_NL_USER)
    for division in (EXACT_NL_DIVISION, EXACT_NL_OTHER_DIVISION):
        box = approver.get_by_label(re.compile(division))
        box.check() if division in divisions else box.uncheck()
    approver.get_by_role("button", name="Approve").click()
    return approver


def _live(app, unit_id: int) -> list[tuple[int, str, str]]:
    """Return (id, company, status) of every connection of the unit, oldest first."""
    from portal.extensions import db
    from portal.models import Connection

    with app.app_context():
        rows = db.session.scalars(db.select(Connection).filter_by(business_unit_id=unit_id).order_by(Connection.id))
        return [(c.id, c.external_company_id, c.status.value) for c in rows]


def test_exopen_shared_link_then_recreate_only_with_the_same_division(
    app, live_server, sandbox, browser, page, make_staff
):
    from portal.extensions import db
    from portal.models import AuthorizationLink, LinkEventKind, LinkStatus

    org = make_org(app, "Exopen Demo")
    support = make_staff("support")

    # 1. Support sends a link for the SaaS's non-admin user; the Exact admin approves it, no login.
    login(page, live_server, support)
    url = _send_link(page, live_server, org, replace=False)
    screenshot(page, "journey-exopen-1-link-created")
    approver = _approve(browser, url, org, sandbox, divisions=(EXACT_NL_DIVISION,), shot="journey-exopen-2")
    try:
        expect(approver.get_by_role("heading", name="Access granted")).to_be_visible()
        expect(approver.locator("[data-outcome=completed]")).to_contain_text(EXACT_NL_DIVISION)
        screenshot(approver, "journey-exopen-3-granted")
        approver.goto(url)  # a completed link stops working
        expect(approver.get_by_role("heading", name="Access granted")).to_have_count(0)
        expect(approver.get_by_role("heading", name="This link was already used")).to_be_visible()
    finally:
        approver.context.close()
    [(first_id, company, status)] = _live(app, org["unit_id"])
    assert (company, status) == (EXACT_NL_DIVISION, "connected")
    with app.app_context():
        link = db.session.scalars(db.select(AuthorizationLink)).one()
        assert link.status is LinkStatus.completed and link.connection_id == first_id
        assert link.requested_for == REQUESTER
        first_link_id = link.id

    # 2. Support sees it live, with the completed link.
    page.goto(f"{live_server}/connections/{first_id}")
    expect(page.locator("[data-status]").first).to_have_text("Connected")
    expect(page.locator(f"#link-{first_link_id} [data-link-status]")).to_have_text("Completed")
    page.get_by_role("button", name="Run checks").click()
    expect(page.locator("#test-result")).to_contain_text("All checks passed")
    screenshot(page, "journey-exopen-4-live")

    # 3. Recreating the connection: a new link may replace it, but only with the same division.
    url = _send_link(page, live_server, org, replace=True)
    approver = _approve(browser, url, org, sandbox, divisions=(EXACT_NL_OTHER_DIVISION,), shot="journey-exopen-5")
    try:
        expect(approver.locator("[data-outcome=refused]")).to_be_visible()
        expect(approver.locator(".refusal")).to_contain_text(
            f"You granted access to Ledgerlink Services B.V. ({EXACT_NL_OTHER_DIVISION}) instead, so nothing was "
            f"changed. Open the link again and choose Ledgerlink Demo B.V. ({EXACT_NL_DIVISION}) at Exact Online."
        )
        screenshot(approver, "journey-exopen-6-other-division-refused")
    finally:
        approver.context.close()
    assert _live(app, org["unit_id"]) == [(first_id, EXACT_NL_DIVISION, "connected")]
    with app.app_context():
        link = db.session.scalars(db.select(AuthorizationLink).where(AuthorizationLink.id != first_link_id)).one()
        assert link.status.usable and link.connection_id is None
        assert LinkEventKind.wrong_division_attempted in [e.kind for e in link.events]
        second_link_id = link.id
    page.goto(f"{live_server}/authorization-links/{second_link_id}")
    attempt = page.locator("tr[data-event='wrong_division_attempted']")
    expect(attempt).to_have_count(1)
    expect(attempt).to_contain_text(f"not the expected {EXACT_NL_DIVISION}")
    expect(page.locator("[data-link-status]")).not_to_have_text("Completed")
    screenshot(page, "journey-exopen-6b-support-sees-the-attempt")

    approver = _approve(browser, url, org, sandbox, divisions=(EXACT_NL_DIVISION,), shot="journey-exopen-7")
    try:
        expect(approver.get_by_role("heading", name="Access granted")).to_be_visible()
        expect(approver.locator("[data-outcome=completed]")).to_contain_text(EXACT_NL_DIVISION)
        screenshot(approver, "journey-exopen-8-same-division-accepted")
    finally:
        approver.context.close()
    # The same division re-authorizes the existing connection in place: same id, its data kept.
    connections = _live(app, org["unit_id"])
    assert connections == [(first_id, EXACT_NL_DIVISION, "connected")], connections
    new_id = first_id
    with app.app_context():
        link = db.session.get(AuthorizationLink, second_link_id)
        assert link.status is LinkStatus.completed and link.connection_id == new_id
    page.goto(f"{live_server}/connections/{new_id}")
    expect(page.locator("[data-status]").first).to_have_text("Connected")
    expect(page.get_by_role("heading", level=1)).to_contain_text(EXACT_NL_DIVISION)
    page.get_by_role("button", name="Run checks").click()
    expect(page.locator("#test-result")).to_contain_text("All checks passed")
    screenshot(page, "journey-exopen-9-recreated")
