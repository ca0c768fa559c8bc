"""Bulk demo connections and records: one live connection per unit, history, realistic record states."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from portal.demo.bulk import SYNTHETIC_LOCAL_ID, BulkSeedError, seed_records
from portal.demo.seed import seed_demo_data
from portal.integrations import errors_catalog, specs

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_every_unit_gets_one_live_connection_and_history_fills_up_to_the_target(app, db):
    from portal.models import BusinessUnit, Connection, ConnectionStatus

    seed_demo_data(orgs=12, seed=5, anchor=date(2026, 11, 1))
    units = db.session.scalar(db.select(db.func.count(BusinessUnit.id)))
    target = units + 5

    summary = seed_records(connections=target, records=3000, seed=2, days=40, now=NOW)

    assert summary == {"connections": target, "external_records": 3000}
    rows = db.session.execute(db.select(Connection.business_unit_id, Connection.status, Connection.provider)).all()
    live = Counter(unit for unit, status, _ in rows if status is not ConnectionStatus.disconnected)
    assert len(live) == units and set(live.values()) == {1}
    assert sum(1 for _, status, _ in rows if status is ConnectionStatus.disconnected) == 5
    assert {provider for _, _, provider in rows} <= set(specs.PROVIDERS)


def test_records_have_realistic_states_errors_and_dates(app, db):
    from portal.models import ExternalRecord, RecordState

    seed_demo_data(orgs=10, seed=6, anchor=date(2026, 11, 1))
    seed_records(connections=30, records=4000, seed=3, days=35, now=NOW)

    records = db.session.scalars(db.select(ExternalRecord)).all()
    assert len(records) == 4000
    states = Counter(r.state for r in records)
    assert states[RecordState.pushed] > 0.6 * len(records)
    assert states[RecordState.failed] > 0 and states[RecordState.needs_action] > 0 and states[RecordState.pending] > 0
    classes = {c.value for c in errors_catalog.ErrorClass}
    names = {specs.get_spec(p).name for p in specs.PROVIDERS}
    for r in records:
        if r.state is RecordState.pushed:
            assert r.external_id and r.pushed_at is not None and r.last_error_class is None
        if r.state is RecordState.failed:
            assert r.last_error_class in classes
            assert any(f"({name}: " in r.last_error_text for name in names), r.last_error_text
        if r.state is RecordState.dismissed:
            assert r.resolution is not None
    assert len({(r.connection_id, r.kind, r.local_id) for r in records}) == len(records)
    created = [_aware(r.created_at) for r in records]
    assert min(created) >= NOW - timedelta(days=35) and max(created) <= NOW
    assert max(created) - min(created) > timedelta(days=30)
    # The units' own documents are used before ids with no local row.
    assert any(r.local_id < SYNTHETIC_LOCAL_ID for r in records)


def test_if_empty_leaves_existing_data_and_a_second_run_is_refused(app, db):
    from portal.models import ExternalRecord

    seed_demo_data(orgs=3, seed=7, anchor=date(2026, 11, 1))
    seed_records(connections=4, records=200, seed=1, now=NOW)

    assert seed_records(connections=4, records=200, seed=1, if_empty=True, now=NOW) is None
    with pytest.raises(BulkSeedError, match="connections exist already"):
        seed_records(connections=4, records=200, seed=1, now=NOW)
    assert db.session.scalar(db.select(db.func.count(ExternalRecord.id))) == 200


def test_without_business_units_the_error_says_to_seed_demo_first(app, db):
    with pytest.raises(BulkSeedError, match="seed demo"):
        seed_records(connections=4, records=10, now=NOW)


def test_cli_seeds_records_and_reports_counts(app, db):
    seed_demo_data(orgs=2, seed=8, anchor=date(2026, 11, 1))
    runner = app.test_cli_runner()

    result = runner.invoke(args=["seed", "records", "--connections", "3", "--records", "150", "--if-empty"])
    assert result.exit_code == 0, result.output
    assert "3 connections, 150 external records" in result.output

    again = runner.invoke(args=["seed", "records", "--connections", "3", "--records", "150", "--if-empty"])
    assert again.exit_code == 0 and "already exist" in again.output
