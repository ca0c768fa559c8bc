"""Historical push: preview and push a connection's records of a date range (DESIGN.md "Jobs").

Only records dated on or after a connection's ``sync_from`` sync by themselves; a back-fill pushes
older ones. Both the preview and the push read the range in chunks of ids (keyset pagination,
never the whole range at once) and put every record through one :class:`Classifier`, so the
preview's numbers are what the push then does:

* **existing** — pushed earlier (its ExternalRecord is pushed), linked (customers), or found in
  the ledger by our reference;
* **skipped** — the ledger cannot take it (bexio credit notes; payments until the push exists);
* **blocked** — held with the cause and the screen that fixes it: a mapping gap, a customer not
  linked in link-only mode, a closed period, a credit note whose invoice is not in the ledger;
* **create** — pushed through :mod:`portal.sync.push`, the sync engine's exactly-once protocol.

The push runs kinds in dependency order (customers → invoices → credit notes → payments) and
commits its cursor after every chunk: a crash, a pause or a quota wait resumes at the cursor, and
records pushed already are left alone by their ExternalRecord anyway. While live syncs of the
company work it takes at most ``HISTORY_QUOTA_SHARE`` of every quota window (the shared limiter),
so they keep the rest; while they are idle it uses all but a small reserve
(:data:`portal.sync.limiter.LIVE_RESERVE`): the quota nobody needs is not left unused.

Like :mod:`portal.sync.push`, the push commits as it goes (STYLE 6 names the job's outer
function as the boundary; here every chunk is one): the commits are the resumability.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from flask import current_app, has_request_context, url_for
from sqlalchemy import Table, func, select, union
from sqlalchemy.orm import selectinload

from .. import audit
from ..connections import vault
from ..customers import services as customers
from ..database import utcnow
from ..extensions import db, queue
from ..integrations import specs
from ..integrations.base import (
    BatchOperation,
    ClosedPeriod,
    LedgerAdapter,
    LedgerError,
    NotSupported,
    PushResult,
    RateLimited,
)
from ..integrations.totals import Totals
from ..mappings import services as mappings
from ..mappings.taxes import TaxResolver
from ..models import (
    Backfill,
    BackfillItem,
    BackfillStatus,
    Connection,
    CreditNote,
    Customer,
    ExternalRecord,
    Invoice,
    ItemOutcome,
    Payment,
    Product,
    RecordKind,
    RecordState,
    StaffUser,
    SyncRun,
    SyncRunKind,
    SyncRunStatus,
)
from ..models.history import BACKFILL_KINDS
from ..sync import guard, limiter
from ..sync import payments as sync_payments
from ..sync import push as sync_push
from ..sync.numbers import duplicate_holds

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


def _url(endpoint: str, **values: Any) -> str:
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


def _id_query(connection: Connection, kind: str, start: date, end: date):
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
    sub = _id_query(connection, kind, start, end).subquery()
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


def _records(connection: Connection, kind: str, ids: list[int]) -> dict[int, ExternalRecord]:
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


# -- classification -------------------------------------------------------------------------------


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
                    _url("connections.show_connection", connection_id=self.connection.id),
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
                    fix = _url("mappings.edit_product", connection_id=self.connection.id, product_id=product.id)
                    label = f"Fix the mapping of {product.code}"
                else:
                    fix = _url("mappings.show_mappings", connection_id=self.connection.id, _anchor=f"default-{f.key}")
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
                        _url("customers.show_customer_links", connection_id=self.connection.id, _anchor="held"),
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
            _url("customers.show_customer_links", connection_id=self.connection.id),
            "Link the customer",
        )

    def _shared_number(self, kind: str, doc: Invoice | CreditNote) -> Verdict | None:
        held = duplicate_holds(self.connection, RecordKind(kind), [doc])
        if doc.id not in held:
            return None
        return Verdict(
            "blocked",
            held[doc.id],
            _url("ops.list_records", connection_id=self.connection.id, q=doc.number),
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
                fix = _url("mappings.edit_product", connection_id=self.connection.id, product_id=held.product_id)
                return Verdict("blocked", held.text, fix, "Fix the product's tax code")
            if held.error_class.value == "mapping_missing":
                fix = _url("mappings.show_mappings", connection_id=self.connection.id, _anchor="tax-table")
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
            _url("connections.show_connection", connection_id=self.connection.id, _anchor="settings-box"),
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
                _url("ops.list_records", connection_id=self.connection.id, q=obj.number),
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
        records = _url("ops.list_records", connection_id=self.connection.id, q=doc.number)
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
        found = PushResult(external_id, number, False, _listed_totals(doc, total))
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
            _url("history.show_history", connection_id=self.connection.id, date_from=invoice.issue_date.isoformat()),
            "Back-fill from the invoice's date",
        )


# -- preview --------------------------------------------------------------------------------------


@dataclass
class KindPreview:
    """A kind's numbers in a preview."""

    kind: str
    create: int = 0
    existing: int = 0
    skipped: int = 0
    blocked: int = 0

    @property
    def total(self) -> int:
        """Return every record of the kind in the range."""
        return self.create + self.existing + self.skipped + self.blocked


