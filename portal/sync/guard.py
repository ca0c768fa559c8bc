"""The totals guard: a document reaches the ledger only as the SaaS invoiced it, else it is held.

**Before the write** (:func:`document_lines`, :func:`checked`), with nothing sent to the ledger
yet: every line resolves its tax code from its own rate (:class:`~portal.mappings.taxes.TaxResolver`);
then the document's net, tax and total are computed the way the ledger will compute them (its
rounding rules, the mapped codes' percentages: :func:`portal.integrations.totals.ledger_totals`)
and compared with the SaaS's. A line without a code at its rate, or totals further apart than
the ledger's own rounding allows, raise :class:`DocumentHeld` with both figures and the cause.

**After the write** (:func:`booked_differently`), the totals the ledger answered (the create
response carries them) are compared with the SaaS's the same way; a difference is the record's
"differs from the SaaS" state: failed with :attr:`ErrorClass.TOTALS_DIFFER`, its ledger id kept,
no after-push step (the ledger never e-mails a document that differs).

:func:`scan` runs the same computation over a connection's documents without writing (the
mapping check).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..integrations import specs
from ..integrations.base import DocumentDraft, LineDraft, PushResult
from ..integrations.errors_catalog import ErrorClass
from ..integrations.totals import Difference, TaxedLine, Totals, differences, ledger_totals
from ..mappings import services as mappings
from ..mappings.taxes import QBO_NON, Resolved, TaxHold, TaxResolver, percent, tax_table_url
from ..models import Connection, CreditNote, CreditNoteLine, Invoice, InvoiceLine

Document = Invoice | CreditNote


class DocumentHeld(Exception):
    """A document held before any ledger write; the words name the line or figures and the fix."""

    def __init__(
        self, error_class: ErrorClass, text: str, *, reason: str, cause: str, product_id: int | None = None
    ) -> None:
        super().__init__(text)
        self.error_class = error_class
        self.text = text
        #: A short stable key of the cause (rate_not_mapped, code_rate_differs, rounding, …).
        self.reason = reason
        #: The cause in words, without the document's figures (the same for every document it holds).
        self.cause = cause
        #: The product whose mapping is the fix, when that is the cause.
        self.product_id = product_id


def _kind_words(document: Document) -> str:
    return "credit note" if isinstance(document, CreditNote) else "invoice"


def saas_totals(document: Document) -> Totals:
    """Return the document's totals as the SaaS computed them."""
    return Totals(document.subtotal, document.tax_total, document.total)


# -- before the write ---------------------------------------------------------------------------


def document_lines(
    taxes: TaxResolver, document: Document, values_of: Callable[[int | None], dict[str, str | None]]
) -> tuple[tuple[LineDraft, ...], list[TaxedLine]]:
    """Return the document's lines for the ledger, each with the tax code of its own rate.

    ``values_of(product_id)`` gives the other mapped values of a line (item, G/L account, class).

    :raise DocumentHeld: naming the first line whose rate has no code, with the fix.
    """
    drafts, taxed = [], []
    lines: Sequence[InvoiceLine | CreditNoteLine] = document.lines
    for number, line in enumerate(lines, start=1):
        values = values_of(line.product_id)
        try:
            tax = taxes.line(line.tax_rate, line.tax_kind, line.product_id)
        except TaxHold as hold:
            position = line.position or number
            raise DocumentHeld(
                ErrorClass.MAPPING_MISSING,
                f"Line {position} of {_kind_words(document)} {document.number} is at {hold.problem}",
                reason=hold.reason,
                cause=f"Lines at {hold.problem}",
                product_id=hold.product_id,
            ) from None
        drafts.append(
            LineDraft(
                description=line.description,
                quantity=line.quantity,
                unit_price=line.unit_price,
                item=values.get("item"),
                tax_code=tax.value,
                gl_account=values.get("gl_account"),
                class_ref=values.get("class"),
                tax_rate=tax.rate,
            )
        )
        taxed.append(taxed_line(line.quantity, line.unit_price, tax))
    return tuple(drafts), taxed


def taxed_line(quantity: Decimal, unit_price: Decimal, tax: Resolved) -> TaxedLine:
    """Return a line as the guard's arithmetic reads it: quantity, price and its code's rate(s)."""
    return TaxedLine(quantity, unit_price, tax.rate, tax.value, tax.components)


def checked(
    connection: Connection, document: Document, draft: DocumentDraft, taxed: Sequence[TaxedLine], taxes: TaxResolver
) -> DocumentDraft:
    """Return the draft as the ledger gets it once its totals are known to equal the SaaS's.

    QuickBooks US: the taxable lines' one code becomes the document's code and the SaaS's tax its
    ``TotalTax``; lines at two positive rates cannot be one US invoice.

    :raise DocumentHeld: with the ledger's and the SaaS's figures and the cause.
    """
    name = specs.get_spec(connection.provider).name
    what = f"{_kind_words(document)} {document.number}"
    if taxes.us:
        rated = {line.code: line.rate for line in taxed if line.code != QBO_NON}
        if len(rated) > 1:
            rates = " and ".join(f"{percent(rate)} %" for rate in sorted(set(rated.values())))
            raise DocumentHeld(
                ErrorClass.TAX_HELD,
                f"QuickBooks US takes one sales tax rate per document, but the taxable lines of {what} are at "
                f"{rates}: nothing was written to QuickBooks. Split the {_kind_words(document)} by rate in the "
                "SaaS, or book it in QuickBooks by hand and mark it resolved.",
                reason="us_one_rate",
                cause="Documents with taxable lines at two rates are held: QuickBooks US takes one sales tax rate "
                "per document. Split them by rate in the SaaS.",
            )
        code = next(iter(rated), None)
        draft = replace(draft, sales_tax_code=code, tax_total=document.tax_total if code else None)
    arithmetic = specs.get_spec(connection.provider).arithmetic
    expected = ledger_totals(arithmetic, taxed, document.currency, tax_total=draft.tax_total)
    found = differences(arithmetic, document.currency, saas_totals(document), expected)
    if found:
        cause = _cause(connection, found)
        raise DocumentHeld(
            ErrorClass.TAX_HELD,
            f"{name} would book {what} as {expected.words(document.currency)}, but the SaaS invoiced "
            f"{saas_totals(document).words(document.currency)}: {cause} Nothing was written to {name}. Correct "
            f"the {_kind_words(document)} in the SaaS (for instance one line per rate), or book it in {name} by "
            "hand and mark it resolved.",
            reason=_reason(found),
            cause=f"Documents whose totals {name} would compute differently are held: {cause}",
        )
    return draft


