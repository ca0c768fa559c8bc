"""Push a connection's due records into its ledger, each exactly once (portal.sync.push)."""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from flask import current_app
from redis.exceptions import LockError
from sqlalchemy.orm.exc import StaleDataError

from portal.connections import services, vault
from portal.customers import updates
from portal.extensions import db, queue
from portal.infra import metrics
from portal.integrations.base import NeedsReauthorization, RateLimited
from portal.models import Connection, ConnectionStatus, ExternalRecord, RecordKind, SyncRun, SyncRunStatus
from portal.models.external_record import FinalizeState, PdfState
from portal.oplog import capture as oplog
from portal.sync import deferral, fencing, limiter, payments, push, schedule

from .runtime import Interrupted, cancelled, tracked


@tracked
def push_connection(run: SyncRun, log) -> dict:
    """Push the due records of ``run.parameters["connection_id"]`` (dated on/after its sync_from).

    In dependency order: changes of linked customers (name, address, e-mail, VAT and company
    number sent to their ledger customers), invoices (each creating its customer in "create" mode, then attaching
    its PDF and finalizing / sending it), the after-push steps still to do of earlier invoices,
    the booking still to do of earlier Exact credit notes, credit notes (bexio: skipped with the
    manual step), and payments when the connection's payments mode is "push". Counts outcomes by
    record state.

    An error about the connection or the moment stops the run with the record left pending: the
    next run resumes there. A rate limit (429, or a quota window the limiter will not wait for)
    re-enqueues the push for the window's reset (the tick leaves the connection alone until then):
    it never fails a record. An outage (5xx, timeout, network) met by one record defers that record
    (:mod:`portal.sync.deferral`) and the run goes on, coming back to the deferred records once at
    its end and scheduling one retry for those deferred again; three outages in a row stop the run
    with exponential backoff, which after several runs in a row marks the connection failing. A
    lost grant moves the connection to needs re-authorization. A run that reaches the end (its last
    writes answered) records the connection's last success and brings a failing one back.

    One run per connection at a time, fenced (:mod:`portal.sync.fencing`): the run takes the
    connection's lease in the database (raising its fencing token) and checks it immediately
    before every create in the ledger; a run that finds the lease held by a live run ends at once
    (cancelled: the running one pushes the same records), and a run whose lease a newer run took
    over stops before its next write and is recorded interrupted, never succeeded. A Redis lock
    in front of it saves the database work while Redis is there. Both last
    :func:`~portal.sync.fencing.lease_seconds` and are renewed as the run makes progress, so those
    of a killed or frozen worker soon expire; a pacing wait of the rate limiter renews them for
    the wait's length first. The operation log's entries and the provider metrics of the run's
    calls are written in bulk, and all of them by the end of the run however it ends.

    :raise LookupError: when the connection is gone or disconnected (the run fails with it).
    """
    connection_id = run.parameters["connection_id"]
    connection = db.session.get(Connection, connection_id)
    if connection is None or not connection.is_live:
        raise LookupError(f"connection {connection_id} does not exist or is disconnected")
    seconds = fencing.lease_seconds()
    # Not thread-local: the run's lanes renew it too while the rate limiter makes them wait.
    lock = queue.connection.lock(schedule.lock_key(connection_id), timeout=seconds, thread_local=False)
    if not lock.acquire(blocking=False):
        raise Interrupted(ALREADY_RUNNING, {"already_running": 1}, SyncRunStatus.cancelled)
    held = fencing.acquire(connection_id, run.id, seconds)
    if held is None:
        _let_go(lock, log, connection_id)
        raise Interrupted(ALREADY_RUNNING, {"already_running": 1}, SyncRunStatus.cancelled)
    try:
        lease = _Lease(lock, held)
        with (
            fencing.holding(held),
            deferral.deferring() as streak,
            oplog.buffered(current_app._get_current_object()),  # type: ignore[attr-defined]  # a LocalProxy
            limiter.while_waiting(lease.cover),
        ):
            try:
                counts = _push_all(run, log, connection, lease)
                _retry_deferred(run, connection, streak, counts)
                return counts
            except (fencing.LeaseLost, StaleDataError):
                db.session.rollback()
                run = db.session.get_one(SyncRun, run.id)
                raise Interrupted(
                    LOST_LEASE.format(done=run.progress_done, total=run.progress_total or 0),
                    {**(run.counts or {}), "lease_lost": 1},
                ) from None
    finally:
        metrics.flush()
        fencing.release(held)
        _let_go(lock, log, connection_id)


