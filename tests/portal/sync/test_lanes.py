"""Lanes: ledger calls of one kind run in order beside the job's thread (portal.sync.lanes, push_invoices helpers)."""

from __future__ import annotations

import contextvars
import functools
import threading
import time
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from portal.sync.lanes import Lane
from tests.portal.sync.conftest import PROVIDERS, ledger_documents
from tests.portal.sync.test_pipeline import set_settings

#: Seconds a test waits for an event before it counts the push as stuck.
WAIT = 30

REQUEST = contextvars.ContextVar("request", default="none")


# -- Lane ------------------------------------------------------------------------------------------


def test_calls_run_in_submission_order_in_one_thread_other_than_the_callers():
    ran: list[tuple[int, threading.Thread]] = []

    def call(i: int) -> int:
        time.sleep(0.002 * (10 - i))  # the earlier a call, the longer it takes
        ran.append((i, threading.current_thread()))
        return i * 10

    with Lane("order") as lane:
        futures = [lane.submit(call, i) for i in range(10)]
    assert [f.result(0) for f in futures] == [i * 10 for i in range(10)]
    assert [i for i, _ in ran] == list(range(10))
    threads = {id(thread) for _, thread in ran}
    assert len(threads) == 1 and ran[0][1] is not threading.current_thread()
    assert ran[0][1].name == "order" and lane.threaded


def test_an_exception_comes_through_the_future_and_later_calls_still_run():
    def boom():
        raise ValueError("refused")

    with Lane("errors") as lane:
        failed = lane.submit(boom)
        after = lane.submit(lambda: "still here")
    assert isinstance(failed.exception(WAIT), ValueError)
    with pytest.raises(ValueError, match="refused"):
        failed.result(0)
    assert after.result(WAIT) == "still here"


def test_an_unthreaded_lane_runs_each_call_at_once_in_the_callers_thread():
    ran: list[int] = []
    lane = Lane("serial", threaded=False)
    future = lane.submit(lambda: ran.append(threading.get_ident()) or "done")
    assert ran == [threading.get_ident()]  # before submit returned
    assert future.done() and future.result(0) == "done"

    def boom():
        raise KeyError("x")

    assert isinstance(lane.submit(boom).exception(0), KeyError)
    assert not lane.threaded
    lane.close()  # nothing to wait for


def test_the_enter_context_is_entered_once_in_the_lane_thread_and_left_at_close():
    entered: list[int] = []
    left: list[int] = []
    inside = threading.local()

    @contextmanager
    def enter():
        entered.append(threading.get_ident())
        inside.yes = True
        try:
            yield
        finally:
            left.append(threading.get_ident())

    lane = Lane("enter", enter=enter)
    futures = [lane.submit(lambda: (getattr(inside, "yes", False), threading.get_ident())) for _ in range(5)]
    results = [f.result(WAIT) for f in futures]
    assert left == []  # still open between calls
    lane.close()
    (lane_thread,) = {ident for _, ident in results}
    assert all(yes for yes, _ in results)
    assert entered == [lane_thread] and left == [lane_thread]
    assert lane_thread != threading.get_ident()


def test_context_variables_set_before_the_lane_is_made_are_seen_by_its_calls():
    token = REQUEST.set("job-42")
    try:
        lane = Lane("context")
    finally:
        REQUEST.reset(token)
    REQUEST.set("later")  # after construction: not the lane's
    try:
        assert lane.submit(REQUEST.get).result(WAIT) == "job-42"
    finally:
        lane.close()


def test_close_lets_the_calls_queued_run_first():
    gate = threading.Event()
    ran: list[int] = []

    def work(i: int) -> int:
        time.sleep(0.05)  # a call that takes a while
        ran.append(i)
        return i

    lane = Lane("close")
    first = lane.submit(gate.wait, WAIT)
    queued = [lane.submit(work, i) for i in range(4)]
    gate.set()
    lane.close()
    assert first.result(0) is True
    assert all(f.done() for f in queued) and ran == [0, 1, 2, 3]


def test_a_future_cancelled_before_its_call_started_is_not_run():
    gate = threading.Event()
    ran: list[str] = []
    lane = Lane("cancel")
    blocker = lane.submit(gate.wait, WAIT)
    dropped = lane.submit(ran.append, "dropped")
    kept = lane.submit(ran.append, "kept")
    assert dropped.cancel()
    gate.set()
    lane.close()
    assert blocker.result(0) is True and kept.done()
    assert dropped.cancelled() and ran == ["kept"]


