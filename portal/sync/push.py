"""Push customers, invoices and credit notes into a ledger exactly once (DESIGN.md "Jobs").

Every write follows one protocol around its :class:`ExternalRecord`:

1. mark the record pending (attempt + 1) and **commit**;
2. if the previous attempt's outcome is unknown (the record was still pending: a crash, a
   timeout after the ledger committed, a transient error), look the record up in the ledger by
   our reference and adopt what is there;
3. otherwise create it in the ledger;
4. store the external id and number in the **same transaction** as the move to pushed.

A crash between any two steps leaves either no ledger record (a re-run creates it) or a pending
row whose ledger record is found in step 2 (a re-run adopts it): nothing twice, nothing lost.

These functions commit, unlike other services (STYLE 6): the commits *are* the protocol, and a
caller cannot place them. Callers pass committed objects and should not hold pending changes.

Our reference is the SaaS document number: what QuickBooks keeps in DocNumber (its adapter
looks invoices up by it), and what Exact (YourRef) and bexio (api_reference) are given.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..connections import vault
from ..customers import services as customers
from ..database import utcnow
from ..extensions import db
from ..integrations import errors_catalog, specs
from ..integrations.base import (
    AuthExpired,
    CustomerDraft,
    CustomerQuery,
    DocumentDraft,
    LedgerAdapter,
    LedgerError,
    LineDraft,
    NeedsReauthorization,
    NotSupported,
    PushResult,
    RateLimited,
    Unavailable,
)
from ..mappings import services as mappings
from ..models import Connection, CreditNote, Customer, ExternalRecord, Invoice, Product, RecordKind, RecordState

#: Errors about the connection or the moment, not the record: the record stays pending
#: (retryable, never failed) and the error is raised again so the caller stops and reschedules.
CONNECTION_ERRORS = (RateLimited, Unavailable, NeedsReauthorization, AuthExpired)

#: Fields whose ledger value is the code itself (Exact matches VAT codes, journals and payment
#: conditions by code); every other field is sent as the ledger's own id (``extra["id"]``).
_BY_CODE = {specs.EXACT_ONLINE: {"tax_code", "journal", "payment_condition"}}


class CustomerNotPushed(Exception):
    """The invoice's customer could not be made available in the ledger; the record says why."""


# -- records ----------------------------------------------------------------------------------


def record_for(connection: Connection, kind: RecordKind, local_id: int) -> ExternalRecord:
    """Return the record of (connection, kind, local id), creating (and committing) it when new."""
    stmt = select(ExternalRecord).where(
        ExternalRecord.connection_id == connection.id,
        ExternalRecord.kind == kind,
        ExternalRecord.local_id == local_id,
    )
    record = db.session.scalar(stmt)
    if record is not None:
        return record
    record = ExternalRecord(connection_id=connection.id, kind=kind, local_id=local_id, attempts=0)
    db.session.add(record)
    try:
        db.session.commit()
    except IntegrityError:  # another worker made it first: use theirs
        db.session.rollback()
        record = db.session.scalar(stmt)
    return record


def _payload_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _begin(record: ExternalRecord, *, reference: str | None, payload: Any) -> bool:
    """Mark an attempt as started and commit; return whether the previous attempt's outcome is unknown."""
    unknown = record.state is RecordState.pending and record.attempts > 0
    record.transition(RecordState.pending)
    record.attempts += 1
    record.last_attempt_at = utcnow()
    record.reference = reference
    record.payload_hash = _payload_hash(payload)
    db.session.commit()
    return unknown


def _store_result(record: ExternalRecord, result: PushResult) -> ExternalRecord:
    """Record the ledger's id and number and the move to pushed in one transaction."""
    record.external_id = str(result.external_id)
    record.external_number = result.external_number
    record.transition(RecordState.pushed)
    db.session.commit()
    return record


def _hold(record: ExternalRecord, state: RecordState, error_class: str, text: str) -> ExternalRecord:
    record.transition(state, error_class=error_class, error_text=text)
    db.session.commit()
    return record


def _store_error(record: ExternalRecord, error: LedgerError) -> ExternalRecord:
    """Classify a ledger error onto the record; raise it again when it concerns the connection.

    :raise LedgerError: the same error for :data:`CONNECTION_ERRORS` (the record stays pending).
    """
    db.session.rollback()  # nothing half-done of this attempt may be committed with the error
    explained = errors_catalog.explain(error)
    said = error.provider_text or (str(error.args[0]) if error.args else "")
    text = f"{explained.explanation} ({specs.get_spec(record.connection.provider).name}: {said})"
    if isinstance(error, CONNECTION_ERRORS):
        _hold(record, RecordState.pending, explained.error_class.value, text)
        raise error
    state = RecordState.skipped if isinstance(error, NotSupported) else RecordState.failed
    return _hold(record, state, explained.error_class.value, text)


# -- drafts -----------------------------------------------------------------------------------


