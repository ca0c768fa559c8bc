"""The connection test's invoice is made from the mappings and checked by the totals guard (sandboxes, HTTP)."""

from __future__ import annotations

import html
import re

import pytest

from tests.portal.mappings.conftest import control
from tests.portal.sync.conftest import CONNECT
from tests.portal.sync.test_tax_guard import field, map_rates

#: provider → (tax table rows to map, what the ledger books: 10.00 per rate).
CASES = {
    # 21 % (default VAT code 2), 9 % → 1, 0 % → 0: 30.00 + 2.10 + 0.90.
    "exact-online": (
        {field("9"): "1", field("0", "zero"): "0"},
        "33.00 EUR (net 30.00, tax 3.00)",
        "21 %, 9 %, 0 % zero-rated",
    ),
    # One rate per US document: the default's 8 % and a NON line.
    "quickbooks": ({}, "20.80 EUR (net 20.00, tax 0.80)", "8 %, NON"),
    # 8.1 % (default UN81) and 2.6 % → UR26.
    "bexio": ({field("2.6"): "UR26"}, "21.07 EUR (net 20.00, tax 1.07)", "8.1 %, 2.6 %"),
}


def _test(flow, connection_id: int) -> str:
    response = flow.post(f"/connections/{connection_id}/test-documents")
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


@pytest.mark.parametrize("provider", list(CONNECT))
def test_the_test_invoice_carries_the_mappings_and_the_ledger_books_the_saas_s_totals(
    app, sandbox, connect, flow, provider
):
    rows, booked, rates = CASES[provider]
    connection_id = connect(provider)
    if rows:
        assert map_rates(flow, connection_id, **rows).status_code == 302

    body = _test(flow, connection_id)

    assert 'data-outcome="created"' in body, body
    assert f"a line at each mapped rate: {rates}." in body
    assert 'data-totals="equal"' in body and f"booked it as {booked}: what the SaaS would invoice" in body
    assert "Everything the test created was removed again." in body


@pytest.mark.parametrize("provider", list(CONNECT))
def test_bexio_says_before_the_click_that_the_test_spends_an_invoice_number(connect, flow, provider):
    page = flow.client.get(f"/connections/{connect(provider)}").get_data(as_text=True)
    assert ("data-spends-number" in page and "takes the next invoice number" in page) == (provider == "bexio")


def test_a_test_invoice_the_mappings_cannot_make_writes_nothing_and_links_the_tax_table(
    app, db, sandbox, connect, flow
):
    from portal.mappings import services
    from portal.models import Connection

    connection_id = connect("exact-online")
    map_rates(flow, connection_id, **{field("9"): "1"})
    before = len(_accounts(sandbox))
    control(sandbox, "exact-online/set_vat_percentage", {"division": 3010001, "code": "1", "percentage": 0.10})
    try:
        services.refresh_reference(db.session.get(Connection, connection_id))
        db.session.commit()

        body = _test(flow, connection_id)
    finally:
        control(sandbox, "exact-online/set_vat_percentage", {"division": 3010001, "code": "1", "percentage": 0.09})

    assert "The test invoice failed: Nothing was written to the ledger." in body
    assert re.search(r"The test line at 9 %, but the tax table maps it to VAT code 1 .*which is at 10 %", body)
    assert f'href="/connections/{connection_id}/mappings#tax-table"' in body
    assert len(_accounts(sandbox)) == before  # not even the test customer


def _accounts(sandbox: str) -> list:
    from tests.portal.sync.rq_workers import sandbox_get

    return sandbox_get(sandbox, "ledger/exact-online/3010001")["tables"]["Accounts"]