@dataclass
class Preview:
    """What a back-fill would do: per-kind numbers, blocked records with fixes, calls and duration."""

    scope: Scope
    provider: str
    kinds: dict[str, KindPreview]
    blocked: list[dict[str, Any]] = field(default_factory=list)
    causes: list[dict[str, Any]] = field(default_factory=list)
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    estimate: dict[str, Any] = field(default_factory=dict)
    closed_periods: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Return every record of the range over the chosen kinds."""
        return sum(k.total for k in self.kinds.values())

    def as_dict(self) -> dict[str, Any]:
        """Return the preview as JSON-ready data (the CLI prints this)."""
        return {
            "connection_id": self.scope.connection_id,
            "provider": self.provider,
            "from": self.scope.date_from.isoformat(),
            "to": self.scope.date_to.isoformat(),
            "kinds": {k: {**asdict(v), "total": v.total} for k, v in self.kinds.items()},
            "blocked": self.blocked,
            "blocked_causes": self.causes,
            "skipped_reasons": self.skipped_reasons,
            "calls": self.calls,
            "estimate": self.estimate,
            "closed_periods": self.closed_periods,
            "notes": self.notes,
        }


def range_counts(connection: Connection, scope: Scope) -> dict[str, Any]:
    """Return how many records of each kind the range holds (one count query per kind, no ledger call)."""
    kinds = {}
    for kind in scope.kinds:
        sub = _id_query(connection, kind, scope.date_from, scope.date_to).subquery()
        kinds[kind] = {"total": db.session.scalar(select(func.count()).select_from(sub))}
    return {"kinds": kinds}


def _iter_chunks(connection: Connection, kind: str, scope: Scope, *, after: int = 0) -> Iterator[list[int]]:
    size = chunk_size()
    while True:
        ids = next_ids(connection, kind, scope.date_from, scope.date_to, after=after, limit=size)
        if not ids:
            return
        yield ids
        after = ids[-1]


def preview(connection: Connection, scope: Scope, adapter: LedgerAdapter | None = None) -> Preview:
    """Count what a back-fill of ``scope`` would create, find existing, skip and block; write nothing.

    Reads the ledger (closed periods, its documents of the range where it can list them) but
    writes nothing to it nor to our records.

    :raise LedgerError: when the ledger cannot be read.
    """
    adapter = adapter or vault.fresh_adapter(connection)
    classifier = Classifier(connection, adapter, scope)
    result = Preview(scope, connection.provider, {k: KindPreview(k) for k in scope.kinds})
    causes: dict[str, dict[str, Any]] = {}
    for kind in scope.kinds:
        numbers = result.kinds[kind]
        for ids in _iter_chunks(connection, kind, scope):
            records = _records(connection, kind, ids)
            for obj in load(kind, ids):
                v = classifier.verdict(kind, obj, records.get(obj.id))
                setattr(numbers, v.outcome, getattr(numbers, v.outcome) + 1)
                if v.outcome == "skipped":
                    key = v.reason.split(":")[0] if v.reason else "Skipped"
                    result.skipped_reasons[key] = result.skipped_reasons.get(key, 0) + 1
                if v.outcome == "blocked":
                    cause = causes.setdefault(
                        v.fix_label or v.reason or "",
                        {"cause": v.fix_label, "fix_url": v.fix_url, "count": 0, "example": v.reason},
                    )
                    cause["count"] += 1
                    if len(result.blocked) < PREVIEW_LIST_LIMIT:
                        day = date_of(kind, obj)
                        result.blocked.append(
                            {
                                "kind": kind,
                                "id": obj.id,
                                "label": label_of(kind, obj),
                                "date": day.isoformat() if day else None,
                                "reason": v.reason,
                                "fix_url": v.fix_url,
                                "fix_label": v.fix_label,
                            }
                        )
            connection = _clear_session(keep=connection)
            classifier.rebind(connection)
    result.causes = sorted(causes.values(), key=lambda c: -c["count"])
    result.closed_periods = [
        {"start": p.start.isoformat() if p.start else None, "end": p.end.isoformat(), "reason": p.reason}
        for p in classifier.closed
    ]
    result.calls = calls_needed(connection, adapter, result)
    result.estimate = estimate(connection, result.calls)
    if "payment" in scope.kinds and not has_payment_push():
        result.notes.append("Payments: not yet — the payment push is not available, so payments are skipped.")
    elif "payment" in scope.kinds and (mode := classifier._payments_mode()) is not None:
        result.notes.append(mode.reason or "")
    if not classifier.in_ledger:
        result.notes.append(
            f"{classifier.name} documents are not listed here: records already in the ledger are recognised by "
            "their push record, and by our reference when a push finds them."
        )
    return result


#: Ledger calls per record created singly: documents and payments are looked up by our reference
#: before they are created (every adapter does, so a re-run never doubles them); customers are
#: looked up by their identifiers first (one ``or``-filtered query in Exact, a few elsewhere).
CALLS_PER_RECORD = {"customer": 2, "invoice": 2, "credit_note": 2, "payment": 2}
#: Where a provider needs more per document, as measured by bench/backfill.py (Exact: the look-up,
#: the create, and the after-push steps of the connection's sending method).
PROVIDER_CALLS_PER_RECORD = {specs.EXACT_ONLINE: {"invoice": 5, "credit_note": 5}}
#: Calls per batch call: the adapter looks the batch's numbers up in one query, then sends the batch.
CALLS_PER_BATCH = 2


def calls_needed(connection: Connection, adapter: LedgerAdapter | None, result: Preview) -> int:
    """Return about how many ledger calls the back-fill makes (batched where the ledger can).

    Counts the creates, the look-ups that guard them, and the range's reads (closed periods,
    the ledger's documents before and after, for the reconciliation).
    """
    batch = adapter.capabilities.batch_size if adapter is not None and supports_batch(adapter) else None
    documents = [k for k in result.kinds if k in ("invoice", "credit_note")]
    calls = 1 + 2 * len(documents)
    for kind, numbers in result.kinds.items():
        n = numbers.create
        if batch and kind == "invoice":
            calls += math.ceil(n / batch) * CALLS_PER_BATCH
        else:
            per = PROVIDER_CALLS_PER_RECORD.get(connection.provider, {}).get(kind, CALLS_PER_RECORD[kind])
            calls += n * per
    return calls


def estimate(connection: Connection, calls: int, share: float | None = None) -> dict[str, Any]:
    """Return how long ``calls`` ledger calls take within the back-fill's share of the quota."""
    spec = specs.get_spec(connection.provider)
    share = quota_share() if share is None else share
    per_minute = max(1, int(spec.quotas.per_minute * share))
    per_day = max(1, int(spec.quotas.per_day * share)) if spec.quotas.per_day else None
    seconds = calls / per_minute * 60
    days = 1
    if per_day and calls > per_day:
        days = math.ceil(calls / per_day)
        seconds = (days - 1) * 86400 + (calls - (days - 1) * per_day) / per_minute * 60
    quota = f"{spec.quotas.per_minute:,} calls a minute"
    if spec.quotas.per_day:
        quota += f" and {spec.quotas.per_day:,} a day"
    idle = max(share, 1 - limiter.LIVE_RESERVE)
    text = (
        f"About {calls:,} {spec.name} calls. {spec.name} allows {quota} per {spec.quotas.per}; the back-fill uses "
        f"{share:.0%} of that while the live sync works, leaving it the rest, and up to {idle:.0%} while it is idle"
    )
    if days > 1:
        text += (
            f". At {per_day:,} calls a day this back-fill spans {days} days: it waits for each daily quota to "
            "reset and continues by itself."
        )
    else:
        text += f", so it takes at most about {_duration(seconds)}."
    return {"calls": calls, "seconds": round(seconds, 1), "days": days, "share": share, "text": text}


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} seconds"
    if seconds < 5400:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds / 3600:.1f} hours"


