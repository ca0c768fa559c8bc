"""What ops does to records and connections: re-sync, retry, dismiss, pause and resume.

Each action goes through the models' transition functions, writes an AuditEvent, and is safe to
repeat: a record already pending, a connection already paused, a dismissal of a record already
dismissed change nothing and write nothing. Records move to pending and the connection's push is
enqueued (:func:`portal.sync.schedule.enqueue_push`, one job per connection); a paused connection,
one waiting for re-authorization or one not live yet keeps its records pending until it is resumed,
reconnected or taken live.

``enqueue_push`` commits (its SyncRun must exist before a worker looks for it), so an action that
enqueues also commits the changes made before it; the others leave the commit to the caller.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Select, select
from sqlalchemy.orm import joinedload

from .. import audit
from ..connections import vault
from ..database import utcnow
from ..extensions import db
from ..integrations.base import LedgerError, NotSent
from ..models import Connection, ConnectionStatus, ExternalRecord, Invoice, RecordKind, RecordState, StaffUser
from ..models.external_record import FinalizeState, Resolution
from . import push, schedule

#: States a person may send back to the push.
RETRYABLE = frozenset({RecordState.failed, RecordState.needs_action, RecordState.skipped, RecordState.dismissed})
#: States a person may dismiss (take off the lists).
DISMISSABLE = frozenset({RecordState.failed, RecordState.needs_action, RecordState.skipped})
#: Connections that may be paused.
PAUSABLE = frozenset({ConnectionStatus.connected, ConnectionStatus.failing, ConnectionStatus.needs_reauthorization})
#: A note is kept with the record and the audit event; longer ones are refused.
MAX_NOTE = 1000


class ActionError(Exception):
    """An action that cannot be done; the message says what to do instead."""


@dataclass
class Outcome:
    """What a bulk action did."""

    #: Records (or connections) that changed.
    changed: list[int] = field(default_factory=list)
    #: Records already where the action would put them.
    unchanged: list[int] = field(default_factory=list)
    #: Records the action does not apply to (e.g. already pushed), by id, with the reason.
    refused: dict[int, str] = field(default_factory=dict)
    #: Connections whose push was enqueued.
    enqueued: list[int] = field(default_factory=list)
    #: Connections whose records wait (paused, needs re-authorization, or a push already queued).
    waiting: dict[int, str] = field(default_factory=dict)

    def summary(self, noun: str = "record") -> str:
        """Return the outcome in one sentence for a flash message."""

        def n(count: int, what: str = noun) -> str:
            return f"{count} {what}{'' if count == 1 else 's'}"

        parts = [f"{n(len(self.changed))} changed"]
        if self.unchanged:
            parts.append(f"{n(len(self.unchanged))} already done")
        if self.refused:
            parts.append(f"{n(len(self.refused))} left alone ({'; '.join(sorted(set(self.refused.values())))})")
        if self.enqueued:
            parts.append(f"a push was queued for {n(len(self.enqueued), 'connection')}")
        if self.waiting:
            parts.append("; ".join(sorted(set(self.waiting.values()))))
        return ", ".join(parts) + "."


def _actor_label(actor: StaffUser | None) -> str | None:
    return actor.email if actor is not None else None


def _organization_id(connection: Connection) -> int | None:
    return connection.business_unit.organization_id if connection.business_unit is not None else None


def _push(connection: Connection, outcome: Outcome, reason: str) -> None:
    """Enqueue the connection's push when it is scheduled; otherwise say why its records wait."""
    if connection.status in schedule.SCHEDULED_STATUSES and not connection.went_live:
        outcome.waiting[connection.id] = f"{connection.company_label} is {schedule.NOT_LIVE_WORDS}"
        return
    if connection.status not in schedule.SCHEDULED_STATUSES:
        outcome.waiting[connection.id] = (
            f"{connection.company_label} is {connection.status.label.lower()}: its records wait until it is "
            + ("resumed" if connection.status is ConnectionStatus.paused else "connected again")
        )
        return
    run = schedule.enqueue_push(connection, reason=reason)
    if run is None:
        outcome.waiting[connection.id] = "a push already queued takes the records"
    else:
        outcome.enqueued.append(connection.id)


def _records(records: Iterable[ExternalRecord] | Select) -> list[ExternalRecord]:
    if isinstance(records, Select):
        return list(db.session.scalars(records.options(joinedload(ExternalRecord.connection))).unique())
    return list(records)


