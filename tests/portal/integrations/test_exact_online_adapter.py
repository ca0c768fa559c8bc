"""The Exact Online adapter against the sandbox over HTTP: OAuth round trip in all seven regions."""

from __future__ import annotations

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from portal.integrations import specs
from portal.integrations.base import TEST_NAME, Forbidden, NeedsReauthorization, NotSupported, Rejected
from portal.integrations.exact_online import account_code, odata_literal, rows

from .conftest import CLIENTS, REDIRECT_URI, control, decide_consent, ledger, query_of

E = specs.EXACT_ONLINE
#: region → (demo user, division, real host) (sandbox/exact/README.md "Demo data").
REGIONS = {
    "nl": ("jan.devries", "3010001", "start.exactonline.nl"),
    "be": ("lotte.peeters", "3020001", "start.exactonline.be"),
    "de": ("anna.schmidt", "3030001", "start.exactonline.de"),
    "uk": ("oliver.smith", "3040001", "start.exactonline.co.uk"),
    "us": ("emily.johnson", "3050001", "start.exactonline.com"),
    "es": ("lucia.garcia", "3060001", "start.exactonline.es"),
    "fr": ("camille.martin", "3070001", "start.exactonline.fr"),
}


def _connect(sandbox, make_adapter, region: str, saved: list, **consent):
    user, _, _ = REGIONS[region]
    adapter = make_adapter(E, region=region, token_updater=saved.append)
    url = adapter.authorization_url(redirect_uri=REDIRECT_URI, state=f"state-{region}")
    callback = decide_consent(sandbox, E, url, region=region, user=user, decision="approve", **consent)
    assert callback["state"] == f"state-{region}"
    tokens = adapter.exchange_code(code=callback["code"], redirect_uri=REDIRECT_URI, callback_params=callback)
    return adapter, tokens


@pytest.mark.parametrize("region", list(REGIONS))
def test_full_round_trip_in_every_region(sandbox, make_adapter, region):
    user, division, host = REGIONS[region]
    saved: list = []
    adapter = make_adapter(E, region=region, token_updater=saved.append)

    url = adapter.authorization_url(redirect_uri=REDIRECT_URI, state="s1", code_verifier="ignored")
    assert url.startswith(f"https://{host}/api/oauth2/auth?")
    assert query_of(url) == {
        "client_id": CLIENTS[E][0],
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "state": "s1",
        "force_login": "0",
    }
    page = requests.get(adapter.http.hosts.resolve(url), timeout=10)
    assert page.status_code == 200 and 'name="division"' in page.text

    callback = decide_consent(sandbox, E, url, region=region, user=user, decision="approve")
    assert callback["state"] == "s1"
    tokens = adapter.exchange_code(code=callback["code"], redirect_uri=REDIRECT_URI, callback_params=callback)
    assert saved == [tokens] and adapter.tokens is tokens
    assert tokens.access_expires_at - tokens.issued_at == specs.EXACT_ONLINE_SPEC.tokens.access_ttl

    companies = adapter.list_companies()
    assert next(c.id for c in companies if c.accessible) == division
    if region == "nl":  # jan.devries: two grantable divisions and one without rights
        assert [(c.id, c.accessible) for c in companies] == [
            ("3010001", True),
            ("3010002", True),
            ("3010003", False),
        ]
    adapter.company_id = division
    info = adapter.company_info()
    assert (info.id, info.accessible) == (division, True) and info.name and info.country

    checks = adapter.preflight()
    assert [c.name for c in checks] == [
        "company",
        "create_invoices",
        "sales_journal",
        "vat_code",
        "revenue_account",
    ]
    assert all(c.ok for c in checks), checks

    result = adapter.create_test_documents()
    assert [kind for kind, _, _ in result.created] == ["customer", "invoice"]
    tables = ledger(sandbox, E, division)["tables"]
    (account,) = [a for a in tables["Accounts"] if a["Name"].startswith(TEST_NAME)]
    (invoice,) = tables["SalesInvoices"]
    assert invoice["OrderedBy"] == account["ID"] == result.created[0][1]
    assert invoice["Status"] == 20  # open, never printed

    assert adapter.cleanup_test_documents(result) == []
    tables = ledger(sandbox, E, division)["tables"]
    assert not [a for a in tables["Accounts"] if a["Name"].startswith(TEST_NAME)]
    assert not tables.get("SalesInvoices")

    # Refreshing is only allowed 570 s after the last token (exact-online.md §1.5).
    control(sandbox, "clock", {"advance_seconds": 580})
    new = adapter.refresh()
    assert saved[-1] is new and adapter.tokens is new
    assert new.refresh_token != tokens.refresh_token and new.access_token != tokens.access_token
    stale = make_adapter(E, region=region, tokens=tokens, company_id=division)
    with pytest.raises(NeedsReauthorization) as info:
        stale.refresh()
    assert info.value.reason == "Old refresh token used."
    assert adapter.company_info().id == division  # the new pair works

    assert adapter.revoke() is False  # Exact has no revocation endpoint


