"""python-quickbooks + intuit-oauth (PyPI) against the sandbox with only base URLs changed."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from quickbooks import QuickBooks
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.invoice import Invoice

from tests.sandbox.test_quickbooks_support import CLIENT_ID, CLIENT_SECRET, REDIRECT, US_REALM


@pytest.fixture
def api_base(sandbox_url, monkeypatch):
    # Base URLs only: both are plain class attributes in python-quickbooks (quickbooks-online.md §7).
    monkeypatch.setattr(QuickBooks, "api_url_v3", f"{sandbox_url}/quickbooks/api/v3")
    monkeypatch.setattr(QuickBooks, "sandbox_api_url_v3", f"{sandbox_url}/quickbooks/api/v3")
    # requests-oauthlib refuses plain http; the test server has no TLS (oauthlib's documented switch).
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    return sandbox_url


def test_oauth_read_and_create_with_python_quickbooks(api_base):
    discovery = f"{api_base}/quickbooks/developer/.well-known/openid_sandbox_configuration/"
    auth = AuthClient(CLIENT_ID, CLIENT_SECRET, REDIRECT, discovery)
    url = auth.get_authorization_url([Scopes.ACCOUNTING])
    page = requests.get(url, timeout=10)
    assert page.status_code == 200
    form = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    form.update(user="u-ada", realm_id=US_REALM, decision="approve")
    back = requests.post(url.split("?")[0], data=form, allow_redirects=False, timeout=10)
    callback = {k: v[0] for k, v in parse_qs(urlsplit(back.headers["Location"]).query).items()}
    assert callback["state"] == auth.state_token
    auth.get_bearer_token(callback["code"], realm_id=callback["realmId"])
    assert auth.access_token
    assert auth.refresh_token.startswith("AB11")
    assert auth.expires_in == 3600

    client = QuickBooks(auth_client=auth, refresh_token=auth.refresh_token, company_id=auth.realm_id, minorversion=75)
    amy = Customer.get(1, qb=client)
    assert amy.DisplayName == "Amy's Bird Sanctuary"
    assert Customer.count(qb=client) == 6
    found = Customer.filter(DisplayName="Amy's Bird Sanctuary", qb=client)
    assert [c.Id for c in found] == ["1"]

    invoice = Invoice()
    line = SalesItemLine()
    line.Amount = 100
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = {"value": "1", "name": "Services"}
    invoice.Line.append(line)
    invoice.CustomerRef = amy.to_ref()
    created = invoice.save(qb=client, request_id="lib-create-1")
    assert created.Id
    assert created.TotalAmt == 100
    assert created.SyncToken == "0"
    again = Invoice()
    again.Line, again.CustomerRef = invoice.Line, amy.to_ref()
    replay = again.save(qb=client, request_id="lib-create-1")
    assert replay.Id == created.Id  # python-quickbooks' own idempotence test
    auth.refresh()
    auth.revoke(token=auth.refresh_token)
