"""The token vault: encrypted at rest, refreshed by one process at a time, rotation persisted first."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from portal.connections import vault
from portal.integrations.base import NeedsReauthorization
from portal.models import AuditEvent, Connection, ConnectionStatus
from tests.portal.connections.conftest import (
    BEXIO_MAIN,
    QBO_US,
    TOKEN_CASES,
    advance_ledger_clock,
    connect_token_case,
    refresh_processes,
    spend_access_token,
    tell,
)

WORKER = Path(__file__).with_name("refresh_worker.py")


def _connection(app, connection_id) -> Connection:
    from portal.extensions import db

    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        db.session.expunge(connection)
        return connection


@pytest.mark.parametrize("provider", list(TOKEN_CASES))
def test_refresh_rotates_and_persists_before_use(app, flow, unit_id, provider):
    cid = connect_token_case(flow, unit_id, provider)
    with app.app_context():
        from portal.extensions import db

        old = vault.read_tokens(db.session.get(Connection, cid))
    spend_access_token(app, cid)
    advance_ledger_clock(flow.sandbox)
    with app.app_context():
        new = vault.refresh(cid)
        stored = vault.read_tokens(db.session.get(Connection, cid))
        assert stored.access_token == new.access_token != old.access_token
        assert stored.refresh_token == new.refresh_token
        # The refreshed connection answers at the ledger.
        from portal.extensions import db as _db

        vault.fresh_adapter(_db.session.get(Connection, cid)).company_info()


def test_exact_refresh_is_not_attempted_within_570_seconds(app, flow, unit_id):
    cid = connect_token_case(flow, unit_id, "exact-online")
    with app.app_context():
        from portal.extensions import db

        before = vault.read_tokens(db.session.get(Connection, cid))
        # Forced, but Exact would refuse a refresh this early: the vault keeps the valid token.
        assert vault.refresh(cid, force=True).access_token == before.access_token


def test_a_revoked_consent_moves_the_connection_to_needs_reauthorization(app, flow, unit_id):
    cid = connect_token_case(flow, unit_id, "bexio")
    requests.post(
        f"{flow.sandbox}/_control/bexio/revoke_tokens", json={"company_id": BEXIO_MAIN}, timeout=10
    ).raise_for_status()
    spend_access_token(app, cid)
    with app.app_context(), pytest.raises(NeedsReauthorization):
        vault.refresh(cid)
    connection = _connection(app, cid)
    assert connection.status is ConnectionStatus.needs_reauthorization
    assert "Refresh refused" in connection.status_reason
    from portal.extensions import db

    with app.app_context():
        event = db.session.scalars(db.select(AuditEvent).filter_by(kind="connection.needs_reauthorization")).one()
        assert event.subject_id == cid and event.actor_label == "system"
    page = flow.client.get(f"/connections/{cid}").get_data(as_text=True)
    assert "Needs reauthorization" in page and "Refresh refused" in page


def test_tokens_are_never_stored_or_shown_in_plain_text(app, flow, unit_id, database_url):
    cid = connect_token_case(flow, unit_id, "quickbooks")
    from portal.extensions import db

    with app.app_context():
        connection = db.session.get(Connection, cid)
        tokens = vault.read_tokens(connection)
        dump = " ".join(
            str(v) for table in db.metadata.sorted_tables for row in db.session.execute(table.select()) for v in row
        )
        events = " ".join(str(e.after) + str(e.before) for e in db.session.scalars(db.select(AuditEvent)))
    assert tokens.access_token not in dump and tokens.refresh_token not in dump
    assert tokens.refresh_token not in events
    assert "refresh_token" not in repr(tokens) or tokens.refresh_token not in repr(tokens)


@pytest.mark.workers
@pytest.mark.parametrize("provider", list(TOKEN_CASES))
def test_eight_processes_refreshing_at_once_never_break_the_connection(
    app, flow, unit_id, provider, database_url, redis_url
):
    cid = connect_token_case(flow, unit_id, provider)
    with refresh_processes(app, database_url, redis_url, WORKER, str(cid), count=8) as workers:
        seen = set()
        for _round in range(4):
            advance_ledger_clock(flow.sandbox)
            spend_access_token(app, cid)
            answers = tell(workers, f"go {time.time() + 0.3}")
            assert all(a.startswith("ok ") for a in answers), answers
            fingerprints = {a.split()[1] for a in answers}
            assert len(fingerprints) == 1, answers  # every process ended with the same token set
            seen |= fingerprints
            assert _connection(app, cid).status is ConnectionStatus.connected
            with app.app_context():
                from portal.extensions import db

                vault.fresh_adapter(db.session.get(Connection, cid)).company_info()
        if provider != "quickbooks":  # QBO returns the same refresh token within ~24 h (quickbooks-online.md §1)
            assert len(seen) == 4  # one real rotation per round, not eight


@pytest.mark.faults
def test_health_probe_reports_and_recovers(app, flow, unit_id):
    cid = connect_token_case(flow, unit_id, "quickbooks")
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["health", "probe"])
    assert ok.exit_code == 0 and f"#{cid}" in ok.output and "reachable" in ok.output
    requests.post(
        f"{flow.sandbox}/_control/faults",
        json={"provider": "quickbooks", "kind": "error_rate", "status": 503, "path_contains": "/companyinfo"},
        timeout=10,
    ).raise_for_status()
    failing = runner.invoke(args=["health", "probe", "--strict"])
    assert failing.exit_code == 1 and "FAIL" in failing.output
    assert _connection(app, cid).status is ConnectionStatus.failing
    requests.delete(f"{flow.sandbox}/_control/faults", timeout=10).raise_for_status()
    recovered = runner.invoke(args=["health", "probe"])
    assert recovered.exit_code == 0
    assert _connection(app, cid).status is ConnectionStatus.connected
    from portal.extensions import db

    with app.app_context():
        kinds = list(
            db.session.scalars(
                db.select(AuditEvent.kind).filter_by(subject_id=cid, actor_label="system").order_by(AuditEvent.id)
            )
        )
    assert kinds == ["connection.failing", "connection.connected"]


def test_token_keys_rotate(app, flow, unit_id):
    """Every ciphertext is re-encrypted: the connection's and a consent still waiting for a pick."""
    from cryptography.fernet import Fernet

    from portal.models import BusinessUnit, OAuthGrant

    cid = connect_token_case(flow, unit_id, "bexio")
    with app.app_context():
        from portal.extensions import db

        other_unit = db.session.scalars(db.select(BusinessUnit.id).where(BusinessUnit.id != unit_id)).first()
    waiting = flow.authorize(other_unit, "quickbooks", user="u-ada", realm_id=QBO_US)
    assert waiting.status_code == 302 and "/connections/grants/" in waiting.headers["Location"]
    old_key = app.config["TOKEN_KEYS"]
    new_key = Fernet.generate_key().decode()
    app.config["TOKEN_KEYS"] = f"{new_key},{old_key}"
    try:
        result = app.test_cli_runner().invoke(args=["tokens", "rotate"])
        assert result.exit_code == 0 and "Re-encrypted 2 stored token set(s)" in result.output, result.output
        app.config["TOKEN_KEYS"] = new_key  # the old key can go now
        with app.app_context():
            from portal.extensions import db

            assert vault.read_tokens(db.session.get(Connection, cid)).access_token
            grant = db.session.scalars(db.select(OAuthGrant).where(OAuthGrant.ended_at.is_(None))).one()
            assert vault.cipher().decrypt(grant.token_ciphertext).refresh_token
    finally:
        app.config["TOKEN_KEYS"] = old_key
        with app.app_context():
            from portal.extensions import db

            db.session.execute(db.delete(Connection))
            db.session.commit()


