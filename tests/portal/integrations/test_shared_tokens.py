"""Adapters joined on one grant (share_state): one token set, refreshed once; push_invoice(looked_up=...)."""

from __future__ import annotations

import secrets
import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from portal.integrations import specs
from portal.integrations.base import CustomerQuery, DocumentDraft, LineDraft, get_adapter_class

from .conftest import BEXIO_COMPANY, CLIENTS, QBO_REALM, REDIRECT_URI, control, decide_consent, ledger

E, Q, B = specs.EXACT_ONLINE, specs.QUICKBOOKS, specs.BEXIO
PROVIDERS = [E, Q, B]
EXACT_DIVISION = "3010001"
#: Seconds a thread waits at a barrier before the test counts it as stuck.
WAIT = 30


class Grant:
    """An adapter connected through the sandbox, the token endpoint calls of its session and the sets it persisted."""

    def __init__(self, adapter, saved: list) -> None:
        self.adapter, self.saved = adapter, saved
        self.token_posts: list[str] = []
        post, token_url = adapter.http.post, adapter.region.token_url

        def counted(url, *args, **kwargs):
            if url == token_url:
                self.token_posts.append(threading.current_thread().name)
            return post(url, *args, **kwargs)

        adapter.http.post = counted


def _connect(sandbox: str, make_http, provider: str) -> Grant:
    http, _ = make_http(provider)
    saved: list = []
    options = {"region": "nl"} if provider == E else {}
    adapter = get_adapter_class(provider)(
        http=http,
        client_id=CLIENTS[provider][0],
        client_secret=CLIENTS[provider][1],
        token_updater=saved.append,
        **options,
    )
    verifier = secrets.token_urlsafe(48)
    url = adapter.authorization_url(redirect_uri=REDIRECT_URI, state="s", code_verifier=verifier)
    if provider == E:
        callback = decide_consent(sandbox, E, url, region="nl", user="jan.devries", decision="approve")
    elif provider == Q:
        callback = decide_consent(sandbox, Q, url, user="u-ada", realm_id=QBO_REALM, decision="approve")
    else:
        callback = decide_consent(sandbox, B, url, username="max.mustermann", company_id=BEXIO_COMPANY)
    adapter.exchange_code(
        code=callback["code"], redirect_uri=REDIRECT_URI, code_verifier=verifier, callback_params=callback
    )
    if provider == E:
        adapter.company_id = EXACT_DIVISION
    return Grant(adapter, saved)


def _join(make_http, grant: Grant) -> Grant:
    """Return a second adapter on ``grant``'s tokens (its own HTTP session), joined by share_state."""
    first = grant.adapter
    http, _ = make_http(first.provider)
    saved: list = []
    joined = get_adapter_class(first.provider)(
        http=http,
        client_id=first.client_id,
        client_secret=first.client_secret,
        company_id=first.company_id,
        tokens=first.tokens,
        token_updater=saved.append,
        region=first.region.key,
    )
    joined.share_state(first)
    return Grant(joined, saved)


def _token_calls(*grants: Grant) -> int:
    """Count the calls of the provider's token endpoint over the grants' HTTP sessions."""
    return sum(len(grant.token_posts) for grant in grants)


def _count_refreshes(monkeypatch, provider: str) -> list:
    cls = get_adapter_class(provider)
    real = cls.refresh
    calls: list = []

    def counted(self):
        calls.append(self)
        return real(self)

    monkeypatch.setattr(cls, "refresh", counted)
    return calls


def _meet_before_refreshing(adapter, barrier: threading.Barrier) -> None:
    """Make the adapter's first _refresh_once wait for the other thread's (both saw the same set)."""
    real = adapter._refresh_once
    first = [True]

    def gated(seen, *, force):
        if first[0]:
            first[0] = False
            barrier.wait(WAIT)
        return real(seen, force=force)

    adapter._refresh_once = gated


def _both_at_once(*adapters) -> list:
    """Call company_info on each adapter in a thread of its own, started together; return results or errors."""
    start = threading.Barrier(len(adapters))
    results: list = [None] * len(adapters)

    def run(i: int, adapter) -> None:
        start.wait(WAIT)
        try:
            results[i] = adapter.company_info()
        except BaseException as exc:  # reported by the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(adapters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 2)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_joined_adapters_see_one_token_set(sandbox, make_http):
    grant = _connect(sandbox, make_http, B)
    other = _join(make_http, grant)
    assert other.adapter.tokens is grant.adapter.tokens

    new = other.adapter.refresh()
    assert grant.adapter.tokens is new and other.adapter.tokens is new
    assert other.saved == [new] and grant.saved[-1] is not new  # persisted by the adapter that refreshed
    assert grant.adapter.company_info().id == BEXIO_COMPANY  # the first adapter works on the rotated set

    expired = replace(new, access_expires_at=datetime.now(UTC) - timedelta(minutes=1))
    grant.adapter.tokens = expired
    assert other.adapter.tokens is expired