def _reason(found: Iterable[Difference]) -> str:
    names = {name for name, _ledger, _saas in found}
    if "net" in names:
        return "line_net"
    if "tax" in names:
        return "rounding"
    return "cash_rounding"


def _cause(connection: Connection, found: Iterable[Difference]) -> str:
    arithmetic = specs.get_spec(connection.provider).arithmetic
    reason = _reason(found)
    if reason == "line_net":
        return (
            f"{specs.get_spec(connection.provider).name} keeps each line's amount as quantity x unit price, "
            "unrounded, where the SaaS rounds each line to cents."
        )
    if reason == "rounding":
        return f"{arithmetic.words}, where the SaaS rounds each line's tax to cents."
    return f"{arithmetic.words}."


def preview(connection: Connection, document: Document, taxes: TaxResolver) -> None:
    """Run the guard on a document without mapping anything else (previews and the mapping check).

    :raise DocumentHeld: as a push would hold the document.
    """
    draft_lines, taxed = document_lines(taxes, document, _no_values)
    draft = DocumentDraft(
        reference=document.number,
        number=document.number,
        customer_id="",
        issue_date=document.issue_date,
        due_date=None,
        currency=document.currency,
        lines=draft_lines,
    )
    checked(connection, document, draft, taxed, taxes)


# -- after the write ------------------------------------------------------------------------------


def booked_differently(connection: Connection, document: Document, result: PushResult) -> str | None:
    """Return why the totals the ledger answered differ from the SaaS's, or None when they agree (or are unknown)."""
    if result.totals is None:
        return None
    ledger = result.totals.absolute()
    arithmetic = specs.get_spec(connection.provider).arithmetic
    if not differences(arithmetic, document.currency, saas_totals(document), ledger):
        return None
    name = specs.get_spec(connection.provider).name
    return (
        f"{name} booked {_kind_words(document)} {document.number} as {ledger.words(document.currency)}, but the "
        f"SaaS invoiced {saas_totals(document).words(document.currency)}: it differs from the SaaS. It was not "
        f"finalized or sent. Correct or credit it in {name}, then re-sync the record to compare again."
    )


# -- the mapping check ----------------------------------------------------------------------------


@dataclass
class Finding:
    """One cause the check found, with the documents it would hold."""

    message: str
    fix_url: str
    fix_label: str
    reason: str
    documents: list[str]
    product_id: int | None = None


def scan(connection: Connection, today: date | None = None, limit: int = 5000) -> list[Finding]:
    """Run the guard over the business unit's invoices and credit notes of the last 12 months.

    Returns each cause once (every unmapped rate, every product override at another rate, every
    rounding that would hold), with the numbers of the documents it holds. Nothing is written.
    """
    since = (today or date.today()) - timedelta(days=mappings.RECENT_DAYS)
    taxes = TaxResolver(connection)
    findings: dict[str, Finding] = {}

    def noted(held: DocumentHeld, document: Document) -> None:
        finding = findings.get(held.cause)
        if finding is None:
            fix_url, fix_label = _fix(connection, held)
            finding = findings[held.cause] = Finding(held.cause, fix_url, fix_label, held.reason, [], held.product_id)
        finding.documents.append(document.number)

    models = (Invoice, CreditNote) if specs.get_spec(connection.provider).capabilities.credit_notes else (Invoice,)
    for model in models:
        stmt = (
            select(model)
            .where(model.business_unit_id == connection.business_unit_id, model.issue_date >= since)
            .options(selectinload(model.lines))
            .order_by(model.issue_date.desc(), model.id.desc())
            .limit(limit)
        )
        # A select of either model reads, to mypy, as one of their common base.
        for document in cast("Iterable[Document]", db.session.scalars(stmt)):
            try:
                preview(connection, document, taxes)
            except DocumentHeld as held:
                noted(held, document)
    return list(findings.values())


def _no_values(_product_id: int | None) -> dict[str, Any]:
    return {}


def _fix(connection: Connection, held: DocumentHeld) -> tuple[str, str]:
    from flask import url_for

    if held.product_id is not None:
        return (
            url_for("mappings.edit_product", connection_id=connection.id, product_id=held.product_id),
            "Fix the product's tax code",
        )
    if held.error_class is ErrorClass.MAPPING_MISSING:
        return tax_table_url(connection), "Map the rate in the tax table"
    return url_for("ops.list_records", connection_id=connection.id), "See the records"