def _passes(connection: Connection, retry_failed: bool):
    """Yield the run's stages; then, once, the stages again over the records this run deferred.

    A record deferred after a 5xx of its own is tried again at the end of the same run
    (:func:`portal.sync.deferral.retry_now`): a passing error costs no wait. Records it defers
    again wait for their own next attempt.
    """
    yield from _work(connection, retry_failed)
    if deferral.retry_now(connection.id):
        yield from (stage for stage in _work(connection, retry_failed) if stage[0] in _AGAIN)


#: The stages of the second pass over deferred records.
_AGAIN = ("invoices", "credit_notes", "payments")


#: The words of a run that found its connection pushed by another run.
ALREADY_RUNNING = "Not run: another push of this connection is running; it pushes these records."
#: The words of a run whose lease a newer run took over (it wrote nothing after that).
LOST_LEASE = (
    "Interrupted after {done} of {total} records: a newer run of this connection took it over "
    "(this run had stopped renewing its hold); nothing was written after that, the newer run goes on."
)


def _retry_deferred(run: SyncRun, connection: Connection, streak: deferral.Streak, counts: dict) -> None:
    """Schedule the connection's retry for the earliest record (or step) deferred after an outage of its own."""
    if streak.earliest is None:
        return
    counts["deferred"] = streak.deferred
    connection = db.session.get_one(Connection, connection.id)
    retry = schedule.enqueue_push(connection, at=streak.earliest, reason="Retry of records deferred after an outage.")
    again = f"run #{retry.id}" if retry is not None else "a retry already scheduled"
    words = f"{streak.deferred} deferred after an outage of their own, retried at {streak.earliest:%H:%M} UTC ({again})"
    run.message = f"{run.message}; {words}." if run.message else f"{words[0].upper()}{words[1:]}."
    db.session.commit()


def _let_go(lock, log, connection_id: int) -> None:
    try:
        lock.release()
    except Exception:  # expired (or lost with Redis): nothing to undo
        log.info("sync lock of connection %s was gone before release", connection_id)


class _Lease:
    """The run's hold on its connection: the database lease (the truth) and the Redis lock in front of it.

    Both are short and renewed while the run makes progress. A killed or frozen worker's lease
    expires after :func:`~portal.sync.fencing.lease_seconds`, so the connection is pushed again
    soon (see :func:`portal.sync.schedule.enqueue_push`). The Redis lock is renewed on a best-effort
    basis: lost with Redis's data, it is taken again; the run goes on as long as the lease is its own.
    """

    def __init__(self, lock, held: fencing.Lease) -> None:
        self.lock = lock
        self.held = held
        self.renewed = time.monotonic()

    #: Seconds between renewals: well under the lease's time. The limiter's pacing waits (up to
    #: RATE_LIMIT_MAX_WAIT_SECONDS each) are covered by :meth:`cover` before they start.
    RENEW_SECONDS = 5.0

    def keep(self) -> bool:
        """Renew the lease and the lock (every few seconds at most); say whether the run still holds the lease."""
        if time.monotonic() - self.renewed < self.RENEW_SECONDS:
            return True
        if not fencing.renew(self.held):
            return False
        self._extend(self.held.seconds)
        self.renewed = time.monotonic()
        return True

    def cover(self, seconds: float) -> None:
        """Renew the lease and lock for a wait of ``seconds`` plus their usual time (the limiter's pacing).

        A lease already lost stays lost: the next check before a write reports it.
        """
        if fencing.renew(self.held, extra=seconds):
            self._extend(self.held.seconds + seconds)
            self.renewed = time.monotonic()

    def _extend(self, seconds: float) -> None:
        try:
            self.lock.extend(seconds, replace_ttl=True)
        except LockError:
            self.lock.acquire(blocking=False)  # lost with Redis's data: taken again when free


