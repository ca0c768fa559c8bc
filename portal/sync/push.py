"""Push customers, invoices, credit notes and payments into a ledger exactly once (DESIGN.md "Jobs").

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
looks invoices up by it), and what Exact (YourRef) and bexio (api_reference) are given. A
payment's reference is the SaaS's id of the payment.

After an invoice is pushed, two steps follow, each with its own marker on the record committed
right after the step: the PDF is attached (``pdf_state``) and the invoice is made final and,
when the connection says so, e-mailed by the ledger (``finalize_state``, ``finalized_at``,
``sent_at``). A ledger refusal of a step is recorded on the record (the invoice stays pushed)
and the step is tried again on the next run; a crash between a step and its marker repeats the
step, which adapters make harmless for finalize/send (idempotent). The ledger's number returned
by finalize (Exact numbers at print) becomes the record's ``external_number``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, NamedTuple

from flask import current_app
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload, undefer
from sqlalchemy.orm.exc import StaleDataError

from ..connections import vault
from ..customers import identity
from ..customers import services as customers
from ..customers.identity import customer_draft
from ..database import utcnow
from ..extensions import db
from ..integrations import errors_catalog, specs
from ..integrations.base import (
    AuthExpired,
    BatchOperation,
    DocumentDraft,
    LedgerAdapter,
    LedgerError,
    NeedsReauthorization,
    NotSent,
    NotSupported,
    PaymentDraft,
    PushResult,
    RateLimited,
    Unavailable,
)
from ..mappings import services as mappings
from ..mappings.taxes import TaxResolver
from ..models import (
    Connection,
    CreditNote,
    Customer,
    CustomerLink,
    ExternalRecord,
    Invoice,
    Payment,
    Product,
    RecordKind,
    RecordState,
)
from ..models.connection import SendingMethod
from ..models.customer_link import LinkMethod
from ..models.external_record import FinalizeState, PdfState
from ..oplog import capture as oplog
from . import deferral, fencing, guard
from .guard import DocumentHeld
from .lanes import Lane
from .numbers import duplicate_holds

#: Errors about the connection or the moment, not the record: the record stays pending
#: (retryable, never failed) and the error is raised again so the caller stops and reschedules.
CONNECTION_ERRORS = (RateLimited, Unavailable, NeedsReauthorization, AuthExpired)

#: Fields whose ledger value is the code itself (Exact matches VAT codes, journals and payment
#: conditions by code); every other field is sent as the ledger's own id (``extra["id"]``).
_BY_CODE = {specs.EXACT_ONLINE: {"tax_code", "journal", "payment_condition"}}


#: The placeholder bexio replaces with the link to the invoice; a bexio e-mail text must contain it.
BEXIO_LINK_PLACEHOLDER = "[Network Link]"


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
        record = db.session.execute(stmt).scalar_one()
    return record


def _payload_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _begin(record: ExternalRecord, *, reference: str | None, payload: Any) -> bool:
    """Mark an attempt as started and commit; return whether the previous attempt's outcome is unknown."""
    unknown = _mark(record, reference=reference, payload=payload)
    db.session.commit()
    return unknown


def _store_result(record: ExternalRecord, result: PushResult) -> ExternalRecord:
    """Record the ledger's id and number and the move to pushed in one transaction.

    A document found in the ledger (not created now) that another SaaS document's record holds
    already is not adopted: the record is held instead (:func:`_settle_found`).
    """
    _settle_found(record, result)
    db.session.commit()
    return record


def _settle_found(record: ExternalRecord, result: PushResult) -> None:
    """Move the record to pushed with the ledger's id and number, unless another record has that document."""
    deferral.went_through()
    if _held_as_duplicate(record, result):
        return
    record.external_id = str(result.external_id)
    record.external_number = result.external_number
    record.transition(RecordState.pushed)


def _held_as_duplicate(record: ExternalRecord, result: PushResult) -> bool:
    """Hold the record when the document the ledger answered for is another record's; say whether it did.

    Our reference is the SaaS document's number: two SaaS documents sharing one would find each
    other's ledger document. A document the ledger answered for without creating it now
    (``result.created`` False) is checked against the connection's other records of the kind;
    when one holds it, this record is held as needs-action "duplicate" (not committed).
    """
    if result.created or record.kind not in (RecordKind.invoice, RecordKind.credit_note):
        return False
    other = db.session.scalar(
        select(ExternalRecord).where(
            ExternalRecord.connection_id == record.connection_id,
            ExternalRecord.kind == record.kind,
            ExternalRecord.external_id == str(result.external_id),
            ExternalRecord.local_id != record.local_id,
        )
    )
    if other is None:
        return False
    record.transition(
        RecordState.needs_action,
        error_class=errors_catalog.ErrorClass.DUPLICATE.value,
        error_text=_adopted_words(record, other, result),
    )
    return True


def _adopted_words(record: ExternalRecord, other: ExternalRecord, result: PushResult) -> str:
    model = Invoice if record.kind is RecordKind.invoice else CreditNote
    what = "invoice" if record.kind is RecordKind.invoice else "credit note"
    mine, theirs = db.session.get(model, record.local_id), db.session.get(model, other.local_id)
    number = mine.number if isinstance(mine, Invoice | CreditNote) else record.reference
    owner = theirs.external_id if isinstance(theirs, Invoice | CreditNote) else f"#{other.local_id}"
    return (
        f"Not pushed: the ledger's {what} with reference {number} ({result.external_number or result.external_id}) "
        f"is the ledger copy of the SaaS's {what} {owner}, which has the same number. A ledger keeps one document "
        f"per number: give this {what} its own number in the SaaS, or dismiss it if it is the same {what}."
    )


def _hold_duplicate(record: ExternalRecord, words: str) -> ExternalRecord:
    record.transition(RecordState.needs_action, error_class=errors_catalog.ErrorClass.DUPLICATE.value, error_text=words)
    return record


def _store_document(
    connection: Connection, record: ExternalRecord, document: Invoice | CreditNote, result: PushResult
) -> ExternalRecord:
    """Store a written (or found) document's ledger id with its state, in one transaction.

    Pushed when the totals the ledger answered equal the SaaS's; otherwise "differs from the
    SaaS" (failed, :attr:`ErrorClass.TOTALS_DIFFER`) with the ledger's id kept, so a re-sync
    compares again instead of writing a second document.
    """
    _set_document(connection, record, document, result)
    db.session.commit()
    return record


def _set_document(
    connection: Connection, record: ExternalRecord, document: Invoice | CreditNote, result: PushResult
) -> None:
    """Set the outcome of :func:`_store_document` on the record, without committing.

    A document found (not created now) that another record holds is not adopted (:func:`_held_as_duplicate`).
    """
    deferral.went_through()
    if _held_as_duplicate(record, result):
        return
    record.external_id = str(result.external_id)
    record.external_number = result.external_number
    differs = guard.booked_differently(connection, document, result)
    if differs is None:
        record.transition(RecordState.pushed)
    else:
        record.transition(
            RecordState.failed, error_class=errors_catalog.ErrorClass.TOTALS_DIFFER.value, error_text=differs
        )


def _hold_document(record: ExternalRecord, held: DocumentHeld) -> ExternalRecord:
    """Hold a document the guard stopped before any write: needs action, with the cause and the fix."""
    db.session.rollback()
    return _hold(record, RecordState.needs_action, held.error_class.value, held.text)


def _hold(record: ExternalRecord, state: RecordState, error_class: str, text: str) -> ExternalRecord:
    record.transition(state, error_class=error_class, error_text=text)
    db.session.commit()
    return record


