"""Security scan: every route, every page, every table, every log line of a connect-and-push flow.

Extends tests/portal/test_route_security.py (declared roles, anonymous refusal, CSRF) with what needs
real data: no server error for any route and id, no token or secret in the database, the logs or any
page, provider-supplied text escaped where it is shown, no open redirect, production headers and
cookie flags, login throttling. A summary goes to test-results/security-scan.json.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import requests

from portal.connections import vault
from portal.connections.providers import SANDBOX_CLIENTS
from portal.models import Connection, Role
from tests.conftest import csrf_token_of
from tests.portal.connections.conftest import QBO_US
from tests.proof.conftest import write_result

#: Findings and counts of every test in this module, written once at the end.
SUMMARY: dict = {"routes_checked": 0, "pages_scanned": 0, "tables_scanned": 0, "log_records_scanned": 0, "findings": []}

XSS = '<script>alert("ll-xss")</script><img src=x onerror=alert(1)>'
RAW_XSS = ("<script>alert(", "<img src=x onerror")
ESCAPED_XSS = "&lt;script&gt;alert("

#: Path arguments with a fixed value space (not database ids).
STATIC_ARGS = {"section": "invoices", "filename": "app.css", "field": "item", "job_id": "no-such-job"}
OVERFLOW = 2**31


@pytest.fixture(scope="module", autouse=True)
def _write_summary():
    yield
    write_result("security-scan.json", SUMMARY)


def _rules(app, method: str | None = None):
    for rule in app.url_map.iter_rules():
        if method is None or method in rule.methods:
            yield rule


# -- every route, any id ---------------------------------------------------------------------------
def test_no_route_fails_with_a_server_error_on_unknown_or_oversized_ids(app, client, make_staff, login):
    """An admin (every role) with a valid CSRF token gets a 4xx, never a 5xx, for ids that name nothing."""
    token = login(make_staff("admin"))
    checked = []
    for rule in _rules(app):
        if rule.endpoint == "static" or rule.endpoint == "auth.logout":
            continue
        for number in (999_999, OVERFLOW):
            values = {arg: STATIC_ARGS.get(arg, number) for arg in rule.arguments}
            if "token" in values:
                values["token"] = "x" * 43
            url = rule.build(values, append_unknown=False)[1]
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                headers = {"X-CSRFToken": token}
                response = client.open(url, method=method, headers=headers, data={"csrf_token": token})
                assert response.status_code < 500, (method, url, response.status_code)
                checked.append((method, rule.rule))
    SUMMARY["routes_checked"] = len({r for _m, r in checked})
    assert SUMMARY["routes_checked"] >= 80


def test_a_csrf_token_of_another_session_is_refused_on_every_state_change(app, client, make_staff, login):
    """Extends the missing-token check of tests/portal/test_route_security.py: a valid token, but someone else's."""
    other = app.test_client()
    foreign = login(make_staff("admin"), client=other)
    login(make_staff("admin"))
    checked = 0
    for rule in _rules(app):
        view = app.view_functions[rule.endpoint]
        if rule.endpoint == "auth.login" or isinstance(getattr(view, "required_scope", None), str):
            continue
        for method in sorted(rule.methods & {"POST", "PUT", "PATCH", "DELETE"}):
            values = {arg: STATIC_ARGS.get(arg, 1) for arg in rule.arguments}
            url = rule.build(values, append_unknown=False)[1]
            response = client.open(url, method=method, headers={"X-CSRFToken": foreign}, data={"csrf_token": foreign})
            assert response.status_code == 400, (method, url, response.status_code)
            assert "security token" in response.get_data(as_text=True)
            checked += 1
    SUMMARY["csrf_cross_session_checked"] = checked
    assert checked >= 40
    assert client.get("/").status_code == 200


