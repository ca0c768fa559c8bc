"""Connected organizations through the sandbox (the sync suite's fixtures) and an ops member's client."""

from __future__ import annotations

import pytest

from tests.portal.sync.conftest import CONNECT, connect, flow, make_invoice, org_unit, sandbox  # noqa: F401


@pytest.fixture
def ops_client(app, make_staff, login):
    """A second test client, logged in as an ops member; returns (client, csrf token)."""
    client = app.test_client()
    token = login(make_staff("ops"), client=client)
    return client, token


@pytest.fixture
def add_operations(app):
    """Return a function inserting operation-log rows for a connection (bodies as given)."""
    from datetime import timedelta

    from portal.database import utcnow
    from portal.extensions import db
    from portal.models import OperationLog

    def add(connection_id: int, n: int = 1, *, age=timedelta(0), **values) -> list[int]:
        with app.app_context():
            rows = [
                OperationLog(
                    connection_id=connection_id,
                    created_at=utcnow() - age,
                    provider=values.get("provider", "bexio"),
                    method=values.get("method", "GET"),
                    path=values.get("path", f"api.bexio.com/2.0/kb_invoice/{i}"),
                    status=values.get("status", 200),
                    duration_ms=values.get("duration_ms", 12),
                    request_body=values.get("request_body", ""),
                    response_body=values.get("response_body", "{}"),
                    request_truncated=False,
                    response_truncated=values.get("response_truncated", False),
                )
                for i in range(n)
            ]
            db.session.add_all(rows)
            db.session.commit()
            return [row.id for row in rows]

    return add