# -- starting, pausing, resuming, cancelling ------------------------------------------------------


def start(
    connection: Connection,
    scope: Scope,
    *,
    started_by: StaffUser | None,
    preview_data: dict | None = None,
    enqueue_job: bool = True,
):
    """Create the back-fill and its job mirror, audit it, commit, and enqueue the job.

    ``enqueue_job=False``: the caller runs it in its own process (:func:`run`) instead.

    :raise HistoryError: when a back-fill of this connection is still unfinished.
    """
    active = db.session.scalar(
        select(Backfill).where(
            Backfill.connection_id == connection.id,
            Backfill.status.not_in([BackfillStatus.succeeded, BackfillStatus.cancelled]),
        )
    )
    if active is not None:
        raise HistoryError(
            f"Back-fill #{active.id} of this connection is {active.status.label.lower()}: "
            "finish, resume or cancel it before starting another."
        )
    parameters = {
        "connection_id": connection.id,
        "date_from": scope.date_from.isoformat(),
        "date_to": scope.date_to.isoformat(),
        "kinds": list(scope.kinds),
    }
    run = SyncRun(kind=SyncRunKind.historical, queue=QUEUE, parameters=parameters, started_by=started_by)
    backfill = Backfill(
        connection=connection,
        sync_run=run,
        date_from=scope.date_from,
        date_to=scope.date_to,
        kinds=list(scope.kinds),
        status=BackfillStatus.queued,
        counts={},
        calls=0,
        cursor_id=0,
        busy_seconds=0.0,
        preview=preview_data,
        started_by=started_by,
    )
    if preview_data:
        run.progress_total = sum(k["total"] for k in preview_data.get("kinds", {}).values())
    db.session.add_all([run, backfill])
    db.session.flush()
    run.parameters = {**parameters, "backfill_id": backfill.id}
    _audit(backfill, "history.started", f"Back-fill #{backfill.id} started: {_describe(backfill)}")
    db.session.commit()
    if enqueue_job:
        enqueue(backfill)
    return backfill


def _describe(backfill: Backfill) -> str:
    kinds = ", ".join(KIND_LABELS[k].lower() for k in backfill.kinds)
    return f"{kinds} dated {backfill.date_from} to {backfill.date_to} into {backfill.connection.company_label}"


def _audit(backfill: Backfill, kind: str, summary: str, *, actor: str | None = None) -> None:
    audit.record(
        kind,
        subject_type="Connection",
        subject_id=backfill.connection_id,
        organization_id=backfill.connection.business_unit.organization_id,
        summary=summary,
        after={"backfill_id": backfill.id, "status": backfill.status.value},
        actor_label=actor,
    )


def enqueue(backfill: Backfill, *, at: datetime | None = None):
    """Put the back-fill's job on the history queue, now or at ``at``; store the job id."""
    job_id = f"history-{backfill.id}"
    if at is None:
        job = queue.enqueue(JOB, backfill.id, queue=QUEUE, job_id=job_id, timeout=6 * 3600)
    else:
        job = queue.queues(QUEUE).enqueue_at(at, JOB, backfill.id, job_id=job_id, job_timeout=6 * 3600)
    if backfill.sync_run is not None:
        backfill.sync_run.rq_job_id = job.id
    db.session.commit()
    return job


