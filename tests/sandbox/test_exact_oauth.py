"""Exact Online OAuth: consent page, single-use codes, refresh timing and rotation (exact-online.md §1)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import requests

from tests.sandbox.test_exact_support import (
    BE_DIVISION,
    CLIENT_ID,
    NL_ACCOUNTANT,
    NL_MAIN,
    NL_SECOND,
    REDIRECT,
    Api,
    authorize,
    connect,
    control,
    error_value,
    token_request,
)


def advance(base: str, seconds: float) -> None:
    requests.post(f"{base}/_control/clock", json={"advance_seconds": seconds}, timeout=10).raise_for_status()


def auth_params(**extra) -> dict:
    return {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "state": "st-1",
        **extra,
    }


def test_consent_page_lists_divisions_and_marks_the_accountant_division_not_grantable(sandbox_url):
    page = requests.get(f"{sandbox_url}/exact-online/nl/api/oauth2/auth", params=auth_params(force_login=1), timeout=10)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    html = page.text
    assert '<button type="submit" name="decision" value="approve">' in html
    assert 'value="deny"' in html
    assert re.search(rf'value="{NL_MAIN}"\s+checked', html)
    assert re.search(rf'value="{NL_ACCOUNTANT}"\s+disabled', html)
    assert "<script" not in html


def test_consent_page_escapes_the_state(sandbox_url):
    page = requests.get(
        f"{sandbox_url}/exact-online/nl/api/oauth2/auth",
        params=auth_params(state='"><script>x</script>'),
        timeout=10,
    )
    assert "<script>x</script>" not in page.text
    assert "&lt;script&gt;" in page.text or "&#34;&gt;&lt;script" in page.text


def test_consent_form_approve_redirects_with_code_and_state_and_grants_only_chosen_divisions(sandbox_url):
    form = {**auth_params(), "user": "jan.devries", "division": [str(NL_SECOND)], "decision": "approve"}
    response = requests.post(
        f"{sandbox_url}/exact-online/nl/api/oauth2/auth", data=form, allow_redirects=False, timeout=10
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(REDIRECT)
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st-1"]
    tokens = token_request(
        sandbox_url, grant_type="authorization_code", code=query["code"][0], redirect_uri=REDIRECT
    ).json()
    api = Api(sandbox_url, tokens["access_token"])
    divisions = api.get(f"{NL_SECOND}/system/Divisions").json()["d"]["results"]
    assert [d["Code"] for d in divisions] == [NL_SECOND]
    all_divisions = api.get(f"{NL_SECOND}/system/AllDivisions").json()["d"]["results"]
    assert {d["Code"] for d in all_divisions} == {NL_MAIN, NL_SECOND, NL_ACCOUNTANT}
    refused = api.get(f"{NL_MAIN}/financial/Journals")
    assert refused.status_code == 403
    assert refused.headers["Reason"] == "NoDivisionAccess"
    assert error_value(refused) == "Forbidden"


def test_consent_form_refuses_a_division_without_rights(sandbox_url):
    form = {**auth_params(), "user": "jan.devries", "division": [str(NL_ACCOUNTANT)], "decision": "approve"}
    response = requests.post(
        f"{sandbox_url}/exact-online/nl/api/oauth2/auth", data=form, allow_redirects=False, timeout=10
    )
    assert response.status_code == 400
    assert "no rights" in response.text


def test_deny_redirects_with_access_denied(sandbox_url):
    form = {**auth_params(), "user": "jan.devries", "decision": "deny"}
    response = requests.post(
        f"{sandbox_url}/exact-online/nl/api/oauth2/auth", data=form, allow_redirects=False, timeout=10
    )
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["st-1"]
    assert "code" not in query


def test_unknown_client_or_redirect_uri_gets_an_error_page_not_a_redirect(sandbox_url):
    bad_client = requests.get(
        f"{sandbox_url}/exact-online/nl/api/oauth2/auth",
        params=auth_params(client_id="00000000-0000-0000-0000-000000000000"),
        allow_redirects=False,
        timeout=10,
    )
    bad_uri = requests.get(
        f"{sandbox_url}/exact-online/nl/api/oauth2/auth",
        params=auth_params(redirect_uri="https://evil.example/cb"),
        allow_redirects=False,
        timeout=10,
    )
    assert bad_client.status_code == 400
    assert bad_uri.status_code == 400
    assert "Location" not in bad_uri.headers


def test_token_response_has_string_expires_in_and_lowercase_bearer(sandbox_url):
    tokens = connect(sandbox_url)
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert tokens["expires_in"] == "600"
    assert tokens["token_type"] == "bearer"
    assert "!" in tokens["refresh_token"]


def test_code_is_single_use(sandbox_url):
    code = authorize(sandbox_url)
    first = token_request(sandbox_url, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    again = token_request(sandbox_url, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    assert first.status_code == 200
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_code_expires_after_three_minutes(sandbox_url):
    code = authorize(sandbox_url)
    advance(sandbox_url, 181)
    response = token_request(sandbox_url, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    assert response.status_code == 400
    assert response.json()["error_description"] == "Token is not allowed, because of invalid or empty chainId"


def test_wrong_client_secret_is_refused(sandbox_url):
    code = authorize(sandbox_url)
    response = token_request(
        sandbox_url, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, client_secret="nope"
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"


def test_refresh_before_570_seconds_is_refused_then_allowed(sandbox_url):
    tokens = connect(sandbox_url)
    advance(sandbox_url, 560)
    early = token_request(sandbox_url, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert early.status_code == 401
    assert early.headers["Reason"] == "Access Token not expired"
    advance(sandbox_url, 11)
    late = token_request(sandbox_url, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert late.status_code == 200, late.text
    assert late.json()["refresh_token"] != tokens["refresh_token"]
    assert late.json()["expires_in"] == "600"


def test_old_refresh_token_is_refused_after_rotation(sandbox_url):
    tokens = connect(sandbox_url)
    advance(sandbox_url, 571)
    rotated = token_request(sandbox_url, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert rotated.status_code == 200
    advance(sandbox_url, 571)
    old = token_request(sandbox_url, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert old.status_code == 401
    assert old.json() == {"error": "unauthorized_client", "error_description": "Old refresh token used."}
    newer = token_request(sandbox_url, grant_type="refresh_token", refresh_token=rotated.json()["refresh_token"])
    assert newer.status_code == 200


def test_access_token_expires_after_600_seconds(sandbox_url):
    api = Api(sandbox_url, connect(sandbox_url)["access_token"])
    assert api.get("current/Me").status_code == 200
    advance(sandbox_url, 601)
    expired = api.get("current/Me")
    assert expired.status_code == 401
    assert error_value(expired) == "Unauthorized"


def test_refresh_token_idle_for_30_days_expires(sandbox_url):
    tokens = connect(sandbox_url)
    advance(sandbox_url, 30 * 86400 + 5)
    response = token_request(sandbox_url, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    assert re.fullmatch(
        r"The refresh token expired at \d+/\d+/\d{4} \d+:\d\d:\d\d [AP]M and it is now \d+/\d+/\d{4} "
        r"\d+:\d\d:\d\d [AP]M\.",
        body["error_description"],
    )


def test_expire_refresh_tokens_control_simulates_idle_expiry(sandbox_url):
    tokens = connect(sandbox_url)
    assert control(sandbox_url, "expire_refresh_tokens", user="jan.devries") == {"expired": 1}
    advance(sandbox_url, 571)
    response = token_request(sandbox_url, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error_description"].startswith("The refresh token expired at")


def test_tokens_are_region_bound(sandbox_url):
    nl = connect(sandbox_url, "nl")
    be_api = Api(sandbox_url, nl["access_token"], "be")
    assert be_api.get("current/Me").status_code == 401
    advance(sandbox_url, 571)
    refresh_on_be = token_request(sandbox_url, "be", grant_type="refresh_token", refresh_token=nl["refresh_token"])
    assert refresh_on_be.status_code == 400
    be = Api(sandbox_url, connect(sandbox_url, "be")["access_token"], "be")
    me = be.get("current/Me").json()["d"]["results"][0]
    assert me["CurrentDivision"] == BE_DIVISION
    assert me["UserName"] == "lotte.peeters"


def test_every_region_can_be_connected(sandbox_url):
    for region in ("nl", "be", "de", "uk", "us", "es", "fr"):
        api = Api(sandbox_url, connect(sandbox_url, region)["access_token"], region)
        division = api.get("current/Me").json()["d"]["results"][0]["CurrentDivision"]
        assert api.get(f"{division}/financial/Journals").status_code == 200, region


def test_unknown_region_is_404_in_exact_error_shape(sandbox_url):
    response = requests.get(
        f"{sandbox_url}/exact-online/xx/api/v1/current/Me", headers={"Accept": "application/json"}, timeout=10
    )
    assert response.status_code == 404
    assert "Unknown Exact Online site" in error_value(response)


def test_revoke_grant_breaks_refresh_and_api_calls(sandbox_url):
    tokens = connect(sandbox_url)
    api = Api(sandbox_url, tokens["access_token"])
    assert control(sandbox_url, "revoke_grant", user="jan.devries")["revoked"] == 1
    assert api.get("current/Me").status_code == 401
    advance(sandbox_url, 571)
    response = token_request(sandbox_url, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_revoke_one_division_gives_403_there_only(sandbox_url):
    api = Api(sandbox_url, connect(sandbox_url)["access_token"])
    control(sandbox_url, "revoke_grant", user="jan.devries", division=NL_SECOND)
    assert api.get(f"{NL_SECOND}/financial/Journals").status_code == 403
    assert api.get(f"{NL_MAIN}/financial/Journals").status_code == 200


def test_set_division_access_removes_rights(sandbox_url):
    api = Api(sandbox_url, connect(sandbox_url)["access_token"])
    control(sandbox_url, "set_division_access", user="jan.devries", division=NL_MAIN, allowed=False)
    response = api.get(f"{NL_MAIN}/financial/Journals")
    assert response.status_code == 403
    assert response.headers["Reason"] == "NoDivisionAccess"


def test_token_calls_are_limited_per_user_per_day(sandbox_url):
    control(sandbox_url, "set_settings", token_daily_limit=2)
    connect(sandbox_url)
    connect(sandbox_url)
    code = authorize(sandbox_url)
    third = token_request(sandbox_url, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    assert third.status_code == 429
    assert third.json()["error"] == "invalid_request"


def test_consent_control_rejects_bad_input(sandbox_url):
    response = requests.post(
        f"{sandbox_url}/_control/consent",
        json={"provider": "exact-online", "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "region": "zz"},
        timeout=10,
    )
    assert response.status_code == 400
    assert "unknown region" in response.json()["error"]
