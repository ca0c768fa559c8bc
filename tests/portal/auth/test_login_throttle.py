"""Login throttling per account (normalised e-mail) and per real client address; timing that names no account."""

from __future__ import annotations

import statistics
import time

import pytest

from tests.conftest import csrf_token_of


def _attempt(client, email, password, **kwargs):
    token = csrf_token_of(client.get("/login", **kwargs).get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token}, **kwargs)


def _lock(app, client, email: str) -> None:
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert _attempt(client, email, "not the password at all").status_code == 401


@pytest.mark.parametrize("variant", ["{} ", "\t{}", " {}\n", "{upper}", "\u200b{}"])
def test_a_spelling_variant_of_a_locked_address_is_locked_too(app, client, make_staff, variant):
    user = make_staff("support")
    _lock(app, client, user["email"])
    spelled = variant.format(user["email"], upper=user["email"].upper())
    response = _attempt(app.test_client(), spelled, user["password"])
    assert response.status_code == 429, response.get_data(as_text=True)
    assert "Too many failed attempts" in response.get_data(as_text=True)


def test_variants_count_towards_the_same_lock(app, client, make_staff):
    user = make_staff("support")
    for spelled in (user["email"], f" {user['email']}", f"\t{user['email']}", user["email"].upper(), user["email"]):
        assert _attempt(client, spelled, "wrong password, sorry").status_code == 401
    assert _attempt(client, user["email"], user["password"]).status_code == 429


def test_a_stranger_cannot_lock_a_colleague_out_of_a_browser_they_logged_in_with(app, client, make_staff):
    user = make_staff("support")
    own = app.test_client()
    assert _attempt(own, user["email"], user["password"]).status_code == 302
    own.post("/logout", data={"csrf_token": csrf_token_of(own.get("/").get_data(as_text=True))})
    attacker = app.test_client()
    _lock(app, attacker, user["email"])
    # Unknown browsers are locked out of the account; the person's own browser is not.
    assert _attempt(attacker, user["email"], user["password"]).status_code == 429
    assert _attempt(app.test_client(), user["email"], user["password"]).status_code == 429
    assert _attempt(own, user["email"], user["password"]).status_code == 302


def test_the_own_browser_is_still_locked_after_its_own_failures(app, client, make_staff):
    user = make_staff("support")
    assert _attempt(client, user["email"], user["password"]).status_code == 302
    client.post("/logout", data={"csrf_token": csrf_token_of(client.get("/").get_data(as_text=True))})
    _lock(app, client, user["email"])
    assert _attempt(client, user["email"], user["password"]).status_code == 429


def test_unknown_accounts_take_as_long_as_known_ones(app, client, make_staff):
    """A wrong password costs one hash whether or not the account exists (was 7 ms vs 112 ms)."""
    user = make_staff("support")

    def timed(email: str) -> float:
        token = csrf_token_of(client.get("/login").get_data(as_text=True))
        started = time.perf_counter()
        client.post("/login", data={"email": email, "password": "wrong password here", "csrf_token": token})
        return time.perf_counter() - started

    known, unknown = [], []
    for i in range(4):  # below the lock-out: 4 failures per account
        known.append(timed(user["email"]))
        unknown.append(timed(f"nobody-{i}@example.test"))
    assert statistics.median(unknown) > 0.5 * statistics.median(known), (known, unknown)


def test_failures_per_address_count_the_real_client_behind_the_proxy(app, make_staff, monkeypatch):
    """Behind a proxy every client has its own budget: one client's failures block that client only."""
    from portal import create_app

    monkeypatch.setitem(app.config, "LOGIN_MAX_FAILURES", 2)
    proxied = create_app({**app.config, "TRUSTED_PROXIES": 1, "LOGIN_MAX_FAILURES": 2})
    limit = 2 * 4

    def from_client(address: str):
        # Browsers send a Referer on same-origin posts; CSRF checks it once the request is https.
        return {
            "headers": {"X-Forwarded-For": address, "X-Forwarded-Proto": "https", "Referer": "https://localhost/login"}
        }

    attacker, colleague = proxied.test_client(), proxied.test_client()
    for i in range(limit):  # different accounts, so that no account is locked: the address is
        response = _attempt(attacker, f"guess-{i}@example.test", "password guess", **from_client("203.0.113.7"))
        assert response.status_code == 401, response.get_data(as_text=True)
    blocked = _attempt(attacker, "guess-x@example.test", "password guess", **from_client("203.0.113.7"))
    assert blocked.status_code == 429 and "from your network" in blocked.get_data(as_text=True)
    assert blocked.headers["Retry-After"].isdigit()
    user = make_staff("support")
    assert _attempt(colleague, user["email"], user["password"], **from_client("198.51.100.20")).status_code == 302