def request_pause(backfill: Backfill, *, actor: str | None = None) -> str:
    """Pause the back-fill (at its next chunk boundary when running); return what happened.

    :raise HistoryError: when it has already ended.
    """
    if backfill.status.finished:
        raise HistoryError(f"Back-fill #{backfill.id} has ended ({backfill.status.label.lower()}); nothing to pause.")
    if backfill.status is BackfillStatus.paused:
        return "Already paused."
    if backfill.status is BackfillStatus.running:
        backfill.requested = "pause"
        said = "Pausing after the current chunk."
    else:
        backfill.transition(BackfillStatus.paused, "Paused.")
        _mirror(backfill, SyncRunStatus.queued, "Paused.")
        said = "Paused."
    _audit(backfill, "history.paused", f"Back-fill #{backfill.id} paused", actor=actor)
    db.session.commit()
    return said


def request_cancel(backfill: Backfill, *, actor: str | None = None) -> str:
    """Cancel the back-fill (at its next chunk boundary when running); records pushed stay pushed.

    :raise HistoryError: when it has already ended.
    """
    if backfill.status.finished:
        raise HistoryError(f"Back-fill #{backfill.id} has ended ({backfill.status.label.lower()}); nothing to cancel.")
    if backfill.status is BackfillStatus.running:
        backfill.requested = "cancel"
        said = "Cancelling after the current chunk."
    else:
        _finish_cancel(backfill)
        said = "Cancelled."
    _audit(backfill, "history.cancelled", f"Back-fill #{backfill.id} cancelled", actor=actor)
    db.session.commit()
    return said


def _finish_cancel(backfill: Backfill) -> None:
    done = backfill.total()
    backfill.transition(BackfillStatus.cancelled, f"Cancelled after {done:,} record(s); those pushed stay pushed.")
    _mirror(backfill, SyncRunStatus.cancelled, backfill.message)


def resume(backfill: Backfill, *, actor: str | None = None) -> str:
    """Re-enqueue a paused, interrupted or waiting back-fill; it continues at its cursor.

    :raise HistoryError: when it has ended or is running.
    """
    if backfill.status.finished:
        raise HistoryError(f"Back-fill #{backfill.id} has ended ({backfill.status.label.lower()}); start a new one.")
    if backfill.status is BackfillStatus.running and _lock(backfill.connection_id).locked():
        raise HistoryError(f"Back-fill #{backfill.id} is running; there is nothing to resume.")
    # Still marked running without a live job: its worker was killed; it resumes at its cursor.
    if backfill.status is not BackfillStatus.queued:
        backfill.transition(BackfillStatus.queued, "Resumed; continues where it stopped.")
    backfill.requested = None
    backfill.resume_at = None
    _mirror(backfill, SyncRunStatus.queued, "Resumed.")
    _audit(backfill, "history.resumed", f"Back-fill #{backfill.id} resumed", actor=actor)
    db.session.commit()
    enqueue(backfill)
    return "Resumed; it continues where it stopped."


def _mirror(backfill: Backfill, status: SyncRunStatus, message: str | None = None) -> None:
    run = backfill.sync_run
    if run is None:
        return
    if run.status is not status and status in _RUN_MOVES.get(run.status, ()):
        run.transition(status, message)
    elif message is not None:
        run.message = message
    run.progress_done = backfill.total()
    run.counts = {
        "calls": backfill.calls,
        **{f"{k}.{o}": n for k, per in backfill.counts.items() for o, n in per.items()},
    }


# The SyncRun life cycle, reached in one or two moves from where it is.
_RUN_MOVES = {
    SyncRunStatus.queued: {
        SyncRunStatus.running,
        SyncRunStatus.cancelled,
        SyncRunStatus.failed,
        SyncRunStatus.interrupted,
    },
    SyncRunStatus.running: {
        SyncRunStatus.succeeded,
        SyncRunStatus.failed,
        SyncRunStatus.cancelled,
        SyncRunStatus.queued,
        SyncRunStatus.interrupted,
    },
    SyncRunStatus.failed: {SyncRunStatus.queued},
    SyncRunStatus.interrupted: {SyncRunStatus.queued, SyncRunStatus.cancelled},
}


# -- the push -------------------------------------------------------------------------------------


def _clear_session(*, keep: Connection) -> Connection:
    """Expunge every object of the session but the connection, and return the connection.

    The connection stays: the adapter's token updater reads it when a long back-fill outlives
    the access token and refreshes it.
    """
    for obj in list(db.session):
        if obj is not keep and obj in db.session:  # expunging cascades (an invoice takes its lines)
            db.session.expunge(obj)
    return keep


def _after_chunk(backfill: Backfill) -> None:
    """Hook run after each committed chunk (a seam for crash tests and metrics)."""


#: Seconds the running job's lock lives without being renewed: a worker killed outright frees it then.
LOCK_SECONDS = 600
#: How long a job waits for the lock of a job that is ending.
LOCK_WAIT_SECONDS = 30


def _lock(connection_id: int):
    return queue.connection.lock(f"ledgerlink:history-lock:{connection_id}", timeout=LOCK_SECONDS)


def run(backfill_id: int, log) -> Backfill | None:
    """Push the back-fill from its cursor until done, paused, cancelled, out of quota or stopped.

    One back-fill per connection runs at a time (a Redis lock): a second job ends at once.
    """
    backfill = db.session.get(Backfill, backfill_id)
    if backfill is None:
        raise LookupError(f"Back-fill {backfill_id} does not exist")
    if backfill.status.finished or backfill.status is BackfillStatus.paused:
        return backfill
    lock = _lock(backfill.connection_id)
    # A job enqueued by a resume may start while the previous one is finishing its chunk: wait a little.
    if not lock.acquire(blocking=True, blocking_timeout=LOCK_WAIT_SECONDS):
        log.info("back-fill %s is already running in another worker", backfill_id)
        return backfill
    try:
        return _run_locked(backfill_id, log, lock)
    finally:
        try:
            if lock.owned():  # a hand-over released it already
                lock.release()
        except Exception:  # expired under a very long run: nothing to undo
            log.warning("history lock of back-fill %s expired before release", backfill_id)


