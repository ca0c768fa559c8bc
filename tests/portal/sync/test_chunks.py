"""Many invoices in one run: chunks of one transaction each, and still exactly once (portal.sync.push.push_invoices)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from tests.portal.sync.conftest import ledger_documents


class Crash(BaseException):
    """Stands for the process dying: no handler of the push sees it."""


def _records(app, connection_id: int) -> dict[int, tuple[str, int, str | None]]:
    from portal.extensions import db
    from portal.models import ExternalRecord

    with app.app_context():
        rows = db.session.scalars(select(ExternalRecord).where(ExternalRecord.connection_id == connection_id))
        return {r.local_id: (r.state.value, r.attempts, r.external_id) for r in rows if r.kind.value == "invoice"}


def _push(app, connection_id: int, ids: list[int], *, chunk_size: int, adapter_wrapper=None) -> list[list]:
    """Push the invoices through push_invoices; return the states each chunk_done call saw."""
    from portal.connections import vault
    from portal.extensions import db
    from portal.models import Connection
    from portal.sync import push

    seen: list[list] = []

    def chunk_done(outcomes):
        seen.append([record.state.value for record, _before in outcomes])
        return True

    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        adapter = vault.fresh_adapter(connection)
        if adapter_wrapper is not None:
            adapter = adapter_wrapper(adapter)
        try:
            push.push_invoices(connection, ids, adapter, chunk_done=chunk_done, chunk_size=chunk_size)
        finally:
            db.session.rollback()
    return seen


@pytest.mark.parametrize("provider", ["exact-online", "quickbooks", "bexio"])
def test_a_chunked_push_commits_per_chunk_not_per_invoice(app, sandbox, connect, make_invoice, provider, monkeypatch):
    from portal.extensions import db
    from portal.sync import push

    monkeypatch.setattr(push, "CHUNK_SECONDS", 3600.0)  # chunks end by size only

    connection_id = connect(provider)
    invoices = [make_invoice() for _ in range(6)]
    ids = [invoice_id for invoice_id, _ in invoices]
    commits: list[int] = []
    with app.app_context():
        session = db.session()
        listener = lambda _session: commits.append(1)  # noqa: E731
        event.listen(type(session), "after_commit", listener)
    try:
        seen = _push(app, connection_id, ids, chunk_size=3)
    finally:
        event.remove(type(session), "after_commit", listener)

    records = _records(app, connection_id)
    assert {records[i][0] for i in ids} == {"pushed"}
    assert {records[i][1] for i in ids} == {1}
    for _, number in invoices:
        assert len(ledger_documents(sandbox, provider, number)) == 1
    assert sum(len(states) for states in seen) == 6
    # Per chunk: new records, pending marks, outcomes (and the customer's own commits, first
    # invoice only): far fewer than the 3+ commits per invoice of the one-by-one protocol.
    assert len(commits) <= 2 * 3 + 4, len(commits)


@pytest.mark.parametrize("provider", ["exact-online", "quickbooks", "bexio"])
def test_a_crash_before_the_chunk_commit_leaves_pending_records_that_the_next_run_adopts(
    app, sandbox, connect, make_invoice, provider, monkeypatch
):
    from portal.sync import push

    monkeypatch.setattr(push, "CHUNK_SECONDS", 3600.0)  # chunks end by size only, however slow the machine
    connection_id = connect(provider)
    invoices = [make_invoice() for _ in range(4)]
    ids = [invoice_id for invoice_id, _ in invoices]
    _push(app, connection_id, ids[:1], chunk_size=4)  # links the customer

    class DiesAfterTwo:
        """The real adapter; the process "dies" right after the ledger created the second invoice."""

        def __init__(self, adapter):
            self.adapter, self.created = adapter, 0

        def __getattr__(self, name):
            return getattr(self.adapter, name)

        def push_invoice(self, draft, **options):
            result = self.adapter.push_invoice(draft, **options)
            self.created += 1
            if self.created == 2:
                raise Crash
            return result

        def batch(self, operations, **options):
            """QuickBooks creates the chunk's invoices with one call: the process dies once it is answered."""
            self.adapter.batch(operations, **options)
            raise Crash

    with pytest.raises(Crash):
        _push(app, connection_id, ids[1:], chunk_size=4, adapter_wrapper=DiesAfterTwo)
    records = _records(app, connection_id)
    # The chunk was marked pending in one commit; the outcomes never were.
    assert [records[i][:2] for i in ids[1:]] == [("pending", 1)] * 3
    assert all(records[i][2] is None for i in ids[1:])

    _push(app, connection_id, ids[1:], chunk_size=4)

    records = _records(app, connection_id)
    for invoice_id, number in invoices:
        documents = ledger_documents(sandbox, provider, number)
        assert len(documents) == 1, f"{len(documents)} ledger invoices carry {number}"
        assert records[invoice_id][0] == "pushed"
    assert [records[i][1] for i in ids[1:]] == [2, 2, 2]


