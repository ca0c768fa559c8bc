"""The back-fill job: pushes the range chunk by chunk through the exactly-once protocol, resumable at its cursor."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

from flask import current_app
from sqlalchemy import Table, select

from ..connections import vault
from ..database import utcnow
from ..extensions import db, queue
from ..integrations import specs
from ..integrations.base import (
    BatchOperation,
    LedgerAdapter,
    LedgerError,
    PushResult,
    RateLimited,
)
from ..models import (
    Backfill,
    BackfillItem,
    BackfillStatus,
    Connection,
    ExternalRecord,
    Invoice,
    ItemOutcome,
    RecordKind,
    RecordState,
    SyncRunStatus,
)
from ..sync import limiter
from ..sync import push as sync_push

# -- the push -------------------------------------------------------------------------------------
from .classify import Classifier, Verdict, listed_totals, supports_batch
from .lifecycle import LOCK_SECONDS, LOCK_WAIT_SECONDS, enqueue, finish_cancel, history_lock, mirror_run
from .reconciliation import reconcile
from .scope import Scope, chunk_size, clear_session, date_of, label_of, load, next_ids, quota_share, records_of


def _after_chunk(backfill: Backfill) -> None:
    """Hook run after each committed chunk (a seam for crash tests and metrics)."""


def run(backfill_id: int, log) -> Backfill | None:
    """Push the back-fill from its cursor until done, paused, cancelled, out of quota or stopped.

    One back-fill per connection runs at a time (a Redis lock): a second job ends at once.
    """
    backfill = db.session.get(Backfill, backfill_id)
    if backfill is None:
        raise LookupError(f"Back-fill {backfill_id} does not exist")
    if backfill.status.finished or backfill.status is BackfillStatus.paused:
        return backfill
    lock = history_lock(backfill.connection_id)
    # A job enqueued by a resume may start while the previous one is finishing its chunk: wait a little.
    if not lock.acquire(blocking=True, blocking_timeout=LOCK_WAIT_SECONDS):
        log.info("back-fill %s is already running in another worker", backfill_id)
        return backfill
    try:
        return _run_locked(backfill_id, log, lock)
    finally:
        try:
            if lock.owned():  # a hand-over released it already
                lock.release()
        except Exception:  # expired under a very long run: nothing to undo
            log.warning("history lock of back-fill %s expired before release", backfill_id)


def _chunk_for(adapter: LedgerAdapter) -> int:
    """Return the chunk size, rounded up to whole batches where the ledger takes batches."""
    size = chunk_size()
    batch = adapter.capabilities.batch_size
    if batch and supports_batch(adapter):
        size = math.ceil(size / batch) * batch
    return size


#: Seconds between two heartbeats of a running back-fill (portal.sync.mirrors reads them) ...
HEARTBEAT_SECONDS = 10.0
#: ... and between two reads of a pause or cancel request while a chunk is being pushed.
REQUEST_CHECK_SECONDS = 2.0


class StopRequested(Exception):
    """A person paused or cancelled the running back-fill: it stops before its next ledger call."""


class _Beat:
    """The running job's heartbeat and its ear for pause and cancel, both on short statements of their own."""

    def __init__(self, backfill_id: int) -> None:
        self.backfill_id = backfill_id
        self.beaten = self.checked = time.monotonic()

    def __call__(self, ahead: float = 0.0) -> None:
        """Beat (every few seconds, or ``ahead`` seconds into the future before a wait); stop when asked to.

        :raise StopRequested: when a pause or cancel was requested since the job started.
        """
        table = cast(Table, Backfill.__table__)
        now = time.monotonic()
        if ahead or now - self.beaten >= HEARTBEAT_SECONDS:
            with db.engine.begin() as conn:
                conn.execute(
                    table.update()
                    .where(table.c.id == self.backfill_id)
                    .values(heartbeat_at=utcnow() + timedelta(seconds=ahead))
                )
            self.beaten = now
        if now - self.checked >= REQUEST_CHECK_SECONDS:
            self.checked = now
            with db.engine.connect() as conn:
                requested = conn.execute(select(table.c.requested).where(table.c.id == self.backfill_id)).scalar()
            if requested:
                raise StopRequested(requested)


