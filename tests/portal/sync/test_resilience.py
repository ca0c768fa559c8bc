"""Crashes between steps, refused steps, provider outages with backoff, and lost grants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.portal.sync.conftest import PROVIDERS, fault, ledger_documents
from tests.portal.sync.test_pipeline import ingest_invoice, ledger_state, run_push, set_settings, times_sent

ADAPTERS = {
    "exact-online": "portal.integrations.exact_online.ExactOnlineAdapter",
    "quickbooks": "portal.integrations.quickbooks.QuickBooksAdapter",
    "bexio": "portal.integrations.bexio.BexioAdapter",
}


class WorkerDied(Exception):
    """Stands in for a worker killed at that point (nothing after it runs)."""


def adapter_class(provider: str):
    from portal.integrations.base import get_adapter_class

    return get_adapter_class(provider)


def crash_after(monkeypatch, provider: str, method: str) -> list:
    """Let ``method`` reach the ledger, then die before its answer is recorded; return the calls."""
    cls = adapter_class(provider)
    real = getattr(cls, method)
    calls = []

    def dying(self, *args, **kwargs):
        calls.append(args)
        real(self, *args, **kwargs)
        raise WorkerDied(f"killed after {method}")

    monkeypatch.setattr(cls, method, dying)
    return calls


def count_calls(monkeypatch, provider: str, method: str) -> list:
    cls = adapter_class(provider)
    real = getattr(cls, method)
    calls = []

    def counted(self, *args, **kwargs):
        calls.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, counted)
    return calls


def record_of(app, connection_id: int, number: str):
    from types import SimpleNamespace

    from portal.extensions import db
    from portal.models import ExternalRecord, Invoice, RecordKind

    with app.app_context():
        invoice = db.session.scalar(db.select(Invoice).filter_by(number=number))
        record = db.session.scalar(
            db.select(ExternalRecord).filter_by(
                connection_id=connection_id, kind=RecordKind.invoice, local_id=invoice.id
            )
        )
        return SimpleNamespace(**{c.key: getattr(record, c.key) for c in record.__table__.columns})


def connection_of(app, connection_id: int):
    from types import SimpleNamespace

    from portal.extensions import db
    from portal.models import Connection

    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        return SimpleNamespace(**{c.key: getattr(connection, c.key) for c in connection.__table__.columns})


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_crash_right_after_the_ledger_created_the_invoice_adopts_it_next_run(
    app, sandbox, connect, org_unit, api, monkeypatch, provider
):
    connection_id = connect(provider)
    _, number = ingest_invoice(app, api, org_unit)
    crash_after(monkeypatch, provider, "push_invoice")

    with pytest.raises(WorkerDied):
        run_push(app, connection_id)

    assert len(ledger_documents(sandbox, provider, number)) == 1
    assert record_of(app, connection_id, number).state.value == "pending"
    monkeypatch.undo()
    status, counts, message = run_push(app, connection_id)
    assert status == "succeeded" and counts["pushed"] == 1, message
    [document] = ledger_documents(sandbox, provider, number)
    assert record_of(app, connection_id, number).external_id == str(
        document.get("InvoiceID") or document.get("Id") or document.get("id")
    )


def test_a_crash_after_the_pdf_was_attached_attaches_nothing_twice(app, sandbox, connect, org_unit, api, monkeypatch):
    connection_id = connect("quickbooks")
    # Sent by QuickBooks, so that finalizing calls the ledger (an invoice only made final needs no call).
    set_settings(app, connection_id, sending_method="ledger", auto_send=True)
    _, number = ingest_invoice(app, api, org_unit)
    attached = count_calls(monkeypatch, "quickbooks", "attach_pdf")
    crash_after(monkeypatch, "quickbooks", "finalize_invoice")

    with pytest.raises(WorkerDied):
        run_push(app, connection_id)
    record = record_of(app, connection_id, number)
    assert (record.state.value, record.pdf_state.value, record.finalize_state) == ("pushed", "attached", None)
    monkeypatch.undo()
    attached_again = count_calls(monkeypatch, "quickbooks", "attach_pdf")

    status, counts, message = run_push(app, connection_id)

    # The run finishes the send (QuickBooks sees it sent already and does not send it twice).
    assert status == "succeeded" and counts == {"invoices": 0, "steps": 1, "sent": 1}, (counts, message)
    assert len(attached) == 1 and attached_again == []
    [document] = ledger_documents(sandbox, "quickbooks", number)
    attachables = ledger_state(sandbox, "quickbooks")["entities"].get("Attachable", [])
    mine = [a for a in attachables if any(r["EntityRef"]["value"] == document["Id"] for r in a["AttachableRef"])]
    assert len(mine) == 1
    assert record_of(app, connection_id, number).finalize_state.value == "sent"


@pytest.mark.parametrize("provider", ["quickbooks", "bexio"])
def test_a_crash_after_the_ledger_sent_the_invoice_sends_it_only_once(
    app, sandbox, connect, org_unit, api, monkeypatch, provider
):
    connection_id = connect(provider)
    set_settings(app, connection_id, sending_method="ledger", auto_send=True)
    _, number = ingest_invoice(app, api, org_unit)
    crash_after(monkeypatch, provider, "finalize_invoice")

    with pytest.raises(WorkerDied):
        run_push(app, connection_id)
    assert record_of(app, connection_id, number).sent_at is None  # the marker was never written
    monkeypatch.undo()
    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded" and counts.get("sent") == 1, (counts, message)
    [document] = ledger_documents(sandbox, provider, number)
    assert times_sent(sandbox, provider, document) == 1
    assert record_of(app, connection_id, number).sent_at is not None


def test_a_refused_attachment_keeps_the_invoice_pushed_and_is_tried_again_next_run(
    app, sandbox, connect, org_unit, api, monkeypatch
):
    from portal.integrations.base import Rejected

    connection_id = connect("quickbooks")
    _, number = ingest_invoice(app, api, org_unit)
    cls = adapter_class("quickbooks")

    def refuse(self, external_id, *, filename, content):
        raise Rejected(provider="quickbooks", status=400, provider_code="6000", provider_text="File is too large")

    monkeypatch.setattr(cls, "attach_pdf", refuse)
    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded" and counts["pushed"] == 1 and counts["pdf_failed"] == 1, (counts, message)
    record = record_of(app, connection_id, number)
    assert record.state.value == "pushed" and record.pdf_state.value == "failed"
    assert "File is too large" in record.pdf_error and record.finalize_state.value == "finalized"
    monkeypatch.undo()

    status, counts, message = run_push(app, connection_id)

    assert counts == {"invoices": 0, "steps": 1, "pdf_attached": 1}, message
    record = record_of(app, connection_id, number)
    assert record.pdf_state.value == "attached" and record.pdf_error is None and record.pdf_attachment_id


def _scheduled_retries(app, connection_id: int) -> list[datetime]:
    from rq.registry import ScheduledJobRegistry

    from portal.extensions import queue

    with app.app_context():
        registry = ScheduledJobRegistry(queue=queue.state.queues["sync"])
        return sorted(
            registry.get_scheduled_time(job_id)
            for job_id in registry.get_job_ids()
            if job_id.startswith(f"sync-{connection_id}-at-")
        )


def _time_passes(app, connection_id: int) -> None:
    """Bring every deferred record's next attempt to now (as if its wait had passed)."""
    from portal.extensions import db
    from portal.models import ExternalRecord

    with app.app_context():
        db.session.execute(
            db.update(ExternalRecord)
            .where(ExternalRecord.connection_id == connection_id, ExternalRecord.next_attempt_at.is_not(None))
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
            .execution_options(synchronize_session=False)
        )
        db.session.commit()