def retry_failed(records: Iterable[ExternalRecord] | Select, actor: StaffUser | None) -> Outcome:
    """Send held records (failed, needs action, skipped, dismissed) back to the push; enqueue their connections.

    Pending records are left as they are (already on their way); pushed ones are refused.
    One audit event per connection lists the records it moved.
    """
    outcome = Outcome()
    moved: dict[int, list[ExternalRecord]] = defaultdict(list)
    connections: dict[int, Connection] = {}
    before: dict[int, str] = {}
    for record in _records(records):
        if record.state is RecordState.pending:
            outcome.unchanged.append(record.id)
            continue
        if record.state not in RETRYABLE:
            outcome.refused[record.id] = f"{record.state.value} records are in the ledger already"
            continue
        if record.unsupported_by_ledger:
            outcome.refused[record.id] = "the ledger cannot take them: they are done by hand in the ledger"
            continue
        before[record.id] = record.state.value
        record.transition(RecordState.pending)
        moved[record.connection_id].append(record)
        connections[record.connection_id] = record.connection
        outcome.changed.append(record.id)
    for connection_id, changed in moved.items():
        connection = connections[connection_id]
        ids = [r.id for r in changed]
        audit.record(
            "record.retry",
            subject_type="Connection",
            subject_id=connection_id,
            organization_id=_organization_id(connection),
            summary=f"Sent {len(ids)} held record(s) of {connection.company_label} back to the push.",
            before={"records": {str(r.id): before[r.id] for r in changed[:200]}},
            after={"state": RecordState.pending.value, "records": ids[:200]},
            actor_label=_actor_label(actor),
        )
    db.session.flush()
    for connection_id in moved:
        _push(connections[connection_id], outcome, "Retry of held records.")
    return outcome


def resync_record(record: ExternalRecord, actor: StaffUser | None) -> Outcome:
    """Send one held record back to the push and enqueue its connection.

    :raise ActionError: when the record is in the ledger already (pushing again would duplicate it), or
        its ledger cannot take it at all (a re-sync would only skip it again).
    """
    what = record.kind.value.replace("_", " ")
    if record.state is RecordState.pushed:
        raise ActionError(
            f"This {what} is in the ledger already "
            f"({record.external_number or record.external_id}); pushing it again would create a second one."
        )
    if record.unsupported_by_ledger:
        raise ActionError(
            f"This {what} cannot be re-synced: the ledger does not accept {what}s through its API, so a "
            "re-sync would skip it again. Create it by hand in the ledger as the record's error explains, "
            "then mark the record resolved."
        )
    return retry_failed([record], actor)


def resync_connection(connection: Connection, actor: StaffUser | None, *, failed_only: bool) -> Outcome:
    """Send a connection's failed records (or every held, not dismissed record) back to its push.

    Without held records the push is still enqueued: it picks up everything due.

    :raise ActionError: when the connection is disconnected.
    """
    if not connection.is_live:
        raise ActionError(f"{connection.company_label} is disconnected; connect the business unit again first.")
    states = (
        [RecordState.failed] if failed_only else [RecordState.failed, RecordState.needs_action, RecordState.skipped]
    )
    stmt = (
        select(ExternalRecord)
        .where(ExternalRecord.connection_id == connection.id, ExternalRecord.state.in_(states))
        .order_by(ExternalRecord.id)
    )
    outcome = retry_failed(stmt, actor)
    if not outcome.changed:
        audit.record(
            "connection.resync",
            subject_type="Connection",
            subject_id=connection.id,
            organization_id=_organization_id(connection),
            summary=f"Re-sync of {connection.company_label} requested (nothing held).",
            actor_label=_actor_label(actor),
        )
        _push(connection, outcome, "Re-sync requested by ops.")
    return outcome


def dismiss(
    records: Iterable[ExternalRecord] | Select, actor: StaffUser | None, resolution: Resolution | str, note: str
) -> Outcome:
    """Take held records off the lists as resolved by hand or ignored, with the reason.

    :raise ActionError: without a reason, with an unknown resolution or a note that is too long.
    """
    note = (note or "").strip()
    if not note:
        raise ActionError("Say why: a reason is required to mark records resolved or ignored.")
    if len(note) > MAX_NOTE:
        raise ActionError(f"The reason may have at most {MAX_NOTE} characters (it has {len(note)}).")
    try:
        resolution = Resolution(resolution)
    except ValueError:
        allowed = ", ".join(r.value for r in Resolution)
        raise ActionError(f"resolution must be one of {allowed}, not {resolution!r}.") from None
    outcome = Outcome()
    by_connection: dict[int, list[ExternalRecord]] = defaultdict(list)
    before: dict[int, str] = {}
    for record in _records(records):
        if record.state is RecordState.dismissed and record.resolution is resolution:
            outcome.unchanged.append(record.id)
            continue
        if record.state not in DISMISSABLE:
            outcome.refused[record.id] = f"{record.state.value} records cannot be dismissed"
            continue
        before[record.id] = record.state.value
        record.transition(RecordState.dismissed, resolution=resolution, note=note, by=actor)
        by_connection[record.connection_id].append(record)
        outcome.changed.append(record.id)
    words = "resolved by hand" if resolution is Resolution.resolved_manually else "ignored"
    for changed in by_connection.values():
        connection = changed[0].connection
        ids = [r.id for r in changed]
        audit.record(
            "record.dismiss",
            subject_type="Connection",
            subject_id=connection.id,
            organization_id=_organization_id(connection),
            summary=f"Marked {len(ids)} record(s) of {connection.company_label} {words}: {note}",
            before={"records": {str(r.id): before[r.id] for r in changed[:200]}},
            after={"state": "dismissed", "resolution": resolution.value, "note": note, "records": ids[:200]},
            actor_label=_actor_label(actor),
        )
    db.session.flush()
    return outcome