class _Resolver:
    """The effective mapping of each product as ledger values, read once per push."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.refs = mappings.reference_data(connection)
        self.maps = mappings.mappings(connection)
        self._cache: dict[int | None, dict[str, str | None]] = {}

    def values(self, product: Product | None) -> dict[str, str | None]:
        key = product.id if product is not None else None
        if key not in self._cache:
            by_code = _BY_CODE.get(self.connection.provider, set())
            resolved: dict[str, str | None] = {}
            for eff in mappings.effective_mapping(self.connection, product, refs=self.refs, maps=self.maps):
                ledger_id = ((eff.row or {}).get("extra") or {}).get("id")
                use_code = eff.field.key in by_code or ledger_id is None
                resolved[eff.field.key] = eff.value if use_code or eff.value is None else str(ledger_id)
            self._cache[key] = resolved
        return self._cache[key]


def _lines(resolver: _Resolver, lines) -> tuple[LineDraft, ...]:
    drafts = []
    for line in lines:
        # Credit-note lines have no product relationship, only the id (the identity map caches it).
        product = db.session.get(Product, line.product_id) if line.product_id else None
        values = resolver.values(product)
        drafts.append(
            LineDraft(
                description=line.description,
                quantity=line.quantity,
                unit_price=line.unit_price,
                item=values.get("item"),
                tax_code=values.get("tax_code"),
                gl_account=values.get("gl_account"),
                class_ref=values.get("class"),
            )
        )
    return tuple(drafts)


def invoice_draft(connection: Connection, invoice: Invoice, customer_id: str) -> DocumentDraft:
    """Return the invoice as the ledger gets it: lines mapped through the effective mappings."""
    resolver = _Resolver(connection)
    defaults = resolver.values(None)
    return DocumentDraft(
        reference=invoice.number,
        number=invoice.number,
        customer_id=customer_id,
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        currency=invoice.currency,
        lines=_lines(resolver, invoice.lines),
        journal=defaults.get("journal"),
        payment_condition=defaults.get("payment_condition"),
    )


def _document_payload(document: Invoice | CreditNote) -> dict[str, Any]:
    return {
        "number": document.number,
        "customer": document.customer_id,
        "issue_date": document.issue_date,
        "currency": document.currency,
        "total": document.total,
        "lines": [
            [line.description, str(line.quantity), str(line.unit_price), str(line.tax_rate), line.product_id]
            for line in document.lines
        ],
    }


def customer_draft(customer: Customer) -> CustomerDraft:
    """Return the SaaS customer as a ledger customer to create."""
    return CustomerDraft(
        reference=customer.external_id,
        name=customer.name,
        email=customer.email,
        vat_number=customer.vat_number,
        country=customer.country,
        address_lines=(customer.street,) if customer.street else (),
        postcode=customer.postcode,
        city=customer.city,
    )


# -- customers --------------------------------------------------------------------------------


def push_customer(connection: Connection, customer: Customer, adapter: LedgerAdapter | None = None) -> ExternalRecord:
    """Create the customer in the ledger once and link it ("created by push").

    Ledger customers carry none of our references, so after an unknown outcome the customer is
    looked up by name: one match is adopted, several hold the record as needs-action.

    :raise LedgerError: one of :data:`CONNECTION_ERRORS` (the record stays pending).
    """
    adapter = adapter or vault.fresh_adapter(connection)
    record = record_for(connection, RecordKind.customer, customer.id)
    if record.state is RecordState.pushed:
        return record
    draft = customer_draft(customer)
    unknown = _begin(record, reference=customer.external_id, payload=draft)
    try:
        if unknown:
            found = adapter.find_customers(CustomerQuery("name", draft.name))
            if len(found) > 1:
                return _hold(
                    record,
                    RecordState.needs_action,
                    errors_catalog.ErrorClass.CUSTOMER_NOT_LINKED.value,
                    f"An earlier attempt to create {customer.name} may have succeeded, and "
                    f"{len(found)} ledger customers have that name: link the right one by hand.",
                )
            created = found[0] if found else adapter.create_customer(draft)
        else:
            created = adapter.create_customer(draft)
    except LedgerError as exc:
        return _store_error(record, exc)
    customers.link_created_by_push(connection, customer, created.id)
    return _store_result(record, PushResult(str(created.id), created.code, created=not unknown))


def _ledger_customer_id(connection: Connection, customer: Customer, adapter: LedgerAdapter) -> str:
    """Return the ledger id of the invoice's customer, creating it in "create" mode.

    :raise CustomerNotPushed: with the error class and words for the document's record.
    """
    link = customers.customer_link(connection, customer)
    if link is not None:
        return link.external_id
    if customers.customer_mode(connection) == "link_only":
        raise CustomerNotPushed(
            f"Customer {customer.name} ({customer.external_id}) is not linked to a "
            f"{specs.get_spec(connection.provider).name} customer, and this connection only links "
            "customers (it creates none). Link the customer, then retry."
        )
    record = push_customer(connection, customer, adapter)
    if record.state is not RecordState.pushed:
        raise CustomerNotPushed(f"Customer {customer.name} could not be created: {record.last_error_text}")
    return record.external_id


# -- documents --------------------------------------------------------------------------------


def push_invoice(connection: Connection, invoice: Invoice, adapter: LedgerAdapter | None = None) -> ExternalRecord:
    """Push one invoice into the connection's ledger exactly once; return its record.

    Already pushed: nothing happens. Customer not linked (link-only mode): needs action.
    Refused by the ledger: failed with the provider's text.

    :raise LedgerError: one of :data:`CONNECTION_ERRORS` (the record stays pending, retryable).
    """
    adapter = adapter or vault.fresh_adapter(connection)
    record = record_for(connection, RecordKind.invoice, invoice.id)
    if record.state is RecordState.pushed:
        return record
    unknown = _begin(record, reference=invoice.number, payload=_document_payload(invoice))
    try:
        if unknown:
            found = adapter.find_by_reference("invoice", invoice.number)
            if found is not None:
                return _store_result(record, found)
        customer_id = _ledger_customer_id(connection, invoice.customer, adapter)
        result = adapter.push_invoice(invoice_draft(connection, invoice, customer_id))
    except CustomerNotPushed as exc:
        db.session.rollback()
        return _hold(record, RecordState.needs_action, errors_catalog.ErrorClass.CUSTOMER_NOT_LINKED.value, str(exc))
    except LedgerError as exc:
        return _store_error(record, exc)
    return _store_result(record, result)


def push_credit_note(connection: Connection, note: CreditNote, adapter: LedgerAdapter | None = None) -> ExternalRecord:
    """Push one credit note exactly once; where the ledger has none (bexio), skip it with the manual step.

    :raise LedgerError: one of :data:`CONNECTION_ERRORS` (the record stays pending, retryable).
    """
    adapter = adapter or vault.fresh_adapter(connection)
    record = record_for(connection, RecordKind.credit_note, note.id)
    if record.state is RecordState.pushed:
        return record
    unknown = _begin(record, reference=note.number, payload=_document_payload(note))
    resolver = _Resolver(connection)
    try:
        if not adapter.capabilities.credit_notes:
            # The adapter raises NotSupported with the manual step in the provider's terms.
            adapter.push_credit_note(_credit_note_draft(resolver, note, customer_id="", corrects_id=None))
        if unknown:
            found = adapter.find_by_reference("credit_note", note.number)
            if found is not None:
                return _store_result(record, found)
        invoice_record = record_for(connection, RecordKind.invoice, note.invoice_id)
        if invoice_record.state is not RecordState.pushed:
            return _hold(
                record,
                RecordState.needs_action,
                errors_catalog.ErrorClass.VALIDATION.value,
                f"Credit note {note.number} corrects invoice {note.invoice.number}, which is not in the ledger "
                "yet: push the invoice first.",
            )
        customer_id = _ledger_customer_id(connection, note.customer, adapter)
        draft = _credit_note_draft(resolver, note, customer_id=customer_id, corrects_id=invoice_record.external_id)
        result = adapter.push_credit_note(draft)
    except CustomerNotPushed as exc:
        db.session.rollback()
        return _hold(record, RecordState.needs_action, errors_catalog.ErrorClass.CUSTOMER_NOT_LINKED.value, str(exc))
    except LedgerError as exc:
        return _store_error(record, exc)
    return _store_result(record, result)


def _credit_note_draft(
    resolver: _Resolver, note: CreditNote, *, customer_id: str, corrects_id: str | None
) -> DocumentDraft:
    defaults = resolver.values(None)
    return DocumentDraft(
        reference=note.number,
        number=note.number,
        customer_id=customer_id,
        issue_date=note.issue_date,
        due_date=None,
        currency=note.currency,
        lines=_lines(resolver, note.lines),
        corrects_id=corrects_id,
        journal=defaults.get("journal"),
        memo=note.reason,
    )


def due_invoices(connection: Connection, *, include_failed: bool = False) -> list[Invoice]:
    """Return the business unit's invoices dated on or after ``sync_from`` that still need a push.

    Pushed and skipped ones are left out; failed ones too unless ``include_failed`` (they wait
    for a person to fix the cause, then retry).
    """
    finished = [RecordState.pushed, RecordState.skipped]
    if not include_failed:
        finished.append(RecordState.failed)
    done = select(ExternalRecord.local_id).where(
        ExternalRecord.connection_id == connection.id,
        ExternalRecord.kind == RecordKind.invoice,
        ExternalRecord.state.in_(finished),
    )
    stmt = (
        select(Invoice)
        .where(
            Invoice.business_unit_id == connection.business_unit_id,
            Invoice.issue_date >= connection.sync_from.date(),
            Invoice.id.not_in(done),
        )
        .order_by(Invoice.issue_date, Invoice.id)
    )
    return list(db.session.scalars(stmt))