@pytest.mark.faults
def test_an_outage_backs_off_exponentially_marks_the_connection_failing_and_recovers(
    app, sandbox, connect, org_unit, api
):
    from portal.sync import deferral

    connection_id = connect("bexio")
    set_settings(app, connection_id, sync_delay_minutes=0)  # due at once for the tick below
    fault(sandbox, provider="bexio", kind="error_rate", rate=1.0, status=503)

    waits, numbers = [], []
    for _ in range(3):
        # The ledger is down: a run stops after STOP_AFTER outages in a row (each run has new invoices due).
        numbers += [ingest_invoice(app, api, org_unit)[1] for _ in range(deferral.STOP_AFTER)]
        before = datetime.now(UTC)
        status, counts, message = run_push(app, connection_id)
        assert status == "succeeded" and counts["pending"] >= 1 and "unavailable" in message, message
        retries = _scheduled_retries(app, connection_id)
        assert len(retries) == 1, "one scheduled retry per connection at most"
        waits.append(round((retries[-1] - before).total_seconds() / 60))

    assert waits == [1, 2, 4]
    assert {record_of(app, connection_id, n).state.value for n in numbers} == {"pending"}
    connection = connection_of(app, connection_id)
    assert connection.status.value == "failing" and "3 pushes in a row" in connection.status_reason
    with app.app_context():
        from portal.sync import schedule

        assert schedule.tick().backing_off == [connection_id], "the tick honours the backoff"
    requests.delete(f"{sandbox}/_control/faults", timeout=10).raise_for_status()
    _time_passes(app, connection_id)

    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded" and counts["pushed"] == len(numbers), message
    connection = connection_of(app, connection_id)
    assert connection.status.value == "connected" and connection.last_success_at is not None
    with app.app_context():
        from portal.extensions import queue

        assert queue.connection.get(f"ledgerlink:sync-backoff:{connection_id}") is None
        assert not schedule.backing_off(connection_id)


