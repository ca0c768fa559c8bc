"""The records of one connection: filters, the query, labels and the held customers."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import (
    Select,
    String,
    case,
    cast,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.orm import InstrumentedAttribute

from ...extensions import db
from ...models import (
    Connection,
    CreditNote,
    Customer,
    ExternalRecord,
    Invoice,
    Payment,
    RecordKind,
    RecordState,
)
from .common import HELD, matches

# -- records of one connection ----------------------------------------------------------------


@dataclass(frozen=True)
class RecordFilters:
    """Which records of a connection are listed."""

    state: RecordState | None = None
    kind: RecordKind | None = None
    q: str = ""

    def args(self) -> dict[str, str]:
        """Return the filters as query arguments."""
        raw = {
            "state": self.state.value if self.state else "",
            "kind": self.kind.value if self.kind else "",
            "q": self.q,
        }
        return {k: v for k, v in raw.items() if v}


def connection_records_query(connection: Connection, f: RecordFilters) -> Select:
    """Return the connection's records, held ones first, then newest."""
    held_first = case((ExternalRecord.state.in_(HELD), 0), else_=1)
    stmt = (
        select(ExternalRecord)
        .where(ExternalRecord.connection_id == connection.id)
        .order_by(held_first, ExternalRecord.updated_at.desc(), ExternalRecord.id.desc())
    )
    if f.state:
        stmt = stmt.where(ExternalRecord.state == f.state)
    if f.kind:
        stmt = stmt.where(ExternalRecord.kind == f.kind)
    if f.q:
        stmt = stmt.where(
            matches(f.q, ExternalRecord.reference, ExternalRecord.external_number, ExternalRecord.last_error_text)
        )
    return stmt


#: What each record kind points at locally, and the column people know it by.
_LOCAL: dict[RecordKind, tuple[type[Invoice | CreditNote | Customer | Payment], InstrumentedAttribute[Any]]] = {
    RecordKind.invoice: (Invoice, Invoice.number),
    RecordKind.credit_note: (CreditNote, CreditNote.number),
    RecordKind.customer: (Customer, Customer.name),
    RecordKind.payment: (Payment, Payment.id),
}


def local_labels(records: list[ExternalRecord]) -> dict[tuple[str, int], str]:
    """Return what people call each record's local object (invoice number, customer name), in one query."""
    wanted: dict[RecordKind, set[int]] = defaultdict(set)
    for record in records:
        wanted[RecordKind(record.kind)].add(record.local_id)
    if not wanted:
        return {}
    parts = [
        select(literal(kind.value).label("kind"), model.id.label("id"), cast(column, String).label("label")).where(
            model.id.in_(sorted(wanted.get(kind, ())))
        )
        for kind, (model, column) in _LOCAL.items()
    ]
    labels: dict[tuple[str, int], str] = {}
    for kind, local_id, label in db.session.execute(union_all(*parts)):
        labels[(kind, local_id)] = f"payment #{label}" if kind == RecordKind.payment.value else str(label)
    return labels


def held_customers(records: list[ExternalRecord]) -> dict[int, Customer]:
    """Return, by record id, the SaaS customer of each record held because its customer is not linked (one query)."""
    wanted = {
        record.id: (RecordKind(record.kind), record.local_id)
        for record in records
        if record.state is RecordState.needs_action and record.last_error_class == "customer_not_linked"
    }
    if not wanted:
        return {}
    by_kind: dict[RecordKind, set[int]] = defaultdict(set)
    for kind, local_id in wanted.values():
        by_kind[kind].add(local_id)
    owner: dict[tuple[RecordKind, int], int] = {}
    for kind, model in ((RecordKind.invoice, Invoice), (RecordKind.credit_note, CreditNote)):
        if by_kind.get(kind):
            for local_id, customer_id in db.session.execute(
                select(model.id, model.customer_id).where(model.id.in_(by_kind[kind]))
            ):
                owner[(kind, local_id)] = customer_id
    for local_id in by_kind.get(RecordKind.customer, ()):
        owner[(RecordKind.customer, local_id)] = local_id
    customers = {c.id: c for c in db.session.scalars(select(Customer).where(Customer.id.in_(set(owner.values()))))}
    return {
        record_id: customers[owner[key]]
        for record_id, key in wanted.items()
        if key in owner and owner[key] in customers
    }


def state_counts(connection: Connection) -> dict[str, int]:
    """Return the connection's records by state, in one query."""
    rows = db.session.execute(
        select(ExternalRecord.state, func.count())
        .where(ExternalRecord.connection_id == connection.id)
        .group_by(ExternalRecord.state)
    )
    return {RecordState(state).value: n for state, n in rows}


def sync_delay_minutes() -> int:
    """Return the default promised sync delay in minutes."""
    return int(current_app.config.get("SYNC_DELAY_MINUTES", 5))
