"""Browser fixtures: the portal served over HTTP and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.sandbox_server import ServedApp

# Assertions wait for htmx answers; on a loaded CI machine a live search can take a few seconds.
expect.set_options(timeout=15_000)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def live_server(app):
    """The portal app served by waitress on a free port; yields its base URL."""
    served = ServedApp(app, threads=8)
    yield served.url
    served.close()


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium (a missing browser is a failure, not a skip)."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(executable).exists(), "Chromium is required for browser tests: apt-get install chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser context and page; a screenshot is kept if the test fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"FAILED-{request.node.name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def screenshot(page, name: str) -> None:
    """Save a full-page screenshot under test-results/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def search(box, query: str) -> None:
    """Put ``query`` in a live-search box and fire its "search" trigger: exactly one request.

    This is what pressing Enter in the box does. Setting the value without an input event keeps
    htmx's delayed "input changed" trigger from sending a second request that could swap the
    options again after a choice was made.
    """
    wait_for_htmx(box)
    box.evaluate("(element, value) => { element.value = value; }", query)
    box.dispatch_event("search")


def wait_for_htmx(element) -> None:
    """Wait until htmx has processed ``element`` (set up its triggers), as after a swap brought it in.

    An event dispatched to an element htmx has not processed yet is lost: no request is sent.
    """
    element.page.wait_for_function(
        "element => Boolean(element['htmx-internal-data'] && element['htmx-internal-data'].initHash)",
        arg=element.element_handle(),
    )
