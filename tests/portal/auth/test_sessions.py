"""Sessions end when they should: logout (remember-me included), idle time, and a raised session version."""

from __future__ import annotations

import time

import pytest

from tests.conftest import csrf_token_of

REMEMBER = "remember_token"
SESSION = "ledgerlink_session"


def _login(client, user, *, remember: bool = False):
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    data = {"email": user["email"], "password": user["password"], "csrf_token": token}
    if remember:
        data["remember"] = "y"
    response = client.post("/login", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    return csrf_token_of(client.get("/").get_data(as_text=True))


def _cookies(client) -> dict[str, str]:
    return {name: client.get_cookie(name).value for name in (SESSION, REMEMBER) if client.get_cookie(name)}


def _browser_with(app, cookies: dict[str, str]):
    """A fresh browser holding copies of ``cookies`` (as someone who copied them would)."""
    other = app.test_client()
    for name, value in cookies.items():
        other.set_cookie(name, value)
    return other


def _logged_in(client) -> bool:
    return client.get("/organizations/").status_code == 200


def test_logout_with_keep_me_logged_in_leaves_no_working_cookie(app, client, make_staff):
    user = make_staff("support")
    token = _login(client, user, remember=True)
    copied = _cookies(client)
    assert set(copied) == {SESSION, REMEMBER}
    assert _logged_in(_browser_with(app, copied))
    assert _logged_in(_browser_with(app, {REMEMBER: copied[REMEMBER]}))  # the remember cookie alone logs in

    logout = client.post("/logout", data={"csrf_token": token})
    assert logout.status_code == 302
    # The browser that logged out is logged out, and holds no remember-me cookie any more.
    assert not _logged_in(client)
    assert client.get_cookie(REMEMBER) is None
    # Copies of the cookies taken before the logout log nobody in: not both, not either alone.
    for cookies in (copied, {REMEMBER: copied[REMEMBER]}, {SESSION: copied[SESSION]}):
        assert not _logged_in(_browser_with(app, cookies)), cookies


def test_idle_timeout_applies_to_keep_me_logged_in(app, client, make_staff, monkeypatch):
    monkeypatch.setitem(app.config, "IDLE_TIMEOUT_SECONDS", 1)
    user = make_staff("support")
    _login(client, user, remember=True)
    remember = _cookies(client)[REMEMBER]
    time.sleep(2.2)
    assert not _logged_in(_browser_with(app, {REMEMBER: remember}))
    assert not _logged_in(client)


def test_each_request_keeps_an_active_session_alive(app, client, make_staff, monkeypatch):
    monkeypatch.setitem(app.config, "IDLE_TIMEOUT_SECONDS", 2)
    _login(client, make_staff("support"))
    for _ in range(3):
        time.sleep(1.0)
        assert _logged_in(client)


def test_logout_everywhere_ends_every_session_of_the_person(app, client, make_staff):
    user = make_staff("support")
    other = app.test_client()
    _login(other, user, remember=True)
    copied = _cookies(other)
    token = _login(client, user)
    page = client.get("/account")
    assert page.status_code == 200 and "Log out everywhere" in page.get_data(as_text=True)
    response = client.post("/account/logout-everywhere", data={"csrf_token": token})
    assert response.status_code == 302
    assert not _logged_in(client)
    assert not _logged_in(other)
    assert not _logged_in(_browser_with(app, {REMEMBER: copied[REMEMBER]}))
    # Logging in again works.
    _login(client, user)
    assert _logged_in(client)


@pytest.mark.parametrize("action", ["deactivate", "reset_password", "role", "end_sessions"])
def test_an_admin_change_ends_the_persons_sessions(app, client, make_staff, action):
    person = make_staff("ops")
    victim_browser = app.test_client()
    _login(victim_browser, person, remember=True)
    remember = _cookies(victim_browser)[REMEMBER]
    token = _login(client, make_staff("admin"))
    data = {"csrf_token": token, "action": action, "role": "support"}
    response = client.post(f"/staff/{person['id']}", data=data)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert not _logged_in(victim_browser)
    assert not _logged_in(_browser_with(app, {REMEMBER: remember}))


def test_a_forged_or_old_style_session_id_logs_nobody_in(app, client, make_staff):
    user = make_staff("admin")
    with client.session_transaction() as session:
        session["_user_id"] = str(user["id"])  # the id alone, as older cookies held it
        session["_fresh"] = True
    assert not _logged_in(client)