@pytest.mark.faults
def test_an_outage_of_one_record_defers_it_and_the_run_goes_on_with_the_others(
    app, sandbox, connect, org_unit, api, monkeypatch
):
    connection_id = connect("quickbooks")
    numbers = [ingest_invoice(app, api, org_unit)[1] for _ in range(4)]
    run_push(app, connection_id)  # the customer first: the outage below hits an invoice
    more = [ingest_invoice(app, api, org_unit)[1] for _ in range(4)]
    # One invoice's create meets a 503 each time (also when the run goes over it at its end); the others go through.
    from portal.integrations.base import BatchItemResult, Unavailable

    cls = adapter_class("quickbooks")
    original = cls.push_invoice
    unlucky = more[1]

    def push_invoice(self, draft, **kwargs):
        if draft.number == unlucky:
            raise Unavailable(provider="quickbooks", status=503, provider_text="Service Unavailable")
        return original(self, draft, **kwargs)

    original_batch = cls.batch

    def batch(self, operations, **kwargs):
        """The four new invoices go in one batch call, whose answer for the unlucky one is an outage of its own."""
        theirs = [op for op in operations if op.payload.number != unlucky]
        answered = original_batch(self, theirs, **kwargs) if theirs else []
        outage = Unavailable(provider="quickbooks", status=503, provider_text="Service Unavailable")
        return answered + [BatchItemResult(op.id, error=outage) for op in operations if op not in theirs]

    monkeypatch.setattr(cls, "push_invoice", push_invoice)
    monkeypatch.setattr(cls, "batch", batch)

    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded", message
    assert counts["pushed"] == 3 and counts["pending"] == 2 and counts["deferred"] == 1, (counts, message)
    monkeypatch.undo()
    assert "deferred" in message
    pending = [n for n in more if record_of(app, connection_id, n).state.value == "pending"]
    assert pending == [unlucky]
    record = record_of(app, connection_id, unlucky)
    assert record.next_attempt_at is not None and record.next_attempt_at > datetime.now(UTC)
    assert len(_scheduled_retries(app, connection_id)) == 1, "the deferred record's retry is scheduled"
    # Not due until its own wait has passed; then the next run pushes it, once.
    status, counts, _ = run_push(app, connection_id)
    assert counts.get("pushed", 0) == 0
    _time_passes(app, connection_id)
    status, counts, message = run_push(app, connection_id)
    assert counts["pushed"] == 1, message
    for number in numbers + more:
        assert len(ledger_documents(sandbox, "quickbooks", number)) == 1, number


@pytest.mark.faults
def test_a_passing_outage_of_one_record_costs_no_wait_the_run_goes_over_it_at_its_end(
    app, sandbox, connect, org_unit, api
):
    connection_id = connect("bexio")
    run_push(app, connection_id)
    numbers = [ingest_invoice(app, api, org_unit)[1] for _ in range(3)]
    fault(
        sandbox,
        provider="bexio",
        kind="error_rate",
        rate=1.0,
        status=502,
        count=1,
        methods=["POST"],
        path_pattern="/kb_invoice$",
    )

    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded" and counts["pushed"] == 3, (counts, message)
    assert "deferred" not in counts and _scheduled_retries(app, connection_id) == []
    for number in numbers:
        assert len(ledger_documents(sandbox, "bexio", number)) == 1, number


@pytest.mark.faults
def test_a_rate_limit_reschedules_at_the_reset_and_fails_no_record(app, sandbox, connect, org_unit, api):
    connection_id = connect("quickbooks")
    _, number = ingest_invoice(app, api, org_unit)
    fault(sandbox, provider="quickbooks", kind="rate_limit_storm", seconds=30)

    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded" and counts.get("rate_limited") == 1 and "failed" not in counts, message
    assert record_of(app, connection_id, number).state.value == "pending"
    [retry] = _scheduled_retries(app, connection_id)
    assert datetime.now(UTC) < retry <= datetime.now(UTC) + timedelta(minutes=2)
    assert connection_of(app, connection_id).status.value == "connected"


def test_a_lost_grant_moves_the_connection_to_needs_reauthorization(app, sandbox, connect, org_unit, api):
    from tests.portal.mappings.conftest import control

    connection_id = connect("bexio")
    _, number = ingest_invoice(app, api, org_unit)
    control(sandbox, "bexio/revoke_tokens", {})

    status, _, message = run_push(app, connection_id)

    assert status == "succeeded" and "Reconnect" in message, message
    assert record_of(app, connection_id, number).state.value == "pending"
    connection = connection_of(app, connection_id)
    assert connection.status.value == "needs_reauthorization" and connection.status_reason
    with app.app_context():
        from portal.extensions import db
        from portal.models import AuditEvent

        kinds = db.session.scalars(
            db.select(AuditEvent.kind).where(
                AuditEvent.subject_type == "Connection", AuditEvent.subject_id == connection_id
            )
        ).all()
    assert "connection.needs_reauthorization" in kinds
