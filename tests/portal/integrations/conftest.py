"""Fixtures for the adapter foundation: a reset sandbox, HTTP sessions on it, connected tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from portal.integrations import specs
from portal.integrations.base import TokenSet
from portal.integrations.http import LedgerHttp, ResponseInfo, RetryPolicy

#: The sandbox's development OAuth clients (sandbox/core/clients.py).
CLIENTS = {
    specs.EXACT_ONLINE: ("3f1d2a9c-5b7e-4c1a-9e2d-7a6b5c4d3e2f", "ledgerlink-exact-dev-secret"),
    specs.QUICKBOOKS: ("ABledgerlinkDevClient0000000000000000000000000000", "ledgerlink-qbo-dev-secret"),
    specs.BEXIO: ("ledgerlink-dev", "ledgerlink-bexio-dev-secret"),
}
REDIRECT_URI = "http://127.0.0.1:8765/callback"
EXACT_DIVISION = "3010001"
QBO_REALM = "9341453908059321"
BEXIO_COMPANY = "q69vysq7fkzl"
#: Tiny backoff so retry tests take milliseconds.
FAST_RETRY = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.02)


@pytest.fixture
def sandbox(sandbox_server: str) -> str:
    """Base URL of a freshly reset sandbox (demo data, quotas on, no faults, real clock)."""
    requests.post(f"{sandbox_server}/_control/reset", timeout=10).raise_for_status()
    return sandbox_server


def control(sandbox: str, path: str, body: dict | None = None, method: str = "POST") -> dict | list:
    """Call a sandbox test control and return its JSON."""
    response = requests.request(method, f"{sandbox}/_control/{path}", json=body, timeout=10)
    assert response.status_code < 300, response.text
    return response.json() if response.content else {}


def add_fault(sandbox: str, **fault) -> dict:
    """Register a sandbox fault and return it."""
    return control(sandbox, "faults", fault)


@pytest.fixture
def make_http(sandbox: str) -> Iterator[Callable[..., tuple[LedgerHttp, list[ResponseInfo]]]]:
    """Return a factory: provider → (LedgerHttp on the sandbox, list the on_response hook fills)."""
    made: list[LedgerHttp] = []

    def make(provider: str, **options) -> tuple[LedgerHttp, list[ResponseInfo]]:
        seen: list[ResponseInfo] = []
        options.setdefault("retry", FAST_RETRY)
        http = LedgerHttp.from_config(provider, {"SANDBOX_URL": sandbox}, on_response=seen.append, **options)
        made.append(http)
        return http, seen

    yield make
    for http in made:
        http.close()


def _code_from_consent(sandbox: str, body: dict) -> dict[str, str]:
    redirect = control(sandbox, "consent", {"redirect_uri": REDIRECT_URI, "state": "st", **body})["redirect_url"]
    return {k: v[0] for k, v in parse_qs(urlsplit(redirect).query).items()}


def connect(sandbox: str, http: LedgerHttp) -> TokenSet:
    """Approve consent in the sandbox and exchange the code through ``http``; return the tokens."""
    spec = http.spec
    client_id, secret = CLIENTS[spec.key]
    region = spec.region()
    consent = {"provider": spec.key, "client_id": client_id}
    form = {"grant_type": "authorization_code", "redirect_uri": REDIRECT_URI}
    auth = None
    if spec.key == specs.EXACT_ONLINE:
        consent["region"] = region.key
    elif spec.key == specs.QUICKBOOKS:
        consent.update(scope=spec.scope, user="u-ada", realm_id=QBO_REALM, decision="approve")
    else:
        consent.update(scope=spec.scope, username="max.mustermann", company_id=BEXIO_COMPANY)
    if spec.tokens.client_auth == "basic":
        auth = (client_id, secret)
    else:
        form.update(client_id=client_id, client_secret=secret)
    form["code"] = _code_from_consent(sandbox, consent)["code"]
    response = http.post(region.token_url, data=form, auth=auth)
    return TokenSet.from_response(response.json(), spec.tokens)


def api_url(provider: str, path: str) -> str:
    """Return the real production URL of an API path for the demo company of ``provider``."""
    spec = specs.get_spec(provider)
    base = spec.region().api_base
    if provider == specs.EXACT_ONLINE:
        return f"{base}/{EXACT_DIVISION}/{path}"
    if provider == specs.QUICKBOOKS:
        return f"{base.format(company=QBO_REALM)}/{path}"
    return f"{base}/{path}"


@pytest.fixture
def make_adapter(make_http):
    """Return a factory: provider (+ adapter options) → a LedgerAdapter on the sandbox."""
    from portal.integrations.base import get_adapter_class

    def make(provider: str, **options):
        http, _ = make_http(provider)
        client_id, secret = CLIENTS[provider]
        return get_adapter_class(provider)(http=http, client_id=client_id, client_secret=secret, **options)

    return make


def query_of(url: str) -> dict[str, str]:
    """Return the query parameters of ``url`` as a flat dict."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def decide_consent(sandbox: str, provider: str, authorize_url: str, **fields) -> dict[str, str]:
    """Approve or deny the consent an authorization URL asks for; return the callback's query.

    The URL's own parameters (client, redirect URI, state, scope, PKCE challenge) are passed
    on, so the sandbox sees exactly what the adapter asked for.
    """
    asked = query_of(authorize_url)
    asked.pop("response_type", None)
    asked.pop("force_login", None)
    body = {"provider": provider, **asked, **fields}
    return query_of(control(sandbox, "consent", body)["redirect_url"])


def ledger(sandbox: str, provider: str, company: str) -> dict:
    """Return the sandbox's view of one company's ledger."""
    return control(sandbox, f"ledger/{provider}/{company}", method="GET")