def explain(connection: Connection, error: LedgerError) -> tuple[str, str]:
    """Return the error's class and its plain words, with the provider's own text where the provider gave one.

    Only the provider's text goes in the "(Provider: …)" part that pages show as what the provider said;
    a refusal worded by the adapter itself (e.g. bexio's missing credit-note API) follows the plain words.
    """
    explained = errors_catalog.explain(error)
    if error.provider_text:
        return explained.error_class.value, (
            f"{explained.explanation} ({specs.get_spec(connection.provider).name}: {error.provider_text})"
        )
    own = str(error.args[0]) if error.args else ""
    return explained.error_class.value, f"{explained.explanation} {own}".strip()


def _store_error(record: ExternalRecord, error: LedgerError) -> ExternalRecord:
    """Classify a ledger error onto the record; raise it again when it concerns the connection.

    An outage met inside a push job defers the record instead (:mod:`portal.sync.deferral`): it
    stays pending with its own next attempt, and the run goes on.

    :raise LedgerError: the same error for :data:`CONNECTION_ERRORS` (the record stays pending).
    """
    db.session.rollback()  # nothing half-done of this attempt may be committed with the error
    error_class, text = explain(record.connection, error)
    if isinstance(error, CONNECTION_ERRORS):
        if deferral.defer(record, error):
            return _hold(record, RecordState.pending, error_class, text)
        _hold(record, RecordState.pending, error_class, text)
        raise error
    state = RecordState.skipped if isinstance(error, NotSupported) else RecordState.failed
    return _hold(record, state, error_class, text)


# -- drafts -----------------------------------------------------------------------------------


class _Resolver:
    """The effective mapping of each product as ledger values, read once per push."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.refs = mappings.reference_data(connection)
        self.maps = mappings.mappings(connection)
        #: Each line's tax code by its own rate (the tax table, overrides and default at that rate).
        self.taxes = TaxResolver(connection, refs=self.refs, maps=self.maps)
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

    def values_of(self, product_id: int | None) -> dict[str, str | None]:
        """Return the values of the product with this id (read from the database once per resolver)."""
        if product_id in self._cache:
            return self._cache[product_id]
        return self.values(db.session.get(Product, product_id) if product_id else None)


def due_date_for(connection: Connection, issue_date: date, own: date | None) -> date | None:
    """Return the due date a document is pushed with: its own, else issue date + the connection's due days.

    None (no own date and no due days set on the mappings page) leaves the due date to the
    ledger's payment condition / terms.
    """
    if own is not None:
        return own
    days = mappings.mapping_settings(connection).get("due_days")
    if days is None or days == "":
        return None
    return issue_date + timedelta(days=int(days))


def invoice_draft(
    connection: Connection, invoice: Invoice, customer_id: str, resolver: _Resolver | None = None
) -> DocumentDraft:
    """Return the invoice as the ledger gets it: lines mapped through the effective mappings, each
    line's tax code by its own rate, checked by the totals guard (:mod:`portal.sync.guard`).

    A push of many invoices passes one ``resolver`` for all (mappings read once).

    :raise DocumentHeld: when the ledger would not book the invoice as the SaaS invoiced it.
    """
    resolver = resolver or _Resolver(connection)
    defaults = resolver.values(None)
    lines, taxed = guard.document_lines(resolver.taxes, invoice, resolver.values_of)
    draft = DocumentDraft(
        reference=invoice.number,
        number=invoice.number,
        customer_id=customer_id,
        issue_date=invoice.issue_date,
        due_date=due_date_for(connection, invoice.issue_date, invoice.due_date),
        currency=invoice.currency,
        lines=lines,
        journal=defaults.get("journal"),
        payment_condition=defaults.get("payment_condition"),
    )
    return guard.checked(connection, invoice, draft, taxed, resolver.taxes)


def _document_payload(document: Invoice | CreditNote) -> dict[str, Any]:
    return {
        "number": document.number,
        "customer": document.customer_id,
        "issue_date": document.issue_date,
        "currency": document.currency,
        "total": document.total,
        "lines": [
            [
                line.description,
                str(line.quantity),
                str(line.unit_price),
                str(line.tax_rate),
                line.product_id,
                *([line.tax_kind.value] if line.tax_kind else []),
            ]
            for line in document.lines
        ],
    }


# -- customers --------------------------------------------------------------------------------


def push_customer(connection: Connection, customer: Customer, adapter: LedgerAdapter | None = None) -> ExternalRecord:
    """Make the customer available in the ledger once: found there, or created carrying our reference; link it.

    After an attempt whose outcome is unknown, the customer an earlier attempt made is looked up
    by our reference only (Exact account code, QuickBooks note and requestid, bexio contact
    number; :meth:`~portal.integrations.base.LedgerAdapter.find_customer_by_reference`): a
    customer that merely has the same name is never adopted. Before creating, the ledger is asked
    for customers that may be this one (:mod:`portal.customers.identity`): one agreeing on an
    identifier is linked ("matched by VAT number at push"); several, or only namesakes, hold the
    customer as needs-action with the candidates until a person links one, chooses "Create
    anyway" (``create_confirmed``) or dismisses it.

    :raise LedgerError: one of :data:`CONNECTION_ERRORS` (the record stays pending).
    """
    adapter = adapter or vault.fresh_adapter(connection)
    record = record_for(connection, RecordKind.customer, customer.id)
    if record.state is RecordState.pushed or record.waits_for_person:
        return record  # in the ledger; or held until a person links it, creates it anyway or dismisses it
    draft = customer_draft(customer)
    unknown = _begin(record, reference=customer.external_id, payload=draft)
    method = LinkMethod.push
    try:
        found = adapter.find_customer_by_reference(draft) if unknown else None
        if found is None and not record.create_confirmed:
            lookup = identity.look_up(connection, customer, draft, adapter)
            if lookup.held:
                identity.suggest_held(connection, customer, lookup.held)
                return _hold(
                    record,
                    RecordState.needs_action,
                    errors_catalog.ErrorClass.CUSTOMER_NOT_LINKED.value,
                    lookup.reason or "",
                )
            if lookup.adopt is not None:
                found, method = lookup.adopt.customer, lookup.adopt.method
        if found is None:
            fencing.before_write()
        created = found or adapter.create_customer(draft)
    except LedgerError as exc:
        return _store_error(record, exc)
    customers.link_created_by_push(connection, customer, created.id, method)
    identity.remember(connection, [created])  # the links page names it without a fetch
    return _store_result(record, PushResult(str(created.id), created.code, created=found is None))


def _not_linked_text(connection: Connection, customer: Customer) -> str:
    return (
        f"Customer {customer.name} ({customer.external_id}) is not linked to a "
        f"{specs.get_spec(connection.provider).name} customer, and this connection only links "
        "customers (it creates none). Link the customer, then retry."
    )


def _ledger_customer_id(connection: Connection, customer: Customer, adapter: LedgerAdapter) -> str:
    """Return the ledger id of the invoice's customer, creating it in "create" mode.

    :raise CustomerNotPushed: with the error class and words for the document's record.
    """
    link = customers.customer_link(connection, customer)
    if link is not None:
        return link.external_id
    if customers.customer_mode(connection) == "link_only":
        raise CustomerNotPushed(_not_linked_text(connection, customer))
    if deferral.customer_unsure():
        record = _existing(connection, RecordKind.customer, customer.id)
        if record is None or record.state is not RecordState.pushed:
            # An earlier customer's creation has an unknown outcome: its copy may be this one's namesake.
            waits = Unavailable(f"Customer {customer.name} waits until an earlier customer's creation is cleared up.")
            waits.counted = True
            raise waits
    record = push_customer(connection, customer, adapter)
    if record.state is RecordState.pending:  # deferred after an outage: the document waits with it
        waits = Unavailable(f"Customer {customer.name} is not in the ledger yet: {record.last_error_text}")
        waits.counted = True  # the customer's own outage was counted already
        raise waits
    if record.state is RecordState.needs_action:
        raise CustomerNotPushed(f"Held until someone links customer {customer.name}: {record.last_error_text}")
    if record.state is not RecordState.pushed or record.external_id is None:
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
        return complete_invoice(connection, invoice, adapter, record)
    held = duplicate_holds(connection, RecordKind.invoice, [invoice])
    unknown = _mark(record, reference=invoice.number, payload=_document_payload(invoice))
    if held:
        _hold_duplicate(record, held[invoice.id])
    db.session.commit()
    if held:
        return record
    try:
        # Only an attempt whose outcome is unknown may have left the invoice in the ledger.
        found = adapter.find_by_reference("invoice", invoice.number) if unknown else None
        if found is None:
            # Checked before anything is written, the customer included.
            draft = invoice_draft(connection, invoice, "")
            customer_id = _ledger_customer_id(connection, invoice.customer, adapter)
            fencing.before_write()
            found = adapter.push_invoice(replace(draft, customer_id=customer_id), looked_up=True)
    except DocumentHeld as stopped:
        return _hold_document(record, stopped)
    except CustomerNotPushed as exc:
        db.session.rollback()
        return _hold(record, RecordState.needs_action, errors_catalog.ErrorClass.CUSTOMER_NOT_LINKED.value, str(exc))
    except LedgerError as exc:
        return _store_error(record, exc)
    _store_document(connection, record, invoice, found)
    return complete_invoice(connection, invoice, adapter, record)


# -- after the push: PDF, finalize and send ---------------------------------------------------


def steps_due(record: ExternalRecord) -> bool:
    """Say whether a pushed invoice still has its PDF or finalize step to do (or to try again)."""
    retry = (None, PdfState.failed, FinalizeState.failed)
    return record.state is RecordState.pushed and (record.pdf_state in retry or record.finalize_state in retry)


def sends_by_ledger(connection: Connection) -> bool:
    """Say whether the ledger e-mails invoices once pushed (ledger sending with auto-send)."""
    return connection.setting("sending_method") == SendingMethod.ledger.value and bool(connection.setting("auto_send"))


def complete_invoice(
    connection: Connection, invoice: Invoice, adapter: LedgerAdapter, record: ExternalRecord | None = None
) -> ExternalRecord:
    """Do the steps after the push that are not done yet: attach the PDF, then finalize (and send).

    Each step's marker is committed right after the step. A refusal is kept on the record (the
    invoice stays pushed) and the step is tried again on the next run.

    :raise LedgerError: one of :data:`CONNECTION_ERRORS` (the step stays to do).
    """
    record = record or record_for(connection, RecordKind.invoice, invoice.id)
    order = step_order(connection, invoice, record)
    if order is None:
        return record
    if order.pdf_due:
        stop = _apply_pdf(connection, record, _call_pdf(adapter, order))
        db.session.commit()
        if stop is not None:
            raise stop
    if order.finalize_due:
        stop = _apply_finalize(connection, record, _call_finalize(adapter, order), order.send)
        db.session.commit()
        if stop is not None:
            raise stop
    return record


@dataclass(frozen=True)
class StepOrder:
    """What the steps after the push of one invoice need, read from the database beforehand.

    Made in the job's thread, so that the calls themselves can run in another (a lane).
    """

    external_id: str
    filename: str
    pdf: bytes | None
    pdf_due: bool
    finalize_due: bool
    send: bool
    email: str | None
    message: str | None


def step_order(connection: Connection, invoice: Invoice, record: ExternalRecord) -> StepOrder | None:
    """Return the steps still to do (or to try again) of a pushed invoice, or None when none are."""
    if not steps_due(record):
        return None
    send = sends_by_ledger(connection)
    return StepOrder(
        external_id=str(record.external_id),
        filename=f"{invoice.number}.pdf",
        pdf=invoice.pdf or None,
        pdf_due=record.pdf_state in (None, PdfState.failed),
        finalize_due=record.finalize_state in (None, FinalizeState.failed),
        send=send,
        email=invoice.customer.email,
        message=email_message(connection) if send else None,
    )


#: What one step's call came to: ("ok", what the ledger returned), ("error", the LedgerError),
#: or ("no_pdf", None) when there was nothing to attach.
StepCall = tuple[str, Any]


def _call_pdf(adapter: LedgerAdapter, order: StepOrder) -> StepCall:
    if not order.pdf:
        return ("no_pdf", None)
    try:
        return ("ok", adapter.attach_pdf(order.external_id, filename=order.filename, content=order.pdf))
    except LedgerError as exc:
        return ("error", exc)


def _call_finalize(adapter: LedgerAdapter, order: StepOrder) -> StepCall:
    try:
        number = adapter.finalize_invoice(order.external_id, send=order.send, email=order.email, message=order.message)
    except LedgerError as exc:
        return ("error", exc)
    return ("ok", number)


def _stops(call: StepCall) -> bool:
    return call[0] == "error" and isinstance(call[1], CONNECTION_ERRORS)


def _apply_pdf(connection: Connection, record: ExternalRecord, call: StepCall) -> LedgerError | None:
    """Set the PDF step's outcome on the record; return an error about the connection (left to do) to raise."""
    kind, value = call
    if kind == "no_pdf":
        record.pdf_state, record.pdf_error = PdfState.no_pdf, None
    elif kind == "ok":
        record.pdf_state, record.pdf_error = PdfState.attached, None
        record.pdf_attachment_id = str(value) if value is not None else None
    elif isinstance(value, NotSupported):
        record.pdf_state, record.pdf_error = PdfState.not_supported, None
    elif isinstance(value, CONNECTION_ERRORS) and not deferral.step_failed(value):
        return value
    else:
        record.pdf_state, record.pdf_error = PdfState.failed, explain(connection, value)[1]
    return None


