"""Fixtures for customer linking: an organization of our own, connected through the sandbox."""

from __future__ import annotations

import os

import pytest

from tests.portal.connections.conftest import BEXIO_MAIN, QBO_US, flow, sandbox  # noqa: F401 - fixtures

#: provider → (region, company, consent choices) for Flow.connect.
CONNECT = {
    "exact-online": ("nl", "3010001", {"user": "jan.devries", "divisions": ["3010001"]}),
    "quickbooks": (None, QBO_US, {"user": "u-ada", "realm_id": QBO_US}),
    "bexio": (None, BEXIO_MAIN, {"username": "max.mustermann", "company_id": BEXIO_MAIN}),
}


@pytest.fixture
def org_unit(app) -> dict:
    """A fresh organization with one business unit and no customers yet."""
    from portal.extensions import db
    from portal.models import BusinessUnit, Organization

    with app.app_context():
        org = Organization(external_id=f"org-{os.urandom(3).hex()}", name="Linktest Holding", country="NL")
        unit = BusinessUnit(organization=org, name="Linktest NL", country="NL", currency="EUR")
        db.session.add_all([org, unit])
        db.session.commit()
        return {"org_id": org.id, "unit_id": unit.id}


@pytest.fixture
def add_customers(app, org_unit):
    """Return a function adding SaaS customers (dicts with external_id, name, …); returns external_id → id."""
    from portal.extensions import db
    from portal.models import Customer

    def add(*rows: dict) -> dict[str, int]:
        with app.app_context():
            made = [Customer(organization_id=org_unit["org_id"], **{"country": "NL", **row}) for row in rows]
            db.session.add_all(made)
            db.session.commit()
            return {c.external_id: c.id for c in made}

    return add


@pytest.fixture
def connect(flow, org_unit):  # noqa: F811 - the flow fixture imported above
    """Connect the organization's unit to ``provider`` through the sandbox; return the connection id."""

    def do(provider: str) -> int:
        region, company, choices = CONNECT[provider]
        return flow.connected(org_unit["unit_id"], provider, region, company=company, **choices)

    return do


@pytest.fixture
def run_suggestions(app, flow):  # noqa: F811
    """Start a suggestion run through the page, then execute its job here; return the finished run."""
    from portal.extensions import db
    from portal.models import SyncRun, SyncRunKind

    def run(connection_id: int, page_size: int | None = None) -> SyncRun:
        response = flow.post(f"/connections/{connection_id}/customers/suggest")
        assert response.status_code == 302, response.get_data(as_text=True)
        from jobs.customers import suggest_links

        with app.app_context():
            started = db.session.scalars(
                db.select(SyncRun).where(SyncRun.kind == SyncRunKind.customer_match).order_by(SyncRun.id.desc())
            ).first()
            assert started.parameters == {"connection_id": connection_id}
            if page_size:
                started.parameters = {**started.parameters, "page_size": page_size}
                db.session.commit()
            suggest_links(started.id)
            db.session.expire_all()
            finished = db.session.get(SyncRun, started.id)
            db.session.expunge(finished)
            return finished

    return run
