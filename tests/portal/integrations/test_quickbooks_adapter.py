"""The QuickBooks Online adapter against the sandbox over HTTP: OAuth round trip, test documents."""

from __future__ import annotations

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from portal.integrations import specs
from portal.integrations.base import (
    TEST_NAME,
    AuthExpired,
    CustomerDraft,
    CustomerQuery,
    NeedsReauthorization,
    NotSupported,
)
from portal.integrations.quickbooks import qbo_literal

from .conftest import CLIENTS, QBO_REALM, REDIRECT_URI, control, decide_consent, ledger, query_of

Q = specs.QUICKBOOKS
UK_REALM = "9341453908061187"


def _connect(sandbox, make_adapter, saved: list, realm: str = QBO_REALM):
    adapter = make_adapter(Q, token_updater=saved.append)
    url = adapter.authorization_url(redirect_uri=REDIRECT_URI, state="q-state")
    callback = decide_consent(sandbox, Q, url, user="u-ada", realm_id=realm, decision="approve")
    tokens = adapter.exchange_code(code=callback["code"], redirect_uri=REDIRECT_URI, callback_params=callback)
    return adapter, tokens


@pytest.mark.parametrize("realm", [QBO_REALM, UK_REALM])
def test_full_round_trip(sandbox, make_adapter, realm):
    saved: list = []
    adapter = make_adapter(Q, token_updater=saved.append)
    url = adapter.authorization_url(redirect_uri=REDIRECT_URI, state="q1")
    assert url.startswith("https://appcenter.intuit.com/connect/oauth2?")
    assert query_of(url) == {
        "client_id": CLIENTS[Q][0],
        "response_type": "code",
        "scope": "com.intuit.quickbooks.accounting",
        "redirect_uri": REDIRECT_URI,
        "state": "q1",
    }
    assert requests.get(adapter.http.hosts.resolve(url), timeout=10).status_code == 200

    callback = decide_consent(sandbox, Q, url, user="u-ada", realm_id=realm, decision="approve")
    assert (callback["state"], callback["realmId"]) == ("q1", realm)
    tokens = adapter.exchange_code(code=callback["code"], redirect_uri=REDIRECT_URI, callback_params=callback)
    assert adapter.company_id == realm
    assert saved == [tokens] and tokens.refresh_expires_at is not None

    (company,) = adapter.list_companies()
    assert company == adapter.company_info()
    assert company.id == realm
    assert company.country == ("US" if realm == QBO_REALM else "GB")
    assert company.name.startswith("Ledgerlink Demo")

    checks = {c.name: c for c in adapter.preflight()}
    assert list(checks) == [
        "company",
        "preferences",
        "custom_transaction_numbers",
        "income_account",
        "tax_codes",
    ]
    # Demo companies number invoices themselves: our DocNumbers need custom transaction numbers on.
    assert [n for n, c in checks.items() if not c.ok] == ["custom_transaction_numbers"]
    assert "Custom transaction numbers are off" in checks["custom_transaction_numbers"].detail

    result = adapter.create_test_documents()
    (customer_id, invoice_id) = [external_id for _, external_id, _ in result.created]
    entities = ledger(sandbox, Q, realm)["entities"]
    (customer,) = [c for c in entities["Customer"] if c["Id"] == customer_id]
    assert customer["DisplayName"].startswith(TEST_NAME) and customer["Active"]
    assert any(i["Id"] == invoice_id for i in entities["Invoice"])

    assert adapter.cleanup_test_documents(result) == []
    entities = ledger(sandbox, Q, realm)["entities"]
    assert not any(i["Id"] == invoice_id for i in entities["Invoice"])
    (customer,) = [c for c in entities["Customer"] if c["Id"] == customer_id]
    assert customer["Active"] is False  # QBO cannot delete customers, only deactivate them

    # Within 24 h QBO returns the same refresh token; force the daily rotation to see it change.
    same = adapter.refresh()
    assert same.refresh_token == tokens.refresh_token and saved[-1] is same
    control(sandbox, "quickbooks/force_rotation", {"realm_id": realm})
    rotated = adapter.refresh()
    assert rotated.refresh_token != tokens.refresh_token and saved[-1] is rotated
    stale = make_adapter(Q, tokens=tokens, company_id=realm)
    with pytest.raises(NeedsReauthorization) as info:
        stale.refresh()
    assert info.value.reason == "invalid_grant" or "invalid" in info.value.reason.lower()

    assert adapter.revoke() is True
    with pytest.raises(AuthExpired):
        adapter.http.get(adapter._url(f"companyinfo/{realm}"), token=rotated.access_token)
    with pytest.raises(NeedsReauthorization):
        adapter.refresh()


def test_deny_at_consent_carries_the_provider_error(sandbox, make_adapter):
    adapter = make_adapter(Q)
    url = adapter.authorization_url(redirect_uri=REDIRECT_URI, state="deny-me")
    callback = decide_consent(sandbox, Q, url, user="u-ada", realm_id=QBO_REALM, decision="deny")
    assert (callback["error"], callback["state"]) == ("access_denied", "deny-me")
    assert "code" not in callback and "realmId" not in callback


