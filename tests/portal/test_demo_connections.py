"""`make run`'s demo connections: one per ledger, pushed, a few held, back-filled; still working after a restart."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_seeded_connections_push_hold_backfill_and_work_in_a_restarted_sandbox(tmp_path, app):
    from flask_migrate import upgrade

    import sandbox
    from portal import create_app
    from portal.connections import vault
    from portal.extensions import db
    from portal.models import Backfill, BackfillStatus, Connection, ConnectionStatus, ExternalRecord
    from tests.sandbox_server import ServedApp

    demo = create_app(
        {
            "INSTANCE_PATH": str(tmp_path),
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'ledgerlink.sqlite'}",
            "REDIS_URL": "",
            "EMBEDDED_WORKER": False,
            "SECRET_KEY": app.config["SECRET_KEY"],
            "TOKEN_KEYS": app.config["TOKEN_KEYS"],
        }
    )
    with demo.app_context():
        upgrade()
    runner = demo.test_cli_runner()
    assert runner.invoke(args=["seed", "demo", "--if-empty"]).exit_code == 0
    seeded = runner.invoke(args=["seed", "connections", "--if-empty"])
    assert seeded.exit_code == 0, seeded.output
    assert "3 connections" in seeded.output
    again = runner.invoke(args=["seed", "connections", "--if-empty"])
    assert "left as they are" in again.output
    assert (tmp_path / "sandbox-state.pickle").exists()

    # The demo server starts: its sandbox reads the kept state, and every connection still answers.
    restarted = ServedApp(sandbox.create_app({"SANDBOX_STATE_FILE": str(tmp_path / "sandbox-state.pickle")}))
    try:
        demo.config["SANDBOX_URL"] = restarted.url
        with demo.app_context():
            connections = db.session.scalars(db.select(Connection).order_by(Connection.id)).all()
            assert sorted(c.provider for c in connections) == ["bexio", "exact-online", "quickbooks"]
            assert all(c.status is ConnectionStatus.connected for c in connections)
            assert all(c.live_since is not None for c in connections)  # through go-live: the tick pushes them
            for connection in connections:
                assert vault.fresh_adapter(connection).company_info().id == connection.external_company_id
            states = db.session.scalars(db.select(ExternalRecord.state)).all()
            assert sum(1 for s in states if s.value == "pushed") >= 5
            assert any(s.value == "needs_action" for s in states)  # a few failures to look at
            backfills = db.session.scalars(db.select(Backfill)).all()
            assert len(backfills) == 3 and all(b.status is BackfillStatus.succeeded for b in backfills)
    finally:
        restarted.close()
