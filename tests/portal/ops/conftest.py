"""Organizations with connections in every state and records in every state, made directly in the database."""

from __future__ import annotations

import itertools
import os
from datetime import timedelta

import pytest

_numbers = itertools.count(1)
#: A stored error as the push writes it: the plain words, then the provider's own text.
MAPPING_TEXT = (
    "A code used for this record (item, journal, VAT code, G/L account) does not exist in Exact. "
    "Fix the mapping. (Exact Online: Ongeldige referentie: Artikel)"
)


@pytest.fixture
def world(app):
    """Return a builder of organizations, connections and records (each call commits and returns ids)."""
    from portal.database import utcnow
    from portal.extensions import db
    from portal.models import (
        BusinessUnit,
        Connection,
        ConnectionStatus,
        ExternalRecord,
        Organization,
        RecordKind,
        RecordState,
    )

    class World:
        def connection(
            self,
            provider: str = "exact-online",
            status: str = "connected",
            *,
            org_name: str | None = None,
            company: str | None = None,
            company_name: str | None = None,
            region: str | None = "nl",
            refresh_in_days: float | None = 60,
            last_success_days_ago: float | None = 0,
            live: bool = True,
        ) -> int:
            n = next(_numbers)
            with app.app_context():
                org = Organization(
                    external_id=f"org-{n}-{os.urandom(2).hex()}", name=org_name or f"Org {n:03d}", country="NL"
                )
                unit = BusinessUnit(organization=org, name=f"Unit {n}", country="NL", currency="EUR")
                now = utcnow()
                connection = Connection(
                    business_unit=unit,
                    provider=provider,
                    region=region if provider == "exact-online" else None,
                    external_company_id=company or str(3_000_000 + n),
                    external_company_name=company_name or f"Company {n}",
                    external_company_number=company or str(3_000_000 + n),
                    status=ConnectionStatus(status),
                    refresh_expires_at=None if refresh_in_days is None else now + timedelta(days=refresh_in_days),
                    last_success_at=None
                    if last_success_days_ago is None
                    else now - timedelta(days=last_success_days_ago),
                    sync_from=now - timedelta(days=30),
                    live_since=now - timedelta(days=30) if live else None,
                )
                db.session.add_all([org, unit, connection])
                db.session.commit()
                return connection.id

        def record(
            self,
            connection_id: int,
            state: str = "failed",
            *,
            error_class: str | None = "mapping_missing",
            text: str | None = None,
            kind: str = "invoice",
            local_id: int | None = None,
            attempted_days_ago: float = 0,
        ) -> int:
            with app.app_context():
                connection = db.session.get(Connection, connection_id)
                if text is None and state != "pushed":
                    text = MAPPING_TEXT
                record = ExternalRecord(
                    connection_id=connection.id,
                    kind=RecordKind(kind),
                    local_id=local_id or next(_numbers) + 100_000,
                    reference=f"LL-{next(_numbers)}",
                    state=RecordState(state),
                    attempts=1,
                    last_error_class=None if state == "pushed" else error_class,
                    last_error_text=None if state == "pushed" else text,
                    last_attempt_at=utcnow() - timedelta(days=attempted_days_ago),
                    pushed_at=utcnow() if state == "pushed" else None,
                    external_id="E-1" if state == "pushed" else None,
                )
                db.session.add(record)
                db.session.commit()
                return record.id

    return World()


@pytest.fixture
def ops_user(make_staff):
    """A committed ops staff account."""
    return make_staff("ops")


@pytest.fixture
def ops_client(client, login, ops_user):
    """The test client logged in as ops; returns (client, csrf token)."""
    token = login(ops_user)
    return client, token