# -- a connect and push flow, then every page, every table, every log record ---------------------
def _values_of(app) -> dict[str, list]:
    """Return real ids for each path argument name, read from the database."""
    from portal.extensions import db
    from portal.models import (
        AuthorizationLink,
        BusinessUnit,
        Customer,
        ExternalRecord,
        Organization,
        Product,
        SyncRun,
    )

    with app.app_context():

        def ids(model):
            return list(db.session.scalars(db.select(model.id).order_by(model.id).limit(3)))

        values = {
            "connection_id": ids(Connection),
            "unit_id": ids(BusinessUnit),
            "org_id": ids(Organization),
            "link_id": ids(AuthorizationLink),
            "product_id": ids(Product),
            "customer_id": ids(Customer),
            "record_id": ids(ExternalRecord),
            "run_id": ids(SyncRun),
        }
    return values


def _all_tokens(app, connection_ids) -> set[str]:
    from portal.extensions import db

    found = set()
    with app.app_context():
        for cid in connection_ids:
            tokens = vault.read_tokens(db.session.get(Connection, cid))
            found |= {t for t in (tokens.access_token, tokens.refresh_token) if t}
    return found


def _inject_hostile_ledger_data(app, sandbox: str, connection_id: int) -> None:
    """Create a customer and an item whose names are script, through QuickBooks' own API."""
    from portal.extensions import db

    with app.app_context():
        access = vault.read_tokens(db.session.get(Connection, connection_id)).access_token
    base = f"{sandbox}/quickbooks/api/v3/company/{QBO_US}"
    headers = {"Authorization": f"Bearer {access}", "Accept": "application/json"}
    customer = requests.post(f"{base}/customer", json={"DisplayName": f"Hostile {XSS}"}, headers=headers, timeout=10)
    assert customer.status_code == 200, customer.text
    accounts = requests.get(
        f"{base}/query", params={"query": "select * from Account"}, headers=headers, timeout=10
    ).json()["QueryResponse"]["Account"]
    income = next(a for a in accounts if a.get("AccountType") == "Income")
    item = requests.post(
        f"{base}/item",
        json={"Name": f"Hostile {XSS}"[:100], "Type": "Service", "IncomeAccountRef": {"value": income["Id"]}},
        headers=headers,
        timeout=10,
    )
    assert item.status_code == 200, item.text
    from portal.customers.services import fetch_ledger_customers
    from portal.mappings import services

    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        services.refresh_reference(connection)
        fetch_ledger_customers(connection)
        db.session.commit()


def _force_refresh(app, connection_id: int) -> None:
    """Spend the access token and refresh it, so the rotation passes through logs and storage."""
    from portal.extensions import db

    now = datetime.now(UTC)
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        spent = dataclasses.replace(
            vault.read_tokens(connection),
            access_expires_at=now - timedelta(seconds=1),
            issued_at=now - timedelta(seconds=700),
        )
        vault.store_tokens(connection, spent)
        db.session.commit()
        vault.refresh(connection_id)


def _scan(text: str, secrets: dict[str, str], where: str) -> list[str]:
    return [f"{name} in {where}" for name, value in secrets.items() if value and value in text]


