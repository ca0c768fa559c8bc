"""Where the SaaS's documents are in the ledger ("number back"), scope ``ingest``.

``GET /api/v1/organizations/<org>/invoices/<id>`` and ``…/credit-notes/<id>`` answer the document
as the ingestion API shows it, plus ``ledger``: the push's state, the ledger's number and id,
the error in plain words, the PDF and sending steps and the payment state. ``ledger`` is null
while the business unit has no connection or the document was never looked at by a push.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..extensions import db
from ..integrations import specs
from ..models import Connection, CreditNote, ExternalRecord, Invoice, RecordKind
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


def ledger_json(record: ExternalRecord | None, invoice: Invoice | None = None) -> dict[str, Any] | None:
    """Return the ledger side of a document: state, number, id, error, PDF, sending and payment state."""
    if record is None:
        return None
    connection = record.connection
    data: dict[str, Any] = {
        "provider": connection.provider,
        "ledger": specs.get_spec(connection.provider).name,
        # "differs": in the ledger, but with totals other than the SaaS's (never plain "pushed").
        "state": record.state_label,
        "number": record.external_number,
        "external_id": record.external_id,
        "error": record.last_error_text if record.state.value != "pushed" else None,
        "pushed_at": _iso(record.pushed_at),
    }
    if record.state.value == "dismissed":
        data["resolution"] = record.resolution.value if record.resolution else None
    if invoice is not None:
        data["pdf"] = {
            "state": record.pdf_state.value if record.pdf_state else None,
            "attachment_id": record.pdf_attachment_id,
            "error": record.pdf_error,
        }
        data["finalized_at"] = _iso(record.finalized_at)
        data["sent"] = {
            "state": record.finalize_state.value if record.finalize_state else None,
            "sent_at": _iso(record.sent_at),
            "error": record.finalize_error,
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
    return {**credit_note_json(note), "ledger": ledger_json(record)}