def test_a_rate_limit_in_a_chunk_keeps_what_was_pushed_before_it(app, sandbox, connect, make_invoice):
    from portal.integrations.base import RateLimited

    connection_id = connect("bexio")
    invoices = [make_invoice() for _ in range(3)]
    ids = [invoice_id for invoice_id, _ in invoices]

    class LimitedOnSecond:
        def __init__(self, adapter):
            self.adapter, self.calls = adapter, 0

        def __getattr__(self, name):
            return getattr(self.adapter, name)

        def push_invoice(self, draft, **options):
            self.calls += 1
            if self.calls == 2:
                from datetime import UTC, datetime, timedelta

                raise RateLimited("spent", retry_at=datetime.now(UTC) + timedelta(seconds=30), provider="bexio")
            return self.adapter.push_invoice(draft, **options)

    with pytest.raises(RateLimited):
        _push(app, connection_id, ids, chunk_size=10, adapter_wrapper=LimitedOnSecond)

    records = _records(app, connection_id)
    assert records[ids[0]][0] == "pushed" and records[ids[0]][2]
    assert records[ids[1]][:2] == ("pending", 1)
    assert records[ids[2]][:2] == ("pending", 1)  # marked with its chunk, looked up first next time
    _push(app, connection_id, ids, chunk_size=10)
    for invoice_id, number in invoices:
        assert len(ledger_documents(sandbox, "bexio", number)) == 1
        assert _records(app, connection_id)[invoice_id][0] == "pushed"


def test_a_chunk_reads_mappings_once_and_each_table_once(app, sandbox, connect, make_invoice, count_queries):
    connection_id = connect("quickbooks")
    first = [make_invoice() for _ in range(2)]
    _push(app, connection_id, [i for i, _ in first], chunk_size=10)
    more = [make_invoice() for _ in range(8)]
    with count_queries() as small:
        _push(app, connection_id, [i for i, _ in more[:2]], chunk_size=10)
    with count_queries() as big:
        _push(app, connection_id, [i for i, _ in more[2:]], chunk_size=10)

    # Six invoices cost the reads and inserts of two: nothing is read or created per invoice
    # (the updates go in one executemany per commit and set of columns).
    def reads(statements: list[str]) -> list[str]:
        return [s.split("\n")[0][:60] for s in statements if s.lstrip().startswith(("SELECT", "INSERT"))]

    assert reads(big) == reads(small)


@pytest.mark.faults
def test_a_quickbooks_batch_whose_answer_is_lost_counts_once_and_its_invoices_are_adopted_not_created_twice(
    app, sandbox, connect, make_invoice
):
    from tests.portal.sync.conftest import fault
    from tests.portal.sync.test_pipeline import run_push

    connection_id = connect("quickbooks")
    make_invoice()
    run_push(app, connection_id)  # the customer first
    invoices = [make_invoice() for _ in range(5)]
    # QuickBooks creates the five with one batch call, then the answer is lost.
    fault(sandbox, provider="quickbooks", kind="timeout_after_commit", mode="504", path_pattern="/batch$", count=1)

    status, counts, message = run_push(app, connection_id)

    # One outage: the five wait with unknown outcomes, and the run's pass over them at its end
    # looks them up (one query) and adopts what the ledger has.
    assert status == "succeeded" and counts["pushed"] == 5, (counts, message)
    records = _records(app, connection_id)
    for invoice_id, number in invoices:
        [document] = ledger_documents(sandbox, "quickbooks", number)
        assert records[invoice_id] == ("pushed", 2, document["Id"]), number