# -- pushes with lanes -------------------------------------------------------------------------------


def _records(app, connection_id: int) -> dict[int, SimpleNamespace]:
    """Return the connection's invoice records by invoice id, as plain values."""
    from portal.extensions import db
    from portal.models import ExternalRecord, RecordKind

    with app.app_context():
        rows = db.session.scalars(
            select(ExternalRecord).where(
                ExternalRecord.connection_id == connection_id, ExternalRecord.kind == RecordKind.invoice
            )
        )
        return {r.local_id: SimpleNamespace(**{c.key: getattr(r, c.key) for c in r.__table__.columns}) for r in rows}


def _push(
    app,
    connection_id: int,
    ids: list[int],
    *,
    lanes: bool = True,
    chunk_size: int = 50,
    wrap_main=None,
    wrap_helper=None,
) -> list[int]:
    """Push through push_invoices (with lanes unless told); return the invoice ids chunk_done saw, in order."""
    from portal.connections import vault
    from portal.extensions import db
    from portal.models import Connection
    from portal.sync import push

    seen: list[int] = []

    def chunk_done(outcomes) -> bool:
        seen.extend(record.local_id for record, _before in outcomes)
        return True

    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        adapter = vault.fresh_adapter(connection)
        helpers = None
        if lanes:
            helpers = functools.partial(vault.joined_adapter, connection, adapter)
            if wrap_helper is not None:
                joined = helpers
                helpers = lambda: wrap_helper(joined())  # noqa: E731
        main = wrap_main(adapter) if wrap_main is not None else adapter
        try:
            push.push_invoices(connection, ids, main, chunk_done=chunk_done, chunk_size=chunk_size, helpers=helpers)
        finally:
            db.session.rollback()
    return seen


def _rename(app, invoice_id: int, number: str) -> None:
    from portal.extensions import db
    from portal.models import Invoice

    with app.app_context():
        db.session.get(Invoice, invoice_id).number = number
        db.session.commit()


class Wrapper:
    """The real adapter, with some methods replaced by a test."""

    def __init__(self, adapter) -> None:
        self.adapter = adapter

    def __getattr__(self, name):
        return getattr(self.adapter, name)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_push_with_lanes_pushes_each_invoice_once_and_does_its_steps(app, sandbox, connect, make_invoice, provider):
    connection_id = connect(provider)
    invoices = [make_invoice() for _ in range(7)]
    ids = [invoice_id for invoice_id, _ in invoices]

    threads: dict[str, set[str]] = {"find_by_reference": set(), "find_by_references": set(), "finalize_invoice": set()}

    class Watched(Wrapper):
        def find_by_reference(self, *args):
            threads["find_by_reference"].add(threading.current_thread().name)
            return self.adapter.find_by_reference(*args)

        def find_by_references(self, *args):
            threads["find_by_references"].add(threading.current_thread().name)
            return self.adapter.find_by_references(*args)

        def finalize_invoice(self, *args, **options):
            threads["finalize_invoice"].add(threading.current_thread().name)
            return self.adapter.finalize_invoice(*args, **options)

    seen = _push(app, connection_id, ids, chunk_size=4, wrap_helper=Watched)

    records = _records(app, connection_id)
    for invoice_id, number in invoices:
        record = records[invoice_id]
        assert (record.state.value, record.attempts) == ("pushed", 1), number
        assert record.finalize_state is not None and record.finalize_error is None, number
        assert record.pdf_state is not None, number
        documents = ledger_documents(sandbox, provider, number)
        assert len(documents) == 1, f"{len(documents)} ledger invoices carry {number}"
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    # QuickBooks invoices are final when created, and their numbers known then: nothing to call.
    finalized_in = set() if provider == "quickbooks" else {"ledgerlink-push-steps"}
    # Never pushed before: nothing to look up.
    assert threads == {"find_by_reference": set(), "find_by_references": set(), "finalize_invoice": finalized_in}
    assert len({records[i].external_id for i in ids}) == len(ids)


class Crash(BaseException):
    """Stands for the process dying: no handler of the push sees it."""