def _apply_finalize(connection: Connection, record: ExternalRecord, call: StepCall, send: bool) -> LedgerError | None:
    """Set the finalize step's outcome on the record; return an error about the connection (left to do) to raise."""
    kind, value = call
    if kind == "error":
        if isinstance(value, NotSent):
            apply_not_sent(connection, record, value)
        elif isinstance(value, NotSupported):
            record.finalize_state, record.finalize_error = FinalizeState.not_supported, explain(connection, value)[1]
        elif isinstance(value, CONNECTION_ERRORS) and not deferral.step_failed(value):
            return value
        else:
            record.finalize_state, record.finalize_error = FinalizeState.failed, explain(connection, value)[1]
        return None
    now = utcnow()
    record.finalize_state = FinalizeState.sent if send else FinalizeState.finalized
    record.finalize_error = None
    record.finalized_at = record.finalized_at or now
    if send:
        record.sent_at = now
    if value:
        record.external_number = str(value)
    return None


def apply_not_sent(connection: Connection, record: ExternalRecord, error: NotSent) -> None:
    """Record an invoice the ledger made final (numbered) without e-mailing it: its number kept, never "sent".

    The state stays "not sent" until a person fixes the cause and chooses "Send again"
    (:func:`portal.sync.actions.send_again`); no run retries it by itself.
    """
    record.finalize_state = FinalizeState.not_sent
    record.finalize_error = not_sent_text(connection, error)
    record.finalized_at = record.finalized_at or utcnow()
    record.sent_at = None
    if error.number:
        record.external_number = str(error.number)


def not_sent_text(connection: Connection, error: NotSent) -> str:
    """Return "Numbered N, not e-mailed: <the ledger's reason and the fix>" for a :class:`NotSent`."""
    number = f" {error.number}" if error.number else ""
    own = str(error.args[0]) if error.args else ""
    said = f" ({specs.get_spec(connection.provider).name}: {error.provider_text})" if error.provider_text else ""
    return f"Numbered{number}, not e-mailed: {own}{said}"


