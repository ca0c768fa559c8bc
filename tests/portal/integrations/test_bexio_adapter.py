"""The bexio adapter against the sandbox over HTTP: PKCE round trip, rotation, test documents."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from datetime import date
from decimal import Decimal

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from portal.integrations import specs
from portal.integrations.base import (
    TEST_NAME,
    AuthExpired,
    CustomerQuery,
    DocumentDraft,
    LineDraft,
    NeedsReauthorization,
    NotSupported,
    pkce_challenge,
)
from portal.integrations.bexio import token_claims

from .conftest import BEXIO_COMPANY, CLIENTS, REDIRECT_URI, control, decide_consent, ledger, query_of

B = specs.BEXIO


def _connect(sandbox, make_adapter, saved: list, company: str = BEXIO_COMPANY):
    adapter = make_adapter(B, token_updater=saved.append)
    verifier = secrets.token_urlsafe(48)
    url = adapter.authorization_url(redirect_uri=REDIRECT_URI, state="b-state", code_verifier=verifier)
    callback = decide_consent(sandbox, B, url, username="max.mustermann", company_id=company, decision="approve")
    tokens = adapter.exchange_code(code=callback["code"], redirect_uri=REDIRECT_URI, code_verifier=verifier)
    return adapter, tokens


def test_full_round_trip(sandbox, make_adapter):
    saved: list = []
    adapter = make_adapter(B, token_updater=saved.append)
    verifier = secrets.token_urlsafe(48)
    url = adapter.authorization_url(redirect_uri=REDIRECT_URI, state="b1", code_verifier=verifier)
    assert url.startswith("https://auth.bexio.com/realms/bexio/protocol/openid-connect/auth?")
    asked = query_of(url)
    assert asked["code_challenge_method"] == "S256"
    assert asked["code_challenge"] == pkce_challenge(verifier)
    assert {"offline_access", "contact_edit", "kb_invoice_edit", "accounting"} <= set(asked["scope"].split())
    assert (asked["client_id"], asked["redirect_uri"], asked["state"]) == (CLIENTS[B][0], REDIRECT_URI, "b1")
    assert requests.get(adapter.http.hosts.resolve(url), timeout=10).status_code == 200

    callback = decide_consent(sandbox, B, url, username="max.mustermann", company_id=BEXIO_COMPANY, decision="approve")
    assert callback["state"] == "b1"
    tokens = adapter.exchange_code(
        code=callback["code"], redirect_uri=REDIRECT_URI, code_verifier=verifier, callback_params=callback
    )
    assert saved == [tokens] and tokens.refresh_token
    assert adapter.company_id == BEXIO_COMPANY  # from the token's company_id claim

    (company,) = adapter.list_companies()
    assert company == adapter.company_info()
    assert (company.id, company.name, company.country, company.number) == (
        BEXIO_COMPANY,
        "Mustermann AG",
        "CH",
        "1",
    )

    checks = adapter.preflight()
    assert [c.name for c in checks] == [
        "company",
        "scopes",
        "create_invoices",
        "sales_tax",
        "revenue_account",
    ]
    assert all(c.ok for c in checks), checks

    result = adapter.create_test_documents()
    (contact_id, invoice_id) = [int(external_id) for _, external_id, _ in result.created]
    state = ledger(sandbox, B, BEXIO_COMPANY)
    (contact,) = [c for c in state["contacts"] if c["id"] == contact_id]
    assert contact["name_1"].startswith(TEST_NAME)
    (invoice,) = [i for i in state["invoices"] if i["id"] == invoice_id]
    assert invoice["kb_item_status_id"] == 7 and invoice["contact_id"] == contact_id  # a draft

    assert adapter.cleanup_test_documents(result) == []
    state = ledger(sandbox, B, BEXIO_COMPANY)
    assert not [i for i in state["invoices"] if i["id"] == invoice_id]
    assert [c.get("deleted") for c in state["contacts"] if c["id"] == contact_id] in ([], [True])

    new = adapter.refresh()
    assert saved[-1] is new and new.refresh_token != tokens.refresh_token
    stale = make_adapter(B, tokens=tokens, company_id=BEXIO_COMPANY)
    with pytest.raises(NeedsReauthorization) as info:
        stale.refresh()
    assert "reuse" in info.value.reason.lower() or "invalid_grant" in info.value.reason

    assert adapter.revoke() is True
    with pytest.raises(AuthExpired):
        adapter.http.get("https://api.bexio.com/2.0/contact", token=new.access_token)
    with pytest.raises(NeedsReauthorization):
        adapter.refresh()


def test_authorization_url_requires_a_verifier(make_adapter, sandbox):
    with pytest.raises(ValueError, match="PKCE"):
        make_adapter(B).authorization_url(redirect_uri=REDIRECT_URI, state="s")


def test_wrong_verifier_is_refused(sandbox, make_adapter):
    adapter = make_adapter(B)
    url = adapter.authorization_url(redirect_uri=REDIRECT_URI, state="s", code_verifier=secrets.token_urlsafe(48))
    callback = decide_consent(sandbox, B, url, username="max.mustermann", company_id=BEXIO_COMPANY)
    with pytest.raises(NeedsReauthorization) as info:
        adapter.exchange_code(code=callback["code"], redirect_uri=REDIRECT_URI, code_verifier="x" * 50)
    assert "PKCE" in info.value.provider_text


def test_deny_at_consent_carries_the_provider_error(sandbox, make_adapter):
    adapter = make_adapter(B)
    url = adapter.authorization_url(redirect_uri=REDIRECT_URI, state="nope", code_verifier=secrets.token_urlsafe(48))
    callback = decide_consent(sandbox, B, url, username="max.mustermann", company_id=BEXIO_COMPANY, decision="deny")
    assert (callback["error"], callback["state"]) == ("access_denied", "nope")
    assert "code" not in callback


def test_preflight_reports_missing_user_rights_and_inactive_taxes(sandbox, make_adapter):
    adapter, _ = _connect(sandbox, make_adapter, [])
    control(sandbox, "bexio/set_user_rights", {"company": BEXIO_COMPANY, "user_id": 1, "deny": ["kb_invoice"]})
    for tax_id in (14, 15, 16, 8):
        control(sandbox, "bexio/deactivate_tax", {"company": BEXIO_COMPANY, "tax_id": tax_id, "active": False})
    checks = {c.name: c for c in adapter.preflight()}
    assert not checks["create_invoices"].ok and checks["create_invoices"].provider_text == "Forbidden"
    assert not checks["sales_tax"].ok
    assert checks["company"].ok and checks["revenue_account"].ok


def test_expired_refresh_token_needs_reauthorization(sandbox, make_adapter):
    adapter, _ = _connect(sandbox, make_adapter, [])
    control(sandbox, "bexio/expire_refresh_tokens", {"company": BEXIO_COMPANY})
    with pytest.raises(NeedsReauthorization) as info:
        adapter.refresh()
    assert info.value.reason == "Token is not active"


def test_customers_reference_data_lookup_and_no_credit_notes(sandbox, make_adapter):
    adapter, _ = _connect(sandbox, make_adapter, [])
    assert {t.code for t in adapter.reference_data("tax_codes")} == {"UN81", "UR26", "US38", "U00"}
    assert {a.code for a in adapter.reference_data("gl_accounts")} == {"3000", "3200", "3400", "3600", "3800"}
    assert {c.code for c in adapter.reference_data("currencies")} >= {"CHF", "EUR"}
    with pytest.raises(NotSupported):
        adapter.reference_data("journals")
    (meier,) = adapter.find_customers(CustomerQuery("email", "info@meier-treuhand.example"))
    assert meier.id == "4"
    assert adapter.find_customers(CustomerQuery("id", "1"))[0].name == "bexio AG"
    found = adapter.find_by_reference("invoice", "seed-0001")
    assert found is not None and (found.external_id, found.external_number) == ("1", "RE-00001")
    assert adapter.find_by_reference("invoice", "seed-9999") is None
    draft = DocumentDraft(
        reference="cn-1",
        number="CN-1",
        customer_id="1",
        issue_date=date(2026, 5, 1),
        due_date=None,
        currency="CHF",
        lines=(LineDraft("Refund", Decimal(1), Decimal(10)),),
    )
    with pytest.raises(NotSupported, match="by hand in bexio"):
        adapter.push_credit_note(draft)


@given(st.dictionaries(st.text(max_size=10), st.one_of(st.text(max_size=20), st.integers()), max_size=5))
def test_token_claims_reads_any_jwt_payload(claims):
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert token_claims(f"eyJhbGciOiJSUzI1NiJ9.{payload}.sig") == claims


@given(st.text(max_size=200))
def test_token_claims_never_raises_on_opaque_tokens(token):
    assert isinstance(token_claims(token), dict)


@given(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~",
        min_size=43,
        max_size=128,
    )
)
def test_pkce_challenge_is_rfc7636_s256(verifier):
    challenge = pkce_challenge(verifier)
    assert len(challenge) == 43 and "=" not in challenge
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == expected


def test_push_invoice_is_idempotent_and_payment_status_follows_payments(sandbox, make_adapter):
    adapter, _ = _connect(sandbox, make_adapter, [])
    draft = DocumentDraft(
        reference="ll-inv-b001",
        number="LL-2026-0001",
        customer_id="2",
        issue_date=date(2026, 5, 1),
        due_date=date(2026, 5, 31),
        currency="CHF",
        lines=(LineDraft("Beratung", Decimal(2), Decimal("100.00"), tax_code="14", gl_account="96"),),
    )
    pushed = adapter.push_invoice(draft)
    assert pushed.created and pushed.external_number.startswith("RE-")
    again = adapter.push_invoice(draft)
    assert (again.external_id, again.created) == (pushed.external_id, False)
    status = adapter.payment_status(pushed.external_id)
    assert (status.paid, status.state, status.amount_total) == (False, "draft", Decimal("216.20"))
    adapter._call("POST", f"https://api.bexio.com/2.0/kb_invoice/{pushed.external_id}/issue")
    control(sandbox, "bexio/mark_paid", {"company": BEXIO_COMPANY, "invoice_id": int(pushed.external_id)})
    status = adapter.payment_status(pushed.external_id)
    assert (status.paid, status.amount_open, status.state) == (True, Decimal(0), "paid")


def test_every_tax_account_and_language_with_type_and_activity(sandbox, make_adapter):
    adapter, _ = _connect(sandbox, make_adapter, [])
    taxes = {t.code: t for t in adapter.reference_data("all_taxes")}
    assert not taxes["UN77"].active and taxes["UN81"].active
    assert taxes["VM81"].details["type"] == "pre_tax_material"
    accounts = {a.code: a for a in adapter.reference_data("all_accounts")}
    assert accounts["3200"].details["account_type"] == 1 and accounts["1020"].details["account_type"] != 1
    assert {lang.details["iso_639_1"] for lang in adapter.reference_data("languages")} >= {"de", "fr"}
