"""A back-fill's range and its settings: the scope a person asks for, read in chunks of ids."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import current_app, has_request_context, url_for
from sqlalchemy import select, union
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import (
    Connection,
    CreditNote,
    Customer,
    ExternalRecord,
    Invoice,
    Payment,
    RecordKind,
)
from ..models.history import BACKFILL_KINDS

JOB = "jobs.history.run_backfill"
QUEUE = "history"
#: Records per chunk: one cursor commit and one session clear each.
DEFAULT_CHUNK = 100
#: Part of every quota window a back-fill may use; live syncs keep the rest.
DEFAULT_SHARE = 0.5
#: Longest range one back-fill may cover.
MAX_DAYS = 366 * 10
#: Blocked records listed by a preview (the counts cover all of them).
PREVIEW_LIST_LIMIT = 200
KIND_LABELS = {"customer": "Customers", "invoice": "Invoices", "credit_note": "Credit notes", "payment": "Payments"}


class HistoryError(Exception):
    """A back-fill request that cannot be carried out, with what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def chunk_size() -> int:
    """Return the configured chunk size."""
    return int(current_app.config.get("HISTORY_CHUNK_SIZE", DEFAULT_CHUNK))


def quota_share() -> float:
    """Return the configured share of each quota window a back-fill may use."""
    return float(current_app.config.get("HISTORY_QUOTA_SHARE", DEFAULT_SHARE))


def page_url(endpoint: str, **values: Any) -> str:
    if has_request_context():
        return url_for(endpoint, **values)
    with current_app.test_request_context():
        return url_for(endpoint, **values)


# -- the request ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What to back-fill: a connection, an inclusive range of document dates, and kinds."""

    connection_id: int
    date_from: date
    date_to: date
    kinds: tuple[str, ...]


def parse_scope(connection: Connection, date_from: Any, date_to: Any, kinds: Any = None) -> Scope:
    """Check a back-fill request and return its scope.

    :raise HistoryError: with what to change, for dates that are not YYYY-MM-DD, a reversed or
        too long range, an unknown kind, or a connection that cannot push.
    """
    if not connection.is_live:
        raise HistoryError(f"Connection {connection.id} is disconnected: connect the business unit anew first.")
    if not connection.external_company_id:
        raise HistoryError(f"Connection {connection.id} has no company pinned yet: pick one first.")

    def as_date(value: Any, name: str) -> date:
        if isinstance(value, date):
            return value
        raw = str(value or "").strip()
        if not raw:
            raise HistoryError(f"Give the {name} date of the range, written as YYYY-MM-DD.")
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise HistoryError(f"The {name} date must be written as YYYY-MM-DD, not {raw!r}.") from None

    start, end = as_date(date_from, "from"), as_date(date_to, "to")
    if start > end:
        raise HistoryError(f"The range starts after it ends ({start} to {end}): swap the dates.")
    if (end - start).days > MAX_DAYS:
        raise HistoryError(f"The range covers {(end - start).days:,} days; back-fill at most {MAX_DAYS:,} at once.")
    if isinstance(kinds, str):
        kinds = [k for k in kinds.replace(",", " ").split() if k]
    chosen = [k.replace("-", "_") for k in (kinds or BACKFILL_KINDS)]
    unknown = [k for k in chosen if k not in BACKFILL_KINDS]
    if unknown:
        raise HistoryError(f"Unknown kind(s) {', '.join(unknown)}: choose from {', '.join(BACKFILL_KINDS)}.")
    if not chosen:
        raise HistoryError("Choose at least one kind to back-fill.")
    return Scope(connection.id, start, end, tuple(k for k in BACKFILL_KINDS if k in chosen))


# -- reading the range in chunks ------------------------------------------------------------------


def id_query(connection: Connection, kind: str, start: date, end: date):
    unit = connection.business_unit_id
    if kind == "invoice":
        return select(Invoice.id.label("id")).where(
            Invoice.business_unit_id == unit, Invoice.issue_date >= start, Invoice.issue_date <= end
        )
    if kind == "credit_note":
        return select(CreditNote.id.label("id")).where(
            CreditNote.business_unit_id == unit, CreditNote.issue_date >= start, CreditNote.issue_date <= end
        )
    if kind == "payment":
        return (
            select(Payment.id.label("id"))
            .join(Invoice, Invoice.id == Payment.invoice_id)
            .where(Invoice.business_unit_id == unit, Invoice.issue_date >= start, Invoice.issue_date <= end)
        )
    # Customers: those addressed by an invoice or credit note of the range.
    of_invoices = select(Invoice.customer_id.label("id")).where(
        Invoice.business_unit_id == unit, Invoice.issue_date >= start, Invoice.issue_date <= end
    )
    of_notes = select(CreditNote.customer_id.label("id")).where(
        CreditNote.business_unit_id == unit, CreditNote.issue_date >= start, CreditNote.issue_date <= end
    )
    return select(union(of_invoices, of_notes).subquery().c.id.label("id"))


def next_ids(connection: Connection, kind: str, start: date, end: date, *, after: int, limit: int) -> list[int]:
    """Return the next ``limit`` ids of ``kind`` in the range after id ``after`` (keyset pagination)."""
    sub = id_query(connection, kind, start, end).subquery()
    stmt = select(sub.c.id).where(sub.c.id > after).order_by(sub.c.id).limit(limit)
    return list(db.session.scalars(stmt))


_MODELS: dict[str, type[Customer | Invoice | CreditNote | Payment]] = {
    "customer": Customer,
    "invoice": Invoice,
    "credit_note": CreditNote,
    "payment": Payment,
}


def load(kind: str, ids: list[int]) -> list[Any]:
    """Return the records of ``kind`` with these ids, in id order, with what the push reads."""
    model = _MODELS[kind]
    stmt = select(model).where(model.id.in_(ids)).order_by(model.id)
    if issubclass(model, Invoice | CreditNote):  # the kinds "invoice" and "credit_note"
        stmt = stmt.options(selectinload(model.lines), selectinload(model.customer))
    if kind == "payment":
        stmt = stmt.options(selectinload(Payment.invoice))
    return list(db.session.scalars(stmt))


def records_of(connection: Connection, kind: str, ids: list[int]) -> dict[int, ExternalRecord]:
    stmt = select(ExternalRecord).where(
        ExternalRecord.connection_id == connection.id,
        ExternalRecord.kind == RecordKind(kind),
        ExternalRecord.local_id.in_(ids),
    )
    return {r.local_id: r for r in db.session.scalars(stmt)}


def label_of(kind: str, obj: Any) -> str:
    """Return a record as people know it."""
    if kind == "customer":
        return f"{obj.name} ({obj.external_id})"[:200]
    if kind == "payment":
        return f"Payment {obj.external_id} of {obj.amount} {obj.currency} on invoice {obj.invoice.number}"[:200]
    return obj.number


def date_of(kind: str, obj: Any) -> date | None:
    """Return the record's date for closed-period checks and the list."""
    if kind in ("invoice", "credit_note"):
        return obj.issue_date
    if kind == "payment":
        return obj.paid_on
    return None


def clear_session(*, keep: Connection) -> Connection:
    """Expunge every object of the session but the connection, and return the connection.

    The connection stays: the adapter's token updater reads it when a long back-fill outlives
    the access token and refreshes it.
    """
    for obj in list(db.session):
        if obj is not keep and obj in db.session:  # expunging cascades (an invoice takes its lines)
            db.session.expunge(obj)
    return keep
