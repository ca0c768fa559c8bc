"""A link that re-authorizes a connection stays on the company the connection is pinned to."""

from __future__ import annotations

import html
import re

from tests.portal.connections.conftest import flow  # noqa: F401 - fixture
from tests.portal.links.conftest import NL_USER, counts, link_state


def _connections(db, unit_id) -> list[tuple[str, str | None]]:
    from portal.models import Connection

    db.session.expire_all()
    rows = db.session.scalars(
        db.select(Connection).where(Connection.business_unit_id == unit_id).order_by(Connection.id)
    )
    return [(c.status.value, c.external_company_id) for c in rows]


def _create_on_page(support, unit_id, **fields) -> tuple[int, str]:
    """Create a link as support does on the page; return its id and token (shown once, on the page)."""
    from portal.extensions import db
    from portal.models import AuthorizationLink

    client, csrf, _user = support
    data = {"csrf_token": csrf, "provider": "exact-online", "region": "nl", "expires_in_days": "7", **fields}
    created = client.post(f"/business-units/{unit_id}/authorization-links/new", data=data)
    text = created.get_data(as_text=True)
    assert created.status_code == 200, text
    token = re.search(r"/authorize/([A-Za-z0-9_-]{20,100})", text).group(1)
    link_id = db.session.scalar(db.select(AuthorizationLink.id).order_by(AuthorizationLink.id.desc()).limit(1))
    return link_id, token


def test_a_replacing_link_stays_on_the_pinned_division_unless_support_names_another(
    app, db, make_link, approver, support, unit_id
):
    from portal.models import AuthorizationLink, Connection

    _first, token = make_link(unit_id)
    assert approver.approve(token, user=NL_USER, divisions=["3010001"]).status_code == 200
    label = db.session.scalars(db.select(Connection).where(Connection.business_unit_id == unit_id)).one().company_label

    # Support re-authorizes, leaving the expected division empty: the link expects the pinned one.
    link_id, token = _create_on_page(support, unit_id, replace_existing="y")
    link = db.session.get(AuthorizationLink, link_id)
    assert link.replace_existing and link.expected_company_id == "3010001"
    assert "current company" in link.events[0].detail
    assert "3010001" in approver.open(token).get_data(as_text=True)  # the approver is told before consenting

    # Consent reaching another division only: refused, naming what to choose; nothing changes.
    before = counts(app)
    refused = approver.approve(token, user=NL_USER, divisions=["3010002"])
    text = html.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 409, text
    assert f"renews access for the connection to {label}" in text and f"choose {label}" in text
    assert "nothing was changed" in text
    assert counts(app)[0] == before[0] and _connections(db, unit_id) == [("connected", "3010001")]
    assert link_state(app, link_id)[1][-1] == "wrong_division_attempted"

    # Consent reaching both divisions: the pinned one is kept, without asking the approver to pick,
    # and the connection is re-authorized in place (not replaced).
    done = approver.approve(token, user=NL_USER, divisions=["3010001", "3010002"])
    assert done.status_code == 200, done.get_data(as_text=True)
    assert link_state(app, link_id)[0] == "completed"
    assert _connections(db, unit_id) == [("connected", "3010001")]

    # Support chose otherwise: a named division is what the link expects.
    other_id, other = _create_on_page(support, unit_id, replace_existing="y", expected_company_id="3010002")
    assert db.session.get(AuthorizationLink, other_id).expected_company_id == "3010002"
    assert approver.approve(other, user=NL_USER, divisions=["3010001", "3010002"]).status_code == 200
    assert _connections(db, unit_id)[-1] == ("connected", "3010002")


def test_a_replacing_link_made_without_an_expected_company_is_held_to_it_at_the_callback(
    app, db, make_link, approver, unit_id
):
    from portal.models import AuthorizationLink

    _first, token = make_link(unit_id)
    assert approver.approve(token, user=NL_USER, divisions=["3010001"]).status_code == 200
    link_id, token = make_link(unit_id, replace_existing=True)
    link = db.session.get(AuthorizationLink, link_id)
    link.expected_company_id = None  # as links made before the default were stored
    db.session.commit()

    refused = approver.approve(token, user=NL_USER, divisions=["3010002"])
    assert refused.status_code == 409 and "3010001" in html.unescape(refused.get_data(as_text=True))
    assert _connections(db, unit_id) == [("connected", "3010001")]
    assert approver.approve(token, user=NL_USER, divisions=["3010001"]).status_code == 200


