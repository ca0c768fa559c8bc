"""Shared steps of the onboarding journeys: log in, ingest over the API, run queued jobs, drive the sandbox.

Every helper works against the real pieces a journey crosses: the portal served over HTTP
(``live_server``), the ingestion API with a key made by ``flask api-clients create``, RQ jobs
worked by an in-process burst worker on the test Redis, and the sandbox's ``/_control`` hooks.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.conftest import screenshot, search
from tests.portal.connections.conftest import sandbox  # noqa: F401 - fixture: the sandbox reset to its demo data

#: Demo companies of the sandboxes (sandbox/*/README.md).
EXACT_NL_DIVISION = "3010001"
EXACT_NL_OTHER_DIVISION = "3010002"
EXACT_NL_USER = "jan.devries"


def login(page: Page, live_server: str, user: dict, path: str = "/") -> None:
    """Log ``user`` (a ``make_staff`` dict) in through the login form and land on ``path``."""
    page.goto(f"{live_server}/login")
    page.get_by_label("E-mail address").fill(user["email"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    if path != "/":
        page.goto(f"{live_server}{path}")


def connect_exact(
    page: Page,
    live_server: str,
    sandbox_url: str,
    org: dict,
    *,
    divisions: tuple[str, ...] = (EXACT_NL_DIVISION,),
    pick: str = EXACT_NL_DIVISION,
    shot: str | None = None,
    live: bool = True,
) -> int:
    """Connect ``org``'s business unit to Exact NL from its organization page; return the connection id.

    The logged-in user starts the connect, approves on the sandbox's consent page as
    :data:`EXACT_NL_USER` granting ``divisions``, and pins division ``pick``. ``shot`` names the
    screenshots of the consent and pick pages (``<shot>-consent``, ``<shot>-pick``). With ``live``
    (the default) the connection is then taken live at once (:func:`go_live_now`), so that the
    journey's pushes happen; journeys about the go-live gate pass ``live=False``.
    """
    page.goto(f"{live_server}/organizations/{org['org_id']}")
    row = page.get_by_role("row", name=re.compile(re.escape(org["unit_name"])))
    row.get_by_role("link", name="Connect ledger").click()
    page.get_by_label("Ledger").select_option("exact-online")
    page.get_by_label("Exact Online instance").select_option("nl")
    page.get_by_role("button", name="Continue to the ledger").click()
    expect(page.get_by_role("heading", name=re.compile("Exact Online"))).to_be_visible()
    assert page.url.startswith(sandbox_url), page.url
    page.get_by_label("Sign in as").select_option(EXACT_NL_USER)
    for division in (EXACT_NL_DIVISION, EXACT_NL_OTHER_DIVISION):
        box = page.get_by_label(re.compile(division))
        box.check() if division in divisions else box.uncheck()
    if shot:
        screenshot(page, f"{shot}-consent")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", name="Pick the division")).to_be_visible()
    page.locator(f"input[name=company][value='{pick}']").check()
    if shot:
        screenshot(page, f"{shot}-pick")
    page.get_by_role("button", name="Pin and connect").click()
    expect(page.locator("[data-status]").first).to_have_text("Connected")
    expect(page.get_by_role("heading", level=1)).to_contain_text(pick)
    match = re.search(r"/connections/(\d+)$", page.url)
    assert match, page.url
    if live:
        go_live_now(page)
    return int(match.group(1))


def go_live_now(page: Page) -> None:
    """On the connection page shown, go live from its connection date, confirming the steps still open."""
    form = page.locator("#go-live")
    box = form.get_by_label(re.compile("Go live although steps"))
    if box.count():
        box.check()
    form.get_by_role("button", name="Go live").click()
    expect(page.locator("#flashes")).to_contain_text("is live")
    expect(page.locator("#status [data-not-live]")).to_have_count(0)


def pick_option(page: Page, select_id: str, query: str, value: str) -> None:
    """Search a mappings pick-list (``default-item``, ``override-tax_code`` …) and choose ``value``.

    Waits for the server's answer to the search before choosing, so the swap of the options
    cannot undo the choice.
    """
    box = page.locator(f"#{select_id}-box")
    select = page.locator(f"#{select_id}")
    # The answer's options replace the select's after the response has arrived: mark the select
    # when htmx has settled them, and choose only then, so the swap cannot undo the choice.
    select.evaluate(
        "el => { el.dataset.settled = '';"
        " el.addEventListener('htmx:afterSettle', () => { el.dataset.settled = '1'; }, {once: true}); }"
    )
    for attempt in range(3):
        try:
            with page.expect_response(lambda r: "/mappings/options/" in r.url, timeout=10_000):
                search(box.locator("input[type=search]"), query)
            break
        except PlaywrightTimeoutError:
            # A search the browser dropped (the box swapped while it was sent) is simply sent again,
            # as a user would press Enter again; a third silence fails the journey.
            if attempt == 2:
                raise
    expect(select).to_have_attribute("data-settled", "1")
    expect(select.locator(f"option[value='{value}']")).to_have_count(1)
    select.select_option(value)
    expect(select).to_have_value(value)


def map_tax_rate(page: Page, rate: str, code: str, *, kind: str | None = None) -> None:
    """On the mappings page, map the SaaS tax ``rate`` (at 0 %: of ``kind``) to the ledger's tax ``code``."""
    table = page.locator("#tax-table")
    table.get_by_label("Rate (%)").fill(rate)
    if kind:
        table.get_by_label("Kind at 0 %").select_option(kind)
    table.locator("#new_code").select_option(code)
    # The page the save redirects to, loaded: a flash of an earlier save is on the page already, so
    # waiting for the flash alone could let the next click land on the page being left.
    with page.expect_navigation(url=re.compile(r"/mappings(#tax-table)?$")):
        table.get_by_role("button", name="Save tax table").click()
    expect(page.locator("#flashes")).to_contain_text("Tax table saved: 1 rate(s) changed.")
    page.wait_for_load_state("networkidle")


