"""Push a connection's due invoices into its ledger, each exactly once (portal.sync.push)."""

from __future__ import annotations

from collections import Counter

from portal.connections import vault
from portal.extensions import db, queue
from portal.integrations.base import RateLimited
from portal.models import Connection, SyncRun
from portal.sync import push, schedule

from .runtime import tracked


@tracked
def push_connection(run: SyncRun, log) -> dict:
    """Push every invoice of ``run.parameters["connection_id"]`` dated on/after its sync_from not yet pushed.

    Counts outcomes by record state. An error about the connection or the moment (rate limit,
    outage, lost grant) stops the run with the record left pending: the next run resumes there.
    A rate limit (429, or a quota window the limiter will not wait for) re-enqueues the push for
    the window's reset through RQ's scheduler: it never fails a record.

    One run per connection at a time: a Redis lock shared by every worker; a run that finds it
    taken ends at once (the running one pushes the same records).

    :raise LookupError: when the connection is gone or disconnected (the run fails with it).
    """
    connection_id = run.parameters["connection_id"]
    connection = db.session.get(Connection, connection_id)
    if connection is None or not connection.is_live:
        raise LookupError(f"connection {connection_id} does not exist or is disconnected")
    lock = queue.connection.lock(f"ledgerlink:sync-lock:{connection_id}", timeout=schedule.JOB_TIMEOUT)
    if not lock.acquire(blocking=False):
        run.message = "Another push of this connection is running; it pushes these records."
        return {"already_running": 1}
    try:
        return _push_all(run, log, connection)
    finally:
        try:
            lock.release()
        except Exception:  # expired under a very long run: nothing to undo
            log.warning("sync lock of connection %s expired before release", connection_id)


def _push_all(run: SyncRun, log, connection: Connection) -> dict:
    invoices = push.due_invoices(connection, include_failed=bool(run.parameters.get("retry_failed")))
    run.progress_total, run.progress_done = len(invoices), 0
    db.session.commit()
    adapter = vault.fresh_adapter(connection)
    counts: Counter[str] = Counter()
    for invoice in invoices:
        try:
            record = push.push_invoice(connection, invoice, adapter)
        except push.CONNECTION_ERRORS as exc:
            counts["pending"] += 1
            if isinstance(exc, RateLimited):
                counts["rate_limited"] += 1
                db.session.commit()
                retry = schedule.enqueue_push(connection, at=exc.retry_at, reason="Resumes after a rate limit.")
                again = f"run #{retry.id} resumes then" if retry is not None else "a push is already scheduled then"
                run.message = (
                    f"Paused by the ledger's rate limit until {exc.retry_at.isoformat()}; the rest waits ({again})."
                )
            else:
                run.message = f"Stopped: {exc}. The remaining invoices wait for the next run."
            log.warning("push stopped: %s", exc)
            break
        counts[record.state.value] += 1
        run.progress_done += 1
        db.session.commit()
    else:
        run.message = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in sorted(counts.items())) or (
            "Nothing to push."
        )
    return {"invoices": len(invoices), **counts}