@pytest.mark.parametrize("provider", PROVIDERS)
def test_after_a_crash_the_chunks_unknown_invoices_are_looked_up_together_in_the_lookups_lane(
    app, sandbox, connect, make_invoice, provider
):
    connection_id = connect(provider)
    _push(app, connection_id, [make_invoice()[0]], lanes=False)  # links the customer
    invoices = [make_invoice() for _ in range(5)]
    ids = [invoice_id for invoice_id, _ in invoices]

    class DiesAfterThree(Wrapper):
        """The process "dies" right after the ledger created the third invoice (QuickBooks: all five), before the
        chunk's commit."""

        created = 0

        def push_invoice(self, draft, **options):
            result = self.adapter.push_invoice(draft, **options)
            DiesAfterThree.created += 1
            if DiesAfterThree.created == 3:
                raise Crash
            return result

        def batch(self, operations, **options):
            """QuickBooks creates the five with one call: the process dies once it is answered."""
            self.adapter.batch(operations, **options)
            raise Crash

    with pytest.raises(Crash):
        _push(app, connection_id, ids, wrap_main=DiesAfterThree)
    records = _records(app, connection_id)
    assert [(records[i].state.value, records[i].attempts) for i in ids] == [("pending", 1)] * 5
    lookups: list[tuple[str, tuple[str, ...]]] = []

    class Watched(Wrapper):
        def find_by_reference(self, kind, reference):
            lookups.append((threading.current_thread().name, (reference,)))
            return self.adapter.find_by_reference(kind, reference)

        def find_by_references(self, kind, references):
            lookups.append((threading.current_thread().name, tuple(references)))
            return self.adapter.find_by_references(kind, references)

    _push(app, connection_id, ids, wrap_helper=Watched)

    # One look-up of the chunk's five numbers, in the look-ups lane, before any create.
    assert lookups == [("ledgerlink-push-lookups", tuple(number for _, number in invoices))]
    records = _records(app, connection_id)
    for invoice_id, number in invoices:
        [document] = ledger_documents(sandbox, provider, number)
        record = records[invoice_id]
        assert (record.state.value, record.attempts) == ("pushed", 2), number
        assert record.external_id == str(document.get("InvoiceID") or document.get("Id") or document.get("id"))