def line(description: str, quantity: str, unit_price: str, tax_rate: str, **more: Any) -> dict:
    """Return one line of an ingestion body (positions are set by :func:`invoice_body`)."""
    return {"description": description, "quantity": quantity, "unit_price": unit_price, "tax_rate": tax_rate, **more}


def reset_sandbox(sandbox_url: str) -> None:
    """Put every sandbox ledger back to its demo data."""
    requests.post(f"{sandbox_url}/_control/reset", timeout=10).raise_for_status()


def sandbox_control(sandbox_url: str, path: str, body: dict | None = None) -> dict:
    """POST a sandbox test control (``exact-online/mark_paid``, ``faults`` …); return its JSON."""
    response = requests.post(f"{sandbox_url}/_control/{path}", json=body or {}, timeout=10)
    assert response.status_code < 300, response.text
    return response.json()


def ledger_dump(sandbox_url: str, provider: str, company: str) -> dict:
    """Return the sandbox's JSON view of one company's ledger."""
    response = requests.get(f"{sandbox_url}/_control/ledger/{provider}/{company}", timeout=10)
    response.raise_for_status()
    return response.json()


def mark_paid(sandbox_url: str, provider: str, **body: Any) -> dict:
    """Mark an invoice paid in the sandbox ledger, as the customer's bookkeeper would.

    Exact: ``division=3010001, invoice=<number or id>``; QuickBooks: ``realm_id=…, invoice_id=…``;
    bexio: see sandbox/bexio/README.md.
    """
    return sandbox_control(sandbox_url, f"{provider}/mark_paid", body)


def make_org(app, name: str, *, country: str = "NL", currency: str = "EUR") -> dict:
    """Commit an organization with one business unit; return its ids and names."""
    from portal.extensions import db
    from portal.models import BusinessUnit, Organization

    with app.app_context():
        org = Organization(external_id=f"org-{os.urandom(3).hex()}", name=name, country=country)
        unit = BusinessUnit(organization=org, name=f"{name} {country}", country=country, currency=currency)
        db.session.add_all([org, unit])
        db.session.commit()
        return {
            "org_id": org.id,
            "org_external_id": org.external_id,
            "org_name": org.name,
            "unit_id": unit.id,
            "unit_name": unit.name,
        }