def email_message(connection: Connection) -> str | None:
    """Return the connection's text of the ledger's invoice e-mail (None: the ledger's default)."""
    return connection.setting("email_message") or None


def invoices_with_steps_due(connection: Connection) -> list[Invoice]:
    """Return the connection's pushed invoices whose PDF or finalize step is still to do or failed."""
    stmt = (
        select(Invoice)
        .join(ExternalRecord, ExternalRecord.local_id == Invoice.id)
        .where(
            ExternalRecord.connection_id == connection.id,
            ExternalRecord.kind == RecordKind.invoice,
            ExternalRecord.state == RecordState.pushed,
            ExternalRecord.pdf_state.is_(None)
            | (ExternalRecord.pdf_state == PdfState.failed)
            | ExternalRecord.finalize_state.is_(None)
            | (ExternalRecord.finalize_state == FinalizeState.failed),
        )
        .order_by(Invoice.issue_date, Invoice.id)
    )
    return list(db.session.scalars(stmt))


# -- many invoices in one run ---------------------------------------------------------------------

#: Invoices handled per transaction by :func:`push_invoices`.
CHUNK_SIZE = 50
#: A chunk's outcomes are committed at least this often (seconds), whatever its size.
CHUNK_SECONDS = 0.5

#: One pushed (or held) invoice of a chunk: its record and its step markers before this run.
Outcome = tuple[ExternalRecord, tuple[PdfState | None, FinalizeState | None]]


def push_invoices(
    connection: Connection,
    invoice_ids: list[int],
    adapter: LedgerAdapter,
    *,
    chunk_done: Callable[[list[Outcome]], bool] | None = None,
    chunk_size: int = CHUNK_SIZE,
    helpers: Callable[[], LedgerAdapter] | None = None,
) -> None:
    """Push many invoices exactly once, in chunks of one transaction each (the job's path).

    The protocol of :func:`push_invoice`, grouped: all records of a chunk are marked pending
    (attempt + 1) in **one** commit before any of their ledger calls; the ledger's ids and
    numbers, the moves to pushed, failed or needs action and the step markers are then committed
    together once the chunk is through (or :data:`CHUNK_SECONDS` have passed; and right after a
    PDF upload). A crash before that commit leaves the chunk's records pending: the next run
    looks each up by reference and adopts what the ledger has, and repeats the finalize and send
    steps, which adapters make harmless. Mappings are read once per call, and the chunk's
    invoices, lines, customers, records and customer links with one query each.

    Only the invoices whose previous attempt's outcome is unknown are looked up, all of a chunk
    with one call where the ledger takes several references (:meth:`LedgerAdapter.find_by_references`);
    the others have never reached the ledger and are created without a look-up. With ``helpers``
    (it returns an adapter joined to ``adapter``), that look-up and the steps after the push of
    the invoices created run in lanes beside this thread (:mod:`portal.sync.lanes`), each lane in
    order; without, every call runs here, one after the other. Either way the records are only
    written in this thread.

    ``chunk_done(outcomes)`` is called just before each commit (what it changes on the session
    is committed with the outcomes); it returns False to stop after that chunk.

    :raise LedgerError: one of :data:`CONNECTION_ERRORS`, after committing what was done (the
        record concerned stays pending, retryable).
    """
    resolver = _Resolver(connection)
    session = db.session()
    # The chunk's own commits need not reload what they just wrote (the run holds the lock of
    # the connection: nobody else writes these records); each chunk is let go of when done.
    expire, session.expire_on_commit = session.expire_on_commit, False
    try:
        with _lanes(adapter, helpers) as lanes:
            for start in range(0, len(invoice_ids), chunk_size):
                loaded: list = []
                try:
                    go_on = _Chunk(connection, adapter, resolver, chunk_done, lanes).push(
                        invoice_ids[start : start + chunk_size], loaded
                    )
                finally:
                    for obj in loaded:
                        if obj in session:
                            session.expunge(obj)
                if not go_on:
                    return
    finally:
        session.expire_on_commit = expire


#: Pushed invoices whose steps may be under way before this thread waits for the oldest.
STEPS_AHEAD = 4


@dataclass
class _Lanes:
    """Where a push's look-ups and steps run, and the adapters they run with."""

    lookups: Lane
    steps: Lane
    lookup_adapter: LedgerAdapter
    steps_adapter: LedgerAdapter
    #: Set once a step met an error about the connection: later steps are not started (Exact
    #: numbers invoices when they are finalized, in the order they were created).
    halted: threading.Event

    @property
    def threaded(self) -> bool:
        return self.lookups.threaded

    def call_pdf(self, order: StepOrder) -> StepCall | None:
        """Attach the PDF of one invoice in the steps lane (None: not tried, a step before stopped)."""
        return self._guarded(_call_pdf, order)

    def call_finalize(self, order: StepOrder) -> StepCall | None:
        """Finalize (and send) one invoice in the steps lane (None: not tried, a step before stopped)."""
        return self._guarded(_call_finalize, order)

    def _guarded(self, call: Callable[[LedgerAdapter, StepOrder], StepCall], order: StepOrder) -> StepCall | None:
        if self.halted.is_set():
            return None
        made = call(self.steps_adapter, order)
        if _stops(made):
            self.halted.set()
        return made


@contextmanager
def _lanes(adapter: LedgerAdapter, helpers: Callable[[], LedgerAdapter] | None) -> Iterator[_Lanes]:
    """Open the push's lanes: threads with adapters of their own (``helpers``), else this thread and ``adapter``."""
    if helpers is None:
        serial = Lane("lookups", threaded=False), Lane("steps", threaded=False)
        yield _Lanes(*serial, adapter, adapter, threading.Event())
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # current_app is a LocalProxy
    join_log = oplog.share_buffer(app)

    @contextmanager
    def enter() -> Iterator[None]:
        with app.app_context(), join_log():
            yield

    lookup_adapter, steps_adapter = helpers(), helpers()
    with ExitStack() as stack:
        lookups = stack.enter_context(Lane("ledgerlink-push-lookups", enter=enter))
        steps = stack.enter_context(Lane("ledgerlink-push-steps", enter=enter))
        yield _Lanes(lookups, steps, lookup_adapter, steps_adapter, threading.Event())


def _settled(result: Any) -> Future:
    future: Future = Future()
    future.set_result(result)
    return future


class _Steps(NamedTuple):
    """The steps under way of one pushed invoice: the futures of its PDF and finalize calls (None: not to do)."""

    record: ExternalRecord
    before: tuple[PdfState | None, FinalizeState | None]
    order: StepOrder
    pdf: Future | None
    final: Future | None

    @property
    def done(self) -> bool:
        """Say whether its calls are over (the lane runs them in order: the last one's end says so)."""
        last = self.final or self.pdf
        return last is None or last.done()


class _Queued(NamedTuple):
    """An invoice ready to be created with the chunk's next batch call: its record (pending) and its draft."""

    invoice: Invoice
    record: ExternalRecord
    before: tuple[PdfState | None, FinalizeState | None]
    draft: DocumentDraft


