"""Sandbox responses compared by shape with the recorded Exact Online responses.

Recordings: shared/provider-fixtures/exact-online (official .NET SDK, 2013 tenant; picqer items).
The 2013 records predate fields the current API has (IsSales, Timestamp, AmountFCExclVat...), so
``extra_keys_ok=True`` allows those; every recorded key must still be present with its type.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sandbox.shapes import assert_same_shape
from tests.sandbox.test_exact_support import (
    NL_MAIN,
    api_for,
    control,
    create_invoice,
    error_value,
    first_account,
)

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "provider-fixtures" / "exact-online"
DOTNET = FIXTURES / "exactonline-api-dotnet-client"
PICQER = FIXTURES / "picqer-exact-php-client"


def load(path: Path):
    return json.loads(path.read_text(encoding="utf-8-sig"))


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


@pytest.mark.parametrize("name", ["APIResponse_Json_Object.txt"])
def test_single_account(api, name):
    response = api.get(f"{NL_MAIN}/crm/Accounts(guid'{first_account(api)['ID']}')")
    assert response.status_code == 200
    assert_rate_headers(response)
    assert_same_shape(load(DOTNET / name), response.json(), extra_keys_ok=True)


@pytest.mark.parametrize(
    "name",
    [
        "APIResponse_Json_Array.txt",
        "Response_Json_Array_Account_WithLinkedEntities.txt",
        "Response_Json_Array_Account_Long.txt",
    ],
)
def test_account_collection(api, name):
    response = api.get(f"{NL_MAIN}/crm/Accounts", **{"$filter": "Status eq 'C'"})
    assert response.status_code == 200
    assert_same_shape(load(DOTNET / name), response.json(), extra_keys_ok=True)


def test_account_entity_without_envelope(api):
    # The SDK's bare-entity and bare-array files are unwrapped copies; compare with d / d.results.
    single = api.get(f"{NL_MAIN}/crm/Accounts(guid'{first_account(api)['ID']}')").json()["d"]
    assert_same_shape(load(DOTNET / "Response_Json_Object_Account.txt"), single, extra_keys_ok=True)
    rows = api.get(f"{NL_MAIN}/crm/Accounts", **{"$filter": "Status eq 'C'"}).json()["d"]["results"]
    assert_same_shape(load(DOTNET / "Response_Json_Array_Account.txt"), rows, extra_keys_ok=True)


def test_empty_expanded_navigation(api):
    response = api.get(
        f"{NL_MAIN}/crm/Accounts",
        **{"$filter": "Status eq 'C'", "$select": "BankAccounts", "$expand": "BankAccounts"},
    )
    assert_same_shape(
        load(DOTNET / "APIResponse_Json_Array_WithEmptyLinkedEntities.txt"),
        response.json(),
        extra_keys_ok=True,
    )
    # The recording has no __metadata; everything else is exact.
    assert set(response.json()["d"]["results"][0]) == {"__metadata", "BankAccounts"}


def test_gl_account_single_and_paged_collection(api, sandbox_url):
    rows = api.get(f"{NL_MAIN}/financial/GLAccounts", **{"$select": "ID"}).json()["d"]["results"]
    single = api.get(f"{NL_MAIN}/financial/GLAccounts(guid'{rows[0]['ID']}')")
    assert_same_shape(load(DOTNET / "Response_Json_Object_GLAccount.txt"), single.json(), extra_keys_ok=True)
    # The recording is a 2-row page with __next: shrink the page size to reproduce it.
    control(sandbox_url, "set_settings", page_size=2)
    paged = api.get(f"{NL_MAIN}/financial/GLAccounts").json()
    assert_same_shape(load(DOTNET / "Response_Json_Array_GLAccount.txt"), paged, extra_keys_ok=True)
    assert "$skiptoken=guid'" in paged["d"]["__next"]


def test_sales_invoice_single_with_lines(api):
    invoice = create_invoice(api, Description="Levering diverse artikelen")
    response = api.get(
        f"{NL_MAIN}/salesinvoice/SalesInvoices(guid'{invoice['InvoiceID']}')",
        **{"$expand": "SalesInvoiceLines"},
    )
    assert_rate_headers(response)
    assert_same_shape(load(DOTNET / "Response_Json_Object_SalesInvoice.txt"), response.json(), extra_keys_ok=True)
    created_shape = {"d": invoice}
    assert_same_shape(load(DOTNET / "Response_Json_Object_SalesInvoice.txt"), created_shape, extra_keys_ok=True)


def test_sales_invoice_collection_with_linked_lines(api):
    create_invoice(api)
    create_invoice(api, YourRef="LL-1002")
    response = api.get(
        f"{NL_MAIN}/salesinvoice/SalesInvoices", **{"$filter": "Status eq 20", "$expand": "SalesInvoiceLines"}
    )
    recorded = load(DOTNET / "Response_Json_Array_SalesInvoice_WithLinkedEntities.txt")
    assert_same_shape(recorded, response.json(), extra_keys_ok=True)


def test_items_collection_matches_picqer_recording_exactly(api):
    response = api.get(f"{NL_MAIN}/logistics/Items", **{"$filter": "IsSalesItem eq true"})
    # Item carries one key more than the 2022 recording: Timestamp (used by sync, §3.12).
    assert_same_shape(load(PICQER / "items.json"), response.json(), extra_keys_ok=True)
    assert set(response.json()["d"]["results"][0]) - set(load(PICQER / "items.json")["d"]["results"][0]) == {
        "Timestamp"
    }


def test_item_array_form_element_matches_a_single_item(api):
    # item.json holds {"d": [item]}; the API's key GET answers {"d": item}: compare the element.
    item_id = api.get(f"{NL_MAIN}/logistics/Items", **{"$filter": "Code eq 'BOOK'"}).json()["d"]["results"][0]["ID"]
    single = api.get(f"{NL_MAIN}/logistics/Items(guid'{item_id}')").json()["d"]
    assert_same_shape(load(PICQER / "item.json")["d"][0], single, extra_keys_ok=True)


def test_sdk_request_payloads_use_lines_which_the_api_rejects(api):
    # The Expected_* files are the SDK's own serialisation with a "Lines" property; the REST API
    # knows SalesInvoiceLines only, so it answers with the WCF unknown-property error.
    payload = load(DOTNET / "Expected_Json_Object_ComplexEntity_WithLinkedEntity.txt")
    response = api.post(f"{NL_MAIN}/salesinvoice/SalesInvoices", payload)
    assert response.status_code == 400
    assert "The property 'Lines' does not exist" in error_value(response)


def test_deliberately_broken_recordings_are_not_json(api):
    # WithoutD/WithoutDTag/CorruptJson are hand-broken for the SDK's negative tests, not responses.
    for name in (
        "APIResponse_Json_Object_WithoutD.txt",
        "Response_Json_Object_GLAccount_WithCorruptJson.txt",
    ):
        with pytest.raises(json.JSONDecodeError):
            load(DOTNET / name)
    # The results-less variant shows the envelope clients must not rely on; ours always has results.
    assert "results" not in load(DOTNET / "APIResponse_Json_Array_WithoutResultsTag.txt")["d"]
    assert "results" in api.get(f"{NL_MAIN}/financial/Journals").json()["d"]
