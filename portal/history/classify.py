"""Classification: what a back-fill would do with each record of its range (one rule for preview and push)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from ..customers import services as customers
from ..extensions import db
from ..integrations import specs
from ..integrations.base import (
    ClosedPeriod,
    LedgerAdapter,
    NotSupported,
    PushResult,
)

# -- classification -------------------------------------------------------------------------------
from ..integrations.totals import Totals
from ..mappings import services as mappings
from ..mappings.taxes import TaxResolver
from ..models import (
    Connection,
    CreditNote,
    Customer,
    ExternalRecord,
    Invoice,
    Product,
    RecordKind,
    RecordState,
)
from ..sync import guard
from ..sync import payments as sync_payments
from ..sync import push as sync_push
from ..sync.numbers import duplicate_holds
from .scope import Scope, page_url


@dataclass(frozen=True)
class Verdict:
    """What the back-fill will do with a record, and why when it will not push it."""

    outcome: str  # create | existing | skipped | blocked
    reason: str | None = None
    fix_url: str | None = None
    fix_label: str | None = None
    external_id: str | None = None
    number: str | None = None
    #: Found in the ledger by our reference: the push records it as pushed without creating it.
    adopt: bool = False
    #: The found document's total in the ledger (compared with the SaaS's when adopted).
    total: Decimal | None = None


CREATE = Verdict("create")


def has_payment_push() -> bool:
    """Say whether the sync engine can push payments yet."""
    return hasattr(sync_push, "push_payment")


def supports_batch(adapter: LedgerAdapter) -> bool:
    """Say whether the adapter offers batch calls (QBO: up to 30 operations)."""
    size = getattr(adapter.capabilities, "batch_size", None)
    return bool(size) and type(adapter).batch is not LedgerAdapter.batch


class Classifier:
    """Decide per record what a back-fill does; the preview and the push share it."""

    def __init__(self, connection: Connection, adapter: LedgerAdapter | None, scope: Scope) -> None:
        self.connection = connection
        self.scope = scope
        self.name = specs.get_spec(connection.provider).name
        self.link_only = customers.customer_mode(connection) == "link_only"
        self.credit_notes = specs.get_spec(connection.provider).capabilities.credit_notes
        self.rebind(connection)
        self._gaps: dict[int | None, Verdict | None] = {}
        #: Invoice id → whether this back-fill gets it into the ledger (for its credit notes and payments).
        self._invoices: dict[int, bool] = {}
        #: Customer id → the verdict of a customer held for a person (None: not held), read once.
        self._held: dict[int, Verdict | None] = {}
        self.closed: list[ClosedPeriod] = []
        #: Our reference → (external id, number) of ledger documents of the range, where listable.
        #: ... with the document's total there, compared with the SaaS's when it is adopted.
        self.in_ledger: dict[str, dict[str, tuple[str, str | None, Decimal]]] = {}
        if adapter is not None:
            self._read_ledger(adapter)

    def rebind(self, connection: Connection) -> None:
        """Read the connection and its mappings anew (after the session was cleared between chunks)."""
        self.connection = connection
        self.refs = mappings.reference_data(connection)
        self.maps = mappings.mappings(connection)
        self.tax_mode = mappings.mapping_settings(connection).get("qbo_tax_mode")
        self.taxes = TaxResolver(connection, refs=self.refs, maps=self.maps)

    def _read_ledger(self, adapter: LedgerAdapter) -> None:
        try:
            self.closed = list(adapter.closed_periods(self.scope.date_from, self.scope.date_to))
        except NotSupported:
            self.closed = []
        for kind in ("invoice", "credit_note"):
            if kind not in self.scope.kinds:
                continue
            with contextlib.suppress(NotSupported):
                self.in_ledger[kind] = {
                    doc.reference: (doc.external_id, doc.number, doc.total)
                    for doc in adapter.iter_documents(kind, self.scope.date_from, self.scope.date_to)
                    if doc.reference
                }

    # -- causes ------------------------------------------------------------------------------

    def _closed(self, day: date | None) -> Verdict | None:
        if day is None:
            return None
        for period in self.closed:
            if (period.start is None or period.start <= day) and day <= period.end:
                span = f"{period.start} to {period.end}" if period.start else f"up to {period.end}"
                return Verdict(
                    "blocked",
                    f"{self.name} takes no documents dated {day}: the period {span} is closed ({period.reason}). "
                    f"Reopen it in {self.name}, or leave these records out of the range.",
                    page_url("connections.show_connection", connection_id=self.connection.id),
                    f"Reopen the period in {self.name}",
                )
        return None

    def _required(self, f) -> bool:
        if self.connection.provider == specs.QUICKBOOKS and f.key == "tax_code":
            return self.tax_mode == "non_us"
        return f.required

    def _mapping_gap(self, product: Product | None) -> Verdict | None:
        key = product.id if product is not None else None
        if key in self._gaps:
            return self._gaps[key]
        found = None
        what = f"product {product.code} {product.name}" if product is not None else "lines without a product"
        for eff in mappings.effective_mapping(self.connection, product, refs=self.refs, maps=self.maps):
            f = eff.field
            why = None
            if eff.value is None and self._required(f):
                why = f"no {f.lower_label} is mapped for {what}, and {self.name} refuses lines without one"
            elif eff.value and eff.source in ("product override", "connection default"):
                problem = mappings.check_code(self.connection, f, eff.value, self.refs)
                if problem:
                    why = f"the {f.lower_label} of {what} ({eff.source}) is wrong: {problem}"
            if why:
                if eff.source == "product override" and product is not None:
                    fix = page_url("mappings.edit_product", connection_id=self.connection.id, product_id=product.id)
                    label = f"Fix the mapping of {product.code}"
                else:
                    fix = page_url(
                        "mappings.show_mappings", connection_id=self.connection.id, _anchor=f"default-{f.key}"
                    )
                    label = f"Set the default {f.lower_label}"
                found = Verdict("blocked", f"Mapping gap: {why}.", fix, label)
                break
        self._gaps[key] = found
        return found

    def _unlinked(self, customer: Customer) -> Verdict | None:
        if customers.customer_link(self.connection, customer) is not None:
            return None
        if not self.link_only:
            if customer.id not in self._held:
                record = db.session.scalar(
                    select(ExternalRecord).where(
                        ExternalRecord.connection_id == self.connection.id,
                        ExternalRecord.kind == RecordKind.customer,
                        ExternalRecord.local_id == customer.id,
                    )
                )
                self._held[customer.id] = (
                    Verdict(
                        "blocked",
                        record.last_error_text or f"Customer {customer.name} is held until someone links it.",
                        page_url("customers.show_customer_links", connection_id=self.connection.id, _anchor="held"),
                        "Link the customer or create it anyway",
                    )
                    if record is not None and record.waits_for_person
                    else None
                )
            return self._held[customer.id]
        return Verdict(
            "blocked",
            f"Customer {customer.name} ({customer.external_id}) is not linked to a {self.name} customer, and "
            "this connection only links customers (it creates none).",
            page_url("customers.show_customer_links", connection_id=self.connection.id),
            "Link the customer",
        )

    def _shared_number(self, kind: str, doc: Invoice | CreditNote) -> Verdict | None:
        held = duplicate_holds(self.connection, RecordKind(kind), [doc])
        if doc.id not in held:
            return None
        return Verdict(
            "blocked",
            held[doc.id],
            page_url("ops.list_records", connection_id=self.connection.id, q=doc.number),
            "Give the document its own number in the SaaS",
        )

    def _document(self, kind: str, doc: Invoice | CreditNote) -> Verdict | None:
        return (
            self._shared_number(kind, doc)
            or self._closed(doc.issue_date)
            or self._unlinked(doc.customer)
            or next(
                (
                    gap
                    for line in doc.lines
                    if (gap := self._mapping_gap(db.session.get(Product, line.product_id) if line.product_id else None))
                ),
                None,
            )
            or self._guarded(doc)
        )

    def _guarded(self, doc: Invoice | CreditNote) -> Verdict | None:
        """Return the totals guard's hold of the document (a line's rate unmapped, totals that would differ)."""
        if isinstance(doc, CreditNote) and not self.credit_notes:
            return None
        try:
            guard.preview(self.connection, doc, self.taxes)
        except guard.DocumentHeld as held:
            if held.product_id is not None:
                fix = page_url("mappings.edit_product", connection_id=self.connection.id, product_id=held.product_id)
                return Verdict("blocked", held.text, fix, "Fix the product's tax code")
            if held.error_class.value == "mapping_missing":
                fix = page_url("mappings.show_mappings", connection_id=self.connection.id, _anchor="tax-table")
                return Verdict("blocked", held.text, fix, "Map the rate in the tax table")
            return Verdict("blocked", held.text, None, None)
        return None

    def _invoice_reachable(self, invoice: Invoice) -> bool:
        """Say whether the invoice is in the ledger, or comes with this back-fill (its own verdict lets it)."""
        record = db.session.scalar(
            select(ExternalRecord).where(
                ExternalRecord.connection_id == self.connection.id,
                ExternalRecord.kind == RecordKind.invoice,
                ExternalRecord.local_id == invoice.id,
            )
        )
        if record is not None and record.state is RecordState.pushed:
            return True
        if not (
            "invoice" in self.scope.kinds
            and invoice.issue_date is not None
            and self.scope.date_from <= invoice.issue_date <= self.scope.date_to
        ):
            return False
        # What the back-fill does with the invoice decides: a blocked invoice blocks what depends on it.
        if invoice.id not in self._invoices:
            self._invoices[invoice.id] = self.verdict("invoice", invoice, record).outcome in ("create", "existing")
        return self._invoices[invoice.id]

    def _payments_mode(self) -> Verdict | None:
        """Return why payments are not back-filled when the connection's payments mode is not "push"."""
        mode = sync_payments.mode(self.connection)
        if mode == sync_payments.PUSH:
            return None
        words = {
            sync_payments.PULL: f"this connection pulls payments from {self.name} (payments mode “pull”): the "
            "ledger's own bookings mark invoices paid, so SaaS payments are not pushed into it",
            sync_payments.OFF: "this connection does not sync payments (payments mode “off”)",
        }[mode]
        return Verdict(
            "skipped",
            f"Payments are not back-filled: {words}. Choose payments mode “push” in the connection's settings to "
            "back-fill them.",
            page_url("connections.show_connection", connection_id=self.connection.id, _anchor="settings-box"),
            "Open the connection settings",
        )

    # -- the verdict -------------------------------------------------------------------------

    def verdict(self, kind: str, obj: Any, record: ExternalRecord | None) -> Verdict:
        """Return what the back-fill does with ``obj`` given its ExternalRecord (or None)."""
        if record is not None and record.state is RecordState.pushed:
            return Verdict("existing", "Pushed earlier.", external_id=record.external_id)
        if record is not None and record.state is RecordState.skipped and kind != "payment":
            return Verdict("skipped", record.last_error_text or "Skipped earlier.")
        if kind == "customer":
            link = customers.customer_link(self.connection, obj)
            if link is not None:
                return Verdict("existing", "Linked to a ledger customer.", external_id=link.external_id)
            return self._unlinked(obj) or CREATE
        if kind == "payment":
            if not has_payment_push():
                return Verdict("skipped", "Payments cannot be back-filled yet: the payment push is not available.")
            mode = self._payments_mode()
            if mode is not None:
                return mode
            if not self._invoice_reachable(obj.invoice):
                return self._missing_invoice("Payment", obj.external_id, obj.invoice)
            return self._closed(obj.paid_on) or CREATE
        shared = self._shared_number(kind, obj)
        if shared is not None:
            return shared
        found = self.in_ledger.get(kind, {}).get(obj.number)
        if found is not None:
            return self._found(kind, obj, *found)
        if record is not None and record.differs:
            return Verdict(
                "blocked",
                record.last_error_text,
                page_url("ops.list_records", connection_id=self.connection.id, q=obj.number),
                "Correct or credit it in the ledger, then re-sync the record",
                external_id=record.external_id,
            )
        if kind == "credit_note":
            if not self.credit_notes:
                return Verdict(
                    "skipped",
                    f"{self.name} has no API for credit notes: create credit note {obj.number} by hand in {self.name}.",
                )
            if not self._invoice_reachable(obj.invoice):
                return self._missing_invoice("Credit note", obj.number, obj.invoice)
        return self._document(kind, obj) or CREATE

    def _found(
        self, kind: str, doc: Invoice | CreditNote, external_id: str, number: str | None, total: Decimal | None
    ) -> Verdict:
        """Return the verdict of a document the ledger has already (found by our reference).

        Adopted as existing when its total there is the SaaS's. Blocked (and recorded so, without a
        write) when another SaaS document's record holds that ledger document (they share a number),
        or when its total there differs from the SaaS's ("differs from the SaaS").
        """
        what = "invoice" if kind == "invoice" else "credit note"
        records = page_url("ops.list_records", connection_id=self.connection.id, q=doc.number)
        other = db.session.scalar(
            select(ExternalRecord.local_id).where(
                ExternalRecord.connection_id == self.connection.id,
                ExternalRecord.kind == RecordKind(kind),
                ExternalRecord.external_id == str(external_id),
                ExternalRecord.local_id != doc.id,
            )
        )
        if other is not None:
            owner: Invoice | CreditNote | None = (
                db.session.get(Invoice, other) if kind == "invoice" else db.session.get(CreditNote, other)
            )
            return Verdict(
                "blocked",
                f"Not adopted: the {self.name} {what} with reference {doc.number} ({number or external_id}) is the "
                f"ledger copy of the SaaS's {what} {owner.external_id if owner else other}, which has the same "
                f"number. Give this {what} its own number in the SaaS, or dismiss it if it is the same {what}.",
                records,
                "Give the document its own number in the SaaS",
                external_id=external_id,
                number=number,
                adopt=True,
                total=total,
            )
        found = PushResult(external_id, number, False, listed_totals(doc, total))
        differs = guard.booked_differently(self.connection, doc, found)
        if differs is not None:
            return Verdict(
                "blocked",
                differs,
                records,
                "Correct or credit it in the ledger, then re-sync the record",
                external_id=external_id,
                number=number,
                adopt=True,
                total=total,
            )
        return Verdict(
            "existing",
            "Found in the ledger by our reference.",
            external_id=external_id,
            number=number,
            adopt=True,
            total=total,
        )

    def _missing_invoice(self, what: str, label: str, invoice: Invoice) -> Verdict:
        return Verdict(
            "blocked",
            f"{what} {label} belongs to invoice {invoice.number} of {invoice.issue_date}, which is not in the "
            "ledger and not in this back-fill: widen the range or push the invoice first.",
            page_url(
                "history.show_history", connection_id=self.connection.id, date_from=invoice.issue_date.isoformat()
            ),
            "Back-fill from the invoice's date",
        )


def listed_totals(doc: Invoice | CreditNote, total: Decimal | None) -> Totals | None:
    """Return a listed ledger document's totals: the listing gives the total; net and tax are taken as the SaaS's."""
    return Totals(doc.subtotal, doc.tax_total, abs(total)) if total is not None else None
