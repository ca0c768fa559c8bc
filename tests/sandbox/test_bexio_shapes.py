"""The emulated api.bexio.com and auth.bexio.com answer as the real ones do, endpoint by endpoint.

Each test sends the request a client sends and checks the sandbox's answer against the declared
shape of bexio's answer (:mod:`tests.sandbox.shapes.bexio`): status, gateway headers, the body's
keys and value types. Endpoints the emulator does not serve (reminders, sub-positions, quote
positions, country and currency writes, exchange rates, /4.0/banking/payments) are not declared.
"""

from __future__ import annotations

import pytest
import requests

from tests.sandbox.shapes import assert_shape, check
from tests.sandbox.shapes.bexio import ENDPOINTS, USERINFO_KEYS
from tests.sandbox.test_bexio_support import (
    COMPANY,
    Api,
    new_invoice,
    oidc,
)
from tests.sandbox.test_bexio_support import api as api_fixture
from tests.sandbox.test_bexio_support import bexio_tokens as tokens_fixture

# Shared fixtures, bound under the names the tests ask for.
api = api_fixture
bexio_tokens = tokens_fixture


# -- master data -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("endpoint", "path"),
    [
        ("GET /2.0/accounts", "/2.0/accounts"),
        ("GET /3.0/banking/accounts", "/3.0/banking/accounts"),
        ("GET /3.0/banking/accounts/{id}", "/3.0/banking/accounts/1"),
        ("GET /2.0/company_profile", "/2.0/company_profile"),
        ("GET /2.0/company_profile/{id}", "/2.0/company_profile/1"),
        ("GET /2.0/country", "/2.0/country"),
        ("GET /2.0/country/{id}", "/2.0/country/1"),
        ("GET /3.0/currencies", "/3.0/currencies"),
        ("GET /3.0/currencies/{id}", "/3.0/currencies/1"),
        ("GET /3.0/currencies/codes", "/3.0/currencies/codes"),
        ("GET /2.0/language", "/2.0/language"),
        ("GET /2.0/payment_type", "/2.0/payment_type"),
        ("GET /2.0/unit", "/2.0/unit"),
        ("GET /3.0/users", "/3.0/users"),
        ("GET /3.0/users/me", "/3.0/users/me"),
        ("GET /3.0/taxes", "/3.0/taxes"),
        ("GET /3.0/taxes", "/3.0/taxes?scope=active&types=sales_tax"),
        ("GET /3.0/taxes/{id}", "/3.0/taxes/7"),
        ("GET /2.0/article", "/2.0/article"),
        ("GET /2.0/article/{id}", "/2.0/article/1"),
        ("GET /2.0/contact", "/2.0/contact"),
        ("GET /2.0/contact/{id}", "/2.0/contact/1"),
    ],
)
def test_reads_have_bexios_shape(api, endpoint, path):
    body = check(ENDPOINTS[endpoint], api.get(path))
    assert body  # the demo company has data behind every read


def test_account_search(api):
    resp = api.post("/2.0/accounts/search", json=[{"field": "account_no", "value": "32", "criteria": "like"}])
    check(ENDPOINTS["POST /2.0/accounts/search"], resp)
    assert [a["account_no"] for a in resp.json()] == ["3200"]


def test_delete_tax_in_use_is_409(api):
    check(ENDPOINTS["DELETE /3.0/taxes/{id} (in use)"], api.delete("/3.0/taxes/14"))
    assert api.delete("/3.0/taxes/14").json() == {"error_code": 409, "message": "tax can not be deleted"}


# -- contacts ----------------------------------------------------------------------------------
def create_contact(api: Api, name: str = "Create 80a4") -> requests.Response:
    return api.post("/2.0/contact", json={"user_id": 1, "owner_id": 1, "contact_type_id": 1, "name_1": name})


def test_contact_writes_have_bexios_shape(api):
    created = create_contact(api)
    check(ENDPOINTS["POST /2.0/contact"], created)
    cid = created.json()["id"]
    check(ENDPOINTS["POST /2.0/contact/{id}"], api.post(f"/2.0/contact/{cid}", json={"name_1": "Edited"}))
    check(ENDPOINTS["DELETE /2.0/contact/{id}"], api.delete(f"/2.0/contact/{cid}"))
    check(ENDPOINTS["PATCH /2.0/contact/{id}/restore"], api.request("PATCH", f"/2.0/contact/{cid}/restore"))
    for name in ("Delete 1", "Restore 1"):
        check(ENDPOINTS["POST /2.0/contact"], create_contact(api, name))
    check(ENDPOINTS["DELETE /2.0/contact/{id}"], api.delete(f"/2.0/contact/{cid}"))


