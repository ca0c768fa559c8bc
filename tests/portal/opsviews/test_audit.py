"""The audit log: filters, pagination, CSV, and the list on each connection page."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest


@pytest.fixture
def audit_events(app, org_unit, make_staff):
    """Return a function adding audit events (committed) as a given staff member."""
    from portal.database import utcnow
    from portal.extensions import db
    from portal.models import AuditEvent

    def add(n=1, *, kind="mapping.changed", actor=None, org_id=None, subject_id=None, age=timedelta(0), summary=None):
        with app.app_context():
            events = [
                AuditEvent(
                    created_at=utcnow() - age,
                    actor_id=actor["id"] if actor else None,
                    actor_label=actor["email"] if actor else "system",
                    organization_id=org_id if org_id is not None else org_unit["org_id"],
                    kind=kind,
                    subject_type="Connection",
                    subject_id=subject_id,
                    summary=summary or f"{kind} number {i}",
                    before={"item": "OLD"},
                    after={"item": "NEW"},
                )
                for i in range(n)
            ]
            db.session.add_all(events)
            db.session.commit()
            return [e.id for e in events]

    return add


def test_the_audit_log_filters_by_organization_staff_kind_and_date(app, org_unit, make_staff, login, audit_events):
    alice, bob = make_staff("support", "alice@example.test"), make_staff("ops", "bob@example.test")
    audit_events(1, kind="mapping.changed", actor=alice, summary="Alice changed a mapping")
    audit_events(1, kind="connection.paused", actor=bob, summary="Bob paused it")
    audit_events(1, kind="connection.resumed", actor=bob, summary="Bob resumed long ago", age=timedelta(days=10))
    client = app.test_client()
    login(alice, client=client)

    page = client.get(f"/audit?staff={alice['id']}").get_data(as_text=True)
    assert "Alice changed a mapping" in page and "Bob paused it" not in page
    page = client.get("/audit?kind=connection").get_data(as_text=True)
    assert "Bob paused it" in page and "Bob resumed long ago" in page and "Alice changed" not in page
    since = date.today() - timedelta(days=2)
    page = client.get(f"/audit?kind=connection&from={since.isoformat()}").get_data(as_text=True)
    assert "Bob paused it" in page and "Bob resumed long ago" not in page
    page = client.get("/audit?org=Pushtest").get_data(as_text=True)
    assert "Alice changed a mapping" in page and "item: OLD → NEW" in page
    page = client.get(f"/audit?org={org_unit['org_id'] + 999}").get_data(as_text=True)
    assert "No changes match." in page
    assert client.get("/audit?staff=bob").status_code == 400


def test_the_audit_log_pages_with_constant_queries_and_exports_csv(app, make_staff, login, audit_events, count_queries):
    staff = make_staff("support")
    client = app.test_client()
    login(staff, client=client)
    audit_events(2, actor=staff)
    with count_queries() as few:
        assert client.get("/audit").status_code == 200
    audit_events(40, actor=staff)
    audit_events(1, actor=staff, summary="=cmd|' /C calc'!A0")
    with count_queries() as many:
        page = client.get("/audit").get_data(as_text=True)
    assert len(many) == len(few)
    assert 'rel="next"' in page

    response = client.get("/audit.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:3] == ["time_utc", "who", "organization"]
    assert len(rows) >= 44  # header + 43 events (+ the staff account creations)
    assert any(row[7] == "'=cmd|' /C calc'!A0" for row in rows[1:])
    assert not any(row[7].startswith("=") for row in rows[1:])


def test_each_connection_shows_its_own_changes(app, sandbox, connect, ops_client, audit_events):
    connection_id = connect("bexio")
    audit_events(1, subject_id=connection_id, summary="Changed this connection")
    audit_events(1, subject_id=connection_id + 1000, summary="Changed another connection")
    client, _ = ops_client
    show = client.get(f"/connections/{connection_id}").get_data(as_text=True)
    assert f"/connections/{connection_id}/audit" in show and f"/connections/{connection_id}/operations" in show
    fragment = client.get(f"/connections/{connection_id}/audit", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Changed this connection" in fragment and "Changed another connection" not in fragment
    assert client.get(f"/connections/{connection_id + 1000}/audit").status_code == 404


def test_the_audit_log_needs_a_login(client):
    assert client.get("/audit").status_code in (302, 401)