class _Chunk:
    """One chunk of :func:`push_invoices`: one transaction, its calls in this thread and the lanes."""

    def __init__(
        self,
        connection: Connection,
        adapter: LedgerAdapter,
        resolver: _Resolver,
        chunk_done: Callable[[list[Outcome]], bool] | None,
        lanes: _Lanes,
    ) -> None:
        self.connection = connection
        self.adapter = adapter
        self.resolver = resolver
        self.chunk_done = chunk_done
        self.lanes = lanes
        self.outcomes: list[Outcome] = []
        self.started = time.monotonic()
        #: Invoices whose previous attempt's outcome is unknown: only these are looked up.
        self.unknown: set[int] = set()
        #: The look-up of the chunk's unknown invoices made ahead (one call where the ledger takes
        #: several references), the numbers it covers, and when it started (time.monotonic()), to
        #: look again once the lease lapsed since.
        self.lookup: Future | None = None
        self.looked_up: set[str] = set()
        self.looked_at = 0.0
        #: Pushed invoices whose steps are under way, oldest first.
        self.steps: deque[_Steps] = deque()
        self.duplicates: dict[int, str] = {}
        #: Invoices created together, this many per call, where the ledger takes batches (QuickBooks: 30;
        #: at most the app's PUSH_BATCH_SIZE).
        most = adapter.capabilities.batch_size or 1
        self.batch_size = min(most, current_app.config.get("PUSH_BATCH_SIZE") or most)
        #: Invoices waiting for that call, in due order.
        self.queued: list[_Queued] = []

    def push(self, ids: list[int], loaded: list) -> bool:
        """Push the invoices with these ids; return whether to go on with the next chunk.

        :raise LedgerError: one of :data:`CONNECTION_ERRORS`, after committing what was done.
        """
        connection = self.connection
        invoices = _load_chunk(ids)
        # Step 1 for the whole chunk: every record pending (attempt + 1), one commit.
        records, self.unknown = _chunk_records(connection, invoices)
        loaded += [*invoices, *records.values(), *{invoice.customer for invoice in invoices}]
        links = _customer_links(connection, {invoice.customer_id for invoice in invoices})
        creates = customers.customer_mode(connection) != "link_only"
        db.session.commit()
        due = [invoice for invoice in invoices if records[invoice.id].state is not RecordState.pushed]
        #: Invoices whose number another invoice of the unit keeps: held, never looked up.
        self.duplicates = duplicate_holds(connection, RecordKind.invoice, due)
        due = [invoice for invoice in due if invoice.id not in self.duplicates]
        self.started = time.monotonic()

        # The invoices whose last attempt's outcome is unknown are looked up ahead, together,
        # except a number twice in the chunk: looked up at its turn, when the first one may be created.
        numbers = [invoice.number for invoice in due]
        ahead = [i.number for i in due if i.id in self.unknown and numbers.count(i.number) == 1]
        if ahead:
            self.looked_up, self.looked_at = set(ahead), time.monotonic()
            self.lookup = self.lanes.lookups.submit(self.lanes.lookup_adapter.find_by_references, "invoice", ahead)
        try:
            return self._push_all(invoices, records, links, creates)
        except BaseException:
            if self.lookup is not None:
                self.lookup.cancel()  # not needed any more if not started
            raise

    def _push_all(
        self, invoices: list[Invoice], records: dict[int, ExternalRecord], links: dict[int, str], creates: bool
    ) -> bool:
        connection = self.connection
        with db.session.no_autoflush:
            for invoice in invoices:
                record = records[invoice.id]
                before = (record.pdf_state, record.finalize_state)
                done: list[tuple[Invoice, ExternalRecord, tuple]] = [(invoice, record, before)]
                try:
                    if record.state is RecordState.pending and invoice.id in self.duplicates:
                        _hold_duplicate(record, self.duplicates[invoice.id])
                    elif record.state is not RecordState.pushed:
                        looked = self._looked_up(invoice)
                        # A first attempt waits for the chunk's next batch call where the ledger takes batches.
                        batched = self.batch_size > 1 and invoice.id not in self.unknown
                        draft = _push_one(
                            connection, invoice, self.adapter, self.resolver, record, looked, links, creates, batched
                        )
                        if draft is not None:
                            self.queued.append(_Queued(invoice, record, before, draft))
                            done = []
                except (LedgerError, fencing.LeaseLost) as exc:  # about the connection: keep what is done, stop
                    self._stop(exc)
                for settled in done:
                    self._finish(*settled)
                if len(self.queued) >= self.batch_size:
                    self._create_queued()
                if time.monotonic() - self.started >= CHUNK_SECONDS and not self._commit():
                    self._create_queued()
                    self._settle(keep=0)
                    self._commit()
                    return False
            self._create_queued()
        stop = self._settle(keep=0)
        if stop is not None:
            self._stop(stop)
        return self._commit()

    def _finish(self, invoice: Invoice, record: ExternalRecord, before: tuple) -> None:
        """Start the steps after the push of an invoice settled now (or note its outcome), and apply those done."""
        order = step_order(self.connection, invoice, record) if record.state is RecordState.pushed else None
        if order is None:
            self.outcomes.append((record, before))
        else:
            self.steps.append(_Steps(record, before, order, *self._start_steps(order)))
        stop = self._settle(keep=STEPS_AHEAD)
        if stop is not None:
            self._stop(stop)

    def _create_queued(self) -> None:
        """Create the queued invoices in one call (a batch; the single create for one alone), then go on
        with each as with any other invoice (its steps, its outcome).

        Each one's outcome is set on its record as a create of its own would have set it: the
        ledger's document (a number QuickBooks has already: the document there, checked like any
        found one), its refusal, or an outage. An outage of the call as a whole is one outage: every
        invoice of it stays pending and is deferred (its outcome is unknown: the next attempt looks
        it up), or the run stops (:meth:`_stop`), once every invoice of the call has its outcome.
        """
        queued, self.queued = self.queued, []
        if not queued:
            return
        try:
            stop, unsettled = self._create(queued)
        except fencing.LeaseLost as lost:  # nothing was sent
            self._stop(lost)
        for q in queued:
            if q.record.id not in unsettled:
                self._finish(q.invoice, q.record, q.before)
        if stop is not None:
            self._stop(stop)

    def _create(self, queued: list[_Queued]) -> tuple[LedgerError | None, set[int]]:
        """Make the call of :meth:`_create_queued` and set each invoice's outcome.

        :return: the error that stops the run (None: none), and the ids of the records it left
            pending without an outcome of this run (as the invoice whose create stops a run).
        :raise LeaseLost: before the call, when a newer run took the connection over.
        """
        fencing.before_write()
        answers: dict[str, PushResult | LedgerError] = {}
        try:
            if len(queued) == 1:
                answers[str(queued[0].record.id)] = self.adapter.push_invoice(queued[0].draft, looked_up=True)
            else:
                operations = [
                    BatchOperation(id=str(q.record.id), kind="invoice", action="create", payload=q.draft)
                    for q in queued
                ]
                for item in self.adapter.batch(operations, looked_up=True):
                    answers[item.id] = item.result if item.result is not None else item.error  # type: ignore[assignment]
        except LedgerError as exc:
            answers = dict.fromkeys((str(q.record.id) for q in queued), exc)
        stop: LedgerError | None = None
        unsettled: set[int] = set()
        for q in queued:
            answer = answers.get(str(q.record.id))
            if isinstance(answer, PushResult):
                _set_document(self.connection, q.record, q.invoice, answer)
                continue
            if answer is None:
                answer = Unavailable("The ledger gave no answer for this invoice", outcome_unknown=True)
            try:
                _apply_error(self.connection, q.record, answer)
            except LedgerError as exc:
                stop = stop or exc
                unsettled.add(q.record.id)
            if isinstance(answer, Unavailable):
                answer.counted = True  # one outage, whatever the number of invoices it met
        return stop, unsettled

    def _looked_up(self, current: Invoice) -> Future:
        """Return what the ledger has under the reference of ``current`` (a future; None: nothing).

        An invoice whose record shows no attempt of unknown outcome has never reached the
        ledger: nothing is asked. The others are taken from the chunk's look-up made ahead, or
        looked up now when that one failed, did not cover the invoice, or started before a lapse
        of the lease (another run may have written since).
        """
        if current.id not in self.unknown:
            return _settled(None)
        ahead, lease = self.lookup, fencing.current()
        fresh = lease is None or lease.fresh_since(self.looked_at)
        if ahead is not None and current.number in self.looked_up and fresh:
            try:
                return _settled(ahead.result().get(current.number))
            except LedgerError:
                pass  # asked again for this invoice alone: its own error is its own
        return self.lanes.lookups.submit(self.lanes.lookup_adapter.find_by_reference, "invoice", current.number)

    def _start_steps(self, order: StepOrder) -> tuple[Future | None, Future | None]:
        """Give the steps of one invoice to the steps lane; return the futures of the PDF and finalize calls.

        A step that needs no call (no PDF to attach; an invoice the adapter knows final, not to
        be sent) is settled here: the lane is kept for calls.
        """
        lane, pdf, final = self.lanes.steps, None, None
        if order.pdf_due:
            pdf = _settled(_call_pdf(self.adapter, order)) if not order.pdf else lane.submit(self.lanes.call_pdf, order)
        if order.finalize_due:
            known, number = self.adapter.final_without_call(order.external_id, send=order.send)
            final = _settled(("ok", number)) if known else lane.submit(self.lanes.call_finalize, order)
        return pdf, final

    def _settle(self, keep: int) -> LedgerError | None:
        """Apply the steps done, in order, waiting for the oldest while more than ``keep`` are under way.

        :return: the first error about the connection a step met (its step and all later ones
            stay to do), else None.
        """
        stop: LedgerError | None = None
        while self.steps and (len(self.steps) > keep or self.steps[0].done):
            record, before, order, pdf, final = self.steps.popleft()
            errors = []
            made = pdf.result() if pdf is not None else None
            if made is not None:
                errors.append(_apply_pdf(self.connection, record, made))
                if record.pdf_state in (PdfState.attached, PdfState.failed):
                    self._commit()  # an upload is not worth repeating: its marker is kept at once
            made = final.result() if final is not None else None
            if made is not None:
                errors.append(_apply_finalize(self.connection, record, made, order.send))
            self.outcomes.append((record, before))
            stop = stop or next((error for error in errors if error is not None), None)
        return stop

    def _stop(self, error: Exception) -> None:
        """Stop the run on an error about the connection (or a lost lease): apply the steps under way, commit, raise it.

        After a lost lease the commit may be refused (a newer run marked these records:
        StaleDataError); what this run did is then left for the newer run to look up.
        """
        self._settle(keep=0)
        try:
            self._commit()
        except StaleDataError:
            db.session.rollback()
            if not isinstance(error, fencing.LeaseLost):
                raise
        raise error

    def _commit(self) -> bool:
        """Steps 4 of the outcomes so far, in one transaction; return whether to go on."""
        go_on = self.chunk_done(self.outcomes) if self.chunk_done is not None else True
        self.outcomes.clear()
        db.session.commit()
        self.started = time.monotonic()
        return go_on


