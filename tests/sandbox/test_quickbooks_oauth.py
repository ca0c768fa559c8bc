"""Intuit OAuth in the QBO sandbox: consent page, codes, token rotation, revocation, discovery."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import requests

from tests.sandbox.test_quickbooks_support import (
    ACCOUNTING,
    CLIENT_ID,
    REDIRECT,
    UK_REALM,
    US_REALM,
    Qbo,
    authorize,
    exchange,
    token_request,
)


def control(base, action, body):
    r = requests.post(f"{base}/_control/quickbooks/{action}", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def advance(base, seconds):
    requests.post(f"{base}/_control/clock", json={"advance_seconds": seconds}, timeout=10).raise_for_status()


def refresh(base, rt):
    return token_request(base, {"grant_type": "refresh_token", "refresh_token": rt})


def test_consent_page_lists_users_and_companies_and_redirects_with_realm(sandbox_url):
    params = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "scope": ACCOUNTING,
        "redirect_uri": REDIRECT,
        "state": "<x&y>",
    }
    page = requests.get(f"{sandbox_url}/quickbooks/appcenter/connect/oauth2", params=params, timeout=10)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert 'name="decision" value="approve"' in page.text
    assert 'value="deny"' in page.text
    assert US_REALM in page.text
    assert UK_REALM in page.text
    assert "&lt;x&amp;y&gt;" in page.text
    assert "<x&y>" not in page.text
    form = {**params, "user": "u-uma", "realm_id": UK_REALM, "decision": "approve"}
    r = requests.post(
        f"{sandbox_url}/quickbooks/appcenter/connect/oauth2", data=form, allow_redirects=False, timeout=10
    )
    assert r.status_code == 302
    q = parse_qs(urlsplit(r.headers["Location"]).query)
    assert q["state"] == ["<x&y>"]
    assert q["realmId"] == [UK_REALM]
    assert q["code"][0]
    # Uma has no access to the US company: the page is shown again with an error.
    r = requests.post(
        f"{sandbox_url}/quickbooks/appcenter/connect/oauth2",
        data={**form, "realm_id": US_REALM},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 400
    assert 'role="alert"' in r.text


def test_deny_and_bad_requests(sandbox_url):
    assert authorize(sandbox_url, decision="deny") == {"error": "access_denied", "state": "st4te"}
    base = f"{sandbox_url}/quickbooks/appcenter/connect/oauth2"
    bad_client = requests.get(base, params={"client_id": "nope", "redirect_uri": REDIRECT}, timeout=10)
    assert bad_client.status_code == 400
    assert "text/html" in bad_client.headers["Content-Type"]
    bad_uri = requests.get(
        base,
        params={
            "client_id": CLIENT_ID,
            "redirect_uri": "https://evil.test/cb",
            "response_type": "code",
            "scope": ACCOUNTING,
        },
        timeout=10,
    )
    assert bad_uri.status_code == 400
    bad_scope = requests.get(
        base,
        params={
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "com.intuit.nope",
            "state": "s",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert bad_scope.status_code == 302
    assert "error=invalid_scope" in bad_scope.headers["Location"]


def test_token_exchange_and_single_use_code(sandbox_url):
    code = authorize(sandbox_url)["code"]
    tokens = exchange(sandbox_url, code)
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["x_refresh_token_expires_in"] == 8726400
    assert tokens["refresh_token"].startswith("AB11")
    r = token_request(sandbox_url, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"
    assert "intuit_tid" in r.headers
    # Reusing the code invalidated the tokens issued for it (oauth-jsclient#173).
    assert refresh(sandbox_url, tokens["refresh_token"]).json() == {
        "error": "invalid_grant",
        "error_description": "Incorrect or invalid refresh token",
    }
    api = requests.get(
        f"{sandbox_url}/quickbooks/api/v3/company/{US_REALM}/customer/1",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    assert api.status_code == 401


def test_client_auth_and_grant_errors(sandbox_url):
    code = authorize(sandbox_url)["code"]
    r = token_request(
        sandbox_url,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=(CLIENT_ID, "wrong"),
    )
    assert r.status_code == 401
    assert r.json() == {"error": "invalid_client"}
    r = token_request(sandbox_url, {"grant_type": "password"})
    assert r.status_code == 400
    assert r.json()["error"] == "unsupported_grant_type"
    r = token_request(
        sandbox_url,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://localhost:9/other"},
    )
    assert r.json()["error"] == "invalid_grant"
    # client_secret_post works as well as Basic.
    code = authorize(sandbox_url)["code"]
    r = requests.post(
        f"{sandbox_url}/quickbooks/oauth/oauth2/v1/tokens/bearer",
        timeout=10,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": CLIENT_ID,
            "client_secret": "ledgerlink-qbo-dev-secret",
        },
    )
    assert r.status_code == 200


def test_refresh_returns_same_value_within_a_day_then_rotates_without_grace(sandbox_url):
    tokens = exchange(sandbox_url, authorize(sandbox_url)["code"])
    advance(sandbox_url, 3600)
    same = refresh(sandbox_url, tokens["refresh_token"]).json()
    assert same["refresh_token"] == tokens["refresh_token"]
    assert same["access_token"] != tokens["access_token"]
    # The remaining life shrinks while the same value is returned (oauth-jsclient#74); the clock ticks.
    assert abs(same["x_refresh_token_expires_in"] - (8726400 - 3600)) <= 5
    advance(sandbox_url, 24 * 3600)
    rotated = refresh(sandbox_url, tokens["refresh_token"]).json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert abs(rotated["x_refresh_token_expires_in"] - 8726400) <= 5
    old = refresh(sandbox_url, tokens["refresh_token"])
    assert old.status_code == 400
    assert old.json()["error"] == "invalid_grant"
    assert refresh(sandbox_url, rotated["refresh_token"]).status_code == 200


def test_grace_of_24_hours_keeps_the_previous_value(sandbox_url):
    control(sandbox_url, "set_refresh_grace", {"hours": 24})
    tokens = exchange(sandbox_url, authorize(sandbox_url)["code"])
    control(sandbox_url, "force_rotation", {})
    rotated = refresh(sandbox_url, tokens["refresh_token"]).json()["refresh_token"]
    assert rotated != tokens["refresh_token"]
    again = refresh(sandbox_url, tokens["refresh_token"])
    assert again.status_code == 200
    assert again.json()["refresh_token"] == rotated
    advance(sandbox_url, 24 * 3600 + 1)
    assert refresh(sandbox_url, tokens["refresh_token"]).status_code == 400


def test_hard_expiry_header_and_expired_refresh(sandbox_url):
    tokens = exchange(sandbox_url, authorize(sandbox_url)["code"])
    r = token_request(
        sandbox_url,
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers={"x-include-refresh-token-hard-expires-in": "true"},
    )
    assert abs(r.json()["x_refresh_token_hard_expires_in"] - 5 * 365 * 86400) <= 5
    assert "x_refresh_token_hard_expires_in" not in refresh(sandbox_url, tokens["refresh_token"]).json()
    control(sandbox_url, "expire_refresh_tokens", {"realm_id": US_REALM})
    assert refresh(sandbox_url, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoke_endpoint_and_control(sandbox_url):
    qbo = Qbo(sandbox_url)
    r = requests.post(
        f"{sandbox_url}/quickbooks/developer/v2/oauth2/tokens/revoke",
        json={"token": qbo.tokens["refresh_token"]},
        auth=(CLIENT_ID, "ledgerlink-qbo-dev-secret"),
        timeout=10,
    )
    assert r.status_code == 200
    assert qbo.get("companyinfo/" + US_REALM).status_code == 401
    assert refresh(sandbox_url, qbo.tokens["refresh_token"]).status_code == 400
    other = Qbo(sandbox_url, UK_REALM)
    assert control(sandbox_url, "revoke_tokens", {"realm_id": UK_REALM})["revoked"] == 1
    assert other.get("preferences").status_code == 401
    bad = requests.post(
        f"{sandbox_url}/quickbooks/developer/v2/oauth2/tokens/revoke",
        json={"token": "x"},
        auth=(CLIENT_ID, "nope"),
        timeout=10,
    )
    assert bad.status_code == 401


def test_access_token_expiry_and_foreign_realm(sandbox_url):
    qbo = Qbo(sandbox_url)
    r = qbo.session.get(f"{sandbox_url}/quickbooks/api/v3/company/{UK_REALM}/customer/1", timeout=10)
    assert r.status_code == 403
    assert r.json()["fault"]["error"][0]["code"] == "3100"
    control(sandbox_url, "expire_access_tokens", {"realm_id": US_REALM})
    r = qbo.get("customer/1")
    assert r.status_code == 401
    assert r.json()["fault"]["type"] == "AUTHENTICATION"
    assert requests.get(qbo.url("customer/1"), timeout=10).status_code == 401


def test_discovery_documents_point_at_the_sandbox(sandbox_url):
    for spelling in ("openid_configuration/", "openid_sandbox_configuration/", "openid-configuration"):
        doc = requests.get(f"{sandbox_url}/quickbooks/developer/.well-known/{spelling}", timeout=10).json()
        assert doc["authorization_endpoint"] == f"{sandbox_url}/quickbooks/appcenter/connect/oauth2"
        assert doc["token_endpoint"] == f"{sandbox_url}/quickbooks/oauth/oauth2/v1/tokens/bearer"
        assert doc["revocation_endpoint"] == f"{sandbox_url}/quickbooks/developer/v2/oauth2/tokens/revoke"
        assert doc["token_endpoint_auth_methods_supported"] == ["client_secret_post", "client_secret_basic"]
        assert "realmid" in doc["claims_supported"]
        assert requests.get(doc["jwks_uri"], timeout=10).json() == {"keys": []}


def test_userinfo_with_openid_scope(sandbox_url):
    params = authorize(sandbox_url, scope="openid email profile", user="u-bob")
    assert "realmId" not in params
    tokens = exchange(sandbox_url, params["code"])
    r = requests.get(
        f"{sandbox_url}/quickbooks/oauth/v1/openid_connect/userinfo",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    assert r.json() == {
        "sub": "u-bob",
        "email": "bob@ledgerlink.test",
        "emailVerified": True,
        "givenName": "Bob",
        "familyName": "Bookkeeper",
    }
    # Without the accounting scope the API refuses the token.
    api = requests.get(
        f"{sandbox_url}/quickbooks/api/v3/company/{US_REALM}/customer/1",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    assert api.status_code == 403


def test_user_access_control_changes_consent(sandbox_url):
    control(sandbox_url, "set_user_access", {"user": "u-bob", "realm_ids": [UK_REALM]})
    r = requests.post(
        f"{sandbox_url}/_control/consent",
        json={"provider": "quickbooks", "redirect_uri": REDIRECT, "user": "u-bob", "realm_id": US_REALM},
        timeout=10,
    )
    assert r.status_code == 400
    assert "no access" in r.json()["error"]
    companies = requests.get(f"{sandbox_url}/_control/companies", timeout=10).json()["quickbooks"]
    uk = next(c for c in companies if c["id"] == UK_REALM)
    assert "u-bob" in [u["id"] for u in uk["users"]]
    assert re.fullmatch(r"\d+", uk["id"])