class _Cancellation:
    """Whether someone cancelled the run: read from the database at most every few seconds.

    A chunk of invoices commits every half second or so; asking the database each time would
    cost one more round trip per commit for an answer that changes rarely.
    """

    #: Seconds between two reads of the run's status.
    CHECK_SECONDS = 2.0

    def __init__(self, run: SyncRun) -> None:
        self.run = run
        self.checked = time.monotonic()

    def __call__(self) -> bool:
        """Say whether the run was cancelled (read again once :data:`CHECK_SECONDS` have passed)."""
        if time.monotonic() - self.checked < self.CHECK_SECONDS:
            return False
        self.checked = time.monotonic()
        return cancelled(self.run)


#: What the run pushes, in dependency order: changes of linked customers first (so the ledger e-mails
#: the new address), then invoices (their customers come with the first one, in create mode), …
_ORDER = ("customer_updates", "invoices", "steps", "credit_note_steps", "credit_notes", "payments")
#: Stages that only finish the steps after earlier pushes (their records are pushed already).
_STEP_STAGES = ("steps", "credit_note_steps")
#: The record kind of the items of each stage that pushes one item at a time.
_KINDS = {"steps": RecordKind.invoice, "credit_note_steps": RecordKind.credit_note}


def _work(connection: Connection, retry_failed: bool) -> list[tuple[str, Callable[[], list], Callable | None]]:
    """Return the run's stages: name, what is due (read when the stage starts) and how to push one.

    Invoices go in chunks (:func:`portal.sync.push.push_invoices`): their stage lists ids.
    """
    work: list[tuple[str, Callable[[], list], Callable | None]] = [
        ("customer_updates", lambda: updates.due_links(connection), updates.push_update),
        ("invoices", lambda: push.due_invoice_ids(connection, include_failed=retry_failed), None),
        # Read now, before this run pushes invoices (whose steps follow their push at once).
        ("steps", functools.partial(list, push.invoices_with_steps_due(connection)), push.complete_invoice),
        # Read before this run pushes credit notes (whose booking follows their push at once).
        ("credit_note_steps", lambda: push.credit_notes_with_steps_due(connection), push.complete_credit_note),
        ("credit_notes", lambda: push.due_credit_notes(connection, include_failed=retry_failed), push.push_credit_note),
    ]
    if payments.mode(connection) == payments.PUSH:
        # Read after the invoices: a payment waits for its invoice to be in the ledger.
        work.append(("payments", lambda: push.due_payments(connection, include_failed=retry_failed), push.push_payment))
    return work


def _push_all(run: SyncRun, log, connection: Connection, lease: _Lease) -> dict:
    run.progress_total, run.progress_done = 0, 0
    db.session.commit()  # no write stays open across the ledger calls that follow (SQLite: one writer)
    counts: Counter[str] = Counter()
    stopped = False
    was_cancelled = _Cancellation(run)

    def chunk_done(outcomes: list[push.Outcome]) -> bool:
        """Count a chunk of invoices (committed with them); say whether to go on."""
        nonlocal stopped
        for record, before in outcomes:
            counts[record.state.value] += 1
            _count_steps(counts, record, before)
        run.progress_done += len(outcomes)
        # The lease first, on its own connection: before any read of this session flushes the
        # chunk's writes (SQLite has one writer; the session would hold it during the renewal).
        if not lease.keep():
            raise fencing.LeaseLost(lease.held.connection_id, lease.held.token)
        if was_cancelled():
            run.message = f"Cancelled after {run.progress_done} of {run.progress_total} records."
            stopped = True
        return not stopped

    try:
        adapter = vault.fresh_adapter(connection)
        for name, due, push_one in _passes(connection, bool(run.parameters.get("retry_failed"))):
            items = due()
            if items or name == "invoices":
                counts[name] += len(items)
            run.progress_total += len(items)
            db.session.commit()
            if push_one is None:
                helpers = None
                if current_app.config.get("PUSH_LANES", True):
                    helpers = functools.partial(vault.joined_adapter, connection, adapter)
                push.push_invoices(connection, items, adapter, chunk_done=chunk_done, helpers=helpers)
                if stopped:
                    return dict(counts)
                continue
            for item in items:
                before = (
                    _step_states(push.record_for(connection, _KINDS[name], item.id)) if name in _STEP_STAGES else None
                )
                record = push_one(connection, item, adapter)
                if name == "customer_updates":
                    counts[f"customers_{record}"] += 1  # updated, unchanged or failed
                    record = None
                elif name not in _STEP_STAGES:
                    counts[record.state.value] += 1
                if record is not None and name != "payments":
                    _count_steps(counts, record, before)
                run.progress_done += 1
                db.session.commit()
                if was_cancelled():
                    run.message = f"Cancelled after {run.progress_done} of {run.progress_total} records."
                    db.session.commit()
                    return dict(counts)
                if not lease.keep():
                    run.counts = dict(counts)
                    db.session.commit()
                    raise fencing.LeaseLost(lease.held.connection_id, lease.held.token)
    except push.CONNECTION_ERRORS as exc:
        db.session.rollback()
        deferral.stopped()
        counts["pending"] += 1
        run.message = _stopped(counts, connection, exc)
        log.warning("push stopped: %s", exc)
        return dict(counts)
    fencing.check(lease.held)  # a run that lost its lease is never recorded as reaching the end
    if not deferral.ended_in_outages():  # the ledger answered at the end: the connection is well again
        _succeeded(connection)
    shown = {k: v for k, v in counts.items() if k not in _ORDER}
    run.message = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in sorted(shown.items())) or (
        "Nothing to push."
    )
    return dict(counts)


