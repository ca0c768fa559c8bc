"""Layout at 1024 px: a margin to the window's edge, a filter bar of labelled fields, light colours."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.journeys.conftest import login

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_ops_connections_at_1024_px(live_server, page, make_staff, scheme):
    page.set_viewport_size({"width": 1024, "height": 768})
    page.emulate_media(color_scheme=scheme)
    login(page, live_server, make_staff("ops"), "/ops/connections")
    heading = page.get_by_role("heading", name="Connections", exact=True)
    expect(heading).to_be_visible()
    assert heading.bounding_box()["x"] >= 16  # not against the window's edge

    for name in ("Provider", "Region", "Status", "Sort"):
        expect(page.get_by_label(name, exact=True)).to_be_visible()
    button = page.get_by_role("button", name="Filter")
    box = button.bounding_box()
    assert box["width"] < 200 and box["height"] < 80, box  # a normal button, not a page-wide oval
    page.get_by_label("Provider", exact=True).select_option("bexio")
    expect(page).to_have_url(re.compile(r"provider=bexio"))

    # Pinned to light: the same colours whatever the system prefers.
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), background
    screenshot(page, f"layout-1024-{scheme}")
