"""Compare a connection's invoices and credit notes in the SaaS with the ledger's, and re-push the missing.

The ledger side comes from ``LedgerAdapter.iter_documents`` (fetched synchronously: the range is
capped at :data:`MAX_DAYS`, a few pages per kind). Documents are matched by our reference
first (the SaaS number the ledger keeps as YourRef / DocNumber / api_reference), then by the
ledger id an ExternalRecord remembers. What is left over is *missing* in the ledger or *extra*
in it; matched pairs whose totals differ are *mismatched*.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from .. import audit
from ..connections import vault
from ..extensions import db
from ..integrations import specs
from ..integrations.base import LedgerDocument, LedgerError, NotSupported
from ..integrations.totals import TaxArithmetic, round_to
from ..models import Connection, CreditNote, ExternalRecord, Invoice, Payment, RecordKind, RecordState, SyncRun
from ..sync import schedule

#: Longest period one report covers (the ledger is read while the page waits).
MAX_DAYS = 92
#: Kinds compared document by document, in the order shown.
KINDS = (RecordKind.invoice, RecordKind.credit_note)
_MODELS: dict[RecordKind, type[Invoice | CreditNote]] = {
    RecordKind.invoice: Invoice,
    RecordKind.credit_note: CreditNote,
}
CENT = Decimal("0.01")


class ReconcileError(Exception):
    """A report or re-push that cannot be made; the message says what to change."""


@dataclass
class Line:
    """One document that does not reconcile: in one place only, or with different totals."""

    kind: RecordKind
    status: str  # "missing" (not in the ledger), "extra" (only in the ledger) or "mismatch"
    local: Invoice | CreditNote | None = None
    record: ExternalRecord | None = None
    ledger: LedgerDocument | None = None

    @property
    def number(self) -> str:
        """Return the document's number as the SaaS or else the ledger knows it."""
        if self.local is not None:
            return self.local.number
        return self.ledger.reference or self.ledger.number or self.ledger.external_id if self.ledger else ""

    @property
    def difference(self) -> Decimal | None:
        """Return ledger total minus SaaS total for a mismatch."""
        if self.local is None or self.ledger is None:
            return None
        return abs(self.ledger.total) - abs(self.local.total)


@dataclass
class KindReport:
    """Counts, totals and differences of one kind of document."""

    kind: RecordKind
    saas_count: int = 0
    saas_total: Decimal = Decimal("0.00")
    ledger_count: int | None = None
    ledger_total: Decimal | None = None
    matched: int = 0
    lines: list[Line] = field(default_factory=list)
    #: Why the ledger side is missing (the provider cannot list this kind, or an error).
    error: str = ""

    def of(self, status: str) -> list[Line]:
        """Return the lines with ``status``."""
        return [line for line in self.lines if line.status == status]

    @property
    def label(self) -> str:
        """Return the kind in words, plural."""
        return {"invoice": "Invoices", "credit_note": "Credit notes"}[self.kind.value]


@dataclass
class Report:
    """The reconciliation of one connection over one period."""

    connection: Connection
    date_from: date
    date_to: date
    kinds: list[KindReport]
    payments_count: int
    payments_total: Decimal
    payments_pushed: int
    #: An error that stopped the ledger side entirely (authorization, outage).
    error: str = ""

    @property
    def missing_invoices(self) -> list[Line]:
        """Return the invoices the ledger lacks."""
        return [line for k in self.kinds if k.kind is RecordKind.invoice for line in k.of("missing")]

    @property
    def lines(self) -> list[Line]:
        """Return every line of every kind."""
        return [line for k in self.kinds for line in k.lines]

    def repushable(self, line: Line) -> bool:
        """Say whether a missing invoice is one the connection's push takes (dated on/after sync_from)."""
        return (
            line.kind is RecordKind.invoice
            and line.status == "missing"
            and line.local is not None
            and line.local.issue_date >= self.connection.sync_from.date()
        )