def test_expired_access_token_is_refreshed_once_transparently(sandbox, make_adapter):
    saved: list = []
    adapter, _ = _connect(sandbox, make_adapter, saved)
    control(sandbox, "quickbooks/expire_access_tokens", {"realm_id": QBO_REALM})
    assert adapter.company_info().id == QBO_REALM
    assert len(saved) == 2  # exchange + the refresh the 401 triggered


def test_customers_reference_data_and_reference_lookup(sandbox, make_adapter):
    adapter, _ = _connect(sandbox, make_adapter, [])
    assert {a.name for a in adapter.reference_data("gl_accounts")} == {"Services", "Sales of Product Income"}
    assert {c.id for c in adapter.reference_data("classes")} == {"1", "2", "3"}
    with pytest.raises(NotSupported):
        adapter.reference_data("journals")
    (amy,) = adapter.find_customers(CustomerQuery("name", "Amy's Bird Sanctuary"))
    assert amy.id == "1"
    (cool,) = adapter.find_customers(CustomerQuery("email", "cool@cars.test"))
    assert cool.id == "3"
    created = adapter.create_customer(CustomerDraft(reference="c1", name="O'Hara Gardens", email="oh@example.test"))
    assert adapter.find_customers(CustomerQuery("id", created.id))[0].name == "O'Hara Gardens"
    found = adapter.find_by_reference("invoice", "1001")
    assert found is not None and found.external_id == "1" and not found.created
    assert adapter.find_by_reference("invoice", "no-such-number") is None


@given(st.text())
def test_query_literal_round_trips(value):
    literal = qbo_literal(value)
    inner = literal[1:-1]
    out, i = [], 0
    while i < len(inner):
        if inner[i] == "\\":
            i += 1
            assert inner[i] in "\\'"
        else:
            assert inner[i] != "'"  # every quote inside is escaped
        out.append(inner[i])
        i += 1
    assert "".join(out) == value


def test_push_invoice_is_idempotent_and_payment_status_follows_payments(sandbox, make_adapter):
    from datetime import date
    from decimal import Decimal

    from portal.integrations.base import DocumentDraft, LineDraft

    adapter, _ = _connect(sandbox, make_adapter, [])
    draft = DocumentDraft(
        reference="ll-inv-7f3a",
        number="LL-2026-0007",
        customer_id="1",
        issue_date=date(2026, 5, 1),
        due_date=date(2026, 5, 31),
        currency="USD",
        lines=(LineDraft("Two hours", Decimal(2), Decimal("75.00"), item="2", tax_code="NON"),),
    )
    pushed = adapter.push_invoice(draft)
    assert (pushed.external_number, pushed.created) == ("LL-2026-0007", True)
    again = adapter.push_invoice(draft)
    assert (again.external_id, again.created) == (pushed.external_id, False)
    status = adapter.payment_status(pushed.external_id)
    assert (status.paid, status.amount_open, status.state) == (False, Decimal(150), "open")
    control(
        sandbox,
        "quickbooks/mark_paid",
        {"realm_id": QBO_REALM, "invoice_id": pushed.external_id, "amount": 50},
    )
    assert adapter.payment_status(pushed.external_id).state == "partial"
    control(sandbox, "quickbooks/mark_paid", {"realm_id": QBO_REALM, "invoice_id": pushed.external_id})
    assert adapter.payment_status(pushed.external_id).paid


def test_reference_data_includes_inactive_rows_sub_items_rates_and_preferences(sandbox, make_adapter):
    adapter, _ = _connect(sandbox, make_adapter, [])
    items = {i.id: i for i in adapter.reference_data("items")}
    assert not items["6"].active and items["1"].active  # Old Widget is inactive
    assert items["3"].details["Type"] == "Category"
    assert items["4"].details["ParentRef"] == "3" and items["4"].name == "Hardware:Cables"
    accounts = {a.id: a for a in adapter.reference_data("all_accounts")}
    assert accounts["5"].details["AccountType"] == "Bank" and accounts["1"].details["AccountType"] == "Income"
    assert {r.name for r in adapter.reference_data("tax_rates")} >= {"California", "Arizona", "New York City", "MCTD"}
    codes = {c.name: c.details["rate"] for c in adapter.reference_data("tax_codes")}
    assert codes["California"] == "8" and codes["New York City"] == "8.875"  # 4 + 4.5 + 0.375, one code
    control(sandbox, "quickbooks/set_preferences", {"realm_id": QBO_REALM, "custom_txn_numbers": True})
    preferences = {p.code: p.details["value"] for p in adapter.reference_data("preferences")}
    assert preferences["custom_txn_numbers"] is True and preferences["class_tracking_per_line"] is True
    assert preferences["closing_date"] is None and preferences["default_terms"] == "3"
