"""Helpers shared by the Exact Online emulator tests (connect a user, call the API)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests

CLIENT_ID = "3f1d2a9c-5b7e-4c1a-9e2d-7a6b5c4d3e2f"
CLIENT_SECRET = "ledgerlink-exact-dev-secret"
REDIRECT = "http://localhost:5000/connections/exact/callback"
NL_MAIN, NL_SECOND, NL_ACCOUNTANT = 3010001, 3010002, 3010003
BE_DIVISION = 3020001


def control(base: str, action: str, **body) -> dict:
    """POST an Exact control action and return its JSON."""
    response = requests.post(f"{base}/_control/exact-online/{action}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def authorize(base: str, region: str = "nl", **params) -> str:
    """Approve a consent programmatically and return the authorization code."""
    body = {
        "provider": "exact-online",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "state": "s1",
        "region": region,
        **params,
    }
    response = requests.post(f"{base}/_control/consent", json=body, timeout=10)
    assert response.status_code == 200, response.text
    query = parse_qs(urlsplit(response.json()["redirect_url"]).query)
    return query["code"][0]


def token_request(base: str, region: str = "nl", **form) -> requests.Response:
    """POST to the token endpoint with the dev client's credentials."""
    data = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **form}
    return requests.post(f"{base}/exact-online/{region}/api/oauth2/token", data=data, timeout=10)


def connect(base: str, region: str = "nl", **params) -> dict:
    """Run consent + code exchange; return the token response JSON."""
    code = authorize(base, region, **params)
    response = token_request(base, region, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    assert response.status_code == 200, response.text
    return response.json()


class Api:
    """A bearer-authenticated client of one region's REST API."""

    def __init__(self, base: str, token: str, region: str = "nl") -> None:
        self.root = f"{base}/exact-online/{region}/api/v1"
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            }
        )

    def get(self, path: str, **params) -> requests.Response:
        """GET a path below /api/v1/."""
        return self.session.get(f"{self.root}/{path}", params=params or None, timeout=10)

    def post(self, path: str, body) -> requests.Response:
        """POST JSON to a path below /api/v1/."""
        return self.session.post(f"{self.root}/{path}", json=body, timeout=10)

    def put(self, path: str, body) -> requests.Response:
        """PUT JSON to a path below /api/v1/."""
        return self.session.put(f"{self.root}/{path}", json=body, timeout=10)

    def delete(self, path: str) -> requests.Response:
        """DELETE a path below /api/v1/."""
        return self.session.delete(f"{self.root}/{path}", timeout=10)


def api_for(base: str, region: str = "nl", **params) -> Api:
    """Connect a user and return an Api client for the region."""
    return Api(base, connect(base, region, **params)["access_token"], region)


def error_value(response: requests.Response) -> str:
    """Return the message of an Exact error body, asserting its shape (exact-online.md §4.1)."""
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == ""
    assert body["error"]["message"]["lang"] == ""
    return body["error"]["message"]["value"]


def first_account(api: Api, division: int = NL_MAIN) -> dict:
    """Return demo customer 1 of a division."""
    response = api.get(f"{division}/crm/Accounts", **{"$filter": "trim(Code) eq '1'", "$select": "ID,Code,Name"})
    assert response.status_code == 200, response.text
    return response.json()["d"]["results"][0]


def item_by_code(api: Api, code: str, division: int = NL_MAIN) -> dict:
    """Return a demo item by its code."""
    response = api.get(f"{division}/logistics/Items", **{"$filter": f"Code eq '{code}'"})
    assert response.status_code == 200, response.text
    return response.json()["d"]["results"][0]


def create_invoice(api: Api, division: int = NL_MAIN, **header) -> dict:
    """Create an open sales invoice with one consultancy line; return the entity."""
    account = first_account(api, division)
    item = item_by_code(api, "CONSULT", division)
    body = {
        "OrderedBy": account["ID"],
        "YourRef": "LL-1001",
        "SalesInvoiceLines": [{"Item": item["ID"], "Quantity": 3, "UnitPrice": 100}],
        **header,
    }
    response = api.post(f"{division}/salesinvoice/SalesInvoices", body)
    assert response.status_code == 201, response.text
    return response.json()["d"]