def test_exact_numbers_invoices_in_the_order_they_were_created(app, sandbox, connect, make_invoice):
    connection_id = connect("exact-online")
    today = date.today()
    # Ids and dates in different orders: the push goes by issue date, then id.
    offsets = [2, 5, 0, 3, 5, 1, 4, 0]
    invoices = [make_invoice(issue_date=today - timedelta(days=d)) for d in offsets]
    ids = [invoice_id for invoice_id, _ in invoices]
    # In due order, as the job passes them (push.due_invoice_ids).
    due = [i for _, i in sorted((today - timedelta(days=d), i) for d, i in zip(offsets, ids, strict=True))]
    assert due != ids

    class SlowAnswers(Wrapper):
        """The ledger answers some finalize calls more slowly than the next ones."""

        calls = 0

        def finalize_invoice(self, external_id, **options):
            SlowAnswers.calls += 1
            if SlowAnswers.calls % 2:
                time.sleep(0.05)
            return self.adapter.finalize_invoice(external_id, **options)

    _push(app, connection_id, due, chunk_size=5, wrap_helper=SlowAnswers)

    records = _records(app, connection_id)
    numbers = [records[i].external_number for i in due]
    assert all(numbers), numbers
    assert [int(n) for n in numbers] == sorted(int(n) for n in numbers), numbers
    assert {records[i].finalize_state.value for i in ids} <= {"finalized", "sent"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_step_limited_by_the_ledger_stops_the_later_steps_until_the_next_run(
    app, sandbox, connect, make_invoice, provider
):
    from portal.integrations.base import RateLimited

    connection_id = connect(provider)
    if provider == "quickbooks":  # sent by the ledger: finalizing a QuickBooks invoice then calls it
        set_settings(app, connection_id, sending_method="ledger", auto_send=True)
    invoices = [make_invoice() for _ in range(4)]
    ids = [invoice_id for invoice_id, _ in invoices]
    all_created = threading.Event()
    created: list[str] = []
    finalized: list[str] = []
    waited: list[bool] = []

    class CountsCreations(Wrapper):
        def push_invoice(self, draft, **options):
            result = self.adapter.push_invoice(draft, **options)
            created.append(draft.number)
            if len(created) == len(invoices):
                all_created.set()
            return result

        def batch(self, operations, **options):  # QuickBooks: the four with one call
            results = self.adapter.batch(operations, **options)
            created.extend(op.payload.number for op in operations)
            if len(created) == len(invoices):
                all_created.set()
            return results

    class LimitedOnSecondFinalize(Wrapper):
        def finalize_invoice(self, external_id, **options):
            finalized.append(str(external_id))
            if len(finalized) == 2:
                # Every invoice created, and its steps queued, before the ledger says no.
                waited.append(all_created.wait(WAIT))
                raise RateLimited("spent", retry_at=datetime.now(UTC) + timedelta(seconds=30), provider=provider)
            return self.adapter.finalize_invoice(external_id, **options)

    with pytest.raises(RateLimited):
        _push(app, connection_id, ids, wrap_main=CountsCreations, wrap_helper=LimitedOnSecondFinalize)

    assert waited == [True]
    records = _records(app, connection_id)
    first, *rest = (records[i] for i in ids)
    assert first.state.value == "pushed" and first.finalize_state is not None
    assert [r.state.value for r in rest] == ["pushed"] * 3
    assert [r.finalize_state for r in rest] == [None] * 3  # still to do
    assert finalized == [first.external_id, rest[0].external_id]  # none after the second

    _push(app, connection_id, ids)

    records = _records(app, connection_id)
    for invoice_id, number in invoices:
        assert records[invoice_id].finalize_state is not None, number
        assert records[invoice_id].attempts == 1
        assert len(ledger_documents(sandbox, provider, number)) == 1
    if provider == "exact-online":
        numbers = [int(records[i].external_number) for i in ids]
        assert numbers == sorted(numbers), numbers


@pytest.mark.parametrize("lanes", [True, False], ids=["lanes", "serial"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_number_twice_in_a_chunk_holds_the_second_and_never_adopts_the_firsts_document(
    app, sandbox, connect, make_invoice, provider, lanes
):
    connection_id = connect(provider)
    invoices = [make_invoice() for _ in range(6)]
    ids = [invoice_id for invoice_id, _ in invoices]
    number = invoices[1][1]
    _rename(app, ids[3], number)  # a second invoice with the second one's number (stored before the rule)

    _push(app, connection_id, ids, lanes=lanes)

    records = _records(app, connection_id)
    assert [records[i].state.value for i in ids] == ["pushed"] * 3 + ["needs_action"] + ["pushed"] * 2
    held = records[ids[3]]
    assert held.last_error_class == "duplicate" and held.external_id is None
    assert f"Invoice number {number} is also the number of the SaaS's invoice inv-{number}" in held.last_error_text
    assert len(ledger_documents(sandbox, provider, number)) == 1
    for _, other in invoices[:3] + invoices[4:]:
        assert len(ledger_documents(sandbox, provider, other)) == 1, other
    assert len({records[i].external_id for i in ids if i != ids[3]}) == 5


@pytest.mark.parametrize(
    "provider",
    # Exact's 60 calls a minute per division pace this one for several seconds.
    [pytest.param(p, marks=pytest.mark.slow) if p == "exact-online" else p for p in PROVIDERS],
)
def test_serial_and_lanes_leave_the_same_records(app, sandbox, connect, make_invoice, provider):
    from portal.extensions import db
    from portal.models import ExternalRecord

    connection_id = connect(provider)
    _push(app, connection_id, [make_invoice()[0]], lanes=False)  # links the customer

    def batch() -> list[int]:
        """Five new invoices, the third with the second's number, the first already in the ledger without its record."""
        invoices = [make_invoice() for _ in range(5)]
        ids = [invoice_id for invoice_id, _ in invoices]
        _rename(app, ids[2], invoices[1][1])
        _push(app, connection_id, ids[:1], lanes=False)
        with app.app_context():
            db.session.execute(
                db.delete(ExternalRecord).where(
                    ExternalRecord.connection_id == connection_id, ExternalRecord.local_id == ids[0]
                )
            )
            db.session.commit()
        return ids

    serial, laned = batch(), batch()
    _push(app, connection_id, serial, lanes=False, chunk_size=3)
    _push(app, connection_id, laned, lanes=True, chunk_size=3)

    records = _records(app, connection_id)

    def shape(invoice_id: int) -> tuple:
        r = records[invoice_id]
        return (
            r.state.value,
            r.attempts,
            r.pdf_state.value if r.pdf_state else None,
            r.finalize_state.value if r.finalize_state else None,
            r.last_error_class,
            r.external_id is not None,
            r.external_number is not None,
            r.finalized_at is not None,
        )

    assert [shape(i) for i in laned] == [shape(i) for i in serial]
    assert [shape(i)[0] for i in serial] == ["pushed", "pushed", "needs_action", "pushed", "pushed"]
    for ids in (serial, laned):
        assert records[ids[2]].external_id is None and records[ids[2]].last_error_class == "duplicate"
        assert len({records[i].external_id for i in ids if i != ids[2]}) == 4
