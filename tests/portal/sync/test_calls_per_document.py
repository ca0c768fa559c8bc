"""Calls per document: one push run of N invoices, counted by the sandbox ledger itself.

The sandbox counts every API request it serves per provider and company (``GET /_control/quotas``);
a first push of an invoice makes no look-up, only the calls that write it (QuickBooks: the create;
bexio: the create and the issue, and the send when bexio e-mails the invoice).
"""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest

from tests.portal.sync.conftest import ledger_documents
from tests.portal.sync.rq_workers import sandbox_get, sandbox_post
from tests.portal.sync.test_pipeline import run_push

#: Invoices pushed by the measured run.
N = 10
#: A ledger id in a path.
_ID = re.compile(r"/\d+(?=/|$)")


def _served(sandbox: str, provider: str) -> int:
    """Return the API requests the sandbox served for ``provider`` since its counters were last reset."""
    counters = sandbox_get(sandbox, "quotas")["counters"]
    minute = [c for c in counters if c["key"][0] == provider and c["window_seconds"] == 60]
    return sum(c["within_limit"] + c["over_limit"] for c in minute)


def _logged(app, connection_id: int, after: int) -> Counter[str]:
    """Return the connection's API calls logged after operation-log id ``after``, as "METHOD path" with ids as {id}."""
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models.operation_log import OperationLog

    with app.app_context():
        rows = db.session.execute(
            select(OperationLog.method, OperationLog.path).where(
                OperationLog.connection_id == connection_id, OperationLog.id > after
            )
        ).all()
    return Counter(f"{method} {_ID.sub('/{id}', path.split('?')[0].split('/', 1)[-1])}" for method, path in rows)


def _last_log_id(app) -> int:
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models.operation_log import OperationLog

    with app.app_context():
        return db.session.scalar(select(func.coalesce(func.max(OperationLog.id), 0))) or 0


#: provider, ledger sending → API calls per invoice at most (QuickBooks: one batch call creates 30),
#: and the reads a run makes once (QuickBooks: the company's country, which decides its tax model;
#: bexio: the currencies).
CASES = {
    ("quickbooks", False): (1 / 30, 1),
    ("bexio", False): (2, 1),
    ("bexio", True): (3, 1),
}


@pytest.mark.parametrize(("provider", "ledger_sends"), list(CASES), ids=["quickbooks", "bexio", "bexio-sending"])
def test_one_run_pushes_each_new_invoice_with_the_fewest_calls(
    app, sandbox, connect, make_invoice, provider, ledger_sends
):
    from tests.portal.sync.test_pipeline import set_settings

    per_invoice, once = CASES[(provider, ledger_sends)]
    connection_id = connect(provider)
    if ledger_sends:
        set_settings(app, connection_id, sending_method="ledger", auto_send=True)
    make_invoice()
    status, counts, message = run_push(app, connection_id)  # the customer goes in with the first invoice
    assert (status, counts.get("pushed")) == ("succeeded", 1), message
    numbers = [make_invoice()[1] for _ in range(N)]
    sandbox_post(sandbox, "quotas", {})  # the counters start from zero
    logged_after = _last_log_id(app)

    status, counts, message = run_push(app, connection_id)

    assert (status, counts.get("pushed")) == ("succeeded", N), message
    for number in numbers:
        assert len(ledger_documents(sandbox, provider, number)) == 1, number
    calls = _served(sandbox, provider)
    breakdown = _logged(app, connection_id, logged_after)
    assert calls == sum(breakdown.values()), breakdown
    print(f"\n{provider}{' (ledger sends)' if ledger_sends else ''}: {calls} calls for {N} invoices: {dict(breakdown)}")
    assert calls <= math.ceil(per_invoice * N) + once, breakdown


