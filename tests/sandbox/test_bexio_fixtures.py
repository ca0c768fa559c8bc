"""Every recorded real api.bexio.com/auth.bexio.com response for an emulated endpoint, replayed.

Each test sends the equivalent request to the sandbox and compares status, body shape and the
gateway headers with the recording in /work/shared/provider-fixtures/bexio (Saloon format).
Recordings for endpoints the emulator does not serve (reminders, sub-positions, quote article
positions, country and currency writes, exchange rates, /4.0/banking/payments) are not replayed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.sandbox.shapes import assert_same_shape
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

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "provider-fixtures" / "bexio"

#: Headers the gateway sends on every api.bexio.com response (compared by presence/value).
RATE_HEADERS = (
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-ratelimit-limit-minute",
    "x-ratelimit-remaining-minute",
)
STATIC = ("Cache-Control", "pragma", "vary", "access-control-allow-origin")


def recording(name: str) -> tuple[int, dict, object]:
    raw = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    headers = {k.lower(): v for k, v in raw["headers"].items()}
    try:
        body = json.loads(raw["data"])
    except ValueError:
        body = raw["data"]
    return raw["statusCode"], headers, body


def check(name: str, resp: requests.Response, **options) -> None:
    """Compare ``resp`` with the recording ``name``: status, headers and body shape."""
    status, headers, body = recording(name)
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].split(";")[0] == headers["content-type"].split(";")[0]
    for header in RATE_HEADERS:
        assert header in resp.headers, header
    # The per-route limit is the real one (1000 default, 250 searches/PDFs, 400 articles).
    assert resp.headers["ratelimit-limit"] == headers["ratelimit-limit"]
    for header in STATIC:
        assert resp.headers[header] == headers[header.lower()], header
    for header in ("x-total-count", "x-limit", "x-offset"):
        assert (header in resp.headers) == (header in headers), header
    assert_same_shape(body, resp.json(), **options)


def check_invoice(name: str, resp: requests.Response) -> None:
    """Compare an invoice, matching each position with the recorded position of its type."""
    status, _, body = recording(name)
    assert resp.status_code == status, resp.text
    actual = resp.json()
    expected_positions = {p["type"]: p for p in body.pop("positions", [])}
    actual_positions = actual.pop("positions", [])
    check_body_only(body, actual)
    compared = 0
    for pos in actual_positions:
        # A recording shows only the position types its invoice had; others are checked elsewhere.
        if pos["type"] in expected_positions:
            assert_same_shape(expected_positions[pos["type"]], pos)
            compared += 1
    assert compared


def check_body_only(expected, actual) -> None:
    assert_same_shape(expected, actual)


# -- master data -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("Accounts/fetch-a-list-of-accounts.json", "/2.0/accounts"),
        ("BankAccounts/fetch-a-list-of-bank-accounts.json", "/3.0/banking/accounts"),
        ("BankAccounts/fetch-a-single-bank-account.json", "/3.0/banking/accounts/1"),
        ("CompanyProfiles/fetch-a-list-of-company-profiles.json", "/2.0/company_profile"),
        ("CompanyProfiles/fetch-a-company-profile.json", "/2.0/company_profile/1"),
        ("Countries/fetch-a-list-of-countries.json", "/2.0/country"),
        ("Countries/fetch-a-country.json", "/2.0/country/1"),
        ("Currencies/fetch-a-list-of-currencies.json", "/3.0/currencies"),
        ("Currencies/fetch-a-currency.json", "/3.0/currencies/1"),
        ("Currencies/fetch-all-possible-currency-codes.json", "/3.0/currencies/codes"),
        ("Languages/fetch-a-list-of-languages.json", "/2.0/language"),
        ("PaymentTypes/fetch-a-list-of-payment-types.json", "/2.0/payment_type"),
        ("Units/fetch-a-list-of-units.json", "/2.0/unit"),
        ("Users/fetch-a-list-of-users.json", "/3.0/users"),
        ("Users/fetch-authenticated-user.json", "/3.0/users/me"),
        ("Taxes/fetch-a-list-of-taxes.json", "/3.0/taxes"),
        ("Taxes/fetch-a-list-of-taxes-for-fetch.json", "/3.0/taxes"),
        ("Taxes/fetch-a-list-of-taxes-for-delete.json", "/3.0/taxes"),
        (
            "Taxes/fetch-a-list-of-taxes-scoped_active-types_sales_tax.json",
            "/3.0/taxes?scope=active&types=sales_tax",
        ),
        ("Taxes/fetch-a-tax.json", "/3.0/taxes/7"),
        ("Items/fetch-a-list-of-items.json", "/2.0/article"),
        ("Items/fetch-an-item.json", "/2.0/article/1"),
        ("Contacts/fetch-a-list-of-contacts.json", "/2.0/contact"),
        ("Contacts/fetch-a-contact.json", "/2.0/contact/1"),
    ],
)
def test_reads_match_recordings(api, name, path):
    check(name, api.get(path))


def test_account_search(api):
    # The recording is an empty array; a non-empty sandbox answer must still be an array of accounts.
    resp = api.post("/2.0/accounts/search", json=[{"field": "account_no", "value": "32", "criteria": "like"}])
    check("Accounts/search-accounts.json", resp)
    _, _, listing = recording("Accounts/fetch-a-list-of-accounts.json")
    assert_same_shape(listing, resp.json())
    assert [a["account_no"] for a in resp.json()] == ["3200"]


def test_delete_tax_in_use_is_409(api):
    check("Taxes/delete-a-tax.json", api.delete("/3.0/taxes/14"))
    assert api.delete("/3.0/taxes/14").json() == {"error_code": 409, "message": "tax can not be deleted"}


# -- contacts ----------------------------------------------------------------------------------
def create_contact(api: Api, name: str = "Create 80a4") -> requests.Response:
    return api.post("/2.0/contact", json={"user_id": 1, "owner_id": 1, "contact_type_id": 1, "name_1": name})


def test_contact_writes_match_recordings(api):
    created = create_contact(api)
    check("Contacts/create-contact.json", created)
    check("Contacts/edit-contact-create.json", created)
    cid = created.json()["id"]
    check("Contacts/edit-contact.json", api.post(f"/2.0/contact/{cid}", json={"name_1": "Edited"}))
    check("Contacts/delete-a-contact.json", api.delete(f"/2.0/contact/{cid}"))
    check("Contacts/restore-a-contact.json", api.request("PATCH", f"/2.0/contact/{cid}/restore"))
    for name in ("Contacts/delete-a-contact-create.json", "Contacts/restore-a-contact-create.json"):
        check(name, create_contact(api, name))
    check("Contacts/restore-a-contact-delete.json", api.delete(f"/2.0/contact/{cid}"))


def test_contact_search_matches_recording(api):
    resp = api.post("/2.0/contact/search", json=[{"field": "name_1", "value": "bexio", "criteria": "like"}])
    check("Contacts/search-contacts.json", resp)
    _, _, listing = recording("Contacts/fetch-a-list-of-contacts.json")
    assert_same_shape(listing, resp.json())


# -- articles ----------------------------------------------------------------------------------
def test_article_operations_match_recordings(api, sandbox_url):
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
    check("Items/create-item.json", created)
    aid = created.json()["id"]
    check(
        "Items/edit-an-item.json",
        writer.post(f"/2.0/article/{aid}", json={"intern_name": "Updated Item Name"}),
    )
    search = writer.post("/2.0/article/search", json=[{"field": "intern_name", "value": "Updated"}])
    check("Items/search-items.json", search)
    _, _, listing = recording("Items/fetch-a-list-of-items.json")
    assert_same_shape(listing, search.json())
    check("Items/delete-an-item.json", writer.delete(f"/2.0/article/{aid}"))


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


@pytest.mark.parametrize(
    "name",
    [
        "Invoices/create-an-invoice.json",
        "Invoices/create-an-invoice-for-cancel.json",
        "Invoices/create-an-invoice-for-copy.json",
        "Invoices/create-an-invoice-for-delete.json",
        "Invoices/create-an-invoice-for-edit.json",
        "Invoices/DefaultPositions/create-an-invoice-for-default-position.json",
        "Invoices/Payments/create-an-invoice-for-payment.json",
        "Invoices/Payments/create-an-invoice-for-fetch-payment.json",
    ],
)
def test_invoice_create_matches_recordings(api, name):
    # Send the position types the recorded invoice had, so each is compared with its own shape.
    kinds = {p["type"] for p in recording(name)[2]["positions"]}
    body = invoice_body()
    body["positions"] = [p for p in body["positions"] if p["type"] in kinds]
    resp = api.post("/2.0/kb_invoice", json=body)
    check_invoice(name, resp)
    assert resp.json()["total"] == "100"  # echoed unnormalised, as recorded
    assert resp.json()["is_valid_from"] == "2026-06-18"


def test_invoice_reads_match_recordings(api):
    iid = api.post("/2.0/kb_invoice", json=invoice_body()).json()["id"]
    fetched = api.get(f"/2.0/kb_invoice/{iid}")
    check_invoice("Invoices/fetch-an-invoice.json", fetched)
    check_invoice("Invoices/fetch-an-invoice-edit.json", api.get(f"/2.0/kb_invoice/{iid}"))
    assert fetched.json()["total"] == "100.000000"
    check("Invoices/fetch-a-list-of-invoices.json", api.get("/2.0/kb_invoice"))
    search = api.post("/2.0/kb_invoice/search", json=[{"field": "kb_item_status_id", "value": "7", "criteria": "="}])
    check("Invoices/search-invoices.json", search)
    check("Invoices/show-pdf.json", api.get(f"/2.0/kb_invoice/{iid}/pdf"))


def test_invoice_edit_copy_actions_match_recordings(api):
    iid = api.post("/2.0/kb_invoice", json=invoice_body()).json()["id"]
    check_invoice("Invoices/edit-an-invoice.json", api.post(f"/2.0/kb_invoice/{iid}", json={"title": "Test Invoice"}))
    check_invoice("Invoices/copy-an-invoice.json", api.post(f"/2.0/kb_invoice/{iid}/copy", json={"contact_id": 1}))
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
    check("Invoices/DefaultPositions/create-a-default-position.json", position)
    check("Invoices/issue-an-invoice-for-cancel.json", api.post(f"/2.0/kb_invoice/{iid}/issue"))
    check("Invoices/cancel-an-invoice.json", api.post(f"/2.0/kb_invoice/{iid}/cancel"))
    draft = api.post("/2.0/kb_invoice", json=invoice_body()).json()["id"]
    check("Invoices/delete-an-invoice.json", api.delete(f"/2.0/kb_invoice/{draft}"))


def test_payments_match_recordings(api):
    iid = new_invoice(api, mwst_type=1)["id"]
    check("Invoices/Payments/issue-an-invoice-for-payment.json", api.post(f"/2.0/kb_invoice/{iid}/issue"))
    check(
        "Invoices/Payments/issue-an-invoice-for-fetch-payment.json",
        api.post(f"/2.0/kb_invoice/{iid}/revert_issue"),
    )
    api.post(f"/2.0/kb_invoice/{iid}/issue")
    empty = api.get(f"/2.0/kb_invoice/{iid}/payment")
    check("Invoices/Payments/fetch-a-list-of-payments.json", empty)
    assert empty.json() == []
    created = api.post(
        f"/2.0/kb_invoice/{iid}/payment", json={"date": "2026-06-18", "value": "100", "bank_account_id": 1}
    )
    check("Invoices/Payments/create-a-payment.json", created)
    check("Invoices/Payments/create-a-payment-for-fetch.json", created)
    assert created.json()["value"] == "100"
    pid = created.json()["id"]
    check("Invoices/Payments/fetch-a-list-of-payments-for-fetch.json", api.get(f"/2.0/kb_invoice/{iid}/payment"))
    fetched = api.get(f"/2.0/kb_invoice/{iid}/payment/{pid}")
    check("Invoices/Payments/fetch-a-payment.json", fetched)
    assert fetched.json()["value"] == "100.000000"


# -- auth.bexio.com ----------------------------------------------------------------------------------
def test_openid_configuration_matches_recording(sandbox_url):
    resp = requests.get(f"{sandbox_url}/bexio/auth/realms/bexio/.well-known/openid-configuration", timeout=10)
    status, headers, body = recording("OAuth/openid-configuration.json")
    assert resp.status_code == status
    assert_same_shape(body, resp.json())
    for header in (
        "referrer-policy",
        "strict-transport-security",
        "x-content-type-options",
        "x-frame-options",
    ):
        assert resp.headers[header] == headers[header]


def test_userinfo_matches_recording(sandbox_url, bexio_tokens):
    resp = requests.get(
        f"{oidc(sandbox_url)}/userinfo",
        headers={"Authorization": f"Bearer {bexio_tokens['access_token']}"},
        timeout=10,
    )
    status, headers, body = recording("OpenID/fetch-user-info.json")
    assert resp.status_code == status
    assert list(resp.json()) == list(body)  # same keys in the same order
    assert_same_shape(body, resp.json())
    assert resp.headers["Cache-Control"] == headers["cache-control"]


def test_end_session_matches_recording(sandbox_url):
    resp = requests.get(f"{oidc(sandbox_url)}/logout", timeout=10)
    status, headers, body = recording("OAuth/end-session.json")
    assert resp.status_code == status
    assert resp.headers["Content-Type"].split(";")[0] == headers["content-type"].split(";")[0]
    assert "Sie sind abgemeldet." in body
    assert "Sie sind abgemeldet." in resp.text
