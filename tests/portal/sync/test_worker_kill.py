"""A push interrupted after the ledger committed creates nothing twice (portal.sync.push protocol).

Real ``rq worker`` processes push through the sandbox over HTTP. The sandbox commits the invoice
and then holds its answer back (fault ``timeout_after_commit``, mode ``hang``), and the test
SIGKILLs the worker in that gap: the ledger has the invoice, our record is still pending. A
second worker pushes again and must adopt the ledger's invoice, not create another. The same
holds when the answer is lost as a gateway timeout (mode ``504``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from tests.portal.sync.conftest import fault, ledger_documents
from tests.portal.sync.rq_workers import enqueue_push, expire_push_hold, records, run_outcome, start_worker, wait_for

#: The path of the invoice creation (not of look-ups, which bexio also POSTs to .../search).
INVOICE_PATH = {"exact-online": "/SalesInvoices$", "quickbooks": "/invoice$", "bexio": "/kb_invoice$"}
#: The ledger's id field of an invoice in the sandbox's ledger view.
LEDGER_ID = {"exact-online": "InvoiceID", "quickbooks": "Id", "bexio": "id"}
#: How long the sandbox holds the committed invoice's answer; the worker is killed long before.
HOLD_SECONDS = 45


def _hold_invoice_answer(sandbox: str, provider: str, mode: str) -> None:
    """Have the sandbox commit the next invoice creation, then hold (hang) or lose (504) its answer."""
    fault(
        sandbox,
        provider=provider,
        kind="timeout_after_commit",
        mode=mode,
        hang_seconds=HOLD_SECONDS,
        methods=["POST"],
        path_pattern=INVOICE_PATH[provider],
        count=1,
    )


def _one_ledger_invoice(sandbox: str, provider: str, number: str) -> str:
    documents = ledger_documents(sandbox, provider, number)
    assert len(documents) == 1, f"{len(documents)} ledger invoices carry {number}"
    return str(documents[0][LEDGER_ID[provider]])


def _pushed_one(counts: dict) -> bool:
    """Say whether a run's counts show one invoice due and pushed, none failed or paused."""
    return counts.get("invoices") == 1 and counts.get("pushed") == 1 and not {"failed", "pending"} & set(counts)


def _release_dead_workers_lock(app, connection_id: int) -> None:
    # A killed worker cannot release the connection's push lock and lease; they expire after the
    # lease's time (jobs/sync.py). Expire them now instead of waiting for that.
    from portal.extensions import queue

    with app.app_context():
        assert queue.connection.exists(f"ledgerlink:sync-lock:{connection_id}") == 1
    expire_push_hold(app, connection_id)


def _reconcile_and_resume(app, run_id: int) -> tuple[str, str]:
    """Run the tick's reconciliation past the start's grace; resume the run as from the jobs console.

    Return the run's (status, message) as reconciliation left it.
    """
    from portal.database import utcnow
    from portal.extensions import db
    from portal.models import SyncRun
    from portal.sync import mirrors

    with app.app_context():
        # The dead worker's RQ job still reads "started": without its lease and lock past the
        # grace, it is abandoned; its run is interrupted and the job deleted, freeing its id.
        assert mirrors.reconcile(utcnow() + timedelta(minutes=1)) == [run_id]
        run = db.session.get_one(SyncRun, run_id)
        seen = (run.status.value, run.message or "")
        mirrors.resume(run)
        return seen


@pytest.mark.workers
@pytest.mark.faults
@pytest.mark.parametrize("provider", ["exact-online", "quickbooks", "bexio"])
def test_a_worker_killed_after_the_ledger_committed_leaves_one_invoice(
    app, sandbox, connect, make_invoice, database_url, redis_url, tmp_path, provider
):
    connection_id = connect(provider)
    _invoice_id, number = make_invoice()
    _hold_invoice_answer(sandbox, provider, "hang")
    first = start_worker(app, database_url, redis_url, tmp_path, "doomed")
    second = None
    try:
        first_run = enqueue_push(app, connection_id)
        # The ledger committed the invoice; its answer is held, so our commit has not happened.
        wait_for(lambda: ledger_documents(sandbox, provider, number), what=f"{number} in the ledger")
        [record] = records(app, connection_id)
        assert (record["state"], record["attempts"], record["external_id"]) == ("pending", 1, None)

        first.kill()

        assert run_outcome(app, first_run) is None  # the killed run never finished
        _release_dead_workers_lock(app, connection_id)
        status, message = _reconcile_and_resume(app, first_run)
        assert status == "interrupted" and "no longer in the queue" in message, message
        second = start_worker(app, database_url, redis_url, tmp_path, "survivor")
        status, counts, message = wait_for(lambda: run_outcome(app, first_run), what="the resumed push")
        assert status == "succeeded" and _pushed_one(counts), (message, counts, second.log_tail())
    finally:
        first.stop()
        if second is not None:
            second.stop()

    ledger_id = _one_ledger_invoice(sandbox, provider, number)
    [record] = records(app, connection_id)
    assert record["state"] == "pushed"
    assert record["external_id"] == ledger_id
    assert record["attempts"] == 2


@pytest.mark.workers
@pytest.mark.faults
@pytest.mark.parametrize("provider", ["exact-online", "quickbooks", "bexio"])
def test_an_answer_lost_after_the_ledger_committed_leaves_one_invoice(
    app, sandbox, connect, make_invoice, database_url, redis_url, tmp_path, provider
):
    connection_id = connect(provider)
    _invoice_id, number = make_invoice()
    _hold_invoice_answer(sandbox, provider, "504")
    worker = start_worker(app, database_url, redis_url, tmp_path)
    try:
        first_run = enqueue_push(app, connection_id)
        status, counts, message = wait_for(lambda: run_outcome(app, first_run), what="the first push")
        # The 504 came after the commit: the outcome is unknown, so the record is deferred, not failed;
        # at the run's end it is looked up by reference and the ledger's copy adopted (no second copy).
        assert status == "succeeded", (message, worker.log_tail())
        assert counts.get("pending") == 1 and counts.get("pushed") == 1 and "failed" not in counts, counts
        assert len(ledger_documents(sandbox, provider, number)) == 1
    finally:
        worker.stop()

    ledger_id = _one_ledger_invoice(sandbox, provider, number)
    [record] = records(app, connection_id)
    assert (record["state"], record["external_id"], record["attempts"]) == ("pushed", ledger_id, 2)


@pytest.mark.faults
def test_the_sandbox_refuses_a_fault_whose_path_pattern_is_no_regular_expression(sandbox):
    body = {"provider": "bexio", "kind": "timeout_after_commit", "path_pattern": "/kb_invoice($"}
    response = requests.post(f"{sandbox}/_control/faults", json=body, timeout=10)

    assert response.status_code == 400
    assert "path_pattern is not a regular expression" in response.json()["error"]
    assert requests.get(f"{sandbox}/_control/faults", timeout=10).json() == []
