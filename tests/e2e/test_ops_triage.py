"""Ops triage in the browser: a group of failed records → its fix → bulk retry → the group empties."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.portal.mappings.conftest import control
from tests.portal.sync.conftest import (  # noqa: F401 - fixtures
    connect,
    flow,
    ledger_documents,
    make_invoice,
    org_unit,
    sandbox,
)

pytestmark = pytest.mark.e2e

#: An Exact item id that no longer exists in the ledger (deleted after it was mapped).
GONE_ITEM = "00000000-0000-0000-0000-000000000000"


def _fail_two_invoices(app, connection_id: int, new_invoice) -> list[str]:
    from portal.extensions import db
    from portal.models import Connection, Invoice, Mapping
    from portal.sync import push

    with app.app_context():
        mapping = db.session.scalar(db.select(Mapping).filter_by(connection_id=connection_id, field="item"))
        mapping.value = GONE_ITEM
        db.session.commit()
    numbers = []
    for _ in range(2):
        invoice_id, number = new_invoice()
        numbers.append(number)
        with app.app_context():
            record = push.push_invoice(db.session.get(Connection, connection_id), db.session.get(Invoice, invoice_id))
            assert record.state.value == "failed" and record.last_error_class == "mapping_missing"
    return numbers


def _run_queued_push(app, connection_id: int) -> None:
    """Work the push the retry enqueued, as a worker would."""
    from jobs.sync import push_connection
    from portal.extensions import db
    from portal.models import SyncRun, SyncRunStatus

    with app.app_context():
        run = db.session.scalars(
            db.select(SyncRun).where(SyncRun.status == SyncRunStatus.queued).order_by(SyncRun.id.desc())
        ).first()
        assert run is not None and run.parameters["connection_id"] == connection_id
        counts = push_connection(run.id)
    assert counts["pushed"] == 2, counts


def test_group_fix_bulk_retry_and_the_group_empties(app, live_server, page, make_staff, sandbox, connect, make_invoice):  # noqa: F811
    control(sandbox, "exact-online/set_division_settings", {"division": 3010001, "invoice_number_at_entry": True})
    connection_id = connect("exact-online")
    numbers = _fail_two_invoices(app, connection_id, make_invoice)
    user = make_staff("ops")

    page.goto(f"{live_server}/ops/failures")
    page.get_by_label("E-mail address").fill(user["email"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Log in").click()

    # The group: its cause in plain words, the provider's text, how many records and customers.
    group = page.locator("#class-mapping_missing tr.failure-group")
    expect(group).to_have_count(1)
    expect(group).to_contain_text("Fix the mapping")
    expect(page.locator("#class-mapping_missing h2")).to_contain_text("2 record(s) · 1 customer(s)")
    screenshot(page, "ops-failures")
    group.get_by_role("link", name="2").click()
    expect(page.locator("#group-actions tbody tr")).to_have_count(2)
    group_url = page.url

    # The fix: the record's fix link leads to the mappings, where the item is mapped again.
    page.locator("#group-actions a.fix-link").first.click()
    expect(page.get_by_role("heading", name=re.compile("Mappings"))).to_be_visible()
    page.get_by_label("Search item").fill("consult")
    expect(page.locator("#default-item option[value='CONSULT']")).to_have_count(1)
    page.locator("#default-item").select_option("CONSULT")
    page.get_by_role("button", name="Save defaults").click()
    expect(page.locator("#flashes")).to_contain_text("Defaults saved.")

    # Bulk retry of the whole group.
    page.goto(group_url)
    page.get_by_label(re.compile(r"All 2 record\(s\) of this list")).check()
    page.locator("#retry-button").click()
    expect(page.locator("#flashes")).to_contain_text("Retry: 2 records changed")
    expect(page.locator("#group-empty")).to_be_visible()

    _run_queued_push(app, connection_id)

    page.goto(f"{live_server}/ops/failures")
    expect(page.locator("#no-failures")).to_be_visible()
    page.goto(f"{live_server}/ops/connections/{connection_id}/records?state=pushed&kind=invoice")
    expect(page.locator("#ops-records tbody tr")).to_have_count(2)
    screenshot(page, "ops-after-retry")
    for number in numbers:
        assert len(ledger_documents(sandbox, "exact-online", number)) == 1
