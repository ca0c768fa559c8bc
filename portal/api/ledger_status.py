"""Where the SaaS's documents are in the ledger ("number back"), scope ``ingest``.

``GET /api/v1/organizations/<org>/invoices/<id>`` and ``…/credit-notes/<id>`` answer the document
as the ingestion API shows it, plus ``ledger``: the push's state, the ledger's number and id,
the error in plain words, the PDF and sending steps and the payment state. A document of a
connection that has not gone live yet (dated from its connection date) is ``waiting``, ``error``
saying why; a document held before any ledger call (needs action) has its hold in ``error``: the
cause and the fix. ``ledger`` is null while the business unit has no connection or the document
was never looked at by a push of a live one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..extensions import db
from ..integrations import specs
from ..models import Connection, ConnectionStatus, CreditNote, ExternalRecord, Invoice, RecordKind, RecordState
from .auth import api_key_required
from .blueprint import bp
from .ingest import ORG, Refused, _by_external_id, _organization, credit_note_json, invoice_json


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _record(kind: RecordKind, local_id: int, business_unit_id: int) -> ExternalRecord | None:
    """Return the record of the business unit's live connection, else its latest one."""
    stmt = (
        select(ExternalRecord)
        .join(Connection, Connection.id == ExternalRecord.connection_id)
        .where(
            ExternalRecord.kind == kind,
            ExternalRecord.local_id == local_id,
            Connection.business_unit_id == business_unit_id,
        )
        .order_by(Connection.disconnected_at.is_not(None), ExternalRecord.id.desc())
    )
    return db.session.scalar(stmt.limit(1))


def _unit_connection(business_unit_id: int) -> Connection | None:
    """Return the business unit's connection (not disconnected), the newest if there are several."""
    stmt = (
        select(Connection)
        .where(Connection.business_unit_id == business_unit_id, Connection.status != ConnectionStatus.disconnected)
        .order_by(Connection.id.desc())
    )
    return db.session.scalar(stmt.limit(1))


def not_live_words(connection: Connection) -> str:
    """Return why a document of a connection that has not gone live waits, in the words of the API."""
    name = specs.get_spec(connection.provider).name
    return (
        f"The connection to {name} is not live yet: nothing is pushed automatically until support takes it live "
        "on its checklist."
    )


def _waits_for_go_live(connection: Connection, document: Invoice | CreditNote) -> bool:
    return connection.is_live and not connection.went_live and document.issue_date >= connection.sync_from.date()


def ledger_json(
    record: ExternalRecord | None,
    invoice: Invoice | None = None,
    *,
    document: Invoice | CreditNote | None = None,
) -> dict[str, Any] | None:
    """Return the ledger side of a document: state, number, id, error, PDF, sending and payment state.

    ``waiting`` (``error`` saying why) for a document that waits for its connection's go-live,
    pushed by nothing yet; the document is ``invoice`` or ``document``.
    """
    document = invoice if invoice is not None else document
    connection = record.connection if record is not None else None
    if connection is None and document is not None:
        connection = _unit_connection(document.business_unit_id)
    if connection is None:
        return None
    waits = (
        document is not None
        and (record is None or record.state is RecordState.pending)
        and _waits_for_go_live(connection, document)
    )
    if record is None and not waits:
        return None
    data: dict[str, Any] = {
        "provider": connection.provider,
        "ledger": specs.get_spec(connection.provider).name,
        # "differs": in the ledger, but with totals other than the SaaS's (never plain "pushed").
        "state": "waiting" if waits or record is None else record.state_label,
        "number": record.external_number if record is not None else None,
        "external_id": record.external_id if record is not None else None,
        "error": not_live_words(connection)
        if waits or record is None
        else (record.last_error_text if record.state is not RecordState.pushed else None),
        "pushed_at": _iso(record.pushed_at) if record is not None else None,
    }
    if record is not None and record.state is RecordState.dismissed:
        data["resolution"] = record.resolution.value if record.resolution else None
    if invoice is not None:
        data["pdf"] = {
            "state": record.pdf_state.value if record is not None and record.pdf_state else None,
            "attachment_id": record.pdf_attachment_id if record is not None else None,
            "error": record.pdf_error if record is not None else None,
        }
        data["finalized_at"] = _iso(record.finalized_at) if record is not None else None
        data["sent"] = {
            "state": record.finalize_state.value if record is not None and record.finalize_state else None,
            "sent_at": _iso(record.sent_at) if record is not None else None,
            "error": record.finalize_error if record is not None else None,
        }
        data["paid_status"] = invoice.status.value
        data["amount_paid"] = str(invoice.amount_paid)
    return data


@bp.get(ORG + "/invoices/<external_id>")
@api_key_required("ingest")
def show_invoice(org_id: str, external_id: str):
    invoice = _by_external_id(Invoice, _organization(org_id), external_id)
    if invoice is None:
        raise Refused(404, f"There is no invoice with id {external_id!r}.")
    record = _record(RecordKind.invoice, invoice.id, invoice.business_unit_id)
    return {**invoice_json(invoice), "ledger": ledger_json(record, invoice)}


@bp.get(ORG + "/credit-notes/<external_id>")
@api_key_required("ingest")
def show_credit_note(org_id: str, external_id: str):
    note = _by_external_id(CreditNote, _organization(org_id), external_id)
    if note is None:
        raise Refused(404, f"There is no credit note with id {external_id!r}.")
    record = _record(RecordKind.credit_note, note.id, note.business_unit_id)
    return {**credit_note_json(note), "ledger": ledger_json(record, document=note)}
