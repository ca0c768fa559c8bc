"""Fixtures of the proof suite: scale, an API key, an organization to write to, result files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.portal.connections.conftest import flow, sandbox, unit_id  # noqa: F401 - fixtures
from tests.portal.links.conftest import approver, make_link  # noqa: F401 - fixtures
from tests.portal.sync.conftest import connect, make_invoice, org_unit  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "test-results"

#: "full" for `make proof`; anything else is the bounded CI size.
FULL = os.environ.get("PROOF_SCALE", "").lower() == "full"


def scaled(ci: int, full: int) -> int:
    """Return the size for the current PROOF_SCALE."""
    return full if FULL else ci


def write_result(name: str, data: dict) -> Path:
    """Write a JSON summary to test-results/<name> and return its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return path


@pytest.fixture
def api_key(app) -> str:
    """A key carrying every scope."""
    from portal.api.auth import create_client
    from portal.extensions import db

    with app.test_request_context():
        _, key = create_client(f"proof-{os.urandom(3).hex()}", ["ingest", "links"])
        db.session.commit()
    return key


@pytest.fixture
def org_external(app, org_unit) -> dict:  # noqa: F811 - the fixture imported above
    """The organization of ``org_unit`` as the API names it."""
    from portal.extensions import db
    from portal.models import Customer, Organization

    with app.app_context():
        org = db.session.get(Organization, org_unit["org_id"])
        customer = db.session.get(Customer, org_unit["customer_id"])
        return {**org_unit, "external_id": org.external_id, "customer_external_id": customer.external_id}


def row_counts(app) -> dict[str, int]:
    """Return the number of rows of every table."""
    from sqlalchemy import func, inspect, select

    from portal.extensions import db

    with app.app_context():
        existing = set(inspect(db.engine).get_table_names())
        return {
            t.name: db.session.scalar(select(func.count()).select_from(t))
            for t in db.metadata.sorted_tables
            if t.name in existing
        }
