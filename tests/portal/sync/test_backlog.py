"""The backlog of a connection: how many documents wait, at what pace, when the last lands (portal.sync.backlog)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.portal.sync.conftest import ledger_documents
from tests.portal.sync.test_pipeline import run_push


def _backlog(app, connection_id: int, now: datetime | None = None):
    from portal.extensions import db
    from portal.models import Connection
    from portal.sync import backlog

    with app.app_context():
        return backlog.of(db.session.get_one(Connection, connection_id), now)


def test_before_any_push_the_quota_sets_the_pace_and_after_pushes_the_measured_one(app, sandbox, connect, make_invoice):
    connection_id = connect("bexio")
    numbers = [make_invoice()[1] for _ in range(4)]
    now = datetime.now(UTC)

    from portal.integrations import specs

    per_minute = specs.get_spec("bexio").quotas.per_minute
    before = _backlog(app, connection_id, now)
    # Nothing pushed lately: bexio's calls a minute at its usual 2 calls per document.
    assert (before.waiting, before.measured, before.calls_per_document) == (4, False, 2.0)
    assert before.rate == before.floor == per_minute / 2
    assert before.eta == now + timedelta(minutes=4 / (per_minute / 2))
    assert f"4 invoice(s) and credit note(s) wait, expected at about {per_minute / 2:.1f} a minute" in before.text

    assert run_push(app, connection_id)[0] == "succeeded"
    assert all(len(ledger_documents(sandbox, "bexio", number)) == 1 for number in numbers)
    for _ in range(3):
        make_invoice()
    after = _backlog(app, connection_id)

    # Measured: 4 confirmed in the window, and the calls the operation log holds for them.
    from portal.extensions import db
    from portal.models import OperationLog

    with app.app_context():
        calls = db.session.query(OperationLog).filter_by(connection_id=connection_id).count()
    assert (after.waiting, after.pushed_recently, after.measured) == (3, 4, True)
    assert after.calls_per_document == pytest.approx(calls / 4)
    assert after.rate == pytest.approx(4.0)  # 4 in the first minute (at least a minute is counted)
    assert after.floor == pytest.approx(per_minute / (calls / 4))
    assert "going at 4.0 a minute" in after.text


def test_what_exceeds_the_daily_budget_lands_after_the_reset(app, sandbox, connect, make_invoice):
    from portal.extensions import queue
    from portal.sync import limiter

    connection_id = connect("exact-online")
    for _ in range(5):
        make_invoice()
    now = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
    midnight = datetime(2026, 12, 8, tzinfo=UTC)
    with app.app_context():
        # 4,990 of Exact's 5,000 calls of the day are spent: 10 calls are 2 invoices at 4 calls each.
        queue.connection.hset(
            limiter.window_key("exact-online", "3010001", "day"),
            mapping={"used": 4990, "limit": 5000, "reset": int(midnight.timestamp() * 1000)},
        )
    late = _backlog(app, connection_id, now)

    assert (late.waiting, late.fit_today, late.daily_reset) == (5, 2, midnight)
    assert (late.day_used, late.day_limit) == (4990, 5000)
    # The 3 left go after midnight at the quota's pace (15 a minute at 4 calls each).
    assert late.calls_per_document == 4.0
    assert late.eta == midnight + timedelta(minutes=3 / 15)
    assert "Today's daily budget takes 2 more; the rest go after it resets at 00:00 UTC." in late.text


def test_the_connection_page_and_the_ops_dashboard_show_the_backlog(
    app, sandbox, connect, make_invoice, make_staff, login
):
    from portal.extensions import db
    from portal.models import SyncRun, SyncRunKind

    connection_id = connect("quickbooks")
    for _ in range(3):
        make_invoice()
    client = app.test_client()
    login(make_staff("ops"), client=client)

    page = client.get(f"/connections/{connection_id}").get_data(as_text=True)
    assert 'id="backlog" data-waiting="3"' in page
    assert "3 invoice(s) and credit note(s) wait" in page and "The last should be in the ledger at about" in page

    # A push queued for the connection: the dashboard lists it under "Pushes under way".
    assert 'data-connection="' not in client.get("/ops/").get_data(as_text=True)
    with app.app_context():
        db.session.add(SyncRun(kind=SyncRunKind.incremental, queue="sync", parameters={"connection_id": connection_id}))
        db.session.commit()
    dashboard = client.get("/ops/").get_data(as_text=True)
    assert f'<tr data-connection="{connection_id}" data-waiting="3">' in dashboard
