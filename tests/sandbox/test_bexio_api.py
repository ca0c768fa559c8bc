"""The emulated api.bexio.com: contacts, invoices and their state machine, master data, errors."""

from __future__ import annotations

import base64
import http.client
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sandbox.test_bexio_support import (
    COMPANY,
    SECOND_COMPANY,
    Api,
    control,
    login,
    new_invoice,
)
from tests.sandbox.test_bexio_support import api as api_fixture
from tests.sandbox.test_bexio_support import bexio_tokens as tokens_fixture

# Shared fixtures, bound under the names the tests ask for.
api = api_fixture
bexio_tokens = tokens_fixture

LINK_MESSAGE = "Guten Tag\n\nIhre Rechnung: [Network Link]\n\nFreundliche Grüsse"


def custom(amount="1", price="100", tax_id=14, **extra) -> dict:
    return {
        "type": "KbPositionCustom",
        "amount": amount,
        "unit_price": price,
        "tax_id": tax_id,
        "account_id": 95,
        "unit_id": 1,
        "text": "Leistung",
        **extra,
    }


def advance(base: str, seconds: float) -> None:
    requests.post(f"{base}/_control/clock", json={"advance_seconds": seconds}, timeout=10).raise_for_status()


# -- errors and headers ------------------------------------------------------------------------------
def test_missing_or_bad_token_is_401(sandbox_url):
    resp = requests.get(f"{sandbox_url}/bexio/api/2.0/contact", headers={"Accept": "application/json"}, timeout=10)
    assert resp.status_code == 401
    assert resp.json() == {"error_code": 401, "message": "Invalid access token"}
    resp = requests.get(
        f"{sandbox_url}/bexio/api/2.0/contact",
        headers={"Authorization": "Bearer x", "Accept": "application/json"},
        timeout=10,
    )
    assert resp.status_code == 401


def test_accept_header_is_required(api):
    assert api.get("/2.0/contact", headers={"Accept": None}).status_code == 415
    resp = api.get("/2.0/contact", headers={"Accept": "text/html"})
    assert resp.status_code == 415
    assert resp.json()["error_code"] == 415


def test_content_length_is_required_on_writes(api):
    parts = urlsplit(api.root)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest("POST", parts.path + "/2.0/kb_invoice/1/issue", skip_accept_encoding=True)
    conn.putheader("Authorization", api.session.headers["Authorization"])
    conn.putheader("Accept", "application/json")
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 411
    assert b'"error_code":411' in resp.read().replace(b" ", b"")
    conn.close()


def test_action_posts_refuse_a_json_body(api):
    iid = new_invoice(api)["id"]
    resp = api.post(f"/2.0/kb_invoice/{iid}/issue", json={})
    assert resp.status_code == 415
    assert api.get(f"/2.0/kb_invoice/{iid}").json()["kb_item_status_id"] == 7
    assert api.post(f"/2.0/kb_invoice/{iid}/issue").status_code == 200


def test_unknown_routes_and_credit_notes_are_404(api):
    unknown = api.get("/2.0/no_such_thing")
    assert unknown.status_code == 404
    for method, path in [
        ("GET", "/2.0/kb_credit_voucher"),
        ("POST", "/2.0/kb_credit_voucher"),
        ("GET", "/2.0/kb_credit_voucher/1"),
        ("POST", "/2.0/kb_credit_voucher/search"),
        ("GET", "/3.0/kb_credit_voucher"),
    ]:
        resp = api.request(method, path, json=[] if method == "POST" else None)
        assert resp.status_code == 404, path
        assert resp.json() == unknown.json()
        assert "ratelimit-limit" in resp.headers


def test_verb_quirks(api):
    iid = new_invoice(api)["id"]
    put = api.request("PUT", f"/2.0/kb_invoice/{iid}", json={"title": "X"})
    assert put.status_code == 422
    assert put.json()["error_code"] == 422
    patch = api.request("PATCH", f"/2.0/kb_invoice/{iid}", json={"title": "X"})
    assert patch.status_code == 404
    assert api.get(f"/2.0/kb_invoice/{iid}").json()["title"] == "Test"


