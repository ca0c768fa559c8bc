"""The emulated auth.bexio.com Keycloak realm: discovery, consent, codes, tokens, rotation, revocation."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser

import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from tests.sandbox.test_bexio_support import (
    CLIENT_ID,
    CLIENT_SECRET,
    COMPANY,
    REDIRECT_URI,
    SCOPE,
    SECOND_COMPANY,
    Api,
    consent,
    control,
    exchange,
    login,
    oidc,
    query,
    refresh,
)
from tests.sandbox.test_bexio_support import api as api_fixture
from tests.sandbox.test_bexio_support import bexio_tokens as tokens_fixture
from tests.sandbox_server import ServedApp

# Shared fixtures, bound under the names the tests ask for.
api = api_fixture
bexio_tokens = tokens_fixture


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class FormParser(HTMLParser):
    """Collect the consent form's action, inputs, selects and buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.action = None
        self.fields: dict[str, str] = {}
        self.options: dict[str, list[str]] = {}
        self.buttons: list[tuple[str, str]] = []
        self._select = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action")
        elif tag == "input":
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "select":
            self._select = a["name"]
            self.options[self._select] = []
        elif tag == "option" and self._select:
            self.options[self._select].append(a["value"])
        elif tag == "button":
            self.buttons.append((a.get("name"), a.get("value")))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def authorize_params(**extra) -> dict:
    return {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": SCOPE,
        "state": "st<&>1",
        **extra,
    }


def test_discovery_points_at_the_sandbox(sandbox_url):
    resp = requests.get(f"{sandbox_url}/bexio/auth/realms/bexio/.well-known/openid-configuration", timeout=10)
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["issuer"] == f"{sandbox_url}/bexio/auth/realms/bexio"
    for key in (
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "revocation_endpoint",
        "end_session_endpoint",
        "jwks_uri",
        "introspection_endpoint",
    ):
        assert doc[key].startswith(oidc(sandbox_url)), key
    assert "S256" in doc["code_challenge_methods_supported"]
    assert "kb_invoice_edit" in doc["scopes_supported"]
    keys = requests.get(doc["jwks_uri"], timeout=10).json()["keys"]
    assert keys[0]["kty"] == "RSA"


def test_urls_follow_the_mount_point():
    from flask import Flask

    import sandbox

    served = ServedApp(DispatcherMiddleware(Flask("portal"), {"/sandbox": sandbox.create_app()}), threads=4)
    try:
        doc = requests.get(
            f"{served.url}/sandbox/bexio/auth/realms/bexio/.well-known/openid-configuration", timeout=10
        ).json()
        assert doc["token_endpoint"] == f"{served.url}/sandbox/bexio/auth/realms/bexio/protocol/openid-connect/token"
        page = requests.get(doc["authorization_endpoint"], params=authorize_params(), timeout=10)
        form = FormParser()
        form.feed(page.text)
        assert form.action == f"{served.url}/sandbox/bexio/auth/realms/bexio/protocol/openid-connect/auth"
    finally:
        served.close()