def pause(connection: Connection, actor: StaffUser | None, reason: str) -> bool:
    """Stop the scheduler from pushing the connection; return whether it changed.

    :raise ActionError: without a reason, or when the connection cannot be paused.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ActionError("Say why the connection is paused: a reason is required.")
    if len(reason) > MAX_NOTE:
        raise ActionError(f"The reason may have at most {MAX_NOTE} characters (it has {len(reason)}).")
    if connection.status is ConnectionStatus.paused:
        return False
    if connection.status not in PAUSABLE:
        raise ActionError(f"A {connection.status.label.lower()} connection cannot be paused.")
    before = connection.status.value
    connection.transition(ConnectionStatus.paused, f"Paused by {_actor_label(actor) or 'ops'}: {reason}")
    audit.record(
        "connection.pause",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=_organization_id(connection),
        summary=f"Paused {connection.company_label}: {reason}",
        before={"status": before},
        after={"status": connection.status.value, "reason": reason},
        actor_label=_actor_label(actor),
    )
    db.session.flush()
    return True


def resume(connection: Connection, actor: StaffUser | None) -> Outcome:
    """Let the scheduler push a paused connection again and enqueue its push at once.

    :raise ActionError: when the connection is neither paused nor connected.
    """
    outcome = Outcome()
    if connection.status is ConnectionStatus.connected:
        outcome.unchanged.append(connection.id)
        return outcome
    if connection.status is not ConnectionStatus.paused:
        raise ActionError(f"Only a paused connection can be resumed; this one is {connection.status.label.lower()}.")
    connection.transition(ConnectionStatus.connected, f"Resumed by {_actor_label(actor) or 'ops'}.")
    audit.record(
        "connection.resume",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=_organization_id(connection),
        summary=f"Resumed {connection.company_label}.",
        before={"status": ConnectionStatus.paused.value},
        after={"status": connection.status.value},
        actor_label=_actor_label(actor),
    )
    outcome.changed.append(connection.id)
    db.session.flush()
    _push(connection, outcome, "Resumed by ops.")
    return outcome


def send_again(record: ExternalRecord, actor: StaffUser | None) -> tuple[bool, str]:
    """Have the ledger e-mail an invoice it numbered without sending ("Send again"); return (sent, words).

    Sent only when the ledger's answer says so; otherwise the record stays "numbered, not
    e-mailed" with the ledger's new reason. Audited either way (flushed, not committed).

    :raise ActionError: when the record is not such an invoice, the connection is not live, or
        the ledger cannot be reached now (nothing changed: try again later).
    """
    if record.kind is not RecordKind.invoice or record.finalize_state is not FinalizeState.not_sent:
        raise ActionError("Only an invoice the ledger numbered but did not e-mail can be sent again.")
    connection = record.connection
    if not connection.is_live:
        raise ActionError(f"{connection.company_label} is disconnected; connect it again first.")
    invoice = db.session.get(Invoice, record.local_id)
    try:
        adapter = vault.fresh_adapter(connection)
        number = adapter.send_invoice(
            str(record.external_id),
            email=invoice.customer.email if invoice else None,
            message=push.email_message(connection),
        )
    except NotSent as exc:
        push.apply_not_sent(connection, record, exc)
        sent, words = False, record.finalize_error or ""
    except (LedgerError, vault.VaultError) as exc:
        if not isinstance(exc, LedgerError) or isinstance(exc, push.CONNECTION_ERRORS):
            raise ActionError(f"The ledger could not be reached ({exc}); nothing changed, try again later.") from exc
        record.finalize_error = push.explain(connection, exc)[1]
        sent, words = False, record.finalize_error
    else:
        record.finalize_state, record.finalize_error = FinalizeState.sent, None
        record.sent_at = utcnow()
        record.external_number = number or record.external_number
        sent, words = True, f"The ledger e-mailed invoice {record.external_number or record.external_id}."
    label = invoice.number if invoice is not None else f"#{record.local_id}"
    audit.record(
        "record.send_again",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=_organization_id(connection),
        summary=f"Send again of invoice {label} in {connection.company_label}: "
        + ("e-mailed by the ledger" if sent else f"not e-mailed ({words})"),
        after={"record": record.id, "finalize_state": record.finalize_state.value},
        actor_label=_actor_label(actor),
    )
    db.session.flush()
    return sent, words