def _adapter(connection: Connection, lock, counter: list[int], beat: _Beat | None = None) -> LedgerAdapter:
    """Return an adapter whose calls count, keep the job's lock and heartbeat alive and take at most the quota share.

    Before each call the job beats and listens for a pause or cancel (:class:`_Beat`), so both
    take effect within seconds, not at the end of a chunk.
    """
    adapter = vault.fresh_adapter(connection)
    shared = limiter.from_config(current_app.config, queue.connection)
    share = quota_share()
    renewed = [time.monotonic()]

    def before_request(info) -> None:
        if beat is not None:
            beat()
        if info.company is not None:
            counter[0] += 1
        if time.monotonic() - renewed[0] > LOCK_SECONDS / 4:
            lock.reacquire()
            renewed[0] = time.monotonic()
        if shared is not None:
            shared.before_request(info, share=share)

    adapter.http.before_request = before_request
    return adapter


def _run_locked(backfill_id: int, log, lock) -> Backfill:
    backfill = db.session.get_one(Backfill, backfill_id)
    if backfill.status.finished or backfill.status is BackfillStatus.paused:
        return backfill
    backfill.transition(BackfillStatus.running, "Running.")
    backfill.resume_at = None
    backfill.heartbeat_at = utcnow()
    mirror_run(backfill, SyncRunStatus.running, "Running.")
    db.session.commit()
    connection = backfill.connection
    scope = Scope(connection.id, backfill.date_from, backfill.date_to, tuple(backfill.kinds))
    counter = [0]
    job_started = time.monotonic()
    beat = _Beat(backfill_id)
    try:
        adapter = _adapter(connection, lock, counter, beat)
        classifier = Classifier(connection, adapter, scope)
    except LedgerError as exc:
        return _stop(backfill_id, exc, counter, log)
    kinds = list(scope.kinds)
    start_at = kinds.index(backfill.cursor_kind) if backfill.cursor_kind in kinds else 0
    for kind in kinds[start_at:]:
        backfill = db.session.get_one(Backfill, backfill_id)
        if backfill.cursor_kind != kind:
            backfill.cursor_kind, backfill.cursor_id = kind, 0
            db.session.commit()
        while True:
            backfill = db.session.get_one(Backfill, backfill_id)
            db.session.refresh(backfill, ["requested"])
            if backfill.requested:
                return _honour(backfill)
            connection = db.session.get_one(Connection, scope.connection_id)
            classifier.rebind(connection)
            ids = next_ids(
                connection, kind, scope.date_from, scope.date_to, after=backfill.cursor_id, limit=_chunk_for(adapter)
            )
            if not ids:
                break
            began = time.monotonic()
            try:
                with limiter.while_waiting(lambda seconds: beat(ahead=seconds)):
                    _push_chunk(backfill, connection, classifier, adapter, kind, ids)
            except sync_push.CONNECTION_ERRORS as exc:
                return _stop(backfill_id, exc, counter, log, busy=time.monotonic() - began)
            except StopRequested:
                # Asked to pause or cancel in the middle of the chunk: what was pushed is in its
                # records; the cursor stays at the chunk's start, which a resume goes through again.
                db.session.rollback()
                backfill = db.session.get_one(Backfill, backfill_id)
                db.session.refresh(backfill)
                backfill.calls += counter[0]
                backfill.busy_seconds += time.monotonic() - began
                return _honour(backfill)
            backfill = db.session.get_one(Backfill, backfill_id)
            backfill.cursor_id = ids[-1]
            backfill.calls += counter[0]
            counter[0] = 0
            backfill.busy_seconds += time.monotonic() - began
            mirror_run(backfill, SyncRunStatus.running)
            db.session.commit()
            lock.reacquire()
            _after_chunk(backfill)
            if time.monotonic() - job_started > job_seconds():
                return _hand_over(backfill_id, lock)
            # Forget the chunk's objects: memory stays flat however long the range.
            clear_session(keep=connection)
    backfill = db.session.get_one(Backfill, backfill_id)
    backfill.cursor_kind = None
    backfill.summary = reconcile(backfill.connection, scope, adapter)
    backfill.calls += counter[0]
    backfill.transition(BackfillStatus.succeeded, _outcome_sentence(backfill))
    mirror_run(backfill, SyncRunStatus.succeeded, backfill.message)
    db.session.commit()
    return backfill