def test_consent_page_approve_redirects_with_code_for_chosen_company(sandbox_url):
    page = requests.get(f"{oidc(sandbox_url)}/auth", params=authorize_params(), timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<script" not in page.text
    assert "st&lt;&amp;&gt;1" in page.text  # the state is escaped in the hidden field
    form = FormParser()
    form.feed(page.text)
    assert ("decision", "approve") in form.buttons
    assert ("decision", "deny") in form.buttons
    assert set(form.options["company_id"]) == {COMPANY, SECOND_COMPANY}
    assert "max.mustermann" in form.options["username"]
    fields = {
        **form.fields,
        "username": "max.mustermann",
        "company_id": SECOND_COMPANY,
        "decision": "approve",
    }
    resp = requests.post(form.action, data=fields, allow_redirects=False, timeout=10)
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    params = query(location)
    assert params["state"] == "st<&>1"
    assert params["iss"] == f"{sandbox_url}/bexio/auth/realms/bexio"
    tokens = exchange(sandbox_url, params["code"]).json()
    assert jwt_claims(tokens["access_token"])["company_id"] == SECOND_COMPANY
    info = requests.get(
        f"{oidc(sandbox_url)}/userinfo",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    ).json()
    assert info["company_id"] == SECOND_COMPANY
    assert info["company_name"] == "Alpenblick Treuhand GmbH"


def test_consent_page_deny_redirects_access_denied(sandbox_url):
    page = requests.get(f"{oidc(sandbox_url)}/auth", params=authorize_params(), timeout=10)
    form = FormParser()
    form.feed(page.text)
    resp = requests.post(form.action, data={**form.fields, "decision": "deny"}, allow_redirects=False, timeout=10)
    assert resp.status_code == 302
    params = query(resp.headers["Location"])
    assert params["error"] == "access_denied"
    assert params["state"] == "st<&>1"
    assert "code" not in params


def test_consent_refuses_a_company_the_user_does_not_belong_to(sandbox_url):
    page = requests.get(f"{oidc(sandbox_url)}/auth", params=authorize_params(), timeout=10)
    form = FormParser()
    form.feed(page.text)
    fields = {**form.fields, "username": "sophie.keller", "company_id": SECOND_COMPANY, "decision": "approve"}
    resp = requests.post(form.action, data=fields, allow_redirects=False, timeout=10)
    assert resp.status_code == 400
    assert "keinen Zugriff" in resp.text
    ctl = requests.post(
        f"{sandbox_url}/_control/consent",
        json={
            "provider": "bexio",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
            "username": "sophie.keller",
            "company_id": SECOND_COMPANY,
        },
        timeout=10,
    )
    assert ctl.status_code == 403


def test_authorize_rejects_unknown_client_and_foreign_redirect_without_redirecting(sandbox_url):
    resp = requests.get(f"{oidc(sandbox_url)}/auth", params=authorize_params(client_id="nope"), timeout=10)
    assert resp.status_code == 400
    assert "Client nicht gefunden." in resp.text
    resp = requests.get(
        f"{oidc(sandbox_url)}/auth",
        params=authorize_params(redirect_uri="https://evil.example/cb"),
        allow_redirects=False,
        timeout=10,
    )
    assert resp.status_code == 400
    assert "Ungültiger Parameter: redirect_uri" in resp.text


def test_authorize_errors_redirect_like_keycloak(sandbox_url):
    resp = requests.get(
        f"{oidc(sandbox_url)}/auth",
        params=authorize_params(scope="openid nonsense_scope"),
        allow_redirects=False,
        timeout=10,
    )
    assert resp.status_code == 302
    assert query(resp.headers["Location"])["error"] == "invalid_scope"
    resp = requests.get(
        f"{oidc(sandbox_url)}/auth",
        params=authorize_params(response_type=None),
        allow_redirects=False,
        timeout=10,
    )
    params = query(resp.headers["Location"])
    assert params["error"] == "invalid_request"
    assert params["error_description"] == "Missing parameter: response_type"


def test_token_response_has_keycloak_shape(sandbox_url):
    tokens = login(sandbox_url)
    assert list(tokens) == [
        "access_token",
        "expires_in",
        "refresh_expires_in",
        "refresh_token",
        "token_type",
        "id_token",
        "not-before-policy",
        "session_state",
        "scope",
    ]
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["scope"] == SCOPE
    claims = jwt_claims(tokens["access_token"])
    assert claims["company_id"] == COMPANY
    assert claims["sub"] == "c5798551-d986-4c57-8c57-1365f667f43d"
    assert claims["scope"] == SCOPE
    assert claims["exp"] - claims["iat"] == 3600
    assert jwt_claims(tokens["id_token"])["aud"] == CLIENT_ID


def test_no_refresh_token_without_offline_access(sandbox_url):
    tokens = login(sandbox_url, scope="openid contact_show")
    assert "refresh_token" not in tokens
    assert tokens["refresh_expires_in"] == 0


def test_codes_are_single_use_and_replay_revokes_the_session(sandbox_url):
    code = query(consent(sandbox_url))["code"]
    first = exchange(sandbox_url, code)
    assert first.status_code == 200
    again = exchange(sandbox_url, code)
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_grant", "error_description": "Code not valid"}
    api = Api(sandbox_url, first.json()["access_token"])
    assert api.get("/3.0/users/me").status_code == 401


def test_code_expires_after_a_minute(sandbox_url):
    code = query(consent(sandbox_url))["code"]
    requests.post(f"{sandbox_url}/_control/clock", json={"advance_seconds": 61}, timeout=10)
    resp = exchange(sandbox_url, code)
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"


def test_redirect_uri_must_match_at_token_time(sandbox_url):
    code = query(consent(sandbox_url))["code"]
    resp = exchange(sandbox_url, code, redirect_uri="http://127.0.0.1:8765/other")
    assert resp.status_code == 400
    assert resp.json() == {"error": "invalid_grant", "error_description": "Incorrect redirect_uri"}


def test_pkce_s256_is_enforced_when_a_challenge_was_sent(sandbox_url):
    verifier = "v" * 20 + "-._~" + "A1b2C3d4E5f6G7h8I9j0K"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    code = query(consent(sandbox_url, code_challenge=challenge, code_challenge_method="S256"))["code"]
    missing = exchange(sandbox_url, code)
    assert missing.status_code == 400
    assert missing.json()["error_description"] == "PKCE code verifier not specified"
    code = query(consent(sandbox_url, code_challenge=challenge, code_challenge_method="S256"))["code"]
    wrong = exchange(sandbox_url, code, code_verifier="x" * 43)
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    code = query(consent(sandbox_url, code_challenge=challenge, code_challenge_method="S256"))["code"]
    assert exchange(sandbox_url, code, code_verifier=verifier).status_code == 200


def test_client_authentication_basic_or_body_and_errors(sandbox_url):
    code = query(consent(sandbox_url))["code"]
    resp = requests.post(
        f"{oidc(sandbox_url)}/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    assert resp.status_code == 200
    code = query(consent(sandbox_url))["code"]
    bad = exchange(sandbox_url, code, client_secret="wrong")
    assert bad.status_code == 401
    assert bad.json() == {
        "error": "unauthorized_client",
        "error_description": "Invalid client or Invalid client credentials",
    }
    unknown = exchange(sandbox_url, code, client_id="someone-else")
    assert unknown.status_code == 401
    assert unknown.json()["error"] == "invalid_client"
    grant = requests.post(
        f"{oidc(sandbox_url)}/token",
        data={"grant_type": "password"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    assert grant.status_code == 400
    assert grant.json()["error"] == "unsupported_grant_type"


def test_refresh_rotates_and_the_old_token_dies(sandbox_url):
    tokens = login(sandbox_url)
    first = refresh(sandbox_url, tokens["refresh_token"])
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert rotated["scope"] == SCOPE
    reuse = refresh(sandbox_url, tokens["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    second = refresh(sandbox_url, rotated["refresh_token"])
    assert second.status_code == 200
    assert Api(sandbox_url, second.json()["access_token"]).get("/3.0/users/me").status_code == 200


def test_refresh_cannot_add_scopes(sandbox_url):
    tokens = login(sandbox_url, scope="openid offline_access contact_show")
    resp = refresh(sandbox_url, tokens["refresh_token"], scope="openid offline_access kb_invoice_edit")
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_scope"


def test_access_token_expires_with_the_clock(sandbox_url, bexio_tokens):
    api = Api(sandbox_url, bexio_tokens["access_token"])
    assert api.get("/3.0/users/me").status_code == 200
    requests.post(f"{sandbox_url}/_control/clock", json={"advance_seconds": 3601}, timeout=10)
    resp = api.get("/3.0/users/me")
    assert resp.status_code == 401
    assert resp.json() == {"error_code": 401, "message": "Invalid access token"}
    assert refresh(sandbox_url, bexio_tokens["refresh_token"]).status_code == 200


def test_control_expire_and_revoke(sandbox_url, bexio_tokens):
    assert control(sandbox_url, "expire_refresh_tokens", company=COMPANY).json() == {"expired_refresh_tokens": 1}
    resp = refresh(sandbox_url, bexio_tokens["refresh_token"])
    assert resp.status_code == 400
    assert resp.json() == {"error": "invalid_grant", "error_description": "Token is not active"}
    other = login(sandbox_url)
    assert control(sandbox_url, "expire_access_tokens").json()["expired_access_tokens"] >= 1
    assert Api(sandbox_url, other["access_token"]).get("/3.0/users/me").status_code == 401
    third = login(sandbox_url)
    assert control(sandbox_url, "revoke_tokens", company=COMPANY).json()["revoked_sessions"] >= 1
    assert Api(sandbox_url, third["access_token"]).get("/3.0/users/me").status_code == 401
    assert refresh(sandbox_url, third["refresh_token"]).json()["error"] == "invalid_grant"
    assert control(sandbox_url, "revoke_tokens", company="nope").status_code == 404


def test_revocation_endpoint(sandbox_url):
    tokens = login(sandbox_url)
    resp = requests.post(
        f"{oidc(sandbox_url)}/revoke",
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    assert resp.status_code == 200
    assert refresh(sandbox_url, tokens["refresh_token"]).status_code == 400
    assert Api(sandbox_url, tokens["access_token"]).get("/3.0/users/me").status_code == 401
    unknown = requests.post(
        f"{oidc(sandbox_url)}/revoke", data={"token": "garbage"}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10
    )
    assert unknown.status_code == 200
    unauth = requests.post(f"{oidc(sandbox_url)}/revoke", data={"token": "garbage"}, timeout=10)
    assert unauth.status_code == 401


def test_userinfo(sandbox_url, bexio_tokens):
    resp = requests.get(
        f"{oidc(sandbox_url)}/userinfo",
        headers={"Authorization": f"Bearer {bexio_tokens['access_token']}"},
        timeout=10,
    )
    assert resp.status_code == 200
    info = resp.json()
    assert info["company_id"] == COMPANY
    assert info["company_user_id"] == 1
    assert info["locale"] == "de-CH"
    bad = requests.get(f"{oidc(sandbox_url)}/userinfo", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert bad.status_code == 401
    assert 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
    no_openid = login(sandbox_url, scope="contact_show")
    resp = requests.get(
        f"{oidc(sandbox_url)}/userinfo",
        headers={"Authorization": f"Bearer {no_openid['access_token']}"},
        timeout=10,
    )
    assert resp.status_code == 403


def test_end_session(sandbox_url):
    tokens = login(sandbox_url)
    resp = requests.get(
        f"{oidc(sandbox_url)}/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": REDIRECT_URI,
            "state": "bye",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert resp.status_code == 302
    assert query(resp.headers["Location"]) == {"state": "bye"}
    assert Api(sandbox_url, tokens["access_token"]).get("/3.0/users/me").status_code == 401
    page = requests.get(f"{oidc(sandbox_url)}/logout", timeout=10)
    assert page.status_code == 200
    assert "Sie sind abgemeldet." in page.text
    other = login(sandbox_url)
    back = requests.post(
        f"{oidc(sandbox_url)}/logout",
        data={"refresh_token": other["refresh_token"]},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    assert back.status_code == 204
    assert refresh(sandbox_url, other["refresh_token"]).status_code == 400


def test_scopes_are_checked_per_endpoint(sandbox_url):
    tokens = login(sandbox_url, scope="openid contact_show")
    api = Api(sandbox_url, tokens["access_token"])
    assert api.get("/2.0/contact").status_code == 200
    assert api.get("/2.0/language").status_code == 200  # "general": no scope needed
    denied = api.post("/2.0/contact", json={"contact_type_id": 1, "name_1": "X", "user_id": 1, "owner_id": 1})
    assert denied.status_code == 403
    assert denied.json()["error_code"] == 403
    assert api.get("/2.0/kb_invoice").status_code == 403
    assert api.get("/3.0/taxes").status_code == 403
    assert api.get("/3.0/banking/accounts").status_code == 403


def test_user_rights_are_checked_besides_scopes(sandbox_url, api):
    assert api.get("/2.0/kb_invoice").status_code == 200
    assert control(sandbox_url, "set_user_rights", company=COMPANY, user_id=1, deny=["kb_invoice"]).status_code == 200
    assert api.get("/2.0/kb_invoice").status_code == 403
    assert api.get("/2.0/contact").status_code == 200


def test_personal_access_token(sandbox_url):
    token = control(sandbox_url, "issue_pat", company=COMPANY).json()["token"]
    api = Api(sandbox_url, token)
    assert api.get("/3.0/users/me").json()["id"] == 1
    requests.post(f"{sandbox_url}/_control/clock", json={"advance_seconds": 61 * 24 * 3600}, timeout=10)
    assert api.get("/3.0/users/me").status_code == 401


def test_second_user_has_own_company_user_id(sandbox_url):
    tokens = login(sandbox_url, username="sophie.keller")
    me = Api(sandbox_url, tokens["access_token"]).get("/3.0/users/me").json()
    assert me["id"] == 2
    assert me["is_superadmin"] is False
    assert re.match(r"^[\w.]+@", me["email"])


def test_unknown_auth_paths_get_keycloak_json_404(sandbox_url):
    resp = requests.get(f"{sandbox_url}/bexio/auth/realms/bexio/protocol/openid-connect/nope", timeout=10)
    assert resp.status_code == 404
    assert resp.json() == {"error": "Unable to find matching target resource method"}
