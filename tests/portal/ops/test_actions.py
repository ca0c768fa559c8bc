"""Ops actions on records and connections: state moves, audit events, pushes enqueued, safe to repeat."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.extensions import db as _db
from portal.models import (
    AuditEvent,
    Connection,
    ConnectionStatus,
    ExternalRecord,
    RecordState,
    StaffUser,
    SyncRun,
)
from portal.sync import actions


def _audits(kind: str) -> list[AuditEvent]:
    return list(_db.session.scalars(select(AuditEvent).where(AuditEvent.kind == kind).order_by(AuditEvent.id)))


def _runs() -> list[SyncRun]:
    return list(_db.session.scalars(select(SyncRun).order_by(SyncRun.id)))


@pytest.fixture
def actor(db, ops_user):
    return db.session.get(StaffUser, ops_user["id"])


def test_resync_record_moves_it_to_pending_audits_and_enqueues_one_push(db, world, actor):
    cid = world.connection()
    rid = world.record(cid, "failed")
    record = db.session.get(ExternalRecord, rid)

    outcome = actions.resync_record(record, actor)
    db.session.commit()

    assert record.state is RecordState.pending
    assert outcome.changed == [rid] and outcome.enqueued == [cid]
    (event,) = _audits("record.retry")
    assert event.subject_id == cid and event.actor_label == actor.email
    assert event.before == {"records": {str(rid): "failed"}} and event.after["records"] == [rid]
    (run,) = _runs()
    assert run.parameters == {"connection_id": cid} and run.rq_job_id == f"sync-{cid}"

    again = actions.resync_record(record, actor)
    db.session.commit()
    assert again.changed == [] and again.unchanged == [rid]
    assert len(_audits("record.retry")) == 1 and len(_runs()) == 1


def test_resync_of_a_pushed_record_is_refused_with_the_reason(db, world, actor):
    cid = world.connection()
    record = db.session.get(ExternalRecord, world.record(cid, "pushed"))
    with pytest.raises(actions.ActionError, match="in the ledger already"):
        actions.resync_record(record, actor)
    assert record.state is RecordState.pushed and _runs() == []


def test_records_of_a_paused_connection_wait_without_a_push(db, world, actor):
    cid = world.connection(status="paused")
    record = db.session.get(ExternalRecord, world.record(cid, "needs_action"))
    outcome = actions.resync_record(record, actor)
    db.session.commit()
    assert record.state is RecordState.pending
    assert outcome.enqueued == [] and "resumed" in outcome.waiting[cid]
    assert _runs() == []


def test_bulk_retry_audits_once_per_connection_and_refuses_pushed(db, world, actor):
    a, b = world.connection(), world.connection("quickbooks")
    ids = [world.record(a), world.record(a, "skipped"), world.record(b, "needs_action"), world.record(b, "pushed")]
    outcome = actions.retry_failed(select(ExternalRecord).where(ExternalRecord.id.in_(ids)), actor)
    db.session.commit()
    assert sorted(outcome.changed) == sorted(ids[:3])
    assert list(outcome.refused) == [ids[3]]
    assert sorted(outcome.enqueued) == sorted([a, b])
    assert sorted(e.subject_id for e in _audits("record.retry")) == sorted([a, b])
    assert "2 connections" in outcome.summary() and "1 record left alone" in outcome.summary()


def test_resync_connection_failed_only_leaves_other_held_records(db, world, actor):
    cid = world.connection()
    failed, held, skipped = world.record(cid), world.record(cid, "needs_action"), world.record(cid, "skipped")
    connection = db.session.get(Connection, cid)
    actions.resync_connection(connection, actor, failed_only=True)
    db.session.commit()
    states = {r.id: r.state for r in db.session.scalars(select(ExternalRecord))}
    assert states == {failed: RecordState.pending, held: RecordState.needs_action, skipped: RecordState.skipped}

    actions.resync_connection(connection, actor, failed_only=False)
    db.session.commit()
    assert {r.state for r in db.session.scalars(select(ExternalRecord))} == {RecordState.pending}


def test_resync_connection_without_held_records_still_enqueues_and_audits(db, world, actor):
    cid = world.connection()
    outcome = actions.resync_connection(db.session.get(Connection, cid), actor, failed_only=False)
    db.session.commit()
    assert outcome.enqueued == [cid]
    assert [e.subject_id for e in _audits("connection.resync")] == [cid]


def test_resync_of_a_disconnected_connection_is_refused(db, world, actor):
    cid = world.connection(status="disconnected")
    with pytest.raises(actions.ActionError, match="disconnected"):
        actions.resync_connection(db.session.get(Connection, cid), actor, failed_only=True)


def test_dismiss_needs_a_reason_and_a_known_resolution(db, world, actor):
    cid = world.connection()
    record = db.session.get(ExternalRecord, world.record(cid))
    with pytest.raises(actions.ActionError, match="reason is required"):
        actions.dismiss([record], actor, "ignored", "   ")
    with pytest.raises(actions.ActionError, match="resolution must be one of"):
        actions.dismiss([record], actor, "deleted", "done")
    with pytest.raises(actions.ActionError, match="at most 1000"):
        actions.dismiss([record], actor, "ignored", "x" * 1001)
    assert record.state is RecordState.failed and _audits("record.dismiss") == []


def test_dismiss_records_who_why_and_is_idempotent_then_retry_brings_it_back(db, world, actor):
    cid = world.connection()
    rid, pushed = world.record(cid), world.record(cid, "pushed")
    records = [db.session.get(ExternalRecord, rid), db.session.get(ExternalRecord, pushed)]

    outcome = actions.dismiss(records, actor, "resolved_manually", "Booked by hand as 2026-0042")
    db.session.commit()
    record = records[0]
    assert outcome.changed == [rid] and list(outcome.refused) == [pushed]
    assert record.state is RecordState.dismissed and record.resolution.value == "resolved_manually"
    assert record.resolution_note == "Booked by hand as 2026-0042" and record.resolved_by_id == actor.id
    (event,) = _audits("record.dismiss")
    assert "Booked by hand as 2026-0042" in event.summary and event.after["resolution"] == "resolved_manually"

    assert actions.dismiss([record], actor, "resolved_manually", "again").unchanged == [rid]
    assert len(_audits("record.dismiss")) == 1

    actions.retry_failed([record], actor)
    db.session.commit()
    assert record.state is RecordState.pending and record.resolution is None


def test_pause_needs_a_reason_is_audited_and_repeats_safely(db, world, actor):
    cid = world.connection(status="failing")
    connection = db.session.get(Connection, cid)
    with pytest.raises(actions.ActionError, match="reason is required"):
        actions.pause(connection, actor, "")
    assert actions.pause(connection, actor, "Customer migrating their ledger") is True
    db.session.commit()
    assert connection.status is ConnectionStatus.paused
    assert "Customer migrating their ledger" in connection.status_reason
    assert actions.pause(connection, actor, "again") is False
    (event,) = _audits("connection.pause")
    assert event.before == {"status": "failing"} and event.after["status"] == "paused"


def test_pause_of_a_disconnected_connection_is_refused(db, world, actor):
    connection = db.session.get(Connection, world.connection(status="disconnected"))
    with pytest.raises(actions.ActionError, match="cannot be paused"):
        actions.pause(connection, actor, "why not")


def test_resume_connects_enqueues_a_push_and_repeats_safely(db, world, actor):
    cid = world.connection(status="paused")
    connection = db.session.get(Connection, cid)
    outcome = actions.resume(connection, actor)
    db.session.commit()
    assert connection.status is ConnectionStatus.connected and outcome.enqueued == [cid]
    assert len(_audits("connection.resume")) == 1 and len(_runs()) == 1
    assert actions.resume(connection, actor).unchanged == [cid]
    assert len(_audits("connection.resume")) == 1 and len(_runs()) == 1


def test_resume_refuses_a_connection_that_is_not_paused(db, world, actor):
    connection = db.session.get(Connection, world.connection(status="needs_reauthorization"))
    with pytest.raises(actions.ActionError, match="Only a paused connection"):
        actions.resume(connection, actor)
    assert db.session.scalar(select(func.count()).select_from(SyncRun)) == 0