def job_seconds() -> float:
    """Return how long one job pushes before it hands the rest to a fresh job (well under the job timeout)."""
    return float(current_app.config.get("HISTORY_JOB_SECONDS", 1800))


def _hand_over(backfill_id: int, lock) -> Backfill:
    """End this job at a chunk boundary and enqueue the next one, which continues at the cursor."""
    backfill = db.session.get_one(Backfill, backfill_id)
    backfill.transition(BackfillStatus.queued, f"Continuing in a fresh job after {backfill.total():,} record(s).")
    mirror_run(backfill, SyncRunStatus.queued, backfill.message)
    db.session.commit()
    lock.release()  # before the next job exists, so that it finds the lock free
    enqueue(backfill)
    return backfill


def _outcome_sentence(backfill: Backfill) -> str:
    totals: dict[str, int] = {}
    for per in (backfill.counts or {}).values():
        for outcome, n in per.items():
            totals[outcome] = totals.get(outcome, 0) + n
    said = ", ".join(f"{n:,} {o}" for o, n in sorted(totals.items()))
    return f"Done: {said or 'nothing in the range'}; {backfill.calls:,} ledger call(s)."


def _honour(backfill: Backfill) -> Backfill:
    if backfill.requested == "cancel":
        finish_cancel(backfill)
    else:
        backfill.requested = None
        backfill.transition(BackfillStatus.paused, f"Paused after {backfill.total():,} record(s); resume to go on.")
        mirror_run(backfill, SyncRunStatus.queued, backfill.message)
    db.session.commit()
    return backfill


def _stop(backfill_id: int, exc: LedgerError, counter: list[int], log, busy: float = 0.0) -> Backfill:
    db.session.rollback()
    backfill = db.session.get_one(Backfill, backfill_id)
    backfill.calls += counter[0]
    backfill.busy_seconds += busy
    if isinstance(exc, RateLimited):
        retry_at = exc.retry_at
        backfill.transition(
            BackfillStatus.waiting,
            f"The back-fill's share of the {specs.get_spec(backfill.connection.provider).name} quota is spent; "
            f"it continues by itself at {retry_at:%Y-%m-%d %H:%M:%S} UTC.",
        )
        backfill.resume_at = retry_at
        mirror_run(backfill, SyncRunStatus.queued, backfill.message)
        db.session.commit()
        enqueue(backfill, at=retry_at)
    else:
        backfill.transition(BackfillStatus.interrupted, f"Stopped: {exc}. Resume to continue where it stopped.")
        mirror_run(backfill, SyncRunStatus.interrupted, backfill.message)
        db.session.commit()
    log.warning("back-fill %s stopped: %s", backfill_id, exc)
    return backfill


def crashed(backfill_id: int, exc: BaseException) -> None:
    """Record an unexpected end of the job; a resume continues at the cursor."""
    db.session.rollback()
    backfill = db.session.get(Backfill, backfill_id)
    if backfill is None or backfill.status.finished:
        return
    backfill.transition(BackfillStatus.interrupted, f"Stopped by an error ({type(exc).__name__}: {exc}).")
    mirror_run(backfill, SyncRunStatus.interrupted, backfill.message)
    db.session.commit()