def test_bad_json_and_unknown_ids(api):
    resp = api.post("/2.0/kb_invoice", data="{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json() == {"error_code": 400, "message": "Parameters are invalid"}
    missing = api.get("/2.0/kb_invoice/99999")
    assert missing.status_code == 404
    assert set(missing.json()) == {"error_code", "message"}
    assert api.get("/2.0/contact/99999").status_code == 404
    assert api.get("/2.0/contact?limit=2001").status_code == 400
    assert api.get("/2.0/contact?order_by=mail").status_code == 400


# -- contacts ----------------------------------------------------------------------------------------
def test_contact_create_requires_fields(api):
    resp = api.post("/2.0/contact", json={"name_1": "Nur Name"})
    assert resp.status_code == 422
    body = resp.json()
    assert body["error_code"] == 422
    assert body["message"] == "The form could not be saved due to the following errors:."
    assert any(e.startswith("contact_type_id") for e in body["errors"])
    assert any(e.startswith("user_id") for e in body["errors"])


def test_contact_lifecycle(api):
    created = api.post(
        "/2.0/contact",
        json={
            "contact_type_id": 2,
            "name_1": "Rüegg",
            "name_2": "Lea",
            "user_id": 1,
            "owner_id": 1,
            "street_name": "Dorfstrasse",
            "house_number": "5",
            "postcode": "8400",
            "city": "Winterthur",
            "country_id": 1,
            "mail": "lea@rueegg.example",
            "contact_group_ids": "1,2",
            "address": "ignored",
        },
    ).json()
    assert created["address"] == "Dorfstrasse 5"  # read-only, composed (bexio.md §3.1)
    assert created["nr"] == "000008"  # seven seeded contacts before
    assert created["contact_group_ids"] == "1,2"
    assert created["salutation_id"] is None
    cid = created["id"]
    edited = api.post(f"/2.0/contact/{cid}", json={"house_number": "7"}).json()
    assert edited["address"] == "Dorfstrasse 7"
    assert api.delete(f"/2.0/contact/{cid}").json() == {"success": True}
    assert api.get(f"/2.0/contact/{cid}").status_code == 404
    assert cid not in [c["id"] for c in api.get("/2.0/contact").json()]
    assert api.request("PATCH", f"/2.0/contact/{cid}/restore").json() == {"success": True}
    assert api.get(f"/2.0/contact/{cid}").json()["name_1"] == "Rüegg"


def test_salutation_zero_round_trip_fails(api):
    seeded = api.get("/2.0/contact/1").json()
    assert seeded["salutation_id"] == 0  # unset reads back as 0 (bexio.md §3.1)
    resp = api.post("/2.0/contact/1", json={"salutation_id": seeded["salutation_id"]})
    assert resp.status_code == 422
    assert api.post("/2.0/contact/1", json={"salutation_id": None}).status_code == 200


def test_contact_search(api):
    same_domain = api.post("/2.0/contact/search", json=[{"field": "mail", "value": "meier-treuhand"}]).json()
    assert {c["name_1"] for c in same_domain} == {"Meier Treuhand AG", "Meier"}
    exact = api.post(
        "/2.0/contact/search",
        json=[{"field": "mail", "value": "anna.meier@meier-treuhand.example", "criteria": "="}],
    ).json()
    assert [c["name_2"] for c in exact] == ["Anna"]
    accents = api.post("/2.0/contact/search", json=[{"field": "city", "value": "genève", "criteria": "like"}]).json()
    assert [c["name_1"] for c in accents] == ["Société Générale de Genève SA"]
    both = api.post(
        "/2.0/contact/search",
        json=[
            {"field": "contact_type_id", "value": "1", "criteria": "="},
            {"field": "id", "value": ["1", "2", "5"], "criteria": "in"},
        ],
    ).json()
    assert [c["id"] for c in both] == [1, 2]
    bad = api.post("/2.0/contact/search", json=[{"field": "password", "value": "x"}])
    assert bad.status_code == 422
    bad = api.post("/2.0/contact/search", json=[{"field": "mail", "value": "x", "criteria": "regex"}])
    assert bad.status_code == 422
    paged = api.post("/2.0/contact/search?limit=2&offset=1&order_by=id_desc", json=[]).json()
    assert [c["id"] for c in paged] == [6, 5]


# -- invoices: totals, numbering, state machine ---------------------------------------------------------
def test_totals_follow_the_recipe(api):
    inv = new_invoice(api, positions=[custom("5", "3.56")])
    iid = inv["id"]
    got = api.get(f"/2.0/kb_invoice/{iid}").json()
    assert got["total_net"] == "17.800000"
    assert got["total_taxes"] == "1.4418"
    assert got["total"] == "19.250000"  # CHF rounds to 0.05
    assert got["total_rounding_difference"] == 0.01
    assert got["taxs"] == [{"percentage": "8.10", "value": "1.4418"}]
    gross = new_invoice(api, mwst_is_net=False, positions=[custom("1", "108.10")])
    got = api.get(f"/2.0/kb_invoice/{gross['id']}").json()
    assert got["total_taxes"] == "8.1000"
    assert got["total_net"] == "100.000000"
    assert got["total"] == "108.100000"
    exempt = new_invoice(api, mwst_type=1, positions=[custom("2", "50", discount_in_percent="10")])
    got = api.get(f"/2.0/kb_invoice/{exempt['id']}").json()
    assert (got["total"], got["total_taxes"], got["taxs"]) == ("90.000000", "0.0000", [])
    assert got["positions"][0]["position_total"] == "90.000000"
    euro = new_invoice(api, currency_id=2, bank_account_id=2, positions=[custom("1", "10.01")])
    assert api.get(f"/2.0/kb_invoice/{euro['id']}").json()["total"] == "10.820000"


def test_document_numbers_are_sequential(api):
    first = new_invoice(api)["document_nr"]
    second = new_invoice(api)["document_nr"]
    assert first == "RE-00003"  # two seeded invoices
    assert second == "RE-00004"


def test_invoice_validation(api):
    resp = api.post("/2.0/kb_invoice", json={"title": "leer"})
    assert resp.status_code == 422
    assert {e.split(" ")[0] for e in resp.json()["errors"]} >= {"contact_id", "user_id"}
    inactive = api.post("/2.0/kb_invoice", json={"contact_id": 1, "user_id": 1, "positions": [custom(tax_id=3)]})
    assert inactive.status_code == 422
    assert "positions[0][tax_id] [Invalid.]" in inactive.json()["errors"]
    pretax = api.post("/2.0/kb_invoice", json={"contact_id": 1, "user_id": 1, "positions": [custom(tax_id=9)]})
    assert pretax.status_code == 422
    asset = api.post("/2.0/kb_invoice", json={"contact_id": 1, "user_id": 1, "positions": [custom(account_id=77)]})
    assert asset.status_code == 422
    junk = api.post("/2.0/kb_invoice", json={"contact_id": 1, "user_id": 1, "positions": [custom(amount="abc")]})
    assert junk.status_code == 422
    assert api.post("/2.0/kb_invoice", json={"contact_id": 424242, "user_id": 1}).status_code == 422


def test_deactivated_tax_is_refused(sandbox_url, api):
    assert api.post("/2.0/kb_invoice", json={"contact_id": 1, "user_id": 1, "positions": [custom()]}).status_code == 201
    assert control(sandbox_url, "deactivate_tax", company=COMPANY, tax_id=14).json()["is_active"] is False
    active = api.get("/3.0/taxes?scope=active&types=sales_tax").json()
    assert 14 not in [t["id"] for t in active]
    assert api.post("/2.0/kb_invoice", json={"contact_id": 1, "user_id": 1, "positions": [custom()]}).status_code == 422


def test_state_machine(api):
    iid = new_invoice(api)["id"]
    status = lambda: api.get(f"/2.0/kb_invoice/{iid}").json()["kb_item_status_id"]  # noqa: E731
    assert status() == 7
    assert api.post(f"/2.0/kb_invoice/{iid}/payment", json={"value": "1"}).status_code == 422  # draft
    assert api.post(f"/2.0/kb_invoice/{iid}/cancel").status_code == 422
    assert api.post(f"/2.0/kb_invoice/{iid}/issue").json() == {"success": True}
    assert status() == 8
    assert api.post(f"/2.0/kb_invoice/{iid}/issue").status_code == 422
    assert api.delete(f"/2.0/kb_invoice/{iid}").status_code == 422
    assert api.post(f"/2.0/kb_invoice/{iid}", json={"title": "zu spät"}).status_code == 422
    total = api.get(f"/2.0/kb_invoice/{iid}").json()["total"]
    assert total == "108.100000"
    first = api.post(f"/2.0/kb_invoice/{iid}/payment", json={"value": "8.10", "date": "2026-06-18"}).json()
    assert status() == 16
    assert api.post(f"/2.0/kb_invoice/{iid}/revert_issue").status_code == 422
    api.post(f"/2.0/kb_invoice/{iid}/payment", json={"value": "100"})
    got = api.get(f"/2.0/kb_invoice/{iid}").json()
    assert (got["kb_item_status_id"], got["total_received_payments"], got["total_remaining_payments"]) == (
        9,
        "108.100000",
        "0.0000",
    )
    assert api.delete(f"/2.0/kb_invoice/{iid}/payment/{first['id']}").json() == {"success": True}
    assert status() == 16
    assert api.get(f"/2.0/kb_invoice/{iid}").json()["total_remaining_payments"] == "8.1000"
    assert api.post(f"/2.0/kb_invoice/{iid}/cancel").json() == {"success": True}
    got = api.get(f"/2.0/kb_invoice/{iid}").json()
    assert (got["kb_item_status_id"], got["total_remaining_payments"]) == (19, "0.0000")
    assert api.post(f"/2.0/kb_invoice/{iid}/cancel").status_code == 422


def test_revert_issue_and_delete_draft(api):
    iid = new_invoice(api)["id"]
    api.post(f"/2.0/kb_invoice/{iid}/issue")
    assert api.post(f"/2.0/kb_invoice/{iid}/revert_issue").json() == {"success": True}
    assert api.get(f"/2.0/kb_invoice/{iid}").json()["kb_item_status_id"] == 7
    assert api.delete(f"/2.0/kb_invoice/{iid}").json() == {"success": True}
    assert api.get(f"/2.0/kb_invoice/{iid}").status_code == 404


def test_overdue_by_clock_and_by_control(sandbox_url, api):
    due_soon = new_invoice(api, is_valid_from="2026-01-01", is_valid_to="2099-01-10")["id"]
    api.post(f"/2.0/kb_invoice/{due_soon}/issue")
    assert control(sandbox_url, "set_overdue", company=COMPANY, invoice_id=due_soon).json() == {"kb_item_status_id": 31}
    assert api.get(f"/2.0/kb_invoice/{due_soon}").json()["kb_item_status_id"] == 31
    found = api.post("/2.0/kb_invoice/search", json=[{"field": "kb_item_status_id", "value": "31", "criteria": "="}])
    assert due_soon in [i["id"] for i in found.json()]
    by_clock = new_invoice(api)["id"]
    api.post(f"/2.0/kb_invoice/{by_clock}/issue")
    assert api.get(f"/2.0/kb_invoice/{by_clock}").json()["kb_item_status_id"] == 8
    advance(sandbox_url, 40 * 24 * 3600)
    api = Api(sandbox_url, login(sandbox_url)["access_token"])  # the old token expired meanwhile
    assert api.get(f"/2.0/kb_invoice/{by_clock}").json()["kb_item_status_id"] == 31
    api.post(f"/2.0/kb_invoice/{by_clock}/payment", json={"value": "108.10"})
    assert api.get(f"/2.0/kb_invoice/{by_clock}").json()["kb_item_status_id"] == 9


def test_mark_paid_control(sandbox_url, api):
    iid = new_invoice(api)["id"]
    assert control(sandbox_url, "mark_paid", company=COMPANY, invoice_id=iid).status_code == 422  # draft
    api.post(f"/2.0/kb_invoice/{iid}/issue")
    part = control(sandbox_url, "mark_paid", company=COMPANY, invoice_id=iid, amount="50").json()
    assert part["kb_item_status_id"] == 16
    rest = control(sandbox_url, "mark_paid", company=COMPANY, invoice_id=iid).json()
    assert rest["kb_item_status_id"] == 9
    assert rest["payment"]["value"] == "58.100000"
    assert len(api.get(f"/2.0/kb_invoice/{iid}/payment").json()) == 2
    ledger = requests.get(f"{sandbox_url}/_control/ledger/bexio/{COMPANY}", timeout=10).json()
    entry = next(i for i in ledger["invoices"] if i["id"] == iid)
    assert [p["value"] for p in entry["payments"]] == ["50.000000", "58.100000"]


def test_edit_by_post_refuses_positions(api):
    iid = new_invoice(api, api_reference="saas-1")["id"]
    edited = api.post(f"/2.0/kb_invoice/{iid}", json={"title": "Neu", "api_reference": "saas-2"})
    assert edited.status_code == 200
    assert edited.json()["title"] == "Neu"
    refused = api.post(f"/2.0/kb_invoice/{iid}", json={"positions": [custom()]})
    assert refused.status_code == 422
    assert refused.json()["message"] == "Widget schema does not include positions"
    by_ref = api.post("/2.0/kb_invoice/search", json=[{"field": "api_reference", "value": "saas-2", "criteria": "="}])
    assert [i["id"] for i in by_ref.json()] == [iid]
    old = api.post("/2.0/kb_invoice/search", json=[{"field": "api_reference", "value": "saas-1", "criteria": "="}])
    assert old.json() == []


def test_api_reference_is_stored_and_searchable(api):
    iid = new_invoice(api, api_reference="SaaS-INV-2026-0042")["id"]
    assert api.get(f"/2.0/kb_invoice/{iid}").json()["api_reference"] == "SaaS-INV-2026-0042"
    like = api.post("/2.0/kb_invoice/search", json=[{"field": "api_reference", "value": "INV-2026"}]).json()
    assert [i["id"] for i in like] == [iid]
    assert "positions" not in like[0]


def test_send_requires_network_link_placeholder(sandbox_url, api):
    iid = new_invoice(api)["id"]
    body = {
        "recipient_email": "kunde@example.ch",
        "subject": "Rechnung",
        "message": "Hallo",
        "mark_as_open": True,
    }
    resp = api.post(f"/2.0/kb_invoice/{iid}/send", json=body)
    assert resp.status_code == 422
    assert any("[Network Link]" in e for e in resp.json()["errors"])
    missing = api.post(f"/2.0/kb_invoice/{iid}/send", json={"message": LINK_MESSAGE})
    assert missing.status_code == 422
    ok = api.post(f"/2.0/kb_invoice/{iid}/send", json={**body, "message": LINK_MESSAGE, "attach_pdf": True})
    assert ok.json() == {"success": True}
    got = api.get(f"/2.0/kb_invoice/{iid}").json()
    assert got["kb_item_status_id"] == 8
    assert got["network_link"].startswith("https://")
    control(sandbox_url, "set_trial", company=COMPANY, trial=True)
    other = new_invoice(api)["id"]
    assert api.post(f"/2.0/kb_invoice/{other}/send", json={**body, "message": LINK_MESSAGE}).status_code == 422
    own = {**body, "message": LINK_MESSAGE, "recipient_email": "max.mustermann@mustermann-ag.example"}
    assert api.post(f"/2.0/kb_invoice/{other}/send", json=own).status_code == 200


def test_mark_as_sent(api):
    iid = new_invoice(api)["id"]
    assert api.post(f"/2.0/kb_invoice/{iid}/mark_as_sent").json() == {"success": True}
    assert api.get(f"/2.0/kb_invoice/{iid}").json()["kb_item_status_id"] == 8


def test_pdf_is_base64_pdf_in_json(api):
    inv = new_invoice(api)
    pdf = api.get(f"/2.0/kb_invoice/{inv['id']}/pdf").json()
    assert pdf["name"] == inv["document_nr"].lower() + ".pdf"
    assert pdf["mime"] == "application/pdf"
    raw = base64.b64decode(pdf["content"])
    assert raw.startswith(b"%PDF-")
    assert pdf["size"] == len(raw)


def test_position_sub_resources(api):
    iid = new_invoice(api)["id"]
    text = api.post(f"/2.0/kb_invoice/{iid}/kb_position_text", json={"text": "Hinweis"}).json()
    assert text["type"] == "KbPositionText"
    article = api.post(f"/2.0/kb_invoice/{iid}/kb_position_article", json={"article_id": 1, "amount": "2"})
    assert article.status_code == 201
    assert article.json()["unit_price"] == "160.000000"
    got = api.get(f"/2.0/kb_invoice/{iid}").json()
    assert got["total_net"] == "420.000000"
    assert [p["pos"] for p in got["positions"]] == ["1", "2", "3"]
    assert api.delete(f"/2.0/kb_invoice/{iid}/kb_position_article/{article.json()['id']}").json() == {"success": True}
    assert api.get(f"/2.0/kb_invoice/{iid}").json()["total_net"] == "100.000000"
    assert api.get(f"/2.0/kb_invoice/{iid}/kb_position_custom").json()[0]["amount"] == "1.000000"


def test_more_than_150_positions_fail_with_a_partial_document(sandbox_url, api):
    resp = api.post(
        "/2.0/kb_invoice",
        json={
            "contact_id": 1,
            "user_id": 1,
            "api_reference": "big",
            "positions": [custom() for _ in range(151)],
        },
    )
    assert resp.status_code == 500
    assert "id" not in resp.json()
    partial = api.post("/2.0/kb_invoice/search", json=[{"field": "api_reference", "value": "big", "criteria": "="}])
    assert len(partial.json()) == 1
    assert len(api.get(f"/2.0/kb_invoice/{partial.json()[0]['id']}").json()["positions"]) == 150
    control(sandbox_url, "set_large_document_failure", company=COMPANY, enabled=False)
    ok = api.post("/2.0/kb_invoice", json={"contact_id": 1, "user_id": 1, "positions": [custom() for _ in range(151)]})
    assert ok.status_code == 201


def test_invoice_list_paging_and_order(api):
    for _ in range(3):
        new_invoice(api)
    everything = api.get("/2.0/kb_invoice").json()
    assert len(everything) == 5
    assert "positions" not in everything[0]
    page = api.get("/2.0/kb_invoice?limit=2&offset=1").json()
    assert [i["id"] for i in page] == [2, 3]
    ordered = api.get("/2.0/kb_invoice?order_by=total_desc,id").json()
    totals = [float(i["total"]) for i in ordered]
    assert totals == sorted(totals, reverse=True)


# -- master data -------------------------------------------------------------------------------------
def test_taxes_filters(api):
    active_sales = api.get("/3.0/taxes?scope=active&types=sales_tax").json()
    assert {t["code"] for t in active_sales} == {"U00", "UN81", "UR26", "US38"}
    inactive = api.get("/3.0/taxes?scope=inactive&types=sales_tax").json()
    assert {t["value"] for t in inactive} == {7.7, 2.5, 3.7}
    in_2023 = api.get("/3.0/taxes?types=sales_tax&date=2023-06-01").json()
    assert "UN77" in {t["code"] for t in in_2023}
    assert "UN81" not in {t["code"] for t in in_2023}
    assert api.get("/3.0/taxes?scope=sometimes").status_code == 400
    assert api.get("/3.0/taxes/14").json()["display_name"] == "UN81 - Revenue (NS) 8.10%"


def test_master_data(api):
    assert [c["name"] for c in api.get("/3.0/currencies").json()][:2] == ["CHF", "EUR"]
    assert api.get("/3.0/currencies").headers["x-total-count"] == "4"
    assert api.get("/2.0/language").json()[0]["iso_639_1"] == "de"
    assert {a["account_type"] for a in api.get("/2.0/accounts").json()} == {1, 2, 3, 4, 5}
    revenue = api.post("/2.0/accounts/search", json=[{"field": "account_type", "value": "1", "criteria": "="}])
    assert all(a["account_no"].startswith("3") for a in revenue.json())
    assert api.get("/2.0/payment_type").json()[3] == {"id": 4, "name": "Rechnung"}
    assert api.get("/2.0/unit").json()[1] == {"id": 2, "name": "h"}
    assert api.get("/3.0/banking/accounts/2").json()["currency_id"] == 2
    assert api.get("/2.0/company_profile").json()[0]["name"] == "Mustermann AG"
    articles = api.post("/2.0/article/search", json=[{"field": "intern_name", "value": "beratung"}]).json()
    assert [a["intern_code"] for a in articles] == ["BER-H"]


def test_article_create_requires_user_and_name(sandbox_url):
    token = control(sandbox_url, "issue_pat", company=COMPANY).json()["token"]
    writer = Api(sandbox_url, token)
    resp = writer.post("/2.0/article", json={"intern_code": "X"})
    assert resp.status_code == 422
    assert {e.split(" ")[0] for e in resp.json()["errors"]} == {"user_id", "intern_name"}


def test_companies_are_isolated(sandbox_url, api):
    other = Api(sandbox_url, login(sandbox_url, company_id=SECOND_COMPANY)["access_token"])
    assert other.get("/2.0/kb_invoice").json() == []
    assert len(other.get("/2.0/contact").json()) == 3
    new_invoice(other)
    assert len(other.get("/2.0/kb_invoice").json()) == 1
    assert len(api.get("/2.0/kb_invoice").json()) == 2
    assert other.get("/2.0/company_profile/1").json()["name"] == "Alpenblick Treuhand GmbH"


def test_companies_and_ledger_controls(sandbox_url):
    companies = requests.get(f"{sandbox_url}/_control/companies", timeout=10).json()["bexio"]
    assert [c["id"] for c in companies] == [COMPANY, SECOND_COMPANY]
    assert requests.get(f"{sandbox_url}/_control/ledger/bexio/nope", timeout=10).status_code == 404
    ledger = requests.get(f"{sandbox_url}/_control/ledger/bexio/{COMPANY}", timeout=10).json()
    assert [i["kb_item_status_id"] for i in ledger["invoices"]] == [9, 7]
    assert control(sandbox_url, "no_such_action").status_code == 404


@pytest.mark.parametrize("body", [{"company": COMPANY}, {"company": COMPANY, "invoice_id": "x"}])
def test_control_errors_are_400_or_404(sandbox_url, body):
    assert control(sandbox_url, "set_overdue", **body).status_code in (400, 404)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
invoice_keys = st.sampled_from(
    [
        "contact_id",
        "user_id",
        "mwst_type",
        "mwst_is_net",
        "currency_id",
        "is_valid_from",
        "title",
        "positions",
        "api_reference",
        "language_id",
    ]
)
position = st.fixed_dictionaries(
    {"type": st.sampled_from(["KbPositionCustom", "KbPositionArticle", "KbPositionText", "KbPositionDiscount", "x"])},
    optional={
        "amount": json_values,
        "unit_price": json_values,
        "tax_id": json_values,
        "account_id": json_values,
        "article_id": json_values,
        "discount_in_percent": json_values,
        "value": json_values,
    },
)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(invoice_keys, json_values | st.lists(position, max_size=2), max_size=6))
def test_arbitrary_invoice_bodies_get_bexio_errors_not_tracebacks(api, body):
    resp = api.post("/2.0/kb_invoice", json=body)
    assert resp.status_code in (201, 400, 422), resp.text
    if resp.status_code != 201:
        assert resp.json()["error_code"] == resp.status_code
    search = api.post("/2.0/kb_invoice/search", json=[{"field": "title", "value": body.get("title")}])
    assert search.status_code in (200, 422)
    assert isinstance(search.json(), list) or search.json()["error_code"] == 422


def test_huge_amounts_are_validation_errors(api):
    resp = api.post("/2.0/kb_invoice", json={"contact_id": 1, "user_id": 1, "positions": [custom("1e300", "1e300")]})
    assert resp.status_code == 422
    big = custom("99999999", "9999999.99")
    assert api.post("/2.0/kb_invoice", json={"contact_id": 1, "user_id": 1, "positions": [big] * 3}).status_code == 201


def test_mark_paid_rejects_bad_amounts(sandbox_url, api):
    iid = new_invoice(api)["id"]
    api.post(f"/2.0/kb_invoice/{iid}/issue")
    assert control(sandbox_url, "mark_paid", company=COMPANY, invoice_id=iid, amount="abc").status_code == 400
    assert control(sandbox_url, "mark_paid", company=COMPANY, invoice_id=iid, amount="-1").status_code == 400