def _customer_links(connection: Connection, customer_ids: set[int]) -> dict[int, str]:
    """Return the ledger id of each of these customers linked on the connection (one query)."""
    stmt = select(CustomerLink.customer_id, CustomerLink.external_id).where(
        CustomerLink.connection_id == connection.id, CustomerLink.customer_id.in_(customer_ids)
    )
    return {customer_id: external_id for customer_id, external_id in db.session.execute(stmt)}


def _load_chunk(ids: list[int]) -> list[Invoice]:
    """Return the invoices with these ids in due order, with lines, customer and PDF loaded."""
    stmt = (
        select(Invoice)
        .where(Invoice.id.in_(ids))
        .options(selectinload(Invoice.lines), selectinload(Invoice.customer), undefer(Invoice.pdf))
        .order_by(Invoice.issue_date, Invoice.id)
    )
    return list(db.session.scalars(stmt))


def _chunk_records(connection: Connection, invoices: list[Invoice]) -> tuple[dict[int, ExternalRecord], set[int]]:
    """Return the records of these invoices, each not pushed yet marked pending (step 1, not committed),
    and the ids of the invoices whose previous attempt's outcome is unknown (:func:`_mark`).

    Missing records are inserted marked already (one INSERT … RETURNING), the others marked in place.
    """
    ids = [invoice.id for invoice in invoices]
    stmt = select(ExternalRecord).where(
        ExternalRecord.connection_id == connection.id,
        ExternalRecord.kind == RecordKind.invoice,
        ExternalRecord.local_id.in_(ids),
    )
    found = {record.local_id: record for record in db.session.scalars(stmt)}
    new: set[int] = set()
    missing = [invoice for invoice in invoices if invoice.id not in found]
    if missing:
        now = utcnow()
        rows = [
            {
                "connection_id": connection.id,
                "kind": RecordKind.invoice,
                "local_id": invoice.id,
                "state": RecordState.pending,
                "attempts": 1,
                "last_attempt_at": now,
                "reference": invoice.number,
                "payload_hash": _payload_hash(_document_payload(invoice)),
                "fence": fencing.token() or 0,
            }
            for invoice in missing
        ]
        try:
            created = db.session.scalars(insert(ExternalRecord).returning(ExternalRecord), rows).all()
        except IntegrityError:  # another worker made some first: use theirs (each committed), marked below
            db.session.rollback()
            found = {i: record_for(connection, RecordKind.invoice, i) for i in ids}
        else:
            found.update((record.local_id, record) for record in created)
            new = {record.local_id for record in created}
    unknown: set[int] = set()
    for invoice in invoices:
        record = found[invoice.id]
        marked = invoice.id not in new and record.state is not RecordState.pushed
        if marked and _mark(record, reference=invoice.number, payload=_document_payload(invoice)):
            unknown.add(invoice.id)
    return found, unknown


def _mark(record: ExternalRecord, *, reference: str | None, payload: Any) -> bool:
    """Step 1 without its commit (:func:`_begin`): mark the attempt; return whether the last one is unknown.

    A record that has a ledger id without being pushed ("differs from the SaaS") counts as unknown
    too: the ledger is asked for the document again rather than given a second one.
    """
    unknown = (record.state is RecordState.pending and record.attempts > 0) or (
        record.external_id is not None and record.state is not RecordState.pushed
    )
    fencing.claim(record)
    record.transition(RecordState.pending)
    record.next_attempt_at = None
    record.attempts += 1
    record.last_attempt_at = utcnow()
    record.reference = reference
    record.payload_hash = _payload_hash(payload)
    return unknown


