"""Authorization links: created by support, used once by an approver without an account."""

from __future__ import annotations

import hashlib

import pytest

from tests.conftest import csrf_token_of
from tests.portal.connections.conftest import BEXIO_MAIN, QBO_US
from tests.portal.links.conftest import NL_USER, counts, expire, link_state, org_name_of, url_of


# -- support creates -------------------------------------------------------------------------
def test_support_creates_a_link_sees_it_once_and_emails_it(app, db, support, unit_id):
    client, token, user = support
    form = client.get(f"/business-units/{unit_id}/authorization-links/new")
    assert form.status_code == 200 and "Send an authorization link" in form.get_data(as_text=True)
    created = client.post(
        f"/business-units/{unit_id}/authorization-links/new",
        data={
            "csrf_token": token,
            "provider": "exact-online",
            "region": "nl",
            "expected_company_id": "3010001",
            "expires_in_days": "7",
            "note": "Needed for <automatic> booking",
            "requested_for": "ada@customer.example",
            "email_to": "accountant@example.com",
        },
    )
    page = created.get_data(as_text=True)
    assert created.status_code == 200, page
    assert "/authorize/" in page and "E-mailed to accountant@example.com" in page
    url = page.split("data-link-url", 1)[0].rsplit('value="', 1)[1].split('"', 1)[0]

    from portal import mail
    from portal.models import AuditEvent, AuthorizationLink

    with app.test_request_context():
        sent = mail.read_outbox()[0]
    assert sent["to"] == "accountant@example.com" and url in sent["body"]
    link = db.session.scalars(db.select(AuthorizationLink)).one()
    assert link.created_via == "portal" and link.created_by_id == user["id"] and link.notify_email == user["email"]
    assert [e.kind.value for e in link.events] == ["created", "emailed"]
    kinds = db.session.scalars(db.select(AuditEvent.kind).where(AuditEvent.subject_type == "AuthorizationLink"))
    assert list(kinds) == ["link.created", "link.emailed"]

    # Listed with its lifecycle on the organization's page (fragment) and the link's own page.
    listing = client.get(
        f"/organizations/{link.business_unit.organization_id}/authorization-links", headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert f"#{link.id}" in listing and 'data-link-status="created"' in listing and "Emailed" in listing
    assert "&lt;automatic&gt;" in client.get(f"/authorization-links/{link.id}").get_data(as_text=True)


def test_create_refuses_bad_input_and_creates_nothing(app, db, support, unit_id):
    client, token, _user = support
    base = {"csrf_token": token, "provider": "exact-online", "region": "nl", "expires_in_days": "7"}
    too_long = client.post(f"/business-units/{unit_id}/authorization-links/new", data={**base, "expires_in_days": "31"})
    assert too_long.status_code == 400 and "Between 1 and 30 days" in too_long.get_data(as_text=True)
    no_region = client.post(f"/business-units/{unit_id}/authorization-links/new", data={**base, "region": ""})
    assert no_region.status_code == 400 and "Choose the Exact Online instance" in no_region.get_data(as_text=True)
    from portal.models import AuthorizationLink

    assert db.session.scalar(db.select(db.func.count(AuthorizationLink.id))) == 0


def test_token_is_random_and_stored_only_as_its_hash(app, db, make_link, unit_id):
    link_id, token = make_link(unit_id)
    _other_id, other = make_link(unit_id)
    assert len(token) >= 43 and token != other  # 32 random bytes, URL-safe
    from portal.models import AuditEvent, AuthorizationLink, AuthorizationLinkEvent

    link = db.session.get(AuthorizationLink, link_id)
    assert link.token_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = [str(getattr(link, c.key)) for c in AuthorizationLink.__table__.columns]
    stored += [e.detail for e in db.session.scalars(db.select(AuthorizationLinkEvent))]
    stored += [str(a.summary) + str(a.after) for a in db.session.scalars(db.select(AuditEvent))]
    assert not any(token in value for value in stored)


# -- the approver --------------------------------------------------------------------------------
def test_approver_opens_approves_and_the_link_completes(app, db, make_link, approver, unit_id):
    link_id, token = make_link(unit_id, expected_company_id="3010001", notify_email="support@example.test")
    page = approver.open(token)
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and org_name_of(app, unit_id) in text
    assert "Exact Online" in text and "3010001" in text and "Invoicr" in text
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    assert "<script" not in text
    assert link_state(app, link_id)[0] == "opened"

    done = approver.approve(token, user=NL_USER)  # grants both divisions; the expected one is pinned
    assert done.status_code == 200, done.get_data(as_text=True)
    assert "Access granted" in done.get_data(as_text=True)
    status, events, connection_id = link_state(app, link_id)
    assert status == "completed" and events == ["created", "opened", "completed"]
    from portal.models import AuditEvent, Connection, ConnectionStatus

    connection = db.session.get(Connection, connection_id)
    assert connection.status is ConnectionStatus.connected and connection.external_company_id == "3010001"
    assert connection.business_unit_id == unit_id and connection.region == "nl"
    actor = db.session.scalar(db.select(AuditEvent.actor_label).filter_by(kind="connection.connected"))
    assert actor == f"approver via link #{link_id}"

    # Single use: the link now says so, without naming anything.
    again = approver.open(token)
    assert again.status_code == 410 and org_name_of(app, unit_id) not in again.get_data(as_text=True)
    fresh = app.test_client().post(url_of(token), data={})
    assert fresh.status_code in (400, 410)  # no CSRF token in a fresh browser, or used: never a new consent
    assert counts(app) == (1, 1)


def test_several_companies_let_the_approver_pick_in_their_own_session(app, db, make_link, approver, unit_id):
    link_id, token = make_link(unit_id)  # no expected division
    back = approver.approve(token, user=NL_USER)  # two divisions granted
    assert back.status_code == 302 and "/authorize/grants/" in back.headers["Location"]
    pick_url = back.headers["Location"]
    # Another browser cannot use the pick page: same page as an unknown link.
    assert app.test_client().get(pick_url).status_code == 404
    page = approver.client.get(pick_url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "3010001" in html and "3010002" in html
    empty = approver.client.post(pick_url, data={"csrf_token": csrf_token_of(html)})
    assert empty.status_code == 400
    done = approver.client.post(pick_url, data={"csrf_token": csrf_token_of(html), "company": "3010002"})
    assert done.status_code == 200 and "Access granted" in done.get_data(as_text=True)
    status, _events, connection_id = link_state(app, link_id)
    from portal.models import Connection

    assert status == "completed" and db.session.get(Connection, connection_id).external_company_id == "3010002"
    assert approver.client.get(pick_url).status_code == 404  # the pick is used up


@pytest.mark.parametrize(
    ("provider", "region", "choices", "company"),
    [
        ("quickbooks", None, {"user": "u-ada", "realm_id": QBO_US}, QBO_US),
        ("bexio", None, {"username": "max.mustermann", "company_id": BEXIO_MAIN}, BEXIO_MAIN),
    ],
)
def test_other_providers_complete_with_one_company(
    app, db, make_link, approver, unit_id, provider, region, choices, company
):
    link_id, token = make_link(unit_id, provider=provider, region=region)
    done = approver.approve(token, **choices)
    assert done.status_code == 200, done.get_data(as_text=True)
    status, _events, connection_id = link_state(app, link_id)
    from portal.models import Connection

    assert status == "completed" and db.session.get(Connection, connection_id).external_company_id == company


def test_wrong_division_is_refused_naming_both_and_changes_nothing(app, db, make_link, approver, unit_id):
    link_id, token = make_link(unit_id, expected_company_id="3010002")
    refused = approver.approve(token, user=NL_USER, divisions=["3010001"])
    text = refused.get_data(as_text=True)
    assert refused.status_code == 409
    assert "3010002" in text and "3010001" in text and "Nothing was connected" in text
    assert counts(app) == (0, 0)
    status, events, connection_id = link_state(app, link_id)
    assert status == "opened" and events[-1] == "wrong_division_attempted" and connection_id is None
    # The link stays usable: the approver can retry with the right division.
    done = approver.approve(token, user=NL_USER, divisions=["3010002"])
    assert done.status_code == 200 and link_state(app, link_id)[0] == "completed"


def test_denial_at_the_ledger_shows_a_clear_page_and_changes_nothing(app, make_link, approver, unit_id):
    link_id, token = make_link(unit_id, provider="quickbooks", region=None)
    denied = approver.approve(token, decision="deny", user="u-ada")
    assert denied.status_code == 400 and "Access was not granted at QuickBooks Online" in denied.get_data(as_text=True)
    assert counts(app) == (0, 0)
    status, events, _ = link_state(app, link_id)
    assert status == "opened" and events[-1] == "refused"


def test_expired_revoked_tampered_and_unknown_links_get_one_generic_page(
    app, db, make_link, approver, support, unit_id
):
    client, csrf, _user = support
    name = org_name_of(app, unit_id)
    expired_id, expired = make_link(unit_id)
    expire(app, expired_id)
    revoked_id, revoked = make_link(unit_id)
    assert client.post(f"/authorization-links/{revoked_id}/revoke", data={"csrf_token": csrf}).status_code == 303
    _ok_id, good = make_link(unit_id)
    tampered = good[:-1] + ("A" if good[-1] != "A" else "B")
    bodies = []
    for token in (expired, revoked, tampered, "x" * 43, "not-a-token!"):
        response = approver.open(token)
        assert response.status_code == 404, token
        body = response.get_data(as_text=True)
        assert name not in body and "cannot be used" in body
        bodies.append(body)
        started = approver.client.post(
            url_of(token), data={"csrf_token": csrf_token_of(approver.open(good).get_data(as_text=True))}
        )
        assert started.status_code == 404
    assert len(set(bodies)) == 1
    assert link_state(app, expired_id)[0] == "expired" and link_state(app, expired_id)[1][-1] == "expired"
    assert link_state(app, revoked_id)[0] == "revoked"
    assert counts(app) == (0, 0)


def test_a_link_expiring_during_the_consent_connects_nothing(app, make_link, approver, unit_id):
    link_id, token = make_link(unit_id)
    started = approver.start(token)
    expire(app, link_id)
    from tests.portal.connections.conftest import consent, local_path

    back = approver.client.get(local_path(consent(approver.sandbox, started.headers["Location"], user=NL_USER)))
    assert back.status_code == 404 and counts(app) == (0, 0)


def test_resend_revokes_the_old_token_and_issues_a_new_one(app, db, make_link, approver, support, unit_id):
    client, csrf, _user = support
    old_id, old = make_link(unit_id, note="why")
    resent = client.post(
        f"/authorization-links/{old_id}/resend", data={"csrf_token": csrf, "email_to": "a@example.com"}
    )
    page = resent.get_data(as_text=True)
    assert resent.status_code == 200 and f"Link #{old_id} was revoked" in page
    new_url = page.split("data-link-url", 1)[0].rsplit('value="', 1)[1].split('"', 1)[0]
    assert approver.open(old).status_code == 404
    assert approver.client.get(new_url.split("localhost", 1)[1]).status_code == 200
    status, events, _ = link_state(app, old_id)
    assert status == "revoked" and events[-1] == "revoked"
    from portal.models import AuthorizationLink

    new = db.session.scalar(db.select(AuthorizationLink).filter_by(replaces_id=old_id))
    assert new.note == "why" and [e.kind.value for e in new.events][:2] == ["created", "emailed"]


def test_revoking_a_used_link_is_refused(app, make_link, approver, support, unit_id):
    client, csrf, _user = support
    link_id, token = make_link(unit_id, expected_company_id="3010001")
    assert approver.approve(token, user=NL_USER).status_code == 200
    response = client.post(f"/authorization-links/{link_id}/revoke", data={"csrf_token": csrf}, follow_redirects=True)
    assert "completed already" in response.get_data(as_text=True)
    assert link_state(app, link_id)[0] == "completed"


def test_a_connected_unit_is_replaced_only_when_the_link_allows_it(app, db, make_link, approver, support, unit_id):
    client, csrf, _user = support
    _first, token = make_link(unit_id, provider="bexio", region=None)
    assert approver.approve(token, username="max.mustermann", company_id=BEXIO_MAIN).status_code == 200
    refused = client.post(
        f"/business-units/{unit_id}/authorization-links/new",
        data={"csrf_token": csrf, "provider": "quickbooks", "expires_in_days": "7"},
    )
    assert refused.status_code == 409 and "connected to bexio" in refused.get_data(as_text=True)
    _link_id, token = make_link(unit_id, provider="quickbooks", region=None, replace_existing=True)
    other = type(approver)(app, approver.sandbox)
    assert other.approve(token, user="u-ada", realm_id=QBO_US).status_code == 200
    from portal.models import Connection, ConnectionStatus

    statuses = sorted(c.status.value for c in db.session.scalars(db.select(Connection)))
    assert statuses == [ConnectionStatus.connected.value, ConnectionStatus.disconnected.value]


def test_the_callback_still_needs_a_login_for_support_consents(app, client, make_staff, login, unit_id, sandbox):
    from tests.portal.connections.conftest import consent, local_path

    anonymous = client.get("/connections/oauth/callback?state=unknown&code=abc")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login")
    token = login(make_staff("support"))
    started = client.post(f"/business-units/{unit_id}/connect", data={"provider": "quickbooks", "csrf_token": token})
    redirect = consent(sandbox, started.headers["Location"], user="u-ada", realm_id=QBO_US)
    # The support consent's answer opened in a browser without a login is sent to log in.
    assert app.test_client().get(local_path(redirect)).status_code == 302
    assert client.get(local_path(redirect)).status_code == 302  # the support session completes it
    assert counts(app)[1] == 1


def test_public_pages_are_rate_limited(app, make_link, approver, unit_id, monkeypatch):
    monkeypatch.setitem(app.config, "LINK_RATE_LIMIT", 3)
    _id, token = make_link(unit_id)
    for _ in range(3):
        assert approver.open(token).status_code == 200
    limited = approver.open(token, **{"Accept-Language": "de"})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert "Zu viele Anfragen" in limited.get_data(as_text=True)
    assert approver.open("unknown-token-000000000000").status_code == 429  # unknown tokens count too


@pytest.mark.parametrize(
    ("language", "phrase"),
    [
        ("en-GB,en;q=0.9", "Approve access to Exact Online"),
        ("nl-NL,nl;q=0.9,en;q=0.5", "Toegang tot Exact Online goedkeuren"),
        ("de-CH,de;q=0.9", "Zugriff auf Exact Online genehmigen"),
        ("fr-BE,fr;q=0.8,en;q=0.5", "Autoriser l'accès à Exact Online"),
        ("es-ES", "Approve access to Exact Online"),
    ],
)
def test_the_approval_page_follows_the_browser_language(app, make_link, approver, unit_id, language, phrase):
    _id, token = make_link(unit_id, note="Bitte freigeben")
    page = approver.open(token, **{"Accept-Language": language})
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and phrase in text.replace("&#39;", "'")
    assert "Bitte freigeben" in text and "Accept-Language" in page.headers["Vary"]


def test_every_public_message_is_translated(app):
    from pathlib import Path

    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    root = Path(app.root_path)
    method_map = [("portal/links/**.py", "python"), ("portal/templates/links/**.html", "jinja2")]
    ids = {m[2] for m in extract_from_dir(str(root.parent), method_map=method_map, keywords={"_": None})}
    assert len(ids) > 30
    for lang in ("nl", "de", "fr"):
        with (root / "translations" / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
            catalog = read_po(fh)
        missing = [i for i in ids if not catalog.get(i) or not catalog.get(i).string]
        assert not missing, (lang, missing)
        assert (root / "translations" / lang / "LC_MESSAGES" / "messages.mo").exists()