def test_a_connect_and_push_flow_leaves_no_secret_anywhere_and_escapes_ledger_text(
    app,
    client,
    flow,
    connect,
    make_invoice,
    caplog,
    org_unit,
    make_link,
):
    from sqlalchemy import String, Text, inspect

    from portal.extensions import db
    from portal.models import Invoice
    from portal.sync import push

    caplog.set_level(logging.DEBUG)
    connection_id = connect("quickbooks")
    tokens_seen = _all_tokens(app, [connection_id])
    _force_refresh(app, connection_id)
    tokens_seen |= _all_tokens(app, [connection_id])
    invoice_id, _number = make_invoice()
    with app.app_context():
        record = push.push_invoice(db.session.get(Connection, connection_id), db.session.get(Invoice, invoice_id))
        assert record.state.value == "pushed", record.last_error_text
        db.session.commit()
    _inject_hostile_ledger_data(app, flow.sandbox, connection_id)
    _link_id, link_token = make_link(org_unit["unit_id"], provider="quickbooks", region=None, replace_existing=True)
    tested = flow.client.post(f"/connections/{connection_id}/test", data={"csrf_token": flow.token})
    assert tested.status_code < 500
    tokens_seen |= _all_tokens(app, [connection_id])

    secrets = {f"token {i}": t for i, t in enumerate(sorted(tokens_seen))}
    secrets |= {f"{provider} client secret": secret for provider, (_id, secret) in SANDBOX_CLIENTS.items()}
    secrets["authorization link token"] = link_token
    secrets |= {"SECRET_KEY": app.config["SECRET_KEY"], "TOKEN_KEYS": app.config["TOKEN_KEYS"].split(",")[0]}
    assert len(tokens_seen) >= 3  # the first access and refresh token and the rotated access token
    findings: list[str] = []

    # Every text column of every table.
    with app.app_context():
        existing = set(inspect(db.engine).get_table_names())
        for table in db.metadata.sorted_tables:
            if table.name not in existing:
                continue
            SUMMARY["tables_scanned"] += 1
            columns = [c for c in table.columns if isinstance(c.type, String | Text) or "JSON" in type(c.type).__name__]
            for row in db.session.execute(db.select(*columns)) if columns else ():
                findings += _scan(" ".join(str(v) for v in row if v is not None), secrets, f"table {table.name}")

    # Every GET page an admin reaches, with real ids; HTML scanned for secrets and raw provider script.
    admin = make_staff_admin(app)
    flow.client.post("/logout", data={"csrf_token": flow.token})
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"email": admin["email"], "password": admin["password"], "csrf_token": token})
    admin_token = csrf_token_of(client.get("/").get_data(as_text=True))
    assert client.post("/jobs/queue-check", data={"csrf_token": admin_token}).status_code < 400  # a SyncRun
    values = _values_of(app)
    pages, escaped_on = 0, []
    for rule in _rules(app, "GET"):
        if rule.endpoint in ("static", "links.open_link") or rule.arguments - set(values) - set(STATIC_ARGS):
            continue
        candidates = dict(STATIC_ARGS)
        missing = [arg for arg in rule.arguments if arg in values and not values[arg]]
        if missing:
            SUMMARY.setdefault("routes_without_data", []).append(rule.rule)
            continue
        candidates |= {arg: values[arg][0] for arg in rule.arguments if arg in values}
        url = rule.build({a: candidates[a] for a in rule.arguments}, append_unknown=False)[1]
        if rule.endpoint == "customers.search_ledger_customers":
            url += "?ledger_q=Hostile"
        response = client.get(url)
        assert response.status_code < 500, (url, response.status_code)
        pages += 1
        body = response.get_data(as_text=True)
        findings += _scan(body, secrets, f"page {url}")
        if response.mimetype == "text/html":
            findings += [f"raw provider script on {url}" for raw in RAW_XSS if raw in body]
            if ESCAPED_XSS in body:
                escaped_on.append(url)
    SUMMARY["pages_scanned"] = pages
    SUMMARY["provider_text_escaped_on"] = escaped_on

    # Every log record of the whole flow.
    SUMMARY["log_records_scanned"] = len(caplog.records)
    for record in caplog.records:
        findings += _scan(record.getMessage(), secrets, f"log {record.name}")

    SUMMARY["findings"] += findings
    assert not findings, findings
    assert pages >= 30
    assert len(caplog.records) > 10
    # The hostile names were shown (escaped) where people pick ledger customers and items.
    assert any("/customers/ledger" in url for url in escaped_on), escaped_on
    assert any("/mappings" in url for url in escaped_on), escaped_on


def make_staff_admin(app) -> dict:
    import os

    from portal.auth.services import create_staff
    from portal.extensions import db
    from tests.conftest import TEST_PASSWORD

    with app.app_context():
        user = create_staff(f"admin-{os.urandom(3).hex()}@example.test", Role.admin.value, TEST_PASSWORD, actor="test")
        db.session.commit()
        return {"email": user.email, "password": TEST_PASSWORD}


