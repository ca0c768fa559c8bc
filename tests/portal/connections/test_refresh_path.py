"""One refresh path from anywhere, and a lost grant recorded the moment any path meets it."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from portal.connections import vault
from portal.integrations.base import NeedsReauthorization
from portal.models import AuditEvent, Connection, ConnectionStatus
from tests.portal.connections.conftest import BEXIO_MAIN, QBO_US, connect_token_case, spend_access_token

REVOKE = {
    "bexio": ("bexio/revoke_tokens", {"company_id": BEXIO_MAIN}),
    "quickbooks": ("quickbooks/revoke_tokens", {"realm_id": QBO_US}),
}


def _status(app, cid: int) -> tuple[ConnectionStatus, list[str]]:
    from portal.extensions import db

    with app.app_context():
        connection = db.session.get(Connection, cid)
        kinds = db.session.scalars(
            db.select(AuditEvent.kind).where(AuditEvent.subject_type == "Connection", AuditEvent.subject_id == cid)
        ).all()
        return connection.status, list(kinds)


@pytest.mark.parametrize("provider", list(REVOKE))
@pytest.mark.parametrize("path", ["connection test", "health probe", "a job's call"])
def test_a_grant_revoked_at_the_ledger_is_recorded_at_the_first_call(
    app, flow, unit_id, demo_data, provider, path, make_staff
):
    """Exact repro: revoked at the ledger while our access token is still valid by the clock."""
    cid = connect_token_case(flow, unit_id, provider)
    action, body = REVOKE[provider]
    requests.post(f"{flow.sandbox}/_control/{action}", json=body, timeout=10).raise_for_status()
    assert _status(app, cid)[0] is ConnectionStatus.connected
    if path == "connection test":
        page = flow.post(f"/connections/{cid}/test")
        assert page.status_code == 200
    elif path == "health probe":
        result = app.test_cli_runner().invoke(args=["health", "probe"])
        assert "needs re-authorization" in result.output, result.output
    else:
        from portal.extensions import db

        with app.app_context(), pytest.raises(NeedsReauthorization):
            vault.fresh_adapter(db.session.get(Connection, cid)).company_info()
    status, kinds = _status(app, cid)
    assert status is ConnectionStatus.needs_reauthorization
    assert kinds.count("connection.needs_reauthorization") == 1
    # The dashboard no longer counts it healthy.
    from portal.extensions import db
    from portal.ops import queries

    with app.app_context():
        healthy = db.session.scalar(
            db.select(db.func.count()).select_from(Connection).where(Connection.status.in_(queries.HEALTH["healthy"]))
        )
    assert healthy == 0


def test_a_refresh_on_a_401_takes_the_cross_process_lock_and_rereads(app, flow, unit_id, demo_data):
    """The adapter's own refresh (a 401) waits for the vault's Redis lock, then uses what the holder stored."""
    from portal.extensions import db, queue

    cid = connect_token_case(flow, unit_id, "bexio")
    with app.app_context():
        adapter = vault.fresh_adapter(db.session.get(Connection, cid))
        used = adapter.tokens
    # The ledger's clock moves on: the access token is refused (401) though ours says it is valid.
    requests.post(f"{flow.sandbox}/_control/clock", json={"advance_seconds": 4000}, timeout=10).raise_for_status()
    with app.app_context():
        lock = queue.connection.lock(f"ledgerlink:token-refresh:{cid}", timeout=60)
        assert lock.acquire(blocking=False)
    done: list = []

    def call() -> None:
        with app.app_context():
            try:
                done.append(adapter.company_info())
            except Exception as exc:
                done.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(1.5)
    assert not done, "the refresh on a 401 did not wait for the cross-process lock"
    # Meanwhile "another process" refreshes and stores the rotated set, then lets go of the lock.
    with app.app_context():
        spend_access_token(app, cid)
        from portal.connections.vault import _refresh_locked

        fresh = _refresh_locked(cid, force=True, seen=None)
        lock.release()
    worker.join(30)
    assert done and not isinstance(done[0], Exception), done
    assert adapter.tokens.access_token == fresh.access_token != used.access_token
    assert _status(app, cid)[0] is ConnectionStatus.connected