def _step_states(record: ExternalRecord) -> tuple[PdfState | None, FinalizeState | None]:
    return record.pdf_state, record.finalize_state


def _count_steps(
    counts: Counter[str], record: ExternalRecord, before: tuple[PdfState | None, FinalizeState | None] | None
) -> None:
    """Count what this run's after-push steps did (attached, sent) or could not do (failed, numbered not sent)."""
    pdf_before, final_before = before or (None, None)
    if record.pdf_state is PdfState.attached and pdf_before is not PdfState.attached:
        counts["pdf_attached"] += 1
    elif record.pdf_state is PdfState.failed:
        counts["pdf_failed"] += 1
    if record.finalize_state is FinalizeState.failed:
        counts["finalize_failed"] += 1
    elif record.finalize_state is FinalizeState.sent and final_before is not FinalizeState.sent:
        counts["sent"] += 1
    elif record.finalize_state is FinalizeState.not_sent and final_before is not FinalizeState.not_sent:
        counts["not_sent"] += 1


def _stopped(counts: Counter[str], connection: Connection, exc: Exception) -> str:
    """Decide what follows a run stopped by an error about the connection or the moment; return its words."""
    connection = db.session.get_one(Connection, connection.id)
    if isinstance(exc, RateLimited):
        counts["rate_limited"] += 1
        schedule.hold_until(connection.id, exc.retry_at)  # no new run a minute while the quota is spent
        retry = schedule.enqueue_push(connection, at=exc.retry_at, reason="Resumes after a rate limit.")
        again = f"run #{retry.id} resumes then" if retry is not None else "a push is already scheduled then"
        return f"Paused by the ledger's rate limit until {exc.retry_at.isoformat()}; the rest waits ({again})."
    detail = services.note_failure(connection, exc)
    if isinstance(exc, NeedsReauthorization):
        db.session.commit()
        # Recorded already by the adapter that met it; this covers a lost grant met any other way.
        vault.record_lost_grant(connection.id, exc)
        return f"Stopped: the ledger no longer accepts this connection's access ({detail}). Reconnect it."
    outages, delay = schedule.backoff(connection.id)
    if outages >= schedule.FAILING_AFTER and connection.status is ConnectionStatus.connected:
        services.change_status(
            connection, ConnectionStatus.failing, f"{outages} pushes in a row stopped: {detail}", by="Push"
        )
    db.session.commit()
    at = datetime.now(UTC) + delay
    retry = schedule.enqueue_push(connection, at=at, reason=f"Retry after the ledger was unavailable ({outages}x).")
    again = f"run #{retry.id} retries then" if retry is not None else "a retry is already scheduled"
    return (
        f"Stopped: the ledger is unavailable ({detail}). The rest retries at {at:%H:%M} UTC "
        f"(in {int(delay.total_seconds() // 60)} min; {again})."
    )


def _succeeded(connection: Connection) -> None:
    """Record a run that reached the end: last success, outage count reset, failing → connected."""
    schedule.reset_backoff(connection.id)
    connection = db.session.get_one(Connection, connection.id)
    services.note_success(connection)
    if connection.status is ConnectionStatus.failing:
        services.change_status(connection, ConnectionStatus.connected, "A push reached the ledger again", by="Push")
    db.session.commit()
