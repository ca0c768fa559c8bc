"""In Chromium: an invoice QuickBooks numbered but did not e-mail, sent again once fixed; a customer held with
the ledger customers that may be it, linked from its candidates, and then pushed onto the one chosen."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.journeys.conftest import login
from tests.portal.connections.conftest import flow, sandbox  # noqa: F401 - fixtures
from tests.portal.sync.conftest import add_invoice, connect_unit, ledger_documents, new_organization
from tests.portal.sync.test_pipeline import run_push, set_settings

pytestmark = pytest.mark.e2e

PROVIDER = "quickbooks"  # US realm of the sandbox (tests/portal/sync/conftest.CONNECT)


def _customer(app, org: dict, name: str, email: str | None) -> int:
    from portal.extensions import db
    from portal.models import Customer

    with app.app_context():
        customer = Customer(
            organization_id=org["org_id"],
            external_id=f"cus-{os.urandom(3).hex()}",
            name=name,
            email=email,
            country="US",
        )
        db.session.add(customer)
        db.session.commit()
        return customer.id


def _by_hand(app, connection_id: int, name: str, email: str) -> str:
    """A QuickBooks customer made by a bookkeeper (no reference of ours); return its id."""
    from portal.connections import vault
    from portal.extensions import db
    from portal.models import Connection

    with app.app_context():
        adapter = vault.fresh_adapter(db.session.get(Connection, connection_id))
        return str(adapter._write("Customer", {"DisplayName": name, "PrimaryEmailAddr": {"Address": email}})["Id"])


def test_numbered_not_e_mailed_is_sent_again_and_a_held_customer_is_linked_from_its_candidates(
    app,
    live_server,
    sandbox,  # noqa: F811
    flow,  # noqa: F811
    page,
    make_staff,
):
    from portal.extensions import db
    from portal.models import Customer

    org = new_organization(app, "Truth", ["Truth US"])
    (unit_id,) = org["unit_ids"]
    connection_id = connect_unit(app, flow, unit_id, PROVIDER)
    set_settings(app, connection_id, sending_method="ledger", auto_send=True)
    tag = os.urandom(2).hex()

    # 1. A customer without any e-mail address: QuickBooks numbers the invoice but cannot e-mail it.
    silent = _customer(app, org, f"Silent Partner {tag}", None)
    _, number = add_invoice(app, {**org, "customer_id": silent}, unit_id)
    status, counts, message = run_push(app, connection_id)
    assert status == "succeeded" and counts.get("not_sent") == 1, (counts, message)

    login(page, live_server, make_staff("ops"), f"/ops/connections/{connection_id}/records")
    row = page.locator("tr[data-state]", has_text=f"invoice {number}")
    expect(row.locator("td.after-push")).to_contain_text("numbered, not e-mailed")
    expect(row.locator(".finalize-error")).to_contain_text("Email address is missing")
    screenshot(page, "ledger-truth-not-e-mailed")

    # 2. The SaaS gets the address; "Send again" has QuickBooks e-mail it.
    with app.app_context():
        db.session.get(Customer, silent).email = f"ap-{tag}@silent.example"
        db.session.commit()
    row.get_by_role("button", name="Send again").click()
    expect(page.locator("#flashes")).to_contain_text(f"The ledger e-mailed invoice {number}")
    row = page.locator("tr[data-state]", has_text=f"invoice {number}")
    expect(row.locator("td.after-push")).to_contain_text("numbered, e-mailed")
    expect(row.get_by_role("button", name="Send again")).to_have_count(0)
    [document] = ledger_documents(sandbox, PROVIDER, number)
    assert document["EmailStatus"] == "EmailSent"
    screenshot(page, "ledger-truth-sent-again")

    # 3. Two QuickBooks customers share a mailbox with a new SaaS customer: the push holds it.
    mailbox = f"office-{tag}@twins.example"
    north = _by_hand(app, connection_id, f"Twins {tag} North", mailbox)
    _by_hand(app, connection_id, f"Twins {tag} South", mailbox)
    twin = _customer(app, org, f"Twins {tag}", mailbox)
    _, held_number = add_invoice(app, {**org, "customer_id": twin}, unit_id)
    status, counts, message = run_push(app, connection_id)
    assert counts.get("needs_action") == 1, (counts, message)

    page.goto(f"{live_server}/ops/connections/{connection_id}/records")
    row = page.locator("tr[data-state]", has_text=f"invoice {held_number}")
    expect(row).to_have_attribute("data-state", "needs_action")
    expect(row.locator("[data-hold]")).to_contain_text("Held until someone acts")
    expect(row).to_contain_text(f"Twins {tag} North")
    screenshot(page, "ledger-truth-held-record")

    # 4. Its "Link" leads to the customer links page, where the candidates the push found wait.
    row.get_by_role("link", name=re.compile(f"Link Twins {tag}")).click()
    held = page.locator("article.held-customer", has_text=f"Twins {tag}")
    expect(held.locator(".hold-reason")).to_contain_text("Link the right one")
    expect(held.locator("tr[data-candidate]")).to_have_count(2)
    expect(page.locator("#hold-explained")).to_contain_text("The push does not retry them by itself")
    screenshot(page, "ledger-truth-held-candidates")
    held.locator(f"tr[data-candidate='{north}']").get_by_role("button", name="Link to this one").click()
    expect(page.locator("#flashes")).to_contain_text("Linked 1 customer(s).")
    expect(page.locator("article.held-customer")).to_have_count(0)

    # 5. The next push takes the released invoice onto the chosen customer.
    status, counts, message = run_push(app, connection_id)
    assert counts.get("pushed") == 1, (counts, message)
    [document] = ledger_documents(sandbox, PROVIDER, held_number)
    assert str(document["CustomerRef"]["value"]) == north
    page.goto(f"{live_server}/ops/connections/{connection_id}/records")
    expect(page.locator("tr[data-state]", has_text=f"invoice {held_number}")).to_have_attribute("data-state", "pushed")
    screenshot(page, "ledger-truth-linked-and-pushed")