def test_the_app_can_make_quickbooks_batch_calls_smaller(app, sandbox, connect, make_invoice, monkeypatch):
    monkeypatch.setitem(app.config, "PUSH_BATCH_SIZE", 4)
    connection_id = connect("quickbooks")
    make_invoice()
    run_push(app, connection_id)  # the customer goes in with the first invoice
    numbers = [make_invoice()[1] for _ in range(N)]
    logged_after = _last_log_id(app)

    status, counts, message = run_push(app, connection_id)

    assert (status, counts.get("pushed")) == ("succeeded", N), message
    for number in numbers:
        assert len(ledger_documents(sandbox, "quickbooks", number)) == 1, number
    breakdown = _logged(app, connection_id, logged_after)
    # 4 + 4 + 2: the last two in a batch call of their own.
    assert sum(n for call, n in breakdown.items() if call.endswith("/batch")) == 3, breakdown
    assert not any(call.endswith("/invoice") for call in breakdown), breakdown


#: The path of each ledger's invoice create, and of its look-up by our reference.
CREATE = {"quickbooks": "/(invoice|batch)$", "bexio": "/kb_invoice$"}
LOOK_UP = {"quickbooks": "/query", "bexio": "/kb_invoice/search"}
#: The calls of that run at most: one look-up, the run's read and the seven creates, each on its
#: own (after an unknown outcome a create follows its own look-up; QuickBooks: the three adopted
#: invoices' numbers came with the look-up); bexio issues the seven and reads the three adopted
#: ones (issued already) first.
AFTER_UNKNOWN_OUTCOMES = {"quickbooks": 1 + 1 + 7, "bexio": 1 + 1 + 7 + 7 + 3}


def _outcomes_lost(app, connection_id: int, invoice_ids: list[int]) -> None:
    """Leave these invoices' records as a run leaves them that died before its commit: pending after one attempt.

    The ledger has the ones that run created; our records do not say so.
    """
    from portal.extensions import db
    from portal.models import Connection, ExternalRecord, Invoice, RecordKind, RecordState
    from portal.sync import push

    with app.app_context():
        connection = db.session.get_one(Connection, connection_id)
        for invoice_id in invoice_ids:
            invoice = db.session.get_one(Invoice, invoice_id)
            record = push.record_for(connection, RecordKind.invoice, invoice_id)
            record.state, record.attempts, record.reference = RecordState.pending, 1, invoice.number
            record.external_id = record.external_number = record.pdf_state = record.finalize_state = None
            record.finalized_at = record.sent_at = None
        db.session.commit()
        pending = db.select(db.func.count()).where(
            ExternalRecord.connection_id == connection_id, ExternalRecord.state == RecordState.pending
        )
        assert db.session.scalar(pending) == len(invoice_ids)


@pytest.mark.parametrize("provider", ["quickbooks", "bexio"])
def test_invoices_whose_outcome_is_unknown_are_looked_up_with_one_call_and_adopted(
    app, sandbox, connect, make_invoice, provider
):
    connection_id = connect(provider)
    invoices = [make_invoice() for _ in range(3)]
    status, counts, message = run_push(app, connection_id)  # these three (and the customer) go in
    assert counts.get("pushed") == 3, message
    invoices += [make_invoice() for _ in range(N - 3)]
    # A run took all ten, created the first three and died before its commit.
    _outcomes_lost(app, connection_id, [invoice_id for invoice_id, _ in invoices])
    sandbox_post(sandbox, "quotas", {})
    logged_after = _last_log_id(app)

    status, counts, message = run_push(app, connection_id)

    assert (status, counts.get("pushed")) == ("succeeded", N), (counts, message)
    for _, number in invoices:
        assert len(ledger_documents(sandbox, provider, number)) == 1, number
    calls, breakdown = _served(sandbox, provider), _logged(app, connection_id, logged_after)
    print(f"\n{provider} after unknown outcomes: {calls} calls for {N} invoices: {dict(breakdown)}")
    # One look-up for the ten, three adopted, seven created.
    assert sum(n for call, n in breakdown.items() if call.endswith(LOOK_UP[provider])) == 1, breakdown
    assert calls == sum(breakdown.values()) <= AFTER_UNKNOWN_OUTCOMES[provider], breakdown