def check_range(date_from: date | None, date_to: date | None) -> tuple[date, date]:
    """Return the period to reconcile.

    :raise ReconcileError: when a date is missing, the range is reversed or longer than MAX_DAYS.
    """
    if date_from is None or date_to is None:
        raise ReconcileError("Give both dates of the period: from and to, as YYYY-MM-DD.")
    if date_from > date_to:
        raise ReconcileError(f"The period starts ({date_from}) after it ends ({date_to}): swap the dates.")
    if (date_to - date_from).days + 1 > MAX_DAYS:
        raise ReconcileError(
            f"Reconcile at most {MAX_DAYS} days at a time; this period has {(date_to - date_from).days + 1}."
        )
    return date_from, date_to


def _local_documents(connection: Connection, kind: RecordKind, date_from: date, date_to: date) -> list:
    model = _MODELS[kind]
    stmt = (
        select(model)
        .where(
            model.business_unit_id == connection.business_unit_id,
            model.issue_date >= date_from,
            model.issue_date <= date_to,
        )
        .order_by(model.issue_date, model.id)
    )
    return list(db.session.scalars(stmt))


def _records(connection: Connection, kind: RecordKind, local_ids: Sequence[int]) -> dict[int, ExternalRecord]:
    if not local_ids:
        return {}
    stmt = select(ExternalRecord).where(
        ExternalRecord.connection_id == connection.id,
        ExternalRecord.kind == kind,
        ExternalRecord.local_id.in_(list(local_ids)),
    )
    return {record.local_id: record for record in db.session.scalars(stmt)}


def compare(
    kind: RecordKind,
    locals_: Iterable,
    records: dict[int, ExternalRecord],
    ledger: Iterable[LedgerDocument],
    arithmetic: TaxArithmetic | None = None,
) -> KindReport:
    """Match SaaS documents to ledger documents (reference first, then remembered ledger id).

    A matched pair is a mismatch when the ledger's total differs from the SaaS's by a cent or
    more, beyond the ledger's own rounding of totals (``arithmetic``: bexio's CHF 0.05).
    """
    report = KindReport(kind)
    remaining = {doc.external_id: doc for doc in ledger}
    report.ledger_count = len(remaining)
    report.ledger_total = sum((abs(doc.total) for doc in remaining.values()), Decimal("0.00"))
    by_reference: dict[str, str] = {}
    for doc in remaining.values():
        # The ledger's own number stands in only where the ledger keeps no reference of ours.
        key = doc.reference or doc.number
        if key:
            by_reference.setdefault(key, doc.external_id)
    for local in locals_:
        report.saas_count += 1
        report.saas_total += abs(local.total)
        record = records.get(local.id)
        reference = (record.reference if record and record.reference else None) or local.number
        external_id = by_reference.get(reference)
        if external_id is None or external_id not in remaining:
            external_id = record.external_id if record and record.external_id in remaining else None
        if external_id is None:
            report.lines.append(Line(kind, "missing", local=local, record=record))
            continue
        doc = remaining.pop(external_id)
        factor = arithmetic.cash_factor(local.currency) if arithmetic is not None else None
        wanted = round_to(abs(local.total), factor) if factor else abs(local.total)
        if (abs(doc.total) - wanted).copy_abs() >= CENT:
            report.lines.append(Line(kind, "mismatch", local=local, record=record, ledger=doc))
        else:
            report.matched += 1
    report.lines += [Line(kind, "extra", ledger=doc) for doc in remaining.values()]
    return report


def build_report(connection: Connection, date_from: date, date_to: date) -> Report:
    """Read both sides of the period and compare them."""
    name = specs.get_spec(connection.provider).name
    adapter = None
    error = ""
    try:
        adapter = vault.fresh_adapter(connection)
    except (LedgerError, vault.VaultError) as exc:
        error = f"{name} could not be reached: {getattr(exc, 'provider_text', None) or exc}"
    kinds = []
    for kind in KINDS:
        locals_ = _local_documents(connection, kind, date_from, date_to)
        records = _records(connection, kind, [doc.id for doc in locals_])
        ledger: list[LedgerDocument] = []
        kind_error = error
        if adapter is not None and not error:
            try:
                ledger = list(adapter.iter_documents(kind.value, date_from, date_to))
            except NotSupported as exc:
                kind_error = f"Not compared: {exc.provider_text or exc.args[0]}"
            except LedgerError as exc:
                error = kind_error = (
                    f"{name} refused to list {kind.value.replace('_', ' ')}s: {exc.provider_text or exc}"
                )
        report = compare(kind, locals_, records, ledger, specs.get_spec(connection.provider).arithmetic)
        if kind_error:
            report.error = kind_error
            report.ledger_count = report.ledger_total = None
            report.lines = []
        kinds.append(report)
    payments_count, payments_total, payments_pushed = _payments(connection, date_from, date_to)
    return Report(connection, date_from, date_to, kinds, payments_count, payments_total, payments_pushed, error)


