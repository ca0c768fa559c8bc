"""The tax table of a connection: the ledger tax code each SaaS tax rate is booked with.

A row is keyed by the SaaS's rate; at 0 % also by the line's kind (zero-rated, exempt, reverse
charge, outside scope), which ledgers book with different codes. Each row maps to one of the
ledger's tax codes **at that rate**: the ledger's own percentages come from its reference data
(Exact ``VATCodes.Percentage``, QuickBooks ``TaxCode`` → its ``TaxRate`` values, bexio
``taxes.value``), and a code at another rate is refused.

A line's tax code (:class:`TaxResolver`), in order: its product's tax override, which must be at
the line's rate; the tax table's row for the line's rate and kind; the connection's default tax
code (or Exact's VAT code 2) when it is at the line's rate. Otherwise the line cannot be booked
as the SaaS invoiced it and the document is held (:class:`TaxHold`) before anything is written
to the ledger. QuickBooks US books 0 % lines as ``NON`` and taxable ones as ``TAX``, the rate
being the document's code, so there the table maps the positive rates only.

Services flush; views and jobs commit (STYLE 6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import url_for
from sqlalchemy import func, select

from .. import audit
from ..extensions import db
from ..integrations import specs
from ..integrations.totals import TaxArithmetic
from ..models import (
    Connection,
    CreditNote,
    CreditNoteLine,
    Invoice,
    InvoiceLine,
    Mapping,
    Product,
    ReferenceData,
    TaxKind,
    TaxMapping,
)
from ..models.billing import effective_tax_kind
from . import services
from .catalog import label, tax_rate_of

#: The kinds a table row can have: every positive rate is "standard"; 0 % rows name their kind.
ROW_KINDS = ("standard", "zero", "exempt", "reverse_charge", "outside_scope")
#: What goes to QuickBooks US on a line that is not taxed, and on one that is (quickbooks-online.md §6).
QBO_NON, QBO_TAX = "NON", "TAX"
_PLACES = Decimal("0.001")


def percent(rate: Decimal) -> str:
    """Return a rate as people write it: "9", "8.1", "8.875" (never "9.000" or "2E+1")."""
    return format(rate.normalize(), "f")


def plural(words: str) -> str:
    """Return the plural of a tax code's name: "VAT codes", "sales taxes"."""
    return words + ("es" if words.endswith("x") else "s")


def arithmetic(connection: Connection) -> TaxArithmetic:
    """Return how the connection's ledger rounds (``specs``)."""
    return specs.get_spec(connection.provider).arithmetic


@dataclass(frozen=True, order=True)
class RateKey:
    """One row of the tax table: a rate in percent (3 decimals) and, at 0 %, the kind."""

    rate: Decimal
    kind: str = "standard"

    @classmethod
    def of(cls, rate: Decimal, kind: TaxKind | str | None = None) -> RateKey:
        """Return the row a line at ``rate`` with ``kind`` (None: by its rate) is booked by."""
        rate = Decimal(rate).quantize(_PLACES)
        if rate > 0:
            return cls(rate, "standard")
        return cls(rate, effective_tax_kind(rate, kind).value)

    @classmethod
    def parse(cls, name: str) -> RateKey | None:
        """Return the key of a form field named by :attr:`field` ("tax-9.000-standard"), or None."""
        parts = name.split("-")
        if len(parts) != 3 or parts[0] != "tax" or parts[2] not in ROW_KINDS:
            return None
        try:
            rate = Decimal(parts[1])
        except InvalidOperation:
            return None
        if not rate.is_finite() or rate < 0 or rate > 100 or (rate > 0) != (parts[2] == "standard"):
            return None
        return cls.of(rate, parts[2] if rate == 0 else None)

    @property
    def field(self) -> str:
        """Return the row's form field name."""
        return f"tax-{self.rate}-{self.kind}"

    @property
    def label(self) -> str:
        """Return the row in words: "9 %", "0 % exempt"."""
        if self.rate > 0:
            return f"{percent(self.rate)} %"
        return f"0 % {TaxKind(self.kind).words}"