# -- redirects -------------------------------------------------------------------------------------
HOSTILE_TARGETS = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example/",
    "\\\\evil.example/",
    "/\t/evil.example/",
    "/%2F/evil.example/",
    " //evil.example/",
    "javascript:alert(1)",
    "https:evil.example",
    "/\r\n/evil.example",
]


@pytest.mark.parametrize("target", HOSTILE_TARGETS)
def test_login_never_redirects_off_site(client, make_staff, target):
    user = make_staff("support")
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login",
        query_string={"next": target},
        data={"email": user["email"], "password": user["password"], "csrf_token": token},
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    parts = urlsplit(location)
    # Browsers read a backslash as a slash and drop tabs and newlines: judge the location as they do.
    as_browser = re.sub(r"[\t\r\n]", "", location).replace("\\", "/")
    assert not parts.netloc and not as_browser.startswith("//") and not parts.scheme, location
    SUMMARY.setdefault("redirect_targets_refused", []).append(target)


def test_htmx_redirects_and_callbacks_stay_on_site(client, flow, unit_id):
    # An expired session on an htmx request: HX-Redirect to our own login page.
    anonymous = client.application.test_client()
    response = anonymous.get("/organizations/?next=https://evil.example/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")
    # The OAuth callback with a forged state and a hostile "next"-like parameter goes nowhere else.
    forged = flow.client.get("/connections/oauth/callback?state=forged&code=x&next=https://evil.example/")
    assert forged.status_code in (302, 400, 403, 404)
    if forged.status_code == 302:
        assert not urlsplit(forged.headers["Location"]).netloc
    denied = flow.client.get("/connections/oauth/callback?state=forged&error=access_denied&redirect=//evil.example")
    assert denied.status_code < 500
    assert "evil.example" not in denied.headers.get("Location", "")


# -- headers, cookies, throttling -----------------------------------------------------------------
def test_production_headers_and_cookie_flags(app, database_url, redis_url):
    from portal import create_app

    production = create_app(
        {
            "ENV": "production",
            "SECRET_KEY": app.config["SECRET_KEY"],
            "TOKEN_KEYS": app.config["TOKEN_KEYS"],
            "SQLALCHEMY_DATABASE_URI": "postgresql://ledgerlink@127.0.0.1:1/never-connected",
            "REDIS_URL": redis_url,
        }
    )
    response = production.test_client().get("/login")
    headers = response.headers
    csp = headers["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", csp).group(1)
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert "frame-ancestors 'none'" in csp
    assert (
        headers["Strict-Transport-Security"].startswith("max-age=")
        and int(re.search(r"max-age=(\d+)", headers["Strict-Transport-Security"]).group(1)) >= 180 * 86400
    )
    cookie = headers.get("Set-Cookie", "")
    assert "session=" in cookie, cookie
    flags = cookie.lower()
    assert "secure" in flags and "httponly" in flags and "samesite=lax" in flags, cookie
    assert production.config["REMEMBER_COOKIE_SECURE"] and production.config["REMEMBER_COOKIE_HTTPONLY"]
    SUMMARY["production_headers"] = {k: headers[k] for k in ("Content-Security-Policy", "Strict-Transport-Security")}


def test_login_is_throttled_and_says_for_how_long(app, client, make_staff):
    user = make_staff("support")
    limit = app.config["LOGIN_MAX_FAILURES"]
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    for _ in range(limit):
        failed = client.post("/login", data={"email": user["email"], "password": "wrong", "csrf_token": token})
        assert failed.status_code == 401
    # Now even the right password is refused, with the wait in words, and nothing logs in.
    locked = client.post("/login", data={"email": user["email"], "password": user["password"], "csrf_token": token})
    assert locked.status_code == 429
    assert "Too many failed attempts" in locked.get_data(as_text=True)
    assert "minute" in locked.get_data(as_text=True)
    assert client.get("/").status_code == 302
    SUMMARY["login_throttle"] = {"failures_before_lockout": limit}