def _payments(connection: Connection, date_from: date, date_to: date) -> tuple[int, Decimal, int]:
    """Return the SaaS's payments of the period: count, total, and how many are in the ledger."""
    in_range = (
        select(Payment.id, Payment.amount)
        .join(Invoice, Invoice.id == Payment.invoice_id)
        .where(
            Invoice.business_unit_id == connection.business_unit_id,
            Payment.paid_on >= date_from,
            Payment.paid_on <= date_to,
        )
        .subquery()
    )
    count, total = db.session.execute(select(func.count(in_range.c.id), func.sum(in_range.c.amount))).one()
    pushed = db.session.scalar(
        select(func.count(ExternalRecord.id)).where(
            ExternalRecord.connection_id == connection.id,
            ExternalRecord.kind == RecordKind.payment,
            ExternalRecord.state == RecordState.pushed,
            ExternalRecord.local_id.in_(select(in_range.c.id)),
        )
    )
    return count or 0, Decimal(total or 0).quantize(CENT), pushed or 0


def repush(report: Report, invoice_ids: Iterable[int] | None = None) -> tuple[list[str], SyncRun | None]:
    """Mark the report's missing invoices (or the chosen ones) pending and enqueue the connection's push.

    A record the SaaS believed pushed is replaced by a pending one that remembers an attempt, so
    the push first looks the invoice up by our reference and adopts it if it is there after all.
    Audited; commits. Return the numbers queued and the push run (None when one was already queued).

    :raise ReconcileError: when the connection is not live or nothing chosen can be re-pushed.
    """
    connection = report.connection
    if not connection.is_live:
        raise ReconcileError("The connection is not connected: reconnect it before re-pushing.")
    chosen = set(invoice_ids) if invoice_ids is not None else None
    lines = [
        (line, line.local)
        for line in report.missing_invoices
        if report.repushable(line) and line.local is not None and (chosen is None or line.local.id in chosen)
    ]
    if not lines:
        raise ReconcileError(
            "No missing invoice dated on or after the connection date was chosen; older ones need a historical push."
        )
    before, numbers = [], []
    for line, local in lines:
        record = line.record
        if record is not None:
            before.append({"number": local.number, "state": record.state.value, "external_id": record.external_id})
        if record is None:
            db.session.add(
                ExternalRecord(
                    connection_id=connection.id,
                    kind=RecordKind.invoice,
                    local_id=local.id,
                    reference=local.number,
                    state=RecordState.pending,
                    attempts=0,
                )
            )
        elif record.state is RecordState.pushed:
            # Pushed is final for the record's life cycle; the ledger lost the document, so a
            # fresh record takes over (with an attempt on file: look up by reference first).
            db.session.delete(record)
            db.session.flush()
            db.session.add(
                ExternalRecord(
                    connection_id=connection.id,
                    kind=RecordKind.invoice,
                    local_id=local.id,
                    reference=record.reference or local.number,
                    state=RecordState.pending,
                    attempts=max(record.attempts, 1),
                )
            )
        elif record.state is not RecordState.pending:
            record.transition(RecordState.pending, error_class=None, error_text=None)
            record.last_error_class = record.last_error_text = None
        numbers.append(local.number)
    audit.record(
        "reconcile.repushed",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=connection.business_unit.organization_id,
        summary=f"Re-pushed {len(numbers)} invoice(s) missing in the ledger ({report.date_from} to {report.date_to}): "
        + ", ".join(numbers),
        before={"records": before} if before else None,
        after={"pending": numbers},
    )
    db.session.commit()
    run = schedule.enqueue_push(connection, reason=f"Re-push of {len(numbers)} invoice(s) found missing in the ledger.")
    return numbers, run