def create_api_key(app, scopes: str = "ingest") -> str:
    """Create an API client with ``flask api-clients create`` and return the key it prints once."""
    name = f"saas-{os.urandom(3).hex()}"
    result = app.test_cli_runner().invoke(args=["api-clients", "create", "--name", name, "--scopes", scopes])
    assert result.exit_code == 0, result.output
    assert f"Created API client {name}" in result.output
    return result.output.strip().splitlines()[-1]


class IngestApi:
    """The SaaS's side: ``/api/v1/organizations/<org>/…`` over real HTTP with a bearer key."""

    def __init__(self, live_server: str, key: str, org_external_id: str) -> None:
        self.base = f"{live_server}/api/v1/organizations/{org_external_id}"
        self.headers = {"Authorization": f"Bearer {key}"}

    def put(self, resource: str, external_id: str, body: dict) -> dict:
        """PUT one record (``customers``, ``products``, ``invoices``, ``credit-notes``, ``payments``)."""
        response = requests.put(f"{self.base}/{resource}/{external_id}", json=body, headers=self.headers, timeout=10)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def get(self, resource: str, external_id: str) -> dict:
        """GET one record with its ``ledger`` part (invoices and credit notes)."""
        response = requests.get(f"{self.base}/{resource}/{external_id}", headers=self.headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()


def invoice_body(
    unit_id: int,
    customer: str,
    number: str,
    issue_date: str,
    *,
    product: str | None = None,
    quantity: str = "2",
    unit_price: str = "100.00",
    tax_rate: str = "21",
    currency: str = "EUR",
    due_date: str | None = None,
    more_lines: tuple[dict, ...] = (),
) -> dict:
    """Return an ingestion body of an invoice: one line of hours, then ``more_lines`` (see :func:`line`)."""
    first = {
        "description": "Consulting hours",
        "quantity": quantity,
        "unit_price": unit_price,
        "tax_rate": tax_rate,
        "product": product,
    }
    return {
        "business_unit": unit_id,
        "number": number,
        "customer": customer,
        "issue_date": issue_date,
        "due_date": due_date or issue_date,
        "currency": currency,
        "lines": [{**x, "position": i} for i, x in enumerate([first, *more_lines], start=1)],
    }


def credit_note_body(
    invoice: str,
    number: str,
    issue_date: str,
    *,
    product: str | None = None,
    quantity: str = "1",
    unit_price: str = "100.00",
    tax_rate: str = "21",
    currency: str = "EUR",
    reason: str = "Hours not worked",
) -> dict:
    """Return an ingestion body of a one-line credit note of ``invoice``."""
    return {
        "invoice": invoice,
        "number": number,
        "issue_date": issue_date,
        "currency": currency,
        "reason": reason,
        "lines": [
            {
                "position": 1,
                "description": "Credit for hours",
                "quantity": quantity,
                "unit_price": unit_price,
                "tax_rate": tax_rate,
                "product": product,
            }
        ],
    }


def schedule_tick(app, *, minutes_later: int = 0) -> str:
    """Run the scheduler's tick (what cron runs every minute); return what it did in the CLI's words.

    ``minutes_later`` runs the tick as cron would that many minutes from now (a payments pull
    waits its interval after the connection's start or the last pull).
    """
    if not minutes_later:
        result = app.test_cli_runner().invoke(args=["schedule", "tick"])
        assert result.exit_code == 0, result.output
        return result.output
    from portal.sync import schedule

    with app.app_context():
        done = schedule.tick(datetime.now(UTC) + timedelta(minutes=minutes_later))
    return (
        f"{len(done.enqueued)} push(es) enqueued, {len(done.already_queued)} already queued, "
        f"{done.not_due} connection(s) with nothing due, {len(done.payments_enqueued)} payments pull(s) enqueued."
    )


def latest_run(app, kind: str) -> dict:
    """Return the newest SyncRun of ``kind`` (a SyncRunKind value) as a dict of status, counts, message."""
    from portal.extensions import db
    from portal.models import SyncRun, SyncRunKind

    with app.app_context():
        run = db.session.scalars(
            db.select(SyncRun).where(SyncRun.kind == SyncRunKind(kind)).order_by(SyncRun.id.desc())
        ).first()
        assert run is not None, f"no {kind} run"
        return {"id": run.id, "status": run.status.value, "counts": dict(run.counts or {}), "message": run.message}
