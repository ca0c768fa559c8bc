"""In Chromium: an admin manages staff on the Staff page; "Keep me logged in" ends at logout for good."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.e2e


def _log_in(page, live_server, user, *, remember: bool = False) -> None:
    page.goto(f"{live_server}/login")
    page.get_by_label("E-mail address").fill(user["email"])
    page.get_by_label("Password").fill(user["password"])
    if remember:
        page.get_by_label("Keep me logged in on this computer").check()
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_an_admin_adds_changes_and_deactivates_a_staff_member(live_server, page, browser, make_staff, demo_data):
    admin = make_staff("admin")
    _log_in(page, live_server, admin)
    page.get_by_role("link", name="Staff").click()
    expect(page.get_by_role("heading", name="Staff", exact=True)).to_be_visible()

    page.get_by_label("E-mail address", exact=True).fill("new.colleague@example.test")
    page.get_by_label("Name", exact=True).fill("New Colleague")
    page.get_by_label("Role", exact=True).select_option("support")
    page.get_by_role("button", name="Add staff member").click()
    notice = page.locator("#new-password")
    expect(notice).to_contain_text("shown this once")
    password = notice.locator("code").inner_text()
    screenshot(page, "staff-added")

    # The new colleague logs in elsewhere, then the admin makes them ops and deactivates them.
    other = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _log_in(other, live_server, {"email": "new.colleague@example.test", "password": password})
    row = page.locator("tr", has_text="new.colleague@example.test")
    row.get_by_label("New role of new.colleague@example.test").select_option("ops")
    row.get_by_role("button", name="Change role").click()
    expect(page.locator(".flash-success")).to_contain_text("is now ops")
    row = page.locator("tr", has_text="new.colleague@example.test")
    expect(row).to_contain_text("ops")
    row.get_by_role("button", name="Deactivate").click()
    expect(page.locator("tr", has_text="new.colleague@example.test")).to_contain_text("Deactivated")
    screenshot(page, "staff-deactivated")
    other.goto(f"{live_server}/organizations/")
    expect(other).to_have_url(re.compile(r"/login"))
    expect(other.locator("#flashes")).to_contain_text("Your session ended")
    other.context.close()


def test_logout_with_keep_me_logged_in_leaves_no_way_back_in(live_server, page, browser, make_staff, demo_data):
    user = make_staff("support")
    _log_in(page, live_server, user, remember=True)
    cookies = page.context.cookies()
    names = {c["name"] for c in cookies}
    assert {"ledgerlink_session", "remember_token"} <= names
    screenshot(page, "logout-before")

    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#flashes")).to_contain_text("You are logged out")
    assert "remember_token" not in {c["name"] for c in page.context.cookies()}
    page.goto(f"{live_server}/organizations/")
    expect(page).to_have_url(re.compile(r"/login"))
    screenshot(page, "logout-after")

    # Someone who copied the cookies before the logout gets the login page too.
    thief = browser.new_context()
    thief.add_cookies([c for c in cookies if c["name"] in ("ledgerlink_session", "remember_token")])
    stolen = thief.new_page()
    stolen.goto(f"{live_server}/organizations/")
    expect(stolen).to_have_url(re.compile(r"/login"))
    thief.close()