def _push_chunk(backfill, connection, classifier, adapter, kind: str, ids: list[int]) -> None:
    """Push one chunk: every record not yet handled by this back-fill, batched where the ledger can."""
    handled = set(
        db.session.scalars(
            select(BackfillItem.local_id).where(
                BackfillItem.backfill_id == backfill.id, BackfillItem.kind == kind, BackfillItem.local_id.in_(ids)
            )
        )
    )
    records = records_of(connection, kind, ids)
    to_batch: list[Any] = []
    batching = kind in ("invoice", "credit_note") and supports_batch(adapter)
    for obj in load(kind, ids):
        if obj.id in handled:
            continue
        v = classifier.verdict(kind, obj, records.get(obj.id))
        if v.outcome == "create":
            if batching and kind == "invoice":
                to_batch.append(obj)
                continue
            try:
                record = _push_one(connection, adapter, kind, obj)
            except sync_push.CONNECTION_ERRORS:
                _note_if_written(backfill, connection, kind, obj)
                raise
            _note(backfill, kind, obj, _outcome_of(record), record.external_id, record.last_error_text)
        elif v.adopt:
            record = _adopt(connection, kind, obj, v)
            if record.state is RecordState.pushed:
                _note(backfill, kind, obj, ItemOutcome.existing, v.external_id, v.reason)
            else:  # another SaaS document's (held, not adopted), or there with another total ("differs")
                outcome = _outcome_of(record) if record.state is RecordState.skipped else ItemOutcome.blocked
                _note(backfill, kind, obj, outcome, record.external_id, record.last_error_text, v.fix_url)
        else:
            outcome = ItemOutcome.existing if v.outcome == "existing" else ItemOutcome(v.outcome)
            _note(backfill, kind, obj, outcome, v.external_id, v.reason, v.fix_url)
    if to_batch:
        _push_batch(backfill, connection, adapter, to_batch)


def _note_if_written(backfill: Backfill, connection: Connection, kind: str, obj: Any) -> None:
    """Note a record created before its push stopped (an invoice whose PDF or finalize step met the spent
    quota or an outage): the back-fill created it, and a resume must not count it as found in the ledger.

    Its remaining steps are done by a later push, as for any pushed invoice.
    """
    db.session.rollback()  # the push committed the record's state; nothing else of the attempt is kept
    record = sync_push._existing(connection, RecordKind(kind), obj.id)
    if record is not None and record.state is RecordState.pushed:
        _note(backfill, kind, obj, ItemOutcome.created, record.external_id)


def _push_one(connection: Connection, adapter: LedgerAdapter, kind: str, obj: Any) -> ExternalRecord:
    if kind == "customer":
        return sync_push.push_customer(connection, obj, adapter)
    if kind == "invoice":
        return sync_push.push_invoice(connection, obj, adapter)
    if kind == "credit_note":
        return sync_push.push_credit_note(connection, obj, adapter)
    return sync_push.push_payment(connection, obj, adapter)


def _adopt(connection: Connection, kind: str, obj: Any, v: Verdict) -> ExternalRecord:
    """Record a ledger document found by our reference as pushed (nothing is created); return its record.

    A ledger document another record holds already is not adopted: the record is held instead. A
    document whose total there differs from the SaaS's is recorded as "differs from the SaaS".
    """
    record = sync_push.record_for(connection, RecordKind(kind), obj.id)
    if record.state is RecordState.pushed:
        return record
    sync_push._begin(record, reference=obj.number, payload=sync_push._document_payload(obj))
    if v.external_id is None:
        raise ValueError(f"{kind} {obj.id} was found in the ledger without its id")
    found = PushResult(v.external_id, v.number, False, listed_totals(obj, v.total))
    return sync_push._store_document(connection, record, obj, found)


def _outcome_of(record: ExternalRecord) -> ItemOutcome:
    return {
        RecordState.pushed: ItemOutcome.created,
        RecordState.skipped: ItemOutcome.skipped,
        RecordState.needs_action: ItemOutcome.blocked,
    }.get(record.state, ItemOutcome.failed)