# -- the ledger's tax codes ---------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerTax:
    """One of the ledger's tax codes with its percentage."""

    #: The code as mapped (what ReferenceData lists as ``code``).
    code: str
    #: What the ledger is sent for it (Exact: the code; QuickBooks and bexio: the id).
    value: str
    name: str
    #: The percentage, None when the ledger does not say.
    rate: Decimal | None
    active: bool
    #: Whether it may go on sales documents (Exact S/B codes, bexio sales taxes).
    sales: bool
    row: dict[str, Any] = field(compare=False, repr=False)

    @property
    def usable(self) -> bool:
        """Say whether an invoice line can carry it."""
        return self.active and self.sales

    @property
    def words(self) -> str:
        """Return e.g. "VAT code 1 9% btw laag (9 %)"."""
        at = f" ({percent(self.rate)} %)" if self.rate is not None else ""
        return f"{label(self.row)}{at}"


def ledger_taxes(connection: Connection, refs: dict[str, ReferenceData]) -> list[LedgerTax]:
    """Return every tax code the ledger listed (reference data ``tax_codes``) with its percentage."""
    f = services.catalog_of(connection).field("tax_code")
    entry = refs.get("tax_codes")
    if f is None or entry is None:
        return []
    by_code = connection.provider == specs.EXACT_ONLINE
    found = []
    for row in entry.items:
        ledger_id = (row.get("extra") or {}).get("id")
        found.append(
            LedgerTax(
                code=row["code"],
                value=row["code"] if by_code or ledger_id is None else str(ledger_id),
                name=row.get("name") or "",
                rate=tax_rate_of(connection.provider, row),
                active=bool(row.get("active")),
                sales=f.right_type is None or f.right_type(row),
                row=row,
            )
        )
    return found


def suggestions(taxes: list[LedgerTax], key: RateKey) -> list[LedgerTax]:
    """Return the usable codes at the row's rate; at 0 % those whose name fits the kind come first."""
    at = [t for t in taxes if t.usable and t.rate is not None and t.rate == key.rate]
    if key.rate > 0:
        return at
    hints = {
        "zero": ("zero", "0%", "0 %", "nul"),
        "exempt": ("exempt", "vrijgesteld", "befreit", "exon"),
        "reverse_charge": ("revers", "verlegd", "autoliquid", "reverse"),
        "outside_scope": ("outside", "export", "ausland", "buiten", "no vat", "not taxable"),
    }.get(key.kind, ())

    def fits(tax: LedgerTax) -> bool:
        words = f"{tax.name} {tax.code}".lower()
        return any(h in words for h in hints)

    return sorted(at, key=lambda t: not fits(t))


def us_sales_tax(connection: Connection) -> bool:
    """Say whether the connection books US sales tax (QuickBooks US: TAX/NON lines, one code per document)."""
    if connection.provider != specs.QUICKBOOKS:
        return False
    return services.mapping_settings(connection).get("qbo_tax_mode") == "us"


# -- the table ------------------------------------------------------------------------------------


def table_mappings(connection: Connection) -> dict[RateKey, TaxMapping]:
    """Return the connection's tax table rows by key."""
    rows = db.session.scalars(select(TaxMapping).where(TaxMapping.connection_id == connection.id))
    return {RateKey.of(m.rate, m.kind if m.rate == 0 else None): m for m in rows}


def check_tax_code(
    connection: Connection, key: RateKey, code: str, refs: dict[str, ReferenceData], taxes: list[LedgerTax]
) -> str | None:
    """Return why ``code`` cannot book lines of row ``key``, or None when it can."""
    name = services.provider_name(connection)
    f = services.catalog_of(connection).field("tax_code")
    if f is None:  # pragma: no cover - every catalog has a tax code
        return f"{name} has no tax codes to map."
    if not arithmetic(connection).keeps(key.rate):
        places = arithmetic(connection).rate_places
        return (
            f"{name} keeps tax percentages to {places} decimals, so no {f.lower_label} can be at {key.label}: "
            "correct the rate in the SaaS."
        )
    if us_sales_tax(connection) and key.rate == 0:
        return f"0 % lines go to QuickBooks US as {QBO_NON} (not taxable): there is nothing to map."
    problem = services.check_code(connection, f, code, refs)
    if problem:
        return problem
    tax = next((t for t in taxes if t.code == code.strip()), None)
    if tax is None or tax.rate is None:
        return f"{name} gives no percentage for {f.lower_label} {code.strip()}: choose a code with a rate."
    if tax.rate != key.rate:
        return f"{f.label} {tax.words} is at {percent(tax.rate)} %, not {key.label}: choose one at {key.label}."
    return None


