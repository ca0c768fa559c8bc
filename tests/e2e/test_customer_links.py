"""Support opens the customer-link suggestions, confirms them in bulk and sees the links."""

from __future__ import annotations

import os
import re

import pytest
import requests
from playwright.sync_api import expect

from tests.conftest import csrf_token_of
from tests.e2e.conftest import screenshot
from tests.portal.connections.conftest import BEXIO_MAIN, Flow

pytestmark = pytest.mark.e2e


def test_open_suggestions_confirm_in_bulk_and_see_the_links(
    app, live_server, sandbox_server, page, client, make_staff, login
):
    from jobs.customers import suggest_links
    from portal.extensions import db
    from portal.models import BusinessUnit, Customer, Organization, SyncRun, SyncRunKind
    from portal.models.customer_link import CustomerLink

    requests.post(f"{sandbox_server}/_control/reset", timeout=10).raise_for_status()
    with app.app_context():
        org = Organization(external_id=f"org-{os.urandom(3).hex()}", name="Browser Linktest", country="CH")
        unit = BusinessUnit(organization=org, name="Browser Linktest CH", country="CH", currency="CHF")
        db.session.add_all([org, unit])
        db.session.flush()
        db.session.add_all(
            [
                Customer(organization_id=org.id, external_id="E-1", name="Societe Generale de Geneve", country="CH"),
                Customer(organization_id=org.id, external_id="E-2", name="Cafe Elan", country="CH"),
                Customer(
                    organization_id=org.id,
                    external_id="E-3",
                    name="Meier Treuhand",
                    email="buchhaltung@meier-treuhand.example",
                    country="CH",
                ),
                Customer(organization_id=org.id, external_id="E-4", name="Nobody Known", country="CH"),
            ]
        )
        db.session.commit()
        unit_id = unit.id
    user = make_staff("support")
    flow = Flow(client, login(user), sandbox_server)
    cid = flow.connected(unit_id, "bexio", company=BEXIO_MAIN, username="max.mustermann", company_id=BEXIO_MAIN)
    assert csrf_token_of(client.get(f"/connections/{cid}/customers").get_data(as_text=True))

    page.goto(f"{live_server}/login")
    page.get_by_label("E-mail address").fill(user["email"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    page.goto(f"{live_server}/connections/{cid}")
    page.get_by_role("button", name="Customer links", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Customer links")
    page.get_by_role("button", name="Fetch ledger customers and suggest links").click()
    expect(page.locator("[data-status]").first).to_have_text("queued")

    # The worker's part, run here (tests have no worker thread): the page polls the run itself.
    with app.app_context():
        run_id = db.session.scalars(
            db.select(SyncRun.id).where(SyncRun.kind == SyncRunKind.customer_match).order_by(SyncRun.id.desc())
        ).first()
        suggest_links(run_id)
    expect(page.locator(f"#run-{run_id} [data-status]")).to_have_text("succeeded")
    expect(page.locator(f"#run-{run_id} .run-message")).to_contain_text("3 of 4 unlinked customers have a suggestion")

    page.reload()
    rows = page.locator("#suggestions tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#suggestions")).to_contain_text("3 customer(s) with a clear suggestion; 0 ambiguous")
    expect(page.locator("#suggestions")).to_contain_text("Société Générale de Genève SA")
    expect(page.locator("#suggestions")).to_contain_text("email domain")
    screenshot(page, "customer-links-suggestions")

    page.locator("#confirm-form input[name=min_score]").fill("80")
    page.get_by_role("button", name="Confirm every clear suggestion at this score or above").click()
    expect(page.locator("#flashes")).to_contain_text("Linked 3 customer(s).")
    links = page.locator("#links tbody tr")
    expect(links).to_have_count(3)
    expect(page.locator("#links")).to_contain_text("Café Élan Sàrl")
    expect(page.locator("#links")).to_contain_text(re.compile("suggested by e-mail domain|suggested by name"))
    expect(page.locator("[data-count=linked]")).to_have_text("3")
    expect(page.locator("#suggestions")).to_contain_text("No suggestions")
    screenshot(page, "customer-links-linked")

    with app.app_context():
        assert (
            db.session.scalar(db.select(db.func.count(CustomerLink.id)).where(CustomerLink.connection_id == cid)) == 3
        )
