"""SaaS document numbers are unique per business unit and kind: the documents that share one.

The ingestion API refuses a second invoice (or credit note) with a number another id of the
unit has (409). Documents stored before that rule may share a number; they are never merged:
:func:`duplicate_numbers` lists them (``flask --app app documents duplicates``), and the push
holds all but one of each (:func:`duplicate_holds`) as needs-action with words until a person
gives the others numbers of their own or dismisses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from ..extensions import db
from ..models import (
    BusinessUnit,
    Connection,
    CreditNote,
    ExternalRecord,
    Invoice,
    Organization,
    RecordKind,
    RecordState,
)

#: Record kind → its document model.
MODELS: dict[RecordKind, type[Invoice] | type[CreditNote]] = {
    RecordKind.invoice: Invoice,
    RecordKind.credit_note: CreditNote,
}


def duplicate_holds(connection: Connection, kind: RecordKind, documents: list) -> dict[int, str]:
    """Return the hold's words for each of ``documents`` whose number another document of the unit and kind keeps.

    SaaS numbers are unique per business unit and kind (the ingestion API refuses a second
    one); documents stored before that rule may share one. Of those, the one in the ledger
    keeps the number, else the oldest (lowest id); the others wait for a person (a new number,
    or dismissed). One query for the documents, one for their records.
    """
    model = MODELS[kind]
    numbers = {doc.number for doc in documents}
    if not numbers:
        return {}
    rows = db.session.execute(
        select(model.id, model.number, model.external_id).where(
            model.business_unit_id == connection.business_unit_id, model.number.in_(numbers)
        )
    ).all()
    by_number: dict[str, list[tuple[int, str]]] = {}
    for local_id, number, external_id in rows:
        by_number.setdefault(number, []).append((local_id, external_id))
    shared = {local_id for group in by_number.values() if len(group) > 1 for local_id, _ in group}
    if not shared:
        return {}
    pushed = set(
        db.session.scalars(
            select(ExternalRecord.local_id).where(
                ExternalRecord.connection_id == connection.id,
                ExternalRecord.kind == kind,
                ExternalRecord.local_id.in_(shared),
                ExternalRecord.state == RecordState.pushed,
            )
        )
    )
    what = "invoice" if kind is RecordKind.invoice else "credit note"
    held: dict[int, str] = {}
    for doc in documents:
        group = by_number.get(doc.number, [])
        if len(group) < 2 or doc.id in pushed:
            continue
        keeper = next((g for g in group if g[0] in pushed), None) or min(group)
        if keeper[0] == doc.id:
            continue
        where = "is in the ledger already" if keeper[0] in pushed else "goes to the ledger first"
        held[doc.id] = (
            f"{what.capitalize()} number {doc.number} is also the number of the SaaS's {what} {keeper[1]}, which "
            f"{where}. A ledger keeps one document per number: give this {what} its own number in the SaaS (send "
            f"it again with a new number), or dismiss it if it is the same {what}."
        )
    return held


@dataclass
class SharedNumber:
    """One number that several documents of a business unit and kind share."""

    organization: str
    business_unit_id: int
    business_unit: str
    kind: str
    number: str
    #: (SaaS id, issue date, the state of its push record per connection id) of each document, oldest first.
    documents: list[tuple[str, str, dict[int, str]]] = field(default_factory=list)


def duplicate_numbers(organization_id: int | None = None) -> list[SharedNumber]:
    """Return every number shared by documents of one business unit and kind (of one organization, or all)."""
    found: list[SharedNumber] = []
    for kind, model in MODELS.items():
        shared = (
            select(model.business_unit_id, model.number)
            .group_by(model.business_unit_id, model.number)
            .having(func.count(model.id) > 1)
        )
        if organization_id is not None:
            shared = shared.where(model.organization_id == organization_id)
        pairs = db.session.execute(shared).all()
        for unit_id, number in pairs:
            unit = db.session.get(BusinessUnit, unit_id)
            org = db.session.get(Organization, unit.organization_id) if unit is not None else None
            group = SharedNumber(
                organization=org.external_id if org is not None else "?",
                business_unit_id=unit_id,
                business_unit=unit.name if unit is not None else "?",
                kind=kind.value,
                number=number,
            )
            docs = db.session.execute(
                select(model.id, model.external_id, model.issue_date)
                .where(model.business_unit_id == unit_id, model.number == number)
                .order_by(model.id)
            ).all()
            states: dict[int, dict[int, str]] = {doc.id: {} for doc in docs}
            for local_id, connection_id, state in db.session.execute(
                select(ExternalRecord.local_id, ExternalRecord.connection_id, ExternalRecord.state).where(
                    ExternalRecord.kind == kind, ExternalRecord.local_id.in_(list(states))
                )
            ):
                states[local_id][connection_id] = RecordState(state).value
            group.documents = [(doc.external_id, doc.issue_date.isoformat(), states[doc.id]) for doc in docs]
            found.append(group)
    return sorted(found, key=lambda g: (g.organization, g.business_unit_id, g.kind, g.number))