def set_tax_table(
    connection: Connection, values: dict[RateKey, str | None], *, staff_id: int | None = None
) -> dict[RateKey, tuple[str | None, str | None]]:
    """Map rows of the tax table (an empty value removes a row), all or nothing; return the changes.

    :raise services.MappingRefused: keyed by each row's form field, when any code is unknown,
        inactive, of the wrong type or at another rate (nothing is changed then).
    """
    refs = services.reference_data(connection)
    taxes = ledger_taxes(connection, refs)
    current = table_mappings(connection)
    changes: dict[RateKey, tuple[str | None, str | None]] = {}
    errors: dict[str, str] = {}
    for key, raw in values.items():
        wanted = (raw or "").strip() or None
        before = current[key].value if key in current else None
        if wanted == before:
            continue
        if wanted is not None:
            problem = check_tax_code(connection, key, wanted, refs, taxes)
            if problem:
                errors[key.field] = f"{key.label}: {problem}"
                continue
        changes[key] = (before, wanted)
    if errors:
        raise services.MappingRefused(errors)
    if not changes:
        return changes
    now = datetime.now(UTC)
    services.release_mapping_holds(connection)
    for key, (_before, after) in changes.items():
        mapping = current.get(key)
        if after is None:
            if mapping is not None:
                db.session.delete(mapping)
            continue
        if mapping is None:
            mapping = TaxMapping(connection_id=connection.id, rate=key.rate, kind=key.kind)
            db.session.add(mapping)
        mapping.value, mapping.updated_by_id, mapping.updated_at = after, staff_id, now
    audit.record(
        "mapping.changed",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=connection.business_unit.organization_id,
        summary="Tax table changed: "
        + ", ".join(audit.change_words(key.label, b, a) for key, (b, a) in sorted(changes.items())),
        before={key.field: b for key, (b, _a) in changes.items()},
        after={key.field: a for key, (_b, a) in changes.items()},
    )
    db.session.flush()
    return changes


def table_form(form: Any) -> dict[RateKey, str | None]:
    """Return the tax table rows a submitted form sets: one field per row, plus a new rate to add.

    :raise services.MappingRefused: when the new rate or its kind cannot be read.
    """
    values: dict[RateKey, str | None] = {}
    for name in form:
        key = RateKey.parse(name)
        if key is not None:
            values[key] = form.get(name)
    new_rate = (form.get("new_rate") or "").strip().rstrip("%").strip().replace(",", ".")
    new_code = (form.get("new_code") or "").strip()
    if new_rate or new_code:
        try:
            rate = Decimal(new_rate)
        except InvalidOperation:
            rate = Decimal(-1)
        if not new_rate or not rate.is_finite() or rate < 0 or rate > 100 or rate != rate.quantize(_PLACES):
            raise services.MappingRefused(
                {
                    "new_rate": f"The rate to add must be a percentage from 0 to 100 with at most 3 decimals, not "
                    f"{new_rate or 'empty'!r}."
                }
            )
        kind = (form.get("new_kind") or "zero").strip()
        if rate == 0 and kind not in ROW_KINDS[1:]:
            raise services.MappingRefused(
                {"new_kind": "A 0 % rate needs its kind: zero-rated, exempt, reverse charge or outside scope."}
            )
        if not new_code:
            raise services.MappingRefused({"new_code": "Choose the tax code for the rate to add."})
        values[RateKey.of(rate, kind if rate == 0 else None)] = new_code
    return values


@dataclass
class TaxRow:
    """One row of the tax table as the mappings page shows it."""

    key: RateKey
    #: Lines and documents of the last 12 months at this rate and kind.
    lines: int = 0
    documents: int = 0
    #: The code the table maps the row to (None: not mapped).
    mapped: str | None = None
    #: The usable ledger codes at this rate (the first is prefilled when nothing is mapped).
    candidates: list[LedgerTax] = field(default_factory=list)
    #: What a line without a product override gets, and from where; or why it is held.
    resolved: Resolved | None = None
    held: str | None = None

    @property
    def prefill(self) -> str | None:
        """Return the code the form shows: the mapped one; for a row that would hold its lines, the ledger's
        (first) code at this rate; none for a row the default code already books at its rate."""
        if self.mapped:
            return self.mapped
        return self.candidates[0].code if self.candidates and self.held else None