def test_contact_search_has_bexios_shape(api):
    resp = api.post("/2.0/contact/search", json=[{"field": "name_1", "value": "bexio", "criteria": "like"}])
    found = check(ENDPOINTS["POST /2.0/contact/search"], resp)
    assert found, "the demo company has a contact named bexio"


# -- articles ----------------------------------------------------------------------------------
def test_article_operations_have_bexios_shape(api, sandbox_url):
    tokens = requests.post(f"{sandbox_url}/_control/bexio/issue_pat", json={"company": COMPANY}, timeout=10).json()
    writer = Api(sandbox_url, tokens["token"])
    created = writer.post(
        "/2.0/article",
        json={
            "user_id": 1,
            "article_type_id": 1,
            "intern_code": "TEST-1",
            "intern_name": "Test Item",
            "currency_id": 1,
        },
    )
    check(ENDPOINTS["POST /2.0/article"], created)
    aid = created.json()["id"]
    check(
        ENDPOINTS["POST /2.0/article/{id}"],
        writer.post(f"/2.0/article/{aid}", json={"intern_name": "Updated Item Name"}),
    )
    search = writer.post("/2.0/article/search", json=[{"field": "intern_name", "value": "Updated"}])
    assert [a["id"] for a in check(ENDPOINTS["POST /2.0/article/search"], search)] == [aid]
    check(ENDPOINTS["DELETE /2.0/article/{id}"], writer.delete(f"/2.0/article/{aid}"))


# -- invoices ----------------------------------------------------------------------------------
def invoice_body() -> dict:
    return {
        "title": "Test",
        "contact_id": 1,
        "user_id": 1,
        "language_id": 1,
        "bank_account_id": 1,
        "currency_id": 1,
        "payment_type_id": 1,
        "mwst_type": 1,
        "mwst_is_net": True,
        "is_valid_from": "2026-06-18 02:06:55",
        "is_valid_to": "2026-06-23",
        "api_reference": "4cd39391-b884-44ec-9bb4-5f54f40cb5cf",
        "positions": [
            {"type": "KbPositionText", "text": "2404bf17", "show_pos_nr": True},
            {
                "type": "KbPositionCustom",
                "amount": "1",
                "unit_id": 1,
                "account_id": 95,
                "tax_id": 14,
                "text": "64600570",
                "unit_price": "100",
                "discount_in_percent": "0",
            },
        ],
    }


@pytest.mark.parametrize("kinds", [{"KbPositionText", "KbPositionCustom"}, {"KbPositionCustom"}])
def test_invoice_create_has_bexios_shape(api, kinds):
    body = invoice_body()
    body["positions"] = [p for p in body["positions"] if p["type"] in kinds]
    created = check(ENDPOINTS["POST /2.0/kb_invoice"], api.post("/2.0/kb_invoice", json=body))
    assert {p["type"] for p in created["positions"]} == kinds
    assert created["total"] == "100"  # echoed unnormalised, as bexio does
    assert created["is_valid_from"] == "2026-06-18"
    assert created["kb_item_status_id"] == 7  # a draft


def test_invoice_reads_have_bexios_shape(api):
    iid = api.post("/2.0/kb_invoice", json=invoice_body()).json()["id"]
    fetched = check(ENDPOINTS["GET /2.0/kb_invoice/{id}"], api.get(f"/2.0/kb_invoice/{iid}"))
    assert [p["type"] for p in fetched["positions"]] == ["KbPositionText", "KbPositionCustom"]
    assert fetched["total"] == "100.000000"  # six decimals once read back
    listed = check(ENDPOINTS["GET /2.0/kb_invoice"], api.get("/2.0/kb_invoice"))
    assert iid in [row["id"] for row in listed]
    search = api.post("/2.0/kb_invoice/search", json=[{"field": "kb_item_status_id", "value": "7", "criteria": "="}])
    assert iid in [row["id"] for row in check(ENDPOINTS["POST /2.0/kb_invoice/search"], search)]
    pdf = check(ENDPOINTS["GET /2.0/kb_invoice/{id}/pdf"], api.get(f"/2.0/kb_invoice/{iid}/pdf"))
    assert pdf["size"] > 0


