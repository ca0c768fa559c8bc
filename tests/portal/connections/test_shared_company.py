"""A ledger company already pinned by another organization: a warning naming it, and an explicit confirmation."""

from __future__ import annotations

import html

from portal.models import AuditEvent, Connection
from tests.conftest import csrf_token_of
from tests.portal.connections.conftest import QBO_US
from tests.portal.links.conftest import approver, make_link  # noqa: F401 - fixtures
from tests.portal.sync.conftest import new_organization

QBO = {"user": "u-ada", "realm_id": QBO_US}


def test_pinning_a_company_another_organization_uses_needs_a_confirmation(app, flow, demo_data):
    first = new_organization(app, "Alpha", ["Alpha US"])
    second = new_organization(app, "Bravo", ["Bravo US"])
    flow.connect(first["unit_ids"][0], "quickbooks", company=QBO_US, **QBO)

    callback = flow.authorize(second["unit_ids"][0], "quickbooks", **QBO)
    pick_url = callback.headers["Location"]
    page = flow.client.get(pick_url).get_data(as_text=True)
    assert "Already connected for Alpha Holding" in page
    token = csrf_token_of(page)
    refused = flow.client.post(pick_url, data={"company": QBO_US, "csrf_token": token})
    text = html.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 409 and "already connected for Alpha Holding" in text and "confirm" in text
    from portal.extensions import db

    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Connection)) == 1
    done = flow.client.post(pick_url, data={"company": QBO_US, "csrf_token": token, "confirm_shared": "y"})
    assert done.status_code == 302, done.get_data(as_text=True)
    cid = int(done.headers["Location"].rsplit("/", 1)[1])
    assert "also connected for" in flow.client.get(f"/connections/{cid}").get_data(as_text=True)
    with app.app_context():
        event = db.session.scalars(db.select(AuditEvent).filter_by(kind="connection.connected", subject_id=cid)).one()
        assert event.after["shared_with"] == ["Alpha Holding"] and "confirmed" in event.summary


def test_ops_connections_show_a_company_serving_several_organizations(app, flow, demo_data, make_staff, login):
    first = new_organization(app, "Alpha", ["Alpha US"])
    second = new_organization(app, "Bravo", ["Bravo US"])
    a = flow.connect(first["unit_ids"][0], "quickbooks", company=QBO_US, **QBO)
    b = flow.connect(second["unit_ids"][0], "quickbooks", company=QBO_US, **QBO)
    ops = app.test_client()
    login(make_staff("ops"), client=ops)
    page = ops.get("/ops/connections?provider=quickbooks").get_data(as_text=True)
    for cid in (a, b):
        row = page.split(f'id="connection-{cid}"', 1)[1].split("</tr>", 1)[0]
        assert 'data-shared="1"' in row and "also used by 1 other organization" in row


def test_a_link_connects_a_shared_company_only_when_the_sender_named_it(app, flow, demo_data, make_link, approver):  # noqa: F811
    from tests.portal.links.conftest import link_state

    first = new_organization(app, "Alpha", ["Alpha US"])
    second = new_organization(app, "Bravo", ["Bravo US"])
    flow.connect(first["unit_ids"][0], "quickbooks", company=QBO_US, **QBO)
    link_id, token = make_link(second["unit_ids"][0], provider="quickbooks", region=None)
    refused = approver.approve(token, **QBO)
    text = html.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 409 and "Alpha" not in text and "contact the sender" in text
    assert link_state(app, link_id)[1][-1] == "refused"
    from portal.extensions import db
    from portal.models import AuthorizationLinkEvent

    with app.app_context():
        detail = db.session.scalars(
            db.select(AuthorizationLinkEvent.detail)
            .filter_by(link_id=link_id)
            .order_by(AuthorizationLinkEvent.id.desc())
        ).first()
    assert "already connected for Alpha Holding" in detail
    named_id, named = make_link(second["unit_ids"][0], provider="quickbooks", region=None, expected_company_id=QBO_US)
    assert approver.approve(named, **QBO).status_code == 200
    assert link_state(app, named_id)[0] == "completed"