def _note(
    backfill, kind, obj, outcome: ItemOutcome, external_id=None, reason=None, fix_url=None, *, commit: bool = True
) -> None:
    day = date_of(kind, obj)
    db.session.add(
        BackfillItem(
            backfill_id=backfill.id,
            kind=kind,
            local_id=obj.id,
            label=label_of(kind, obj),
            document_date=day,
            outcome=outcome,
            external_id=external_id,
            reason=reason if outcome is not ItemOutcome.created else None,
            fix_url=fix_url,
        )
    )
    backfill = db.session.get(Backfill, backfill.id)
    backfill.count(kind, outcome.value)
    if commit:
        # Right after the record's own state change was committed by the push: both survive a crash.
        db.session.commit()


def _push_batch(backfill: Backfill, connection: Connection, adapter: LedgerAdapter, invoices: list[Invoice]) -> None:
    """Push invoices in batch calls, keeping the exactly-once protocol of :mod:`portal.sync.push`.

    Each record is marked pending and committed before its batch is sent; each result is stored
    with the move to pushed; a record whose earlier attempt ended unknown is looked up by our
    reference first. A connection error stops after the batch's other results are stored.
    """
    size = adapter.capabilities.batch_size or 1
    resolver = sync_push._Resolver(connection)
    ready: list[tuple[ExternalRecord, Invoice, BatchOperation]] = []
    for invoice in invoices:
        record = sync_push.record_for(connection, RecordKind.invoice, invoice.id)
        if record.state is RecordState.pushed:
            _note(backfill, "invoice", invoice, ItemOutcome.existing, record.external_id, "Pushed earlier.")
            continue
        try:
            # The guard first (nothing written when it holds), then the customer.
            draft = sync_push.invoice_draft(connection, invoice, "", resolver)
            customer_id = sync_push._ledger_customer_id(connection, invoice.customer, adapter)
        except (sync_push.CustomerNotPushed, sync_push.DocumentHeld):
            # The single push holds the record with the reason, exactly as the live sync does.
            record = sync_push.push_invoice(connection, invoice, adapter)
            _note(backfill, "invoice", invoice, _outcome_of(record), record.external_id, record.last_error_text)
            continue
        unknown = sync_push._begin(record, reference=invoice.number, payload=sync_push._document_payload(invoice))
        if unknown:
            found = adapter.find_by_reference("invoice", invoice.number)
            if found is not None:
                record = sync_push._store_document(connection, record, invoice, found)
                _note(backfill, "invoice", invoice, _outcome_of(record), record.external_id, record.last_error_text)
                continue
        draft = replace(draft, customer_id=customer_id)
        ready.append(
            (record, invoice, BatchOperation(id=str(record.id), kind="invoice", action="create", payload=draft))
        )
    stop: LedgerError | None = None
    for start_at in range(0, len(ready), size):
        group = ready[start_at : start_at + size]
        try:
            results = {item.id: item for item in adapter.batch([op for _r, _i, op in group])}
        except sync_push.CONNECTION_ERRORS:
            raise  # every record of the group stays pending: the next attempt looks it up first
        except LedgerError as exc:
            for record, invoice, _op in group:
                record = sync_push._store_error(record, exc)
                _note(backfill, "invoice", invoice, _outcome_of(record), None, record.last_error_text)
            continue
        for record, invoice, op in group:
            item = results.get(op.id)
            if item is not None and item.result is not None:
                record = sync_push._store_document(connection, record, invoice, item.result)
                # Noted with the next result's commit (or the batch's): a crash in between leaves
                # the record pushed, and the resumed back-fill counts it as existing.
                _note(
                    backfill,
                    "invoice",
                    invoice,
                    _outcome_of(record),
                    record.external_id,
                    record.last_error_text,
                    commit=False,
                )
                continue
            error = item.error if item is not None else None
            if error is None:
                continue  # no answer for this operation: it stays pending and is looked up next time
            db.session.commit()  # the notes so far: storing an error rolls back what is uncommitted
            try:
                record = sync_push._store_error(record, error)
            except sync_push.CONNECTION_ERRORS as exc:
                stop = stop or exc
                continue
            _note(backfill, "invoice", invoice, _outcome_of(record), None, record.last_error_text)
        db.session.commit()
        if stop is not None:
            raise stop