def _chunk_for(adapter: LedgerAdapter) -> int:
    """Return the chunk size, rounded up to whole batches where the ledger takes batches."""
    size = chunk_size()
    batch = adapter.capabilities.batch_size
    if batch and supports_batch(adapter):
        size = math.ceil(size / batch) * batch
    return size


#: Seconds between two heartbeats of a running back-fill (portal.sync.mirrors reads them) ...
HEARTBEAT_SECONDS = 10.0
#: ... and between two reads of a pause or cancel request while a chunk is being pushed.
REQUEST_CHECK_SECONDS = 2.0


class StopRequested(Exception):
    """A person paused or cancelled the running back-fill: it stops before its next ledger call."""


class _Beat:
    """The running job's heartbeat and its ear for pause and cancel, both on short statements of their own."""

    def __init__(self, backfill_id: int) -> None:
        self.backfill_id = backfill_id
        self.beaten = self.checked = time.monotonic()

    def __call__(self, ahead: float = 0.0) -> None:
        """Beat (every few seconds, or ``ahead`` seconds into the future before a wait); stop when asked to.

        :raise StopRequested: when a pause or cancel was requested since the job started.
        """
        table = cast(Table, Backfill.__table__)
        now = time.monotonic()
        if ahead or now - self.beaten >= HEARTBEAT_SECONDS:
            with db.engine.begin() as conn:
                conn.execute(
                    table.update()
                    .where(table.c.id == self.backfill_id)
                    .values(heartbeat_at=utcnow() + timedelta(seconds=ahead))
                )
            self.beaten = now
        if now - self.checked >= REQUEST_CHECK_SECONDS:
            self.checked = now
            with db.engine.connect() as conn:
                requested = conn.execute(select(table.c.requested).where(table.c.id == self.backfill_id)).scalar()
            if requested:
                raise StopRequested(requested)


def _adapter(connection: Connection, lock, counter: list[int], beat: _Beat | None = None) -> LedgerAdapter:
    """Return an adapter whose calls count, keep the job's lock and heartbeat alive and take at most the quota share.

    Before each call the job beats and listens for a pause or cancel (:class:`_Beat`), so both
    take effect within seconds, not at the end of a chunk.
    """
    adapter = vault.fresh_adapter(connection)
    shared = limiter.from_config(current_app.config, queue.connection)
    share = quota_share()
    renewed = [time.monotonic()]

    def before_request(info) -> None:
        if beat is not None:
            beat()
        if info.company is not None:
            counter[0] += 1
        if time.monotonic() - renewed[0] > LOCK_SECONDS / 4:
            lock.reacquire()
            renewed[0] = time.monotonic()
        if shared is not None:
            shared.before_request(info, share=share)

    adapter.http.before_request = before_request
    return adapter


def _run_locked(backfill_id: int, log, lock) -> Backfill:
    backfill = db.session.get_one(Backfill, backfill_id)
    if backfill.status.finished or backfill.status is BackfillStatus.paused:
        return backfill
    backfill.transition(BackfillStatus.running, "Running.")
    backfill.resume_at = None
    backfill.heartbeat_at = utcnow()
    _mirror(backfill, SyncRunStatus.running, "Running.")
    db.session.commit()
    connection = backfill.connection
    scope = Scope(connection.id, backfill.date_from, backfill.date_to, tuple(backfill.kinds))
    counter = [0]
    job_started = time.monotonic()
    beat = _Beat(backfill_id)
    try:
        adapter = _adapter(connection, lock, counter, beat)
        classifier = Classifier(connection, adapter, scope)
    except LedgerError as exc:
        return _stop(backfill_id, exc, counter, log)
    kinds = list(scope.kinds)
    start_at = kinds.index(backfill.cursor_kind) if backfill.cursor_kind in kinds else 0
    for kind in kinds[start_at:]:
        backfill = db.session.get_one(Backfill, backfill_id)
        if backfill.cursor_kind != kind:
            backfill.cursor_kind, backfill.cursor_id = kind, 0
            db.session.commit()
        while True:
            backfill = db.session.get_one(Backfill, backfill_id)
            db.session.refresh(backfill, ["requested"])
            if backfill.requested:
                return _honour(backfill)
            connection = db.session.get_one(Connection, scope.connection_id)
            classifier.rebind(connection)
            ids = next_ids(
                connection, kind, scope.date_from, scope.date_to, after=backfill.cursor_id, limit=_chunk_for(adapter)
            )
            if not ids:
                break
            began = time.monotonic()
            try:
                with limiter.while_waiting(lambda seconds: beat(ahead=seconds)):
                    _push_chunk(backfill, connection, classifier, adapter, kind, ids)
            except sync_push.CONNECTION_ERRORS as exc:
                return _stop(backfill_id, exc, counter, log, busy=time.monotonic() - began)
            except StopRequested:
                # Asked to pause or cancel in the middle of the chunk: what was pushed is in its
                # records; the cursor stays at the chunk's start, which a resume goes through again.
                db.session.rollback()
                backfill = db.session.get_one(Backfill, backfill_id)
                db.session.refresh(backfill)
                backfill.calls += counter[0]
                backfill.busy_seconds += time.monotonic() - began
                return _honour(backfill)
            backfill = db.session.get_one(Backfill, backfill_id)
            backfill.cursor_id = ids[-1]
            backfill.calls += counter[0]
            counter[0] = 0
            backfill.busy_seconds += time.monotonic() - began
            _mirror(backfill, SyncRunStatus.running)
            db.session.commit()
            lock.reacquire()
            _after_chunk(backfill)
            if time.monotonic() - job_started > job_seconds():
                return _hand_over(backfill_id, lock)
            # Forget the chunk's objects: memory stays flat however long the range.
            _clear_session(keep=connection)
    backfill = db.session.get_one(Backfill, backfill_id)
    backfill.cursor_kind = None
    backfill.summary = reconcile(backfill.connection, scope, adapter)
    backfill.calls += counter[0]
    backfill.transition(BackfillStatus.succeeded, _outcome_sentence(backfill))
    _mirror(backfill, SyncRunStatus.succeeded, backfill.message)
    db.session.commit()
    return backfill


