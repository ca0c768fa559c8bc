"""A staff member logs in, searches an organization live, opens it and sees its invoices."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.e2e


def test_login_search_open_organization_and_see_invoices(app, live_server, page, make_staff, demo_data):
    from portal.extensions import db
    from portal.models import Invoice, Organization

    with app.app_context():
        org = db.session.scalars(db.select(Organization).order_by(Organization.id.desc())).first()
        newest = db.session.scalars(
            db.select(Invoice).filter_by(organization_id=org.id).order_by(Invoice.issue_date.desc(), Invoice.id.desc())
        ).first()
        org_name, invoice_number = org.name, newest.number
    user = make_staff("support")

    page.goto(f"{live_server}/organizations/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("E-mail address").fill(user["email"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Organizations")).to_be_visible()

    search = page.get_by_label("Search organizations")
    search.fill(org_name[:12])  # typing: htmx fetches the results fragment, no submit
    results = page.locator("#org-results")
    expect(results.get_by_role("link", name=org_name)).to_be_visible()
    expect(page).to_have_url(re.compile(r"q="))
    screenshot(page, "browse-search")

    results.get_by_role("link", name=org_name).click()
    expect(page.get_by_role("heading", name=org_name)).to_be_visible()
    expect(page.get_by_role("heading", name="Business units")).to_be_visible()
    page.get_by_role("navigation", name=f"Records of {org_name}").get_by_role("link", name="Invoices").click()
    expect(page.locator("#records")).to_contain_text(invoice_number)
    screenshot(page, "browse-invoices")

    page.get_by_label("Status").select_option("paid")  # filters apply as they change
    expect(page).to_have_url(re.compile(r"status=paid"))
    for badge in page.locator("#records .badge").all():
        expect(badge).to_have_text("paid")


def test_search_works_without_javascript(browser, live_server, make_staff, demo_data, app):
    from portal.extensions import db
    from portal.models import Organization

    with app.app_context():
        name = db.session.scalars(db.select(Organization.name).order_by(Organization.id)).first()
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    user = make_staff("support")
    page.goto(f"{live_server}/login")
    page.get_by_label("E-mail address").fill(user["email"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{live_server}/organizations/")
    page.get_by_label("Search organizations").fill(name)
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#org-results").get_by_role("link", name=name)).to_be_visible()
    context.close()
