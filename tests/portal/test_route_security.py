"""Every route declares its role (or API scope), refuses anonymous and under-privileged staff, and needs CSRF."""

from __future__ import annotations

import pytest

from portal.models import Role

#: Routes anyone may reach, each for a reason.
PUBLIC = {
    "static",  # CSS and JavaScript
    "auth.login",  # the way in
    "system.health",  # load-balancer probe, says only "ok"
    # Authorization links: an approver without an account opens the link, starts the provider's
    # consent and (when several companies are reachable) picks one. The token, the browser
    # session and a rate limit guard these pages instead of a login.
    "links.open_link",
    "links.start_link",
    "links.pick_company",
    # The OAuth redirect URI serves link consents without a login; connect/reconnect consents
    # still require a support login, checked inside the view (tests/portal/links cover both).
    "connections.oauth_callback",
    # The OpenAPI description of /api/v1: the SaaS's developers and tools read it without a key;
    # it describes the endpoints, holds no data.
    "api.openapi_document",
}

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}

#: Roles the README's "Roles" paragraph promises, per action: what writes into a customer's books
#: beyond a single record (back-fills, re-syncs, retries, pause/resume) is ops; staff management admin.
ROLES = {
    "history.show_history": Role.support,
    "history.preview_history": Role.support,
    "history.show_backfill": Role.support,
    "history.start_history": Role.ops,
    "history.pause_backfill": Role.ops,
    "history.resume_backfill": Role.ops,
    "history.cancel_backfill": Role.ops,
    "ops.bulk_connections": Role.ops,
    "ops.retry_failures": Role.ops,
    "auth.list_staff": Role.admin,
    "auth.update_staff": Role.admin,
    "auth.show_account": Role.support,
    "auth.logout_everywhere": Role.support,
    "connections.connect_unit": Role.support,
    "connections.go_live": Role.support,
    "connections.push_now": Role.support,
    "connections.pull_payments_now": Role.support,
    "links.create_link": Role.support,
}


def test_routes_declare_the_roles_the_readme_promises(app):
    declared = {rule.endpoint: getattr(view, "required_role", None) for rule, view in _endpoints(app)}
    assert {endpoint: declared.get(endpoint) for endpoint in ROLES} == ROLES
    from pathlib import Path

    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    assert (
        "`support` (connections, mappings, links, customer links, tests, back-fill previews, going live, "
        "*Push now* and *Pull payments now* of a live connection) < `ops`" in readme
    )
    assert "`ops` (also re-syncs, back-fills: start, pause, resume, cancel; retries, pause/resume" in readme
    assert "`admin` (also staff management)" in readme


def _is_api(view) -> bool:
    """API routes authenticate with a key and declare their scope instead of a role."""
    return isinstance(getattr(view, "required_scope", None), str)


def _endpoints(app):
    for rule in app.url_map.iter_rules():
        yield rule, app.view_functions[rule.endpoint]


def _sample_url(rule) -> str:
    values = {arg: 1 for arg in rule.arguments}
    if rule.endpoint == "organizations.list_records":
        values["section"] = "invoices"
    if rule.endpoint == "static":
        values["filename"] = "app.css"
    return rule.build(values, append_unknown=False)[1]


def test_every_route_is_public_by_allow_list_or_declares_a_role(app):
    undeclared = [
        rule.rule
        for rule, view in _endpoints(app)
        if rule.endpoint not in PUBLIC
        and not isinstance(getattr(view, "required_role", None), Role)
        and not _is_api(view)
    ]
    assert not undeclared, f"routes without a declared role: {undeclared}"
    marked_public = {rule.endpoint for rule, view in _endpoints(app) if getattr(view, "public", False)}
    assert marked_public | {"static"} == PUBLIC


def test_anonymous_requests_are_sent_to_login(app, client):
    for rule, view in _endpoints(app):
        if rule.endpoint in PUBLIC:
            continue
        url = _sample_url(rule)
        if _is_api(view):
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                response = client.open(url, method=method)
                assert response.status_code == 401 and response.is_json, (method, url)
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(url, method=method)
            if method == "GET":
                assert response.status_code == 302, (method, url)
                assert response.headers["Location"].startswith("/login"), url
            else:
                # No session means no CSRF token either; either refusal is right, never a change.
                assert response.status_code in (302, 400, 401), (method, url, response.status_code)
            htmx = client.open(url, method=method, headers={"HX-Request": "true"})
            assert htmx.status_code in (400, 401), (method, url)


def test_staff_below_the_declared_role_get_403(app, client, make_staff, login):
    token = login(make_staff("support"))
    checked = 0
    for rule, view in _endpoints(app):
        needed = getattr(view, "required_role", None)
        if needed is None or needed is Role.support:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(_sample_url(rule), method=method, headers={"X-CSRFToken": token})
            assert response.status_code == 403, (method, rule.rule)
            checked += 1
    assert checked >= 1


@pytest.mark.parametrize("with_htmx", [False, True])
def test_state_changes_without_csrf_token_are_refused(app, client, make_staff, login, with_htmx):
    login(make_staff("admin"))
    headers = {"HX-Request": "true"} if with_htmx else {}
    checked = 0
    for rule, view in _endpoints(app):
        for method in rule.methods & STATE_CHANGING:
            if rule.endpoint == "auth.login" or _is_api(view):
                continue
            response = client.open(_sample_url(rule), method=method, headers=headers)
            assert response.status_code == 400, (method, rule.rule, response.status_code)
            assert "security token" in response.get_data(as_text=True)
            checked += 1
    assert checked >= 2
    assert client.get("/").status_code == 200  # still logged in: nothing was done


def test_api_routes_ignore_the_session_cookie(app, client, make_staff, login):
    """A logged-in staff browser gets no API access: keys only (so CSRF does not apply to the API)."""
    token = login(make_staff("admin"))
    checked = 0
    for rule, view in _endpoints(app):
        if not _is_api(view):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(_sample_url(rule), method=method, headers={"X-CSRFToken": token}, json={})
            assert response.status_code == 401, (method, rule.rule)
            checked += 1
    assert checked >= 2


def test_security_headers(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_no_inline_script_in_pages(client, make_staff, login, demo_data):
    login(make_staff("admin"))
    for url in ("/", "/organizations/", "/jobs", "/login"):
        html = client.get(url).get_data(as_text=True)
        assert "<script>" not in html and " on" + "click=" not in html