def job_seconds() -> float:
    """Return how long one job pushes before it hands the rest to a fresh job (well under the job timeout)."""
    return float(current_app.config.get("HISTORY_JOB_SECONDS", 1800))


def _hand_over(backfill_id: int, lock) -> Backfill:
    """End this job at a chunk boundary and enqueue the next one, which continues at the cursor."""
    backfill = db.session.get_one(Backfill, backfill_id)
    backfill.transition(BackfillStatus.queued, f"Continuing in a fresh job after {backfill.total():,} record(s).")
    _mirror(backfill, SyncRunStatus.queued, backfill.message)
    db.session.commit()
    lock.release()  # before the next job exists, so that it finds the lock free
    enqueue(backfill)
    return backfill


def _outcome_sentence(backfill: Backfill) -> str:
    totals: dict[str, int] = {}
    for per in (backfill.counts or {}).values():
        for outcome, n in per.items():
            totals[outcome] = totals.get(outcome, 0) + n
    said = ", ".join(f"{n:,} {o}" for o, n in sorted(totals.items()))
    return f"Done: {said or 'nothing in the range'}; {backfill.calls:,} ledger call(s)."


def _honour(backfill: Backfill) -> Backfill:
    if backfill.requested == "cancel":
        _finish_cancel(backfill)
    else:
        backfill.requested = None
        backfill.transition(BackfillStatus.paused, f"Paused after {backfill.total():,} record(s); resume to go on.")
        _mirror(backfill, SyncRunStatus.queued, backfill.message)
    db.session.commit()
    return backfill


def _stop(backfill_id: int, exc: LedgerError, counter: list[int], log, busy: float = 0.0) -> Backfill:
    db.session.rollback()
    backfill = db.session.get_one(Backfill, backfill_id)
    backfill.calls += counter[0]
    backfill.busy_seconds += busy
    if isinstance(exc, RateLimited):
        retry_at = exc.retry_at
        backfill.transition(
            BackfillStatus.waiting,
            f"The back-fill's share of the {specs.get_spec(backfill.connection.provider).name} quota is spent; "
            f"it continues by itself at {retry_at:%Y-%m-%d %H:%M:%S} UTC.",
        )
        backfill.resume_at = retry_at
        _mirror(backfill, SyncRunStatus.queued, backfill.message)
        db.session.commit()
        enqueue(backfill, at=retry_at)
    else:
        backfill.transition(BackfillStatus.interrupted, f"Stopped: {exc}. Resume to continue where it stopped.")
        _mirror(backfill, SyncRunStatus.interrupted, backfill.message)
        db.session.commit()
    log.warning("back-fill %s stopped: %s", backfill_id, exc)
    return backfill


def crashed(backfill_id: int, exc: BaseException) -> None:
    """Record an unexpected end of the job; a resume continues at the cursor."""
    db.session.rollback()
    backfill = db.session.get(Backfill, backfill_id)
    if backfill is None or backfill.status.finished:
        return
    backfill.transition(BackfillStatus.interrupted, f"Stopped by an error ({type(exc).__name__}: {exc}).")
    _mirror(backfill, SyncRunStatus.interrupted, backfill.message)
    db.session.commit()


def _push_chunk(backfill, connection, classifier, adapter, kind: str, ids: list[int]) -> None:
    """Push one chunk: every record not yet handled by this back-fill, batched where the ledger can."""
    handled = set(
        db.session.scalars(
            select(BackfillItem.local_id).where(
                BackfillItem.backfill_id == backfill.id, BackfillItem.kind == kind, BackfillItem.local_id.in_(ids)
            )
        )
    )
    records = _records(connection, kind, ids)
    to_batch: list[Any] = []
    batching = kind in ("invoice", "credit_note") and supports_batch(adapter)
    for obj in load(kind, ids):
        if obj.id in handled:
            continue
        v = classifier.verdict(kind, obj, records.get(obj.id))
        if v.outcome == "create":
            if batching and kind == "invoice":
                to_batch.append(obj)
                continue
            try:
                record = _push_one(connection, adapter, kind, obj)
            except sync_push.CONNECTION_ERRORS:
                _note_if_written(backfill, connection, kind, obj)
                raise
            _note(backfill, kind, obj, _outcome_of(record), record.external_id, record.last_error_text)
        elif v.adopt:
            record = _adopt(connection, kind, obj, v)
            if record.state is RecordState.pushed:
                _note(backfill, kind, obj, ItemOutcome.existing, v.external_id, v.reason)
            else:  # another SaaS document's (held, not adopted), or there with another total ("differs")
                outcome = _outcome_of(record) if record.state is RecordState.skipped else ItemOutcome.blocked
                _note(backfill, kind, obj, outcome, record.external_id, record.last_error_text, v.fix_url)
        else:
            outcome = ItemOutcome.existing if v.outcome == "existing" else ItemOutcome(v.outcome)
            _note(backfill, kind, obj, outcome, v.external_id, v.reason, v.fix_url)
    if to_batch:
        _push_batch(backfill, connection, adapter, to_batch)