def saas_rates(connection: Connection, today: date | None = None) -> dict[RateKey, tuple[int, int]]:
    """Return, per row, the lines and documents of the business unit at that rate in the last 12 months."""
    since = (today or date.today()) - timedelta(days=services.RECENT_DAYS)
    counts: dict[RateKey, list[int]] = {}
    for model, line_model, fk in (
        (Invoice, InvoiceLine, InvoiceLine.invoice_id),
        (CreditNote, CreditNoteLine, CreditNoteLine.credit_note_id),
    ):
        stmt = (
            select(line_model.tax_rate, line_model.tax_kind, func.count(), func.count(func.distinct(fk)))
            .join(model, model.id == fk)
            .where(model.business_unit_id == connection.business_unit_id, model.issue_date >= since)
            .group_by(line_model.tax_rate, line_model.tax_kind)
        )
        for rate, kind, lines, documents in db.session.execute(stmt):
            found = counts.setdefault(RateKey.of(rate, kind), [0, 0])
            found[0] += lines
            found[1] += documents
    return {key: (lines, documents) for key, (lines, documents) in counts.items()}


def table(connection: Connection, refs: dict[str, ReferenceData] | None = None) -> list[TaxRow]:
    """Return the tax table: every rate invoiced in the last 12 months and every mapped row."""
    refs = services.reference_data(connection) if refs is None else refs
    resolver = TaxResolver(connection, refs=refs)
    used = saas_rates(connection)
    rows = []
    for key in sorted(set(used) | set(resolver.table), key=lambda k: (-k.rate, k.kind)):
        lines, documents = used.get(key, (0, 0))
        row = TaxRow(key, lines, documents, resolver.table[key].value if key in resolver.table else None)
        row.candidates = suggestions(resolver.taxes, key)
        try:
            row.resolved = resolver.resolve(key)
        except TaxHold as hold:
            row.held = hold.problem
        rows.append(row)
    return rows


# -- resolving a line -------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """The tax code a line is booked with."""

    #: The code as mapped (ReferenceData ``code``), and what the ledger is sent.
    code: str
    value: str
    #: The code's percentage (the line's own rate).
    rate: Decimal
    #: Where it comes from: "product override", "tax table", "connection default", …
    source: str
    #: The rates a combined code is made of (QuickBooks), each rounded on its own by the ledger.
    components: tuple[Decimal, ...] = ()


class TaxHold(Exception):
    """A line whose tax cannot be booked as the SaaS invoiced it; the words name the line and the fix."""

    def __init__(self, problem: str, *, reason: str, product_id: int | None = None) -> None:
        super().__init__(problem)
        #: What is wrong, without the line's position ("9 % is not mapped …").
        self.problem = problem
        #: A short stable key of the cause (the bench and tests count by it).
        self.reason = reason
        #: The product whose override is wrong (its mapping page is the fix), if that is the cause.
        self.product_id = product_id