def test_a_link_replacing_another_ledger_lets_the_approver_choose(app, db, make_link, approver, unit_id):
    from tests.portal.connections.conftest import BEXIO_MAIN

    _first, token = make_link(unit_id, provider="bexio", region=None)
    assert approver.approve(token, username="max.mustermann", company_id=BEXIO_MAIN).status_code == 200
    link_id, token = make_link(unit_id, replace_existing=True)
    from portal.models import AuthorizationLink

    assert db.session.get(AuthorizationLink, link_id).expected_company_id is None
    assert approver.approve(token, user=NL_USER, divisions=["3010002"]).status_code == 200
    assert _connections(db, unit_id) == [("disconnected", BEXIO_MAIN), ("connected", "3010002")]


def test_renewing_through_a_link_keeps_the_connection_and_everything_on_it(
    app, db, make_link, approver, support, unit_id
):
    """Exact repro: a replacing link approved for the same division re-authorizes in place."""
    from datetime import UTC, datetime

    from portal.models import (
        AuditEvent,
        AuthorizationLink,
        Connection,
        Customer,
        CustomerLink,
        ExternalRecord,
        LinkMethod,
        Mapping,
        RecordKind,
        RecordState,
    )

    _first, token = make_link(unit_id)
    assert approver.approve(token, user=NL_USER, divisions=["3010001"]).status_code == 200
    connection = db.session.scalars(db.select(Connection).where(Connection.business_unit_id == unit_id)).one()
    cid = connection.id
    customer = db.session.scalars(
        db.select(Customer).where(Customer.organization_id == connection.business_unit.organization_id)
    ).first()
    connection.settings = {**connection.settings, "sending_method": "ledger", "auto_send": True}
    connection.sync_from = datetime(2024, 1, 1, tzinfo=UTC)
    db.session.add(Mapping(connection_id=cid, field="journal", value="70"))
    db.session.add(
        CustomerLink(connection_id=cid, customer_id=customer.id, external_id="acc-1", method=LinkMethod.manual)
    )
    db.session.add(
        ExternalRecord(
            connection_id=cid,
            kind=RecordKind.customer,
            local_id=customer.id,
            external_id="acc-1",
            state=RecordState.pushed,
        )
    )
    # The connection lost its grant meanwhile: that is what a renewal is for.
    connection.transition(connection.status.needs_reauthorization, "Refresh refused: invalid_grant")
    db.session.commit()
    old_tokens = connection.token_ciphertext

    link_id, token = make_link(unit_id, replace_existing=True)
    done = approver.approve(token, user=NL_USER, divisions=["3010001"])
    assert done.status_code == 200, done.get_data(as_text=True)

    db.session.expire_all()
    (renewed,) = db.session.scalars(db.select(Connection).where(Connection.business_unit_id == unit_id)).all()
    assert renewed.id == cid and renewed.status.value == "connected"
    assert renewed.token_ciphertext and renewed.token_ciphertext != old_tokens
    assert renewed.settings["sending_method"] == "ledger" and renewed.settings["auto_send"] is True
    assert renewed.sync_from == datetime(2024, 1, 1, tzinfo=UTC)
    for model in (Mapping, CustomerLink, ExternalRecord):
        assert db.session.scalar(db.select(db.func.count()).select_from(model).where(model.connection_id == cid)) == 1
    assert link_state(app, link_id)[0] == "completed"
    assert db.session.get(AuthorizationLink, link_id).connection_id == cid
    kinds = db.session.scalars(
        db.select(AuditEvent.kind).where(AuditEvent.subject_type == "Connection", AuditEvent.subject_id == cid)
    ).all()
    assert "connection.reauthorized" in kinds and "connection.disconnected" not in kinds


def test_staff_picking_the_same_company_again_renews_in_place(app, db, flow, unit_id):  # noqa: F811 - fixture imported above
    """Connecting the unit's own company again (even with "replace" ticked) keeps the connection."""
    from portal.models import Connection
    from tests.portal.connections.conftest import connect_token_case

    cid = connect_token_case(flow, unit_id, "bexio")
    again = flow.connect(
        unit_id, "bexio", company="q69vysq7fkzl", replace=True, username="max.mustermann", company_id="q69vysq7fkzl"
    )
    assert again == cid
    assert _connections(db, unit_id) == [("connected", "q69vysq7fkzl")]
    assert db.session.get(Connection, cid).is_live