def _note_if_written(backfill: Backfill, connection: Connection, kind: str, obj: Any) -> None:
    """Note a record created before its push stopped (an invoice whose PDF or finalize step met the spent
    quota or an outage): the back-fill created it, and a resume must not count it as found in the ledger.

    Its remaining steps are done by a later push, as for any pushed invoice.
    """
    db.session.rollback()  # the push committed the record's state; nothing else of the attempt is kept
    record = sync_push._existing(connection, RecordKind(kind), obj.id)
    if record is not None and record.state is RecordState.pushed:
        _note(backfill, kind, obj, ItemOutcome.created, record.external_id)


def _push_one(connection: Connection, adapter: LedgerAdapter, kind: str, obj: Any) -> ExternalRecord:
    if kind == "customer":
        return sync_push.push_customer(connection, obj, adapter)
    if kind == "invoice":
        return sync_push.push_invoice(connection, obj, adapter)
    if kind == "credit_note":
        return sync_push.push_credit_note(connection, obj, adapter)
    return sync_push.push_payment(connection, obj, adapter)


def _adopt(connection: Connection, kind: str, obj: Any, v: Verdict) -> ExternalRecord:
    """Record a ledger document found by our reference as pushed (nothing is created); return its record.

    A ledger document another record holds already is not adopted: the record is held instead. A
    document whose total there differs from the SaaS's is recorded as "differs from the SaaS".
    """
    record = sync_push.record_for(connection, RecordKind(kind), obj.id)
    if record.state is RecordState.pushed:
        return record
    sync_push._begin(record, reference=obj.number, payload=sync_push._document_payload(obj))
    if v.external_id is None:
        raise ValueError(f"{kind} {obj.id} was found in the ledger without its id")
    found = PushResult(v.external_id, v.number, False, _listed_totals(obj, v.total))
    return sync_push._store_document(connection, record, obj, found)


def _listed_totals(doc: Invoice | CreditNote, total: Decimal | None) -> Totals | None:
    """Return a listed ledger document's totals: the listing gives the total; net and tax are taken as the SaaS's."""
    return Totals(doc.subtotal, doc.tax_total, abs(total)) if total is not None else None


def _outcome_of(record: ExternalRecord) -> ItemOutcome:
    return {
        RecordState.pushed: ItemOutcome.created,
        RecordState.skipped: ItemOutcome.skipped,
        RecordState.needs_action: ItemOutcome.blocked,
    }.get(record.state, ItemOutcome.failed)


def _note(
    backfill, kind, obj, outcome: ItemOutcome, external_id=None, reason=None, fix_url=None, *, commit: bool = True
) -> None:
    day = date_of(kind, obj)
    db.session.add(
        BackfillItem(
            backfill_id=backfill.id,
            kind=kind,
            local_id=obj.id,
            label=label_of(kind, obj),
            document_date=day,
            outcome=outcome,
            external_id=external_id,
            reason=reason if outcome is not ItemOutcome.created else None,
            fix_url=fix_url,
        )
    )
    backfill = db.session.get(Backfill, backfill.id)
    backfill.count(kind, outcome.value)
    if commit:
        # Right after the record's own state change was committed by the push: both survive a crash.
        db.session.commit()


def _push_batch(backfill: Backfill, connection: Connection, adapter: LedgerAdapter, invoices: list[Invoice]) -> None:
    """Push invoices in batch calls, keeping the exactly-once protocol of :mod:`portal.sync.push`.

    Each record is marked pending and committed before its batch is sent; each result is stored
    with the move to pushed; a record whose earlier attempt ended unknown is looked up by our
    reference first. A connection error stops after the batch's other results are stored.
    """
    size = adapter.capabilities.batch_size or 1
    resolver = sync_push._Resolver(connection)
    ready: list[tuple[ExternalRecord, Invoice, BatchOperation]] = []
    for invoice in invoices:
        record = sync_push.record_for(connection, RecordKind.invoice, invoice.id)
        if record.state is RecordState.pushed:
            _note(backfill, "invoice", invoice, ItemOutcome.existing, record.external_id, "Pushed earlier.")
            continue
        try:
            # The guard first (nothing written when it holds), then the customer.
            draft = sync_push.invoice_draft(connection, invoice, "", resolver)
            customer_id = sync_push._ledger_customer_id(connection, invoice.customer, adapter)
        except (sync_push.CustomerNotPushed, sync_push.DocumentHeld):
            # The single push holds the record with the reason, exactly as the live sync does.
            record = sync_push.push_invoice(connection, invoice, adapter)
            _note(backfill, "invoice", invoice, _outcome_of(record), record.external_id, record.last_error_text)
            continue
        unknown = sync_push._begin(record, reference=invoice.number, payload=sync_push._document_payload(invoice))
        if unknown:
            found = adapter.find_by_reference("invoice", invoice.number)
            if found is not None:
                record = sync_push._store_document(connection, record, invoice, found)
                _note(backfill, "invoice", invoice, _outcome_of(record), record.external_id, record.last_error_text)
                continue
        draft = replace(draft, customer_id=customer_id)
        ready.append(
            (record, invoice, BatchOperation(id=str(record.id), kind="invoice", action="create", payload=draft))
        )
    stop: LedgerError | None = None
    for start_at in range(0, len(ready), size):
        group = ready[start_at : start_at + size]
        try:
            results = {item.id: item for item in adapter.batch([op for _r, _i, op in group])}
        except sync_push.CONNECTION_ERRORS:
            raise  # every record of the group stays pending: the next attempt looks it up first
        except LedgerError as exc:
            for record, invoice, _op in group:
                record = sync_push._store_error(record, exc)
                _note(backfill, "invoice", invoice, _outcome_of(record), None, record.last_error_text)
            continue
        for record, invoice, op in group:
            item = results.get(op.id)
            if item is not None and item.result is not None:
                record = sync_push._store_document(connection, record, invoice, item.result)
                # Noted with the next result's commit (or the batch's): a crash in between leaves
                # the record pushed, and the resumed back-fill counts it as existing.
                _note(
                    backfill,
                    "invoice",
                    invoice,
                    _outcome_of(record),
                    record.external_id,
                    record.last_error_text,
                    commit=False,
                )
                continue
            error = item.error if item is not None else None
            if error is None:
                continue  # no answer for this operation: it stays pending and is looked up next time
            db.session.commit()  # the notes so far: storing an error rolls back what is uncommitted
            try:
                record = sync_push._store_error(record, error)
            except sync_push.CONNECTION_ERRORS as exc:
                stop = stop or exc
                continue
            _note(backfill, "invoice", invoice, _outcome_of(record), None, record.last_error_text)
        db.session.commit()
        if stop is not None:
            raise stop


