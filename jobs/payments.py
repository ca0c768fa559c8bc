"""Pull the payment state of a connection's pushed invoices from its ledger (portal.sync.payments)."""

from __future__ import annotations

from portal.connections import services, vault
from portal.extensions import db, queue
from portal.integrations.base import RateLimited
from portal.models import Connection, SyncRun
from portal.sync import payments, push, schedule

from .runtime import tracked


@tracked
def pull_connection_payments(run: SyncRun, log) -> dict:
    """Mark the SaaS invoices of ``run.parameters["connection_id"]`` paid / partially paid as the ledger says.

    The pull's time is kept on the connection whether it ends or stops, so the next one waits a
    full interval. An error about the connection or the moment stops it (pages already applied
    stay applied); the next scheduled pull goes on. One pull per connection at a time (a Redis lock).

    :raise LookupError: when the connection is gone or disconnected (the run fails with it).
    """
    connection_id = run.parameters["connection_id"]
    connection = db.session.get(Connection, connection_id)
    if connection is None or not connection.is_live:
        raise LookupError(f"connection {connection_id} does not exist or is disconnected")
    lock = queue.connection.lock(f"ledgerlink:payments-lock:{connection_id}", timeout=schedule.JOB_TIMEOUT)
    if not lock.acquire(blocking=False):
        run.message = "Another payments pull of this connection is running."
        return {"already_running": 1}
    try:
        try:
            result = payments.pull_payments(connection, vault.fresh_adapter(connection))
        except push.CONNECTION_ERRORS as exc:
            db.session.rollback()
            connection = db.session.get_one(Connection, connection_id)
            detail = services.note_failure(connection, exc)
            payments.mark_pulled(connection)
            db.session.commit()
            log.warning("payments pull stopped: %s", exc)
            if isinstance(exc, RateLimited):
                until = exc.retry_at.isoformat()
                run.message = f"Paused by the ledger's rate limit until {until}; the next pull goes on."
                return {"rate_limited": 1}
            run.message = f"Stopped: {detail}. The next scheduled pull tries again."
            return {"stopped": 1}
        connection = db.session.get_one(Connection, connection_id)
        payments.mark_pulled(connection)
        services.note_success(connection)
        db.session.commit()
        run.message = (
            f"{result.checked} invoice(s) checked: {result.paid} paid, {result.partially_paid} partially paid."
            if result.checked
            else "No unpaid pushed invoices to check."
        )
        return result.counts() or {"checked": 0}
    finally:
        try:
            lock.release()
        except Exception:  # expired under a very long run: nothing to undo
            log.warning("payments lock of connection %s expired before release", connection_id)