def test_invoice_edit_copy_actions_have_bexios_shape(api):
    iid = api.post("/2.0/kb_invoice", json=invoice_body()).json()["id"]
    check(ENDPOINTS["POST /2.0/kb_invoice/{id}"], api.post(f"/2.0/kb_invoice/{iid}", json={"title": "Test Invoice"}))
    check(ENDPOINTS["POST /2.0/kb_invoice/{id}/copy"], api.post(f"/2.0/kb_invoice/{iid}/copy", json={"contact_id": 1}))
    position = api.post(
        f"/2.0/kb_invoice/{iid}/kb_position_custom",
        json={
            "amount": "1",
            "unit_id": 1,
            "account_id": 95,
            "tax_id": 14,
            "text": "20dcd7d3",
            "unit_price": "100",
            "discount_in_percent": "0",
        },
    )
    assert check(ENDPOINTS["POST /2.0/kb_invoice/{id}/kb_position_custom"], position)["type"] == "KbPositionCustom"
    check(ENDPOINTS["POST /2.0/kb_invoice/{id}/issue"], api.post(f"/2.0/kb_invoice/{iid}/issue"))
    check(ENDPOINTS["POST /2.0/kb_invoice/{id}/cancel"], api.post(f"/2.0/kb_invoice/{iid}/cancel"))
    draft = api.post("/2.0/kb_invoice", json=invoice_body()).json()["id"]
    check(ENDPOINTS["DELETE /2.0/kb_invoice/{id}"], api.delete(f"/2.0/kb_invoice/{draft}"))


def test_payments_have_bexios_shape(api):
    iid = new_invoice(api, mwst_type=1)["id"]
    check(ENDPOINTS["POST /2.0/kb_invoice/{id}/issue"], api.post(f"/2.0/kb_invoice/{iid}/issue"))
    check(ENDPOINTS["POST /2.0/kb_invoice/{id}/revert_issue"], api.post(f"/2.0/kb_invoice/{iid}/revert_issue"))
    api.post(f"/2.0/kb_invoice/{iid}/issue")
    empty = check(ENDPOINTS["GET /2.0/kb_invoice/{id}/payment"], api.get(f"/2.0/kb_invoice/{iid}/payment"))
    assert empty == []
    created = api.post(
        f"/2.0/kb_invoice/{iid}/payment", json={"date": "2026-06-18", "value": "100", "bank_account_id": 1}
    )
    assert check(ENDPOINTS["POST /2.0/kb_invoice/{id}/payment"], created)["value"] == "100"
    pid = created.json()["id"]
    listed = check(ENDPOINTS["GET /2.0/kb_invoice/{id}/payment"], api.get(f"/2.0/kb_invoice/{iid}/payment"))
    assert [p["id"] for p in listed] == [pid]
    fetched = api.get(f"/2.0/kb_invoice/{iid}/payment/{pid}")
    assert check(ENDPOINTS["GET /2.0/kb_invoice/{id}/payment/{payment_id}"], fetched)["value"] == "100.000000"


# -- auth.bexio.com ----------------------------------------------------------------------------------
def test_openid_configuration_has_bexios_shape(sandbox_url):
    resp = requests.get(f"{sandbox_url}/bexio/auth/realms/bexio/.well-known/openid-configuration", timeout=10)
    check(ENDPOINTS["GET /realms/bexio/.well-known/openid-configuration"], resp)


def test_userinfo_has_bexios_shape(sandbox_url, bexio_tokens):
    resp = requests.get(
        f"{oidc(sandbox_url)}/userinfo",
        headers={"Authorization": f"Bearer {bexio_tokens['access_token']}"},
        timeout=10,
    )
    body = check(ENDPOINTS["GET /realms/bexio/protocol/openid-connect/userinfo"], resp)
    assert tuple(body) == USERINFO_KEYS  # same keys in the same order


def test_end_session_page(sandbox_url):
    resp = requests.get(f"{oidc(sandbox_url)}/logout", timeout=10)
    text = check(ENDPOINTS["GET /realms/bexio/protocol/openid-connect/logout"], resp)
    assert "Sie sind abgemeldet." in text  # Keycloak's German logout page


def test_the_shapes_catch_a_wrong_answer():
    """The declared shapes fail a body that differs in a key or a type, so the tests above can fail."""
    invoice = ENDPOINTS["GET /2.0/kb_invoice/{id}"].body
    with pytest.raises(AssertionError, match="missing keys"):
        assert_shape({"id": invoice["id"]}, {})
    with pytest.raises(AssertionError, match=r"\$\.total: expected string"):
        assert_shape({"total": invoice["total"]}, {"total": 100.0})
    with pytest.raises(AssertionError, match="unexpected keys"):
        assert_shape(ENDPOINTS["DELETE /2.0/kb_invoice/{id}"].body, {"success": True, "id": 1})