class TaxResolver:
    """Each line's tax code, read once per push from the tax table, the mappings and the reference data."""

    def __init__(
        self,
        connection: Connection,
        *,
        refs: dict[str, ReferenceData] | None = None,
        maps: dict[tuple[int | None, str], Mapping] | None = None,
    ) -> None:
        self.connection = connection
        self.name = services.provider_name(connection)
        self.refs = services.reference_data(connection) if refs is None else refs
        self.maps = services.mappings(connection) if maps is None else maps
        self.taxes = ledger_taxes(connection, self.refs)
        self.by_code = {t.code: t for t in self.taxes}
        self.table = table_mappings(connection)
        self.us = us_sales_tax(connection)
        self.arithmetic = arithmetic(connection)
        f = services.catalog_of(connection).field("tax_code")
        self.words = f.lower_label if f else "tax code"
        default = self.maps.get((None, "tax_code"))
        fallback = services.ledger_default(connection, f, self.refs) if f is not None and default is None else None
        #: (code, source) of the connection's default tax code, used for lines at its own rate.
        self.default: tuple[str, str] | None = (
            (default.value, "connection default") if default is not None else fallback
        )
        self._products: dict[int | None, Product | None] = {}

    def line(self, rate: Decimal, kind: TaxKind | str | None, product_id: int | None) -> Resolved:
        """Return the tax code of a line at ``rate`` (and ``kind``) of the product with ``product_id``.

        :raise TaxHold: when no code at the line's rate applies.
        """
        key = RateKey.of(rate, kind)
        override = self.maps.get((product_id, "tax_code")) if product_id is not None else None
        if override is not None:
            if self.us and key.rate == 0:
                return self._non()
            tax = self._checked(override.value, key, "product override", product_id)
            return self._resolved(tax, "product override")
        return self.resolve(key)

    def resolve(self, key: RateKey) -> Resolved:
        """Return the code of a line of row ``key`` without a product override.

        :raise TaxHold: when the row is not mapped and the default code is at another rate.
        """
        if not self.arithmetic.keeps(key.rate):
            raise TaxHold(
                f"{key.label}, which has more decimals than {self.name} keeps ({self.arithmetic.rate_places}), "
                f"so none of {self.name}'s {plural(self.words)} can carry it: correct the rate in the SaaS.",
                reason="rate_decimals",
            )
        if self.us and key.rate == 0:
            return self._non()
        mapped = self.table.get(key)
        if mapped is not None:
            return self._resolved(self._checked(mapped.value, key, "tax table", None), "tax table")
        if self.default is not None and (key.rate > 0 or key.kind == "zero"):
            code, source = self.default
            tax = self.by_code.get(code.strip())
            if tax is not None and tax.usable and tax.rate == key.rate:
                return self._resolved(tax, source)
        if not any(tax.usable and tax.rate == key.rate for tax in self.taxes):
            raise TaxHold(
                f"{key.label}, and none of {self.name}'s {plural(self.words)} is at {percent(key.rate)} %: correct the "
                f"rate in the SaaS if it is wrong; otherwise add a {self.words} at {percent(key.rate)} % in "
                f"{self.name}, refresh the reference data on the mappings page and map {key.label} to it in the "
                "tax table.",
                reason="rate_unknown",
            )
        raise TaxHold(
            f"{key.label}; no {self.words} is mapped to {key.label}: map {key.label} to one of {self.name}'s "
            f"{plural(self.words)} in the tax table on the mappings page.",
            reason="rate_not_mapped",
        )

    def _non(self) -> Resolved:
        return Resolved(QBO_NON, QBO_NON, Decimal(0), "QuickBooks US: not taxable")

    def _checked(self, code: str, key: RateKey, source: str, product_id: int | None) -> LedgerTax:
        tax = self.by_code.get(code.strip())
        whose = "the tax table maps it" if source == "tax table" else self._product_words(product_id)
        fix = (
            "choose another in the tax table on the mappings page"
            if source == "tax table"
            else "map the product to a code at the line's rate, or remove its override"
        )
        reason = "code_rate_differs"
        if tax is None or not tax.usable:
            why = "which is not in" if tax is None else "which is inactive or not for sales in"
            problem = f"{whose} to {self.words} {code.strip()}, {why} {self.name}'s list: {fix}."
            reason = "code_unusable"
        elif tax.rate != key.rate:
            at = f"{percent(tax.rate)} %" if tax.rate is not None else "no stated rate"
            problem = f"{whose} to {self.words} {tax.words}, which is at {at}: {fix}."
        else:
            return tax
        raise TaxHold(
            f"{key.label}, but {problem}",
            reason=reason,
            product_id=product_id if source == "product override" else None,
        )

    def _product_words(self, product_id: int | None) -> str:
        if product_id not in self._products:
            self._products[product_id] = db.session.get(Product, product_id) if product_id else None
        product = self._products[product_id]
        return f"product {product.code} {product.name} maps it" if product is not None else "its product maps it"

    def _resolved(self, tax: LedgerTax, source: str) -> Resolved:
        parts = tuple(Decimal(p) for p in str((tax.row.get("extra") or {}).get("rates") or "").split(",") if p)
        return Resolved(tax.code, tax.value, tax.rate or Decimal(0), source, parts)


def tax_table_url(connection: Connection) -> str:
    """Return the link to the connection's tax table."""
    return url_for("mappings.show_mappings", connection_id=connection.id, _anchor="tax-table")