def _push_one(
    connection: Connection,
    invoice: Invoice,
    adapter: LedgerAdapter,
    resolver: _Resolver,
    record: ExternalRecord,
    looked_up: Future,
    links: dict[int, str],
    create_customers: bool,
    batched: bool = False,
) -> DocumentDraft | None:
    """Steps 2 to 4 of one invoice of a chunk, its outcome set on ``record`` (not committed).

    ``batched``: the invoice is not created here; its draft (customer included) is returned for
    the chunk's next batch call, the record left pending. Otherwise None is returned.

    ``looked_up`` is what the ledger has under the invoice's reference (its future; None when
    nothing was found, or nothing asked because no earlier attempt can have reached the
    ledger): an invoice there from an attempt whose outcome is unknown is adopted; otherwise
    the invoice is created without looking again.

    :raise LedgerError: one of :data:`CONNECTION_ERRORS` (the record stays pending with the error).
    """
    try:
        found = looked_up.result()
        if found is None:
            # Checked before anything is written, the customer included.
            draft = invoice_draft(connection, invoice, "", resolver)
            customer_id = links.get(invoice.customer_id)
            if customer_id is None:
                if not create_customers:
                    raise CustomerNotPushed(_not_linked_text(connection, invoice.customer))
                # The customer's own protocol commits (and may roll back): commit what is done first.
                db.session.commit()
                with db.session.no_autoflush:
                    customer_id = _ledger_customer_id(connection, invoice.customer, adapter)
                links[invoice.customer_id] = customer_id
            if batched:
                return replace(draft, customer_id=customer_id)
            fencing.before_write()
            found = adapter.push_invoice(replace(draft, customer_id=customer_id), looked_up=True)
    except DocumentHeld as held:
        record.transition(RecordState.needs_action, error_class=held.error_class.value, error_text=held.text)
        return None
    except CustomerNotPushed as exc:
        record.transition(
            RecordState.needs_action,
            error_class=errors_catalog.ErrorClass.CUSTOMER_NOT_LINKED.value,
            error_text=str(exc),
        )
        return None
    except LedgerError as exc:
        _apply_error(connection, record, exc)
        return None
    _set_document(connection, record, invoice, found)
    return None


def _apply_error(connection: Connection, record: ExternalRecord, error: LedgerError) -> None:
    """Set a ledger error met by the create of a chunk's invoice on its record (not committed).

    An error about the connection leaves the record pending with the error, deferred after an
    outage of its own (:mod:`portal.sync.deferral`); a refusal fails (or skips) it.

    :raise LedgerError: ``error`` when it is one of :data:`CONNECTION_ERRORS` and the run stops.
    """
    error_class, text = explain(connection, error)
    if isinstance(error, CONNECTION_ERRORS):
        record.transition(RecordState.pending, error_class=error_class, error_text=text)
        if deferral.defer(record, error):
            return
        raise error
    state = RecordState.skipped if isinstance(error, NotSupported) else RecordState.failed
    record.transition(state, error_class=error_class, error_text=text)


def push_credit_note(connection: Connection, note: CreditNote, adapter: LedgerAdapter | None = None) -> ExternalRecord:
    """Push one credit note exactly once; where the ledger has none (bexio), skip it with the manual step.

    :raise LedgerError: one of :data:`CONNECTION_ERRORS` (the record stays pending, retryable).
    """
    adapter = adapter or vault.fresh_adapter(connection)
    record = record_for(connection, RecordKind.credit_note, note.id)
    if record.state is RecordState.pushed:
        return _finalize_credit_note(connection, record, adapter)
    held = duplicate_holds(connection, RecordKind.credit_note, [note])
    unknown = _mark(record, reference=note.number, payload=_document_payload(note))
    if held:
        _hold_duplicate(record, held[note.id])
    db.session.commit()
    if held:
        return record
    resolver = _Resolver(connection)
    try:
        if not adapter.capabilities.credit_notes:
            # The adapter raises NotSupported with the manual step in the provider's terms,
            # naming the ledger invoice to correct when it is there.
            corrected = _existing(connection, RecordKind.invoice, note.invoice_id)
            corrects_id = corrected.external_id if corrected is not None else None
            adapter.push_credit_note(_unchecked_credit_note_draft(resolver, note, corrects_id))
        if unknown:
            found = adapter.find_by_reference("credit_note", note.number)
            if found is not None:
                return _finalize_credit_note(connection, _store_document(connection, record, note, found), adapter)
        invoice_record = record_for(connection, RecordKind.invoice, note.invoice_id)
        if invoice_record.state is not RecordState.pushed:
            return _hold(
                record,
                RecordState.needs_action,
                errors_catalog.ErrorClass.VALIDATION.value,
                f"Credit note {note.number} corrects invoice {note.invoice.number}, which is not in the ledger "
                "yet: push the invoice first.",
            )
        # Checked before anything is written, the customer included.
        draft = _credit_note_draft(connection, resolver, note, customer_id="", corrects_id=invoice_record.external_id)
        customer_id = _ledger_customer_id(connection, note.customer, adapter)
        fencing.before_write()
        result = adapter.push_credit_note(replace(draft, customer_id=customer_id))
    except DocumentHeld as stopped:
        return _hold_document(record, stopped)
    except CustomerNotPushed as exc:
        db.session.rollback()
        return _hold(record, RecordState.needs_action, errors_catalog.ErrorClass.CUSTOMER_NOT_LINKED.value, str(exc))
    except LedgerError as exc:
        return _store_error(record, exc)
    return _finalize_credit_note(connection, _store_document(connection, record, note, result), adapter)


def credit_note_steps_due(connection: Connection, record: ExternalRecord) -> bool:
    """Say whether a pushed credit note still has to be booked (Exact), or booking it failed before."""
    return (
        connection.provider == specs.EXACT_ONLINE
        and record.state is RecordState.pushed
        and record.finalize_state in (None, FinalizeState.failed)
    )


def complete_credit_note(connection: Connection, note: CreditNote, adapter: LedgerAdapter) -> ExternalRecord:
    """Book a pushed credit note whose booking is still to do or failed on an earlier run (Exact).

    :raise LedgerError: one of :data:`CONNECTION_ERRORS` (the step stays to do).
    """
    return _finalize_credit_note(connection, record_for(connection, RecordKind.credit_note, note.id), adapter)


def credit_notes_with_steps_due(connection: Connection) -> list[CreditNote]:
    """Return the connection's pushed credit notes still to book, or whose booking failed (Exact only)."""
    if connection.provider != specs.EXACT_ONLINE:
        return []  # the other ledgers book a credit note when it is created
    stmt = (
        select(CreditNote)
        .join(ExternalRecord, ExternalRecord.local_id == CreditNote.id)
        .where(
            ExternalRecord.connection_id == connection.id,
            ExternalRecord.kind == RecordKind.credit_note,
            ExternalRecord.state == RecordState.pushed,
            ExternalRecord.finalize_state.is_(None) | (ExternalRecord.finalize_state == FinalizeState.failed),
        )
        .order_by(CreditNote.issue_date, CreditNote.id)
    )
    return list(db.session.scalars(stmt))


def _finalize_credit_note(connection: Connection, record: ExternalRecord, adapter: LedgerAdapter) -> ExternalRecord:
    """Book a pushed Exact credit note: like an invoice, it counts once processed ("printed").

    Exact's print is idempotent (a processed document is not printed again), so a retry is safe;
    a refusal is kept on the record, which stays pushed, and the booking is tried again on the
    next run (:func:`credit_notes_with_steps_due`). Other ledgers book credit notes on creation.
    """
    if not credit_note_steps_due(connection, record) or record.external_id is None:
        return record
    try:
        number = adapter.finalize_invoice(record.external_id, send=False)
    except LedgerError as exc:
        db.session.rollback()
        record.finalize_state = FinalizeState.failed
        record.finalize_error = errors_catalog.explain(exc).explanation + f" ({exc.provider_text or exc})"
        db.session.commit()
        if isinstance(exc, CONNECTION_ERRORS) and not deferral.step_failed(exc):
            raise
        return record
    record.external_number = number or record.external_number
    record.finalize_state, record.finalize_error = FinalizeState.finalized, None
    record.finalized_at = utcnow()
    db.session.commit()
    return record


def _credit_note_draft(
    connection: Connection, resolver: _Resolver, note: CreditNote, *, customer_id: str, corrects_id: str | None
) -> DocumentDraft:
    """Return the credit note as the ledger gets it, checked by the totals guard like an invoice.

    :raise DocumentHeld: when the ledger would not book it as the SaaS issued it.
    """
    defaults = resolver.values(None)
    lines, taxed = guard.document_lines(resolver.taxes, note, resolver.values_of)
    draft = DocumentDraft(
        reference=note.number,
        number=note.number,
        customer_id=customer_id,
        issue_date=note.issue_date,
        due_date=None,
        currency=note.currency,
        lines=lines,
        corrects_id=corrects_id,
        journal=defaults.get("journal"),
        memo=note.reason,
    )
    return guard.checked(connection, note, draft, taxed, resolver.taxes)


