"""Helpers shared by the bexio emulator tests: consent, token exchange and an API session."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

CLIENT_ID = "ledgerlink-dev"
CLIENT_SECRET = "ledgerlink-bexio-dev-secret"
REDIRECT_URI = "http://127.0.0.1:8765/oauth/bexio/callback"
COMPANY = "q69vysq7fkzl"
SECOND_COMPANY = "b7xk2m4pq9rt"
SCOPE = " ".join(
    (
        "openid",
        "profile",
        "email",
        "offline_access",
        "contact_edit",
        "kb_invoice_edit",
        "article_show",
        "accounting",
        "bank_account_show",
    )
)


def oidc(base: str) -> str:
    """Return the realm's openid-connect endpoint prefix."""
    return f"{base}/bexio/auth/realms/bexio/protocol/openid-connect"


def query(url: str) -> dict[str, str]:
    """Return the query parameters of a redirect URL."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def consent(base: str, **params) -> str:
    """Approve (by default) through the control API; return the redirect URL."""
    body = {
        "provider": "bexio",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "state": "xyz",
        "username": "max.mustermann",
        "company_id": COMPANY,
        **params,
    }
    resp = requests.post(f"{base}/_control/consent", json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["redirect_url"]


def exchange(base: str, code: str, **extra) -> requests.Response:
    """Redeem an authorization code with client credentials in the body."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **extra,
    }
    return requests.post(f"{oidc(base)}/token", data=form, timeout=10)


def login(base: str, **params) -> dict:
    """Run consent + code exchange; return the token response."""
    code = query(consent(base, **params))["code"]
    resp = exchange(base, code)
    assert resp.status_code == 200, resp.text
    return resp.json()


def refresh(base: str, refresh_token: str, **extra) -> requests.Response:
    """Use a refresh token with HTTP Basic client authentication."""
    return requests.post(
        f"{oidc(base)}/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, **extra},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )


class Api:
    """A requests session against the emulated api.bexio.com with a bearer token."""

    def __init__(self, base: str, token: str) -> None:
        self.root = f"{base}/bexio/api"
        self.base = base
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        """Send a request to ``path`` below the API root."""
        return self.session.request(method, self.root + path, timeout=10, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        """GET ``path``."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        """POST ``path``."""
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        """DELETE ``path``."""
        return self.request("DELETE", path, **kwargs)


def control(base: str, action: str, **body) -> requests.Response:
    """POST a bexio control action."""
    return requests.post(f"{base}/_control/bexio/{action}", json=body, timeout=10)


def new_invoice(api: Api, **fields) -> dict:
    """Create a one-position draft invoice (100 CHF net, 8.1 %) and return it."""
    body = {
        "title": "Test",
        "contact_id": 1,
        "user_id": 1,
        "mwst_type": 0,
        "mwst_is_net": True,
        "positions": [
            {
                "type": "KbPositionCustom",
                "amount": "1",
                "unit_price": "100",
                "tax_id": 14,
                "account_id": 95,
                "unit_id": 1,
                "text": "Beratung",
            }
        ],
        **fields,
    }
    resp = api.post("/2.0/kb_invoice", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


@pytest.fixture
def bexio_tokens(sandbox_url: str) -> dict:
    """Token response of a consented login into Mustermann AG with the adapter's scopes."""
    return login(sandbox_url)


@pytest.fixture
def api(sandbox_url: str, bexio_tokens: dict) -> Api:
    """An API session for Mustermann AG."""
    return Api(sandbox_url, bexio_tokens["access_token"])
