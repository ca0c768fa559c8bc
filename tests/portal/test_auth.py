"""Staff login, logout, throttling, session expiry and cookie flags."""

from __future__ import annotations

from tests.conftest import csrf_token_of


def _post_login(client, email, password, **extra):
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token}, **extra)


def test_login_then_dashboard_then_logout(client, make_staff, login):
    user = make_staff("support")
    token = login(user)
    page = client.get("/").get_data(as_text=True)
    assert "Dashboard" in page and user["email"] in page
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert client.get("/").status_code == 302  # back to the login page


def test_wrong_password_and_unknown_user_get_the_same_clear_message(client, make_staff):
    user = make_staff("support")
    wrong = _post_login(client, user["email"], "not the password")
    unknown = _post_login(client, "nobody@example.test", "whatever password")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "do not match an active account" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_login_is_throttled_after_repeated_failures(client, make_staff):
    user = make_staff("support")
    for _ in range(5):
        assert _post_login(client, user["email"], "wrong password!").status_code == 401
    locked = _post_login(client, user["email"], user["password"])
    assert locked.status_code == 429
    assert "Too many failed attempts" in locked.get_data(as_text=True)


def test_empty_login_form_is_a_400_with_inline_errors(client):
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": "", "password": "", "csrf_token": token})
    assert response.status_code == 400
    assert 'aria-invalid="true"' in response.get_data(as_text=True)


def test_login_without_csrf_token_is_refused(client, make_staff):
    user = make_staff("support")
    response = client.post("/login", data={"email": user["email"], "password": user["password"]})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_session_cookie_flags(client, make_staff):
    user = make_staff("support")
    response = _post_login(client, user["email"], user["password"])
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("ledgerlink_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_idle_session_expires_with_a_message(app, client, make_staff, login, monkeypatch):
    import time

    monkeypatch.setitem(app.config, "IDLE_TIMEOUT_SECONDS", 1)
    user = make_staff("support")
    login(user)
    time.sleep(2.2)
    response = client.get("/organizations/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert "session ended" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_next_parameter_never_redirects_off_site(client, make_staff):
    user = make_staff("support")
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login?next=//evil.example/steal",
        data={"email": user["email"], "password": user["password"], "csrf_token": token},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_deactivated_staff_cannot_log_in(app, client, make_staff):
    from portal.extensions import db
    from portal.models import StaffUser

    user = make_staff("ops")
    with app.app_context():
        db.session.get(StaffUser, user["id"]).active = False
        db.session.commit()
    assert _post_login(client, user["email"], user["password"]).status_code == 401