def test_an_adapter_not_joined_keeps_its_own_token_set(sandbox, make_http):
    grant = _connect(sandbox, make_http, B)
    alone = get_adapter_class(B)(
        http=make_http(B)[0],
        client_id=CLIENTS[B][0],
        client_secret=CLIENTS[B][1],
        company_id=BEXIO_COMPANY,
        tokens=grant.adapter.tokens,
    )
    alone.tokens = replace(grant.adapter.tokens, access_expires_at=datetime.now(UTC))
    assert grant.adapter.tokens is not alone.tokens


def _race_to_refresh(grant, other, monkeypatch, provider: str) -> None:
    """Call from both adapters at once, both having seen the old token set; one refresh reaches the provider."""
    refreshes = _count_refreshes(monkeypatch, provider)
    both = threading.Barrier(2)
    _meet_before_refreshing(grant.adapter, both)
    _meet_before_refreshing(other.adapter, both)

    results = _both_at_once(grant.adapter, other.adapter)

    assert [getattr(r, "id", r) for r in results] == [grant.adapter.company_id] * 2
    assert len(refreshes) == 1
    assert _token_calls(grant, other) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_expired_access_token_is_refreshed_once_for_two_threads(sandbox, make_http, monkeypatch, provider):
    grant = _connect(sandbox, make_http, provider)
    other = _join(make_http, grant)
    before = grant.adapter.tokens
    # Exact refuses a refresh in a token's first 570 s; the sandbox's clock moves past the lifetime.
    control(sandbox, "clock", {"advance_seconds": 600})
    grant.adapter.tokens = replace(before, access_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    _race_to_refresh(grant, other, monkeypatch, provider)
    new = grant.adapter.tokens
    assert other.adapter.tokens is new and new.access_token != before.access_token
    assert [*grant.saved, *other.saved][-1] is new
    if provider in (E, B):  # rotating refresh tokens: the one used is spent, the new one is shared
        assert new.refresh_token != before.refresh_token


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_token_the_ledger_expired_is_refreshed_once_for_two_threads(sandbox, make_http, monkeypatch, provider):
    grant = _connect(sandbox, make_http, provider)
    other = _join(make_http, grant)
    before = grant.adapter.tokens
    # The adapters still hold the set as valid; the ledger answers 401 to both.
    if provider == E:
        control(sandbox, "clock", {"advance_seconds": 600})
    elif provider == Q:
        control(sandbox, "quickbooks/expire_access_tokens", {"realm_id": QBO_REALM})
    else:
        control(sandbox, "bexio/expire_access_tokens", {"company": BEXIO_COMPANY})
    assert not before.access_expired()
    _race_to_refresh(grant, other, monkeypatch, provider)
    assert other.adapter.tokens is grant.adapter.tokens
    assert grant.adapter.tokens.access_token != before.access_token


# -- push_invoice(looked_up=...) ----------------------------------------------------------------------


def _draft(adapter, reference: str) -> DocumentDraft:
    today = date.today()
    if adapter.provider == E:
        item = next(i for i in adapter.reference_data("items") if i.code.strip() == "CONSULT")
        customer = adapter.find_customers(CustomerQuery("code", "1"))[0].id
        line = LineDraft("Consulting", Decimal(2), Decimal("100.00"), item=item.id)
        currency = "EUR"
    elif adapter.provider == Q:
        customer, currency = "1", "USD"
        line = LineDraft("Two hours", Decimal(2), Decimal("75.00"), item="2", tax_code="NON")
    else:
        customer, currency = "4", "CHF"
        line = LineDraft("Beratung", Decimal(2), Decimal("100.00"), tax_code="14", gl_account="96")
    return DocumentDraft(
        reference=reference,
        number=reference,
        customer_id=customer,
        issue_date=today,
        due_date=today + timedelta(days=30),
        currency=currency,
        lines=(line,),
    )


def _ledger_invoices(sandbox: str, provider: str, reference: str) -> list[dict]:
    if provider == E:
        rows = ledger(sandbox, E, EXACT_DIVISION)["tables"].get("SalesInvoices", [])
        return [r for r in rows if r.get("YourRef") == reference]
    if provider == Q:
        rows = ledger(sandbox, Q, QBO_REALM)["entities"].get("Invoice", [])
        return [r for r in rows if r.get("DocNumber") == reference]
    return [r for r in ledger(sandbox, B, BEXIO_COMPANY)["invoices"] if r.get("api_reference") == reference]


def _count_lookups(adapter) -> list:
    real = adapter.find_by_reference
    calls: list = []

    def counted(kind, reference):
        calls.append((kind, reference))
        return real(kind, reference)

    adapter.find_by_reference = counted
    return calls


@pytest.mark.parametrize("provider", PROVIDERS)
def test_push_invoice_after_a_look_up_creates_without_looking_again(sandbox, make_http, provider):
    adapter = _connect(sandbox, make_http, provider).adapter
    reference = f"LU-{secrets.token_hex(3).upper()}"
    draft = _draft(adapter, reference)
    lookups = _count_lookups(adapter)

    created = adapter.push_invoice(draft, looked_up=True)

    assert lookups == []
    assert created.created and created.external_id
    assert len(_ledger_invoices(sandbox, provider, reference)) == 1

    again = adapter.push_invoice(draft)

    assert lookups == [("invoice", reference)]
    assert str(again.external_id) == str(created.external_id) and not again.created
    assert len(_ledger_invoices(sandbox, provider, reference)) == 1
