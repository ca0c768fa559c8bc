"""A production-mode app behind a TLS proxy: https:// redirect URIs and throttles per real client.

The proxy terminates TLS and forwards plain HTTP with X-Forwarded-For/-Proto/-Host, as nginx or a
load balancer does; ``LEDGERLINK_TRUSTED_PROXIES=1`` tells the app to believe one hop of them.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from cryptography.fernet import Fernet

from tests.conftest import csrf_token_of

HOST = "portal.example.com"


def _production_app(app, database_url, redis_url, **extra):
    from portal import create_app

    # Production refuses anything but PostgreSQL; on a SQLite test run the same app runs in
    # development mode with the same proxy settings (the production checks have tests of their own).
    env = "production" if database_url.startswith("postgresql") else "development"
    return create_app(
        {
            "ENV": env,
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "EMBEDDED_WORKER": False,
            "SECRET_KEY": app.config["SECRET_KEY"],
            "TOKEN_KEYS": app.config["TOKEN_KEYS"] or Fernet.generate_key().decode(),
            "SANDBOX_URL": "",
            "EXACT_ONLINE_CLIENT_ID": "3f1d2a9c-0000-4c1a-9e2d-7a6b5c4d3e2f",
            "EXACT_ONLINE_CLIENT_SECRET": "production-exact-secret-0123456789abcdef",
            "TRUSTED_PROXIES": 1,
            **extra,
        }
    )


def _via_proxy(client_address: str) -> dict:
    """Headers the TLS proxy adds for a client (the browser's Referer is same-origin https)."""
    return {
        "X-Forwarded-For": client_address,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": HOST,
        "Referer": f"https://{HOST}/",
    }


def test_redirect_uris_and_links_are_https_behind_the_proxy(app, database_url, redis_url, make_staff, demo_data):
    from portal.extensions import db
    from portal.models import BusinessUnit

    production = _production_app(app, database_url, redis_url)
    assert production.config["SESSION_COOKIE_SECURE"] is (production.config["ENV"] == "production")
    user = make_staff("support")
    with production.app_context():
        unit_id = db.session.scalars(db.select(BusinessUnit.id).order_by(BusinessUnit.id)).first()
    browser = production.test_client()
    headers = _via_proxy("203.0.113.10")
    token = csrf_token_of(browser.get("/login", headers=headers).get_data(as_text=True))
    logged_in = browser.post(
        "/login", data={"email": user["email"], "password": user["password"], "csrf_token": token}, headers=headers
    )
    assert logged_in.status_code == 302, logged_in.get_data(as_text=True)
    token = csrf_token_of(browser.get("/", headers=headers).get_data(as_text=True))
    started = browser.post(
        f"/business-units/{unit_id}/connect",
        data={"provider": "exact-online", "region": "nl", "csrf_token": token},
        headers=headers,
    )
    assert started.status_code == 302, started.get_data(as_text=True)
    consent = urlsplit(started.headers["Location"])
    assert consent.scheme == "https" and consent.netloc == "start.exactonline.nl"
    redirect_uri = parse_qs(consent.query)["redirect_uri"][0]
    assert redirect_uri == f"https://{HOST}/connections/oauth/callback"
    # An authorization link's URL, shown once to support, is https on the public host too.
    created = browser.post(
        f"/business-units/{unit_id}/authorization-links/new",
        data={"provider": "exact-online", "region": "nl", "expires_in_days": "7", "csrf_token": token},
        headers=headers,
    )
    assert created.status_code == 200, created.get_data(as_text=True)
    assert f"https://{HOST}/authorize/" in created.get_data(as_text=True)
    assert f"http://{HOST}" not in created.get_data(as_text=True)


def test_throttles_count_each_real_client_behind_the_proxy(app, database_url, redis_url):
    production = _production_app(app, database_url, redis_url)
    limit = production.config["LINK_RATE_LIMIT"]
    attacker, approver = production.test_client(), production.test_client()
    for _ in range(limit):
        assert attacker.get("/authorize/not-a-token", headers=_via_proxy("198.51.100.7")).status_code == 404
    blocked = attacker.get("/authorize/not-a-token", headers=_via_proxy("198.51.100.7"))
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    # Everyone else behind the same proxy is not blocked by one client's requests.
    assert approver.get("/authorize/not-a-token", headers=_via_proxy("192.0.2.44")).status_code == 404


def test_without_trusted_proxies_the_headers_are_ignored(app, database_url, redis_url):
    """A client cannot choose its address or scheme when no proxy is trusted (the default)."""
    production = _production_app(app, database_url, redis_url, TRUSTED_PROXIES=0)
    limit = production.config["LINK_RATE_LIMIT"]
    client = production.test_client()
    for i in range(limit):
        client.get("/authorize/not-a-token", headers=_via_proxy(f"192.0.2.{i}"))
    assert client.get("/authorize/not-a-token", headers=_via_proxy("192.0.2.250")).status_code == 429