# -- reading a back-fill --------------------------------------------------------------------------


def items(backfill: Backfill, *, outcome: str | None = None, kind: str | None = None):
    """Return a query of the back-fill's record outcomes, filtered, newest first."""
    stmt = select(BackfillItem).where(BackfillItem.backfill_id == backfill.id)
    if outcome:
        stmt = stmt.where(BackfillItem.outcome == ItemOutcome(outcome))
    if kind:
        stmt = stmt.where(BackfillItem.kind == kind)
    return stmt.order_by(BackfillItem.id.desc())


def rate_per_minute(backfill: Backfill) -> float | None:
    """Return records handled per minute of running time."""
    if not backfill.busy_seconds:
        return None
    return backfill.total() / backfill.busy_seconds * 60


def backfills_of(connection: Connection, limit: int = 20) -> list[Backfill]:
    """Return the connection's back-fills, newest first."""
    return list(
        db.session.scalars(
            select(Backfill).where(Backfill.connection_id == connection.id).order_by(Backfill.id.desc()).limit(limit)
        )
    )


def as_dict(backfill: Backfill) -> dict[str, Any]:
    """Return the back-fill's state as JSON-ready data (the CLI prints this)."""
    return {
        "backfill_id": backfill.id,
        "connection_id": backfill.connection_id,
        "sync_run_id": backfill.sync_run_id,
        "status": backfill.status.value,
        "from": backfill.date_from.isoformat(),
        "to": backfill.date_to.isoformat(),
        "kinds": list(backfill.kinds),
        "counts": backfill.counts,
        "calls": backfill.calls,
        "cursor": {"kind": backfill.cursor_kind, "after_id": backfill.cursor_id},
        "resume_at": backfill.resume_at.isoformat() if backfill.resume_at else None,
        "message": backfill.message,
        "summary": backfill.summary,
    }


# -- reconciliation -------------------------------------------------------------------------------


def reconcile(connection: Connection, scope: Scope, adapter: LedgerAdapter | None) -> dict[str, Any]:
    """Compare counts and totals of the range in the SaaS with the ledger's, per document kind.

    The ledger's side comes from listing its documents where the adapter can, else from our
    records of what was pushed.
    """
    summary: dict[str, Any] = {}
    for kind, model in (("invoice", Invoice), ("credit_note", CreditNote)):
        if kind not in scope.kinds:
            continue
        in_range = (
            model.business_unit_id == connection.business_unit_id,
            model.issue_date >= scope.date_from,
            model.issue_date <= scope.date_to,
        )
        saas_count, saas_total = db.session.execute(
            select(func.count(model.id), func.coalesce(func.sum(model.total), 0)).where(*in_range)
        ).one()
        pushed = (
            select(func.count(model.id), func.coalesce(func.sum(model.total), 0))
            .join(
                ExternalRecord,
                (ExternalRecord.local_id == model.id)
                & (ExternalRecord.kind == RecordKind(kind))
                & (ExternalRecord.connection_id == connection.id),
            )
            .where(*in_range, ExternalRecord.state == RecordState.pushed)
        )
        ours_count, ours_total = db.session.execute(pushed).one()
        source, ledger_count, ledger_total = "our records", ours_count, Decimal(ours_total)
        if adapter is not None:
            try:
                totals = [doc.total for doc in adapter.iter_documents(kind, scope.date_from, scope.date_to)]
                ledger_count, ledger_total = len(totals), sum(totals, Decimal("0"))
                source = "ledger"
            except NotSupported:
                source, ledger_count, ledger_total = "our records", ours_count, Decimal(ours_total)
            except LedgerError as exc:
                source, ledger_count, ledger_total = f"our records (ledger unreadable: {exc})", ours_count, ours_total
        summary[kind] = {
            "saas_count": saas_count,
            "saas_total": str(Decimal(saas_total).quantize(Decimal("0.01"))),
            "ledger_count": ledger_count,
            "ledger_total": str(Decimal(ledger_total).quantize(Decimal("0.01"))),
            "source": source,
            "matches": saas_count == ledger_count
            and Decimal(saas_total).quantize(Decimal("0.01")) == Decimal(ledger_total).quantize(Decimal("0.01")),
        }
    return summary