@pytest.mark.slow
def test_a_rotated_token_is_stored_even_while_another_writer_holds_the_database(app, flow, unit_id):
    """The commit after the ledger rotated the refresh token waits out a long write instead of losing it.

    Another connection holds the write lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: the
    connection's row) longer than SQLite's busy timeout while the refresh runs.
    """
    import threading

    from portal.database import SQLITE_BUSY_TIMEOUT_MS
    from portal.extensions import db

    cid = connect_token_case(flow, unit_id, "exact-online")
    spend_access_token(app, cid)
    advance_ledger_clock(flow.sandbox)
    hold = SQLITE_BUSY_TIMEOUT_MS / 1000 + 2
    with app.app_context():
        raw = db.engine.raw_connection()
        cursor = raw.cursor()
        if db.engine.dialect.name == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")
            cursor.execute("UPDATE connection SET last_error = 'held' WHERE id = ?", (cid,))
        else:
            cursor.execute("SELECT id FROM connection WHERE id = %s FOR UPDATE", (cid,))
    release = threading.Timer(hold, raw.commit)
    release.start()
    started = time.monotonic()
    try:
        with app.app_context():
            new = vault.refresh(cid)
    finally:
        release.join()
        raw.close()
    assert time.monotonic() - started >= hold - 0.5  # it waited for the other writer, then stored
    with app.app_context():
        stored = vault.read_tokens(db.session.get(Connection, cid))
        assert stored.refresh_token == new.refresh_token
        vault.fresh_adapter(db.session.get(Connection, cid)).company_info()
    # The stored refresh token is the one Exact holds: the next refresh works.
    spend_access_token(app, cid)
    advance_ledger_clock(flow.sandbox)
    with app.app_context():
        assert vault.refresh(cid).refresh_token != new.refresh_token


def test_a_refresh_asked_for_by_a_session_with_an_open_write_stores_the_rotated_token(app, flow, unit_id):
    """A job that changed something and then needs a fresh token neither waits for itself nor loses the token."""
    from portal.extensions import db

    cid = connect_token_case(flow, unit_id, "exact-online")
    spend_access_token(app, cid)
    advance_ledger_clock(flow.sandbox)
    with app.app_context():
        connection = db.session.get(Connection, cid)
        connection.last_error = "changed by the job, not committed yet"
        db.session.flush()  # SQLite: this session now holds the write lock
        started = time.monotonic()
        adapter = vault.fresh_adapter(connection)
        assert time.monotonic() - started < 5
        db.session.commit()
        stored = vault.read_tokens(db.session.get(Connection, cid))
        assert stored.refresh_token == adapter.tokens.refresh_token
        adapter.company_info()