def test_division_excluded_at_consent_and_one_without_rights_are_inaccessible(sandbox, make_adapter):
    adapter, _ = _connect(sandbox, make_adapter, "nl", [], divisions=[3010001])
    companies = {c.id: c for c in adapter.list_companies()}
    assert set(companies) == {"3010001", "3010002", "3010003"}
    assert companies["3010001"].accessible
    for excluded in ("3010002", "3010003"):
        assert not companies[excluded].accessible
        assert companies[excluded].reason == "NoDivisionAccess"
    adapter.company_id = "3010002"
    with pytest.raises(Forbidden):
        adapter.company_info()
    (company,) = adapter.preflight()
    assert (company.name, company.ok) == ("company", False)


def test_refresh_too_early_is_rejected_not_reauthorization(sandbox, make_adapter):
    saved: list = []
    adapter, tokens = _connect(sandbox, make_adapter, "nl", saved)
    with pytest.raises(Rejected) as info:
        adapter.refresh()
    assert not isinstance(info.value, NeedsReauthorization)
    assert "not expired" in (info.value.provider_text or "").lower() or info.value.provider_code
    assert saved == [tokens]


def test_expired_refresh_token_needs_reauthorization(sandbox, make_adapter):
    adapter, _ = _connect(sandbox, make_adapter, "nl", [])
    control(sandbox, "exact-online/expire_refresh_tokens", {"user": "jan.devries"})
    control(sandbox, "clock", {"advance_seconds": 600})
    with pytest.raises(NeedsReauthorization) as info:
        adapter.refresh()
    assert "refresh token expired" in info.value.reason.lower()


def test_deny_at_consent_carries_the_provider_error(sandbox, make_adapter):
    adapter = make_adapter(E, region="be")
    url = adapter.authorization_url(redirect_uri=REDIRECT_URI, state="d1")
    callback = decide_consent(sandbox, E, url, region="be", decision="deny")
    assert callback["error"] == "access_denied" and callback["state"] == "d1"
    assert "code" not in callback


def test_reference_data_customers_and_reference_lookup(sandbox, make_adapter):
    from datetime import date
    from decimal import Decimal

    from portal.integrations.base import CustomerDraft, CustomerQuery, DocumentDraft, LineDraft

    adapter, _ = _connect(sandbox, make_adapter, "nl", [])
    adapter.company_id = "3010001"
    assert {i.code.strip() for i in adapter.reference_data("tax_codes")} == {"0", "1", "2", "3", "5", "6"}
    assert [j.code for j in adapter.reference_data("journals")] == ["70", "71"]
    items = {i.code.strip(): i for i in adapter.reference_data("items")}
    assert "CONSULT" in items
    with pytest.raises(NotSupported):
        adapter.reference_data("classes")

    (jansen,) = adapter.find_customers(CustomerQuery("code", "1"))
    assert jansen.name == "Bakkerij Jansen B.V."
    created = adapter.create_customer(CustomerDraft(reference="c-1", name="O'Brien & Zn", email="ob@example.test"))
    assert [c.id for c in adapter.find_customers(CustomerQuery("name", "O'Brien & Zn"))] == [created.id]

    draft = DocumentDraft(
        reference="LL-2026-0001",
        number="2026-0001",
        customer_id=created.id,
        issue_date=date(2026, 5, 1),
        due_date=None,
        currency="EUR",
        lines=(LineDraft("Consulting", Decimal(2), Decimal("95.00"), item=items["CONSULT"].id),),
    )
    assert adapter.find_by_reference("invoice", draft.reference) is None
    pushed = adapter.push_invoice(draft)
    assert pushed.created
    again = adapter.push_invoice(draft)
    assert (again.external_id, again.created) == (pushed.external_id, False)
    assert adapter.find_by_reference("credit_note", draft.reference) is None  # an invoice, not a credit note


@given(st.text())
def test_odata_literal_round_trips(value):
    literal = odata_literal(value)
    assert literal[0] == literal[-1] == "'"
    assert literal[1:-1].replace("''", "'") == value


@given(st.lists(st.dictionaries(st.text(max_size=5), st.integers(), max_size=3), max_size=5))
def test_rows_reads_every_envelope(records):
    assert rows({"d": {"results": records}}) == records
    assert rows({"d": records}) == records
    assert rows({"error": {}}) == []


@given(st.text(alphabet=st.characters(blacklist_categories=("Zs", "Cc")), min_size=1, max_size=18))
def test_account_codes_are_right_aligned_to_18(code):
    padded = account_code(code)
    assert len(padded) == max(18, len(code.strip())) and padded.strip() == code.strip()


def test_every_account_and_journal_comes_with_its_type(sandbox, make_adapter):
    adapter, _ = _connect(sandbox, make_adapter, "nl", [])
    adapter.company_id = "3010001"
    accounts = {a.code.strip(): a for a in adapter.reference_data("all_accounts")}
    assert accounts["8000"].details["type"] == 110 and accounts["1300"].details["type"] == 20
    journals = {j.code.strip(): j for j in adapter.reference_data("all_journals")}
    assert journals["70"].details["type"] == 20 and journals["90"].details["type"] == 90
    assert journals["90"].details["type_description"]
