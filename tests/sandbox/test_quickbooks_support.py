"""Helpers shared by the QuickBooks emulator tests: connect a realm, call the API."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests

from sandbox.core.clients import DEFAULT_CLIENTS
from sandbox.quickbooks.demo import UK_REALM, US_REALM

CLIENT_ID, CLIENT_SECRET = DEFAULT_CLIENTS["quickbooks"]
REDIRECT = "http://localhost:8000/callback"
ACCOUNTING = "com.intuit.quickbooks.accounting"
__all__ = ["ACCOUNTING", "CLIENT_ID", "CLIENT_SECRET", "REDIRECT", "UK_REALM", "US_REALM", "Qbo"]


def authorize(
    base: str,
    *,
    realm: str = US_REALM,
    user: str = "u-ada",
    scope: str = ACCOUNTING,
    state: str = "st4te",
    decision: str = "approve",
) -> dict:
    """Approve through the control API and return the callback's query parameters."""
    r = requests.post(
        f"{base}/_control/consent",
        json={
            "provider": "quickbooks",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": state,
            "user": user,
            "realm_id": realm,
            "decision": decision,
        },
        timeout=10,
    )
    r.raise_for_status()
    return {k: v[0] for k, v in parse_qs(urlsplit(r.json()["redirect_url"]).query).items()}


def token_request(base: str, data: dict, *, auth=(CLIENT_ID, CLIENT_SECRET), headers=None) -> requests.Response:
    """POST to the token endpoint with Basic client authentication."""
    return requests.post(
        f"{base}/quickbooks/oauth/oauth2/v1/tokens/bearer",
        data=data,
        auth=auth,
        headers={"Accept": "application/json", **(headers or {})},
        timeout=10,
    )


def exchange(base: str, code: str) -> dict:
    """Trade a code for tokens; fail the test on an error."""
    r = token_request(base, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
    assert r.status_code == 200, r.text
    return r.json()


class Qbo:
    """A connected API client for one realm."""

    def __init__(self, base: str, realm: str = US_REALM) -> None:
        self.base = base
        self.realm = realm
        params = authorize(base, realm=realm)
        self.tokens = exchange(base, params["code"])
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {self.tokens['access_token']}", "Accept": "application/json"}
        )

    def url(self, path: str) -> str:
        return f"{self.base}/quickbooks/api/v3/company/{self.realm}/{path}"

    def get(self, path: str, **kw) -> requests.Response:
        return self.session.get(self.url(path), timeout=10, **kw)

    def post(self, path: str, body=None, **kw) -> requests.Response:
        return self.session.post(self.url(path), json=body, timeout=10, **kw)

    def query(self, text: str) -> requests.Response:
        return self.session.get(self.url("query"), params={"query": text, "minorversion": "75"}, timeout=10)

    def create(self, entity: str, body: dict, **params) -> dict:
        r = self.post(entity.lower(), body, params=params)
        assert r.status_code == 200, r.text
        return r.json()[entity]

    def fault(self, r: requests.Response, status: int = 400) -> dict:
        assert r.status_code == status, r.text
        return r.json()["Fault"]["Error"][0]