def _unchecked_credit_note_draft(resolver: _Resolver, note: CreditNote, corrects_id: str | None) -> DocumentDraft:
    """Return the bare credit note for a ledger that takes none (its adapter names the manual step)."""
    return DocumentDraft(
        reference=note.number,
        number=note.number,
        customer_id="",
        issue_date=note.issue_date,
        due_date=None,
        currency=note.currency,
        lines=(),
        corrects_id=corrects_id,
        memo=note.reason,
    )


# -- payments ---------------------------------------------------------------------------------


def _existing(connection: Connection, kind: RecordKind, local_id: int) -> ExternalRecord | None:
    return db.session.scalar(
        select(ExternalRecord).where(
            ExternalRecord.connection_id == connection.id,
            ExternalRecord.kind == kind,
            ExternalRecord.local_id == local_id,
        )
    )


def _sibling_payment_ids(connection: Connection, payment: Payment) -> set[str]:
    """Return the ledger ids already recorded for the invoice's other payments."""
    others = select(Payment.id).where(Payment.invoice_id == payment.invoice_id, Payment.id != payment.id)
    stmt = select(ExternalRecord.external_id).where(
        ExternalRecord.connection_id == connection.id,
        ExternalRecord.kind == RecordKind.payment,
        ExternalRecord.local_id.in_(others),
        ExternalRecord.external_id.is_not(None),
    )
    return set(db.session.scalars(stmt))


def push_payment(connection: Connection, payment: Payment, adapter: LedgerAdapter | None = None) -> ExternalRecord:
    """Record a SaaS payment against its pushed invoice in the ledger exactly once; return its record.

    After an unknown outcome the payment is looked up by its reference (the SaaS's payment id).
    An invoice not in the ledger holds the payment as needs-action.

    :raise LedgerError: one of :data:`CONNECTION_ERRORS` (the record stays pending, retryable).
    """
    adapter = adapter or vault.fresh_adapter(connection)
    record = record_for(connection, RecordKind.payment, payment.id)
    if record.state is RecordState.pushed:
        return record
    payload = {
        "invoice": payment.invoice_id,
        "amount": payment.amount,
        "paid_on": payment.paid_on,
        "currency": payment.currency,
    }
    unknown = _begin(record, reference=payment.external_id, payload=payload)
    invoice_record = _existing(connection, RecordKind.invoice, payment.invoice_id)
    if invoice_record is None or invoice_record.state is not RecordState.pushed or invoice_record.external_id is None:
        return _hold(
            record,
            RecordState.needs_action,
            errors_catalog.ErrorClass.VALIDATION.value,
            f"Payment {payment.external_id} is for invoice {payment.invoice.number}, which is not in the ledger "
            "yet: push the invoice first.",
        )
    draft = PaymentDraft(
        reference=payment.external_id,
        invoice_id=invoice_record.external_id,
        amount=payment.amount,
        paid_on=payment.paid_on,
        bank_account=_Resolver(connection).values(None).get("bank_account"),
    )
    try:
        found = adapter.find_payment(draft, exclude=_sibling_payment_ids(connection, payment)) if unknown else None
        if found is None:
            fencing.before_write()
            found = adapter.push_payment(draft)
    except LedgerError as exc:
        return _store_error(record, exc)
    return _store_result(record, found)


# -- what is due --------------------------------------------------------------------------------


def _done(connection: Connection, kind: RecordKind, *, include_failed: bool):
    """Return the local ids of records not due: in the ledger, skipped, dismissed, held for a person, deferred
    after an outage of their own until later (and failed)."""
    finished = [RecordState.pushed, RecordState.skipped, RecordState.dismissed]
    if not include_failed:
        finished.append(RecordState.failed)
    return select(ExternalRecord.local_id).where(
        ExternalRecord.connection_id == connection.id,
        ExternalRecord.kind == kind,
        ExternalRecord.state.in_(finished) | ExternalRecord.held_for_person() | deferral.not_due(),
    )


def due_invoice_ids(connection: Connection, *, include_failed: bool = False) -> list[int]:
    """Return the ids of :func:`due_invoices`, in the same order (a long run loads them chunk by chunk)."""
    stmt = (
        select(Invoice.id)
        .where(
            Invoice.business_unit_id == connection.business_unit_id,
            Invoice.issue_date >= connection.sync_from.date(),
            Invoice.id.not_in(_done(connection, RecordKind.invoice, include_failed=include_failed)),
        )
        .order_by(Invoice.issue_date, Invoice.id)
    )
    return list(db.session.scalars(stmt))


def due_invoices(connection: Connection, *, include_failed: bool = False) -> list[Invoice]:
    """Return the business unit's invoices dated on or after ``sync_from`` that still need a push.

    Pushed, skipped and dismissed ones are left out, and those held until a person acts
    (:attr:`~portal.models.ExternalRecord.waits_for_person`: a customer to link or create anyway,
    a number another document has); failed ones too unless ``include_failed`` (they wait for a
    person to fix the cause, then retry).
    """
    return _due_documents(connection, Invoice, RecordKind.invoice, include_failed)


def due_credit_notes(connection: Connection, *, include_failed: bool = False) -> list[CreditNote]:
    """Return the business unit's credit notes dated on or after ``sync_from`` that still need a push."""
    return _due_documents(connection, CreditNote, RecordKind.credit_note, include_failed)


def _due_documents(connection: Connection, model, kind: RecordKind, include_failed: bool) -> list:
    """Return the unit's documents of ``model`` dated on or after ``sync_from`` not done in the ledger."""
    stmt = (
        select(model)
        .where(
            model.business_unit_id == connection.business_unit_id,
            model.issue_date >= connection.sync_from.date(),
            model.id.not_in(_done(connection, kind, include_failed=include_failed)),
        )
        .order_by(model.issue_date, model.id)
    )
    return list(db.session.scalars(stmt))


def due_invoice_count(connection: Connection) -> int:
    """Return how many invoices :func:`due_invoices` would return, counted in the database."""
    return _due_count(connection, Invoice, RecordKind.invoice)


def due_credit_note_count(connection: Connection) -> int:
    """Return how many credit notes :func:`due_credit_notes` would return, counted in the database."""
    return _due_count(connection, CreditNote, RecordKind.credit_note)


def _due_count(connection: Connection, model, kind: RecordKind) -> int:
    stmt = select(func.count(model.id)).where(
        model.business_unit_id == connection.business_unit_id,
        model.issue_date >= connection.sync_from.date(),
        model.id.not_in(_done(connection, kind, include_failed=False)),
    )
    return int(db.session.scalar(stmt) or 0)


def due_payments(connection: Connection, *, include_failed: bool = False) -> list[Payment]:
    """Return the payments of invoices this connection pushed that are not in the ledger yet."""
    pushed_invoices = select(ExternalRecord.local_id).where(
        ExternalRecord.connection_id == connection.id,
        ExternalRecord.kind == RecordKind.invoice,
        ExternalRecord.state == RecordState.pushed,
    )
    stmt = (
        select(Payment)
        .where(
            Payment.invoice_id.in_(pushed_invoices),
            Payment.id.not_in(_done(connection, RecordKind.payment, include_failed=include_failed)),
        )
        .order_by(Payment.paid_on, Payment.id)
    )
    return list(db.session.scalars(stmt))
