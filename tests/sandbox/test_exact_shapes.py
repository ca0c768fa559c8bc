"""The emulated Exact Online REST API answers as the real one does, endpoint by endpoint.

Each test sends a client's request and checks the sandbox's answer against the declared shape
of Exact's answer (:mod:`tests.sandbox.shapes.exact_online`): the OData envelope, metadata,
every documented field with its type, and the rate-limit headers.
"""

from __future__ import annotations

import pytest

from tests.sandbox.shapes import assert_shape
from tests.sandbox.shapes import check as check_answer
from tests.sandbox.shapes.exact_online import ENDPOINTS
from tests.sandbox.test_exact_support import (
    NL_MAIN,
    api_for,
    control,
    create_invoice,
    error_value,
    first_account,
    item_by_code,
)


def check(answer, response):
    """Check an answer, a null standing for any value of its field.

    The demo divisions leave fields empty that a real division fills (Creator and Modifier,
    an account's StatusSince, currencies and logo URLs); the field must still be there.
    """
    return check_answer(answer, response, nulls=True)


def assert_rate_headers(response) -> None:
    for name in (
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "X-RateLimit-Minutely-Limit",
        "X-RateLimit-Minutely-Remaining",
        "X-RateLimit-Minutely-Reset",
    ):
        assert response.headers[name].isdigit(), name


@pytest.fixture
def api(sandbox_url):
    return api_for(sandbox_url)


def test_single_account(api):
    response = api.get(f"{NL_MAIN}/crm/Accounts(guid'{first_account(api)['ID']}')")
    body = check(ENDPOINTS["GET crm/Accounts(guid'{id}')"], response)
    assert_rate_headers(response)
    assert body["d"]["__metadata"]["uri"].endswith(f"crm/Accounts(guid'{body['d']['ID']}')")


def test_account_collection(api):
    response = api.get(f"{NL_MAIN}/crm/Accounts", **{"$filter": "Status eq 'C'"})
    rows = check(ENDPOINTS["GET crm/Accounts"], response)["d"]["results"]
    assert rows
    assert {row["Status"] for row in rows} == {"C"}
    # A navigation property not expanded is a deferred link.
    assert all("__deferred" in row["BankAccounts"] for row in rows if row["BankAccounts"])


def test_empty_expanded_navigation(api):
    response = api.get(
        f"{NL_MAIN}/crm/Accounts",
        **{"$filter": "Status eq 'C'", "$select": "BankAccounts", "$expand": "BankAccounts"},
    )
    check(ENDPOINTS["GET crm/Accounts?$expand=BankAccounts"], response)
    # Only the metadata and the selected navigation, expanded.
    assert set(response.json()["d"]["results"][0]) == {"__metadata", "BankAccounts"}


def test_gl_account_single_and_paged_collection(api, sandbox_url):
    rows = api.get(f"{NL_MAIN}/financial/GLAccounts", **{"$select": "ID"}).json()["d"]["results"]
    single = api.get(f"{NL_MAIN}/financial/GLAccounts(guid'{rows[0]['ID']}')")
    check(ENDPOINTS["GET financial/GLAccounts(guid'{id}')"], single)
    # A 2-row page with __next, as Exact pages long collections.
    control(sandbox_url, "set_settings", page_size=2)
    paged = check(ENDPOINTS["GET financial/GLAccounts (a page with more)"], api.get(f"{NL_MAIN}/financial/GLAccounts"))
    assert len(paged["d"]["results"]) == 2
    assert "$skiptoken=guid'" in paged["d"]["__next"]


def test_sales_invoice_single_with_lines(api):
    invoice = create_invoice(api, Description="Levering diverse artikelen")
    response = api.get(
        f"{NL_MAIN}/salesinvoice/SalesInvoices(guid'{invoice['InvoiceID']}')",
        **{"$expand": "SalesInvoiceLines"},
    )
    body = check(ENDPOINTS["GET salesinvoice/SalesInvoices(guid'{id}')?$expand=SalesInvoiceLines"], response)
    assert_rate_headers(response)
    assert len(body["d"]["SalesInvoiceLines"]["results"]) == 1
    assert_shape(ENDPOINTS["POST salesinvoice/SalesInvoices"].body, {"d": invoice}, nulls=True)


def test_sales_invoice_collection_with_linked_lines(api):
    create_invoice(api)
    create_invoice(api, YourRef="LL-1002")
    response = api.get(
        f"{NL_MAIN}/salesinvoice/SalesInvoices", **{"$filter": "Status eq 20", "$expand": "SalesInvoiceLines"}
    )
    rows = check(ENDPOINTS["GET salesinvoice/SalesInvoices?$expand=SalesInvoiceLines"], response)["d"]["results"]
    assert {"LL-1001", "LL-1002"} <= {row["YourRef"] for row in rows}


def test_items_collection(api):
    response = api.get(f"{NL_MAIN}/logistics/Items", **{"$filter": "IsSalesItem eq true"})
    rows = check(ENDPOINTS["GET logistics/Items"], response)["d"]["results"]
    assert rows
    # Item carries Timestamp beyond the documented field set (used by sync, exact-online.md §3.12).
    assert "Timestamp" in rows[0]


def test_single_item(api):
    item_id = api.get(f"{NL_MAIN}/logistics/Items", **{"$filter": "Code eq 'BOOK'"}).json()["d"]["results"][0]["ID"]
    single = check(ENDPOINTS["GET logistics/Items(guid'{id}')"], api.get(f"{NL_MAIN}/logistics/Items(guid'{item_id}')"))
    # The key GET answers {"d": item}, never {"d": [item]} as one client's copy shows.
    assert isinstance(single["d"], dict)
    assert single["d"]["Code"] == "BOOK"


def test_lines_property_of_an_sdk_payload_is_rejected(api):
    # Exact's .NET SDK serialises an invoice's lines as "Lines"; the REST API knows
    # SalesInvoiceLines only, so it answers with the WCF unknown-property error.
    account, item = first_account(api), item_by_code(api, "CONSULT")
    payload = {
        "Currency": "EUR",
        "Description": "An invoice with a collection",
        "InvoiceTo": account["ID"],
        "Journal": "70",
        "OrderDate": "2012-10-26T00:00:00",
        "OrderedBy": account["ID"],
        "Lines": [{"Description": "A line", "Item": item["ID"]}],
    }
    response = api.post(f"{NL_MAIN}/salesinvoice/SalesInvoices", payload)
    check(ENDPOINTS["POST (unknown property)"], response)
    assert "The property 'Lines' does not exist" in error_value(response)


def test_collections_always_have_results(api):
    # Clients read d.results; a collection never answers without it.
    body = check(ENDPOINTS["GET financial/Journals"], api.get(f"{NL_MAIN}/financial/Journals"))
    assert "results" in body["d"]
