"""Pages and exports are never cached; the dev outbox hides link tokens; approvers see errors in their own pages."""

from __future__ import annotations

import html
import json

import requests

from tests.portal.connections.conftest import QBO_US, consent, local_path, sandbox  # noqa: F401 - fixture
from tests.portal.links.conftest import approver, make_link  # noqa: F401 - fixtures


def test_pages_exports_and_api_answers_are_never_cached(app, client, make_staff, login, demo_data):
    login(make_staff("ops"))
    for url in ("/", "/organizations/", "/ops/connections", "/ops/connections?format=csv", "/audit.csv", "/account"):
        response = client.get(url, buffered=True)
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == "no-store", url
    assert client.get("/api/v1/openapi.json").headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/static/app.css").headers.get("Cache-Control", "")


def test_the_outbox_shows_no_link_token(app, client, make_staff, login, demo_data, make_link):  # noqa: F811
    from portal.extensions import db
    from portal.links import services
    from portal.models import AuthorizationLink, BusinessUnit

    with app.app_context():
        unit = db.session.scalars(db.select(BusinessUnit.id)).first()
    _link_id, token = make_link(unit)
    with app.test_request_context():
        link = db.session.scalars(db.select(AuthorizationLink)).one()
        services.email_link(link, token, "approver@example.test")
        db.session.commit()
    login(make_staff("support"))
    page = client.get("/outbox").get_data(as_text=True)
    assert "approver@example.test" in page and f"/authorize/{token[:6]}…" in page
    assert token not in page and token[6:20] not in page
    assert "shown shortened" in page


def test_an_approver_sees_errors_in_the_public_layout_in_their_language(app, demo_data, make_link, approver):  # noqa: F811
    from portal.extensions import db
    from portal.models import BusinessUnit

    with app.app_context():
        unit = db.session.scalars(db.select(BusinessUnit.id)).first()
    _link_id, token = make_link(unit)
    # A stale page (no CSRF token): the public page in Dutch, not the staff's English error page.
    stale = approver.client.post(f"/authorize/{token}", headers={"Accept-Language": "nl"})
    body = stale.get_data(as_text=True)
    assert stale.status_code == 400 and 'data-outcome="error"' in body
    assert "Open de link die u ontving opnieuw" in body
    assert "Log out" not in body and "security token" not in body


def test_a_ledgers_refusal_reaches_the_approver_summarised_and_escaped(app, demo_data, make_link, approver, sandbox):  # noqa: F811 - fixtures imported above
    from portal.extensions import db
    from portal.models import AuthorizationLink, AuthorizationLinkEvent, BusinessUnit

    with app.app_context():
        unit = db.session.scalars(db.select(BusinessUnit.id)).first()
    link_id, token = make_link(unit, provider="quickbooks", region=None)
    started = approver.start(token)
    redirect = consent(sandbox, started.headers["Location"], user="u-ada", realm_id=QBO_US)
    hostile = "<script>alert(1)</script> " + "the grant was refused by policy " * 20 + "\nsecond line"
    fault_body = {
        "Fault": {"Error": [{"Message": hostile, "Detail": hostile, "code": "2010"}], "type": "ValidationFault"}
    }
    requests.post(
        f"{sandbox}/_control/faults",
        json={
            "provider": "quickbooks",
            "kind": "hostile_reply",
            "status": 400,
            "path_contains": "companyinfo",
            "count": 1,
            "body": json.dumps(fault_body),
        },
        timeout=10,
    ).raise_for_status()
    answer = approver.client.get(local_path(redirect))
    body = answer.get_data(as_text=True)
    assert answer.status_code >= 400 and 'data-outcome="refused"' in body
    assert "<script>alert(1)" not in body and "&lt;script&gt;" in body
    assert "second line" not in body and "…" in html.unescape(body)
    assert "start the connection again" not in body  # staff wording stays with staff
    with app.app_context():
        detail = db.session.scalars(
            db.select(AuthorizationLinkEvent.detail)
            .filter_by(link_id=link_id)
            .order_by(AuthorizationLinkEvent.id.desc())
        ).first()
        assert "refused by policy" in detail
        assert db.session.get(AuthorizationLink, link_id).status.value == "opened"
    # The consent that could not be completed is not left live at the ledger.
    grants = requests.post(f"{sandbox}/_control/quickbooks/grants", json={"realm_id": QBO_US}, timeout=10).json()
    assert grants["grants"] and all(g["revoked"] for g in grants["grants"])
