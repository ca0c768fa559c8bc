"""Reference data, defaults, product overrides, the mapping preflight and the division change.

Every code support sets is checked against the ledger's reference data (fetched through the
adapter and cached per connection) before it is stored; every change is audited in the same
transaction. Services flush; views and jobs commit (STYLE 6).
"""

from __future__ import annotations

from collections import abc
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import url_for
from sqlalchemy import delete, func, select

from .. import audit
from ..connections import vault
from ..extensions import db
from ..integrations import specs
from ..integrations.base import Company
from ..models import (
    Connection,
    ExternalRecord,
    Invoice,
    InvoiceLine,
    Mapping,
    Product,
    RecordKind,
    RecordState,
    ReferenceData,
)
from ..templating import when
from .catalog import (
    Field,
    ProviderCatalog,
    catalog,
    describe_type,
    label,
    row_from_company,
    row_from_item,
    tax_rate_of,
)

#: Products invoiced within this many days are checked by the preflight.
RECENT_DAYS = 365
#: Connection settings this feature edits (its form's field names).
SETTING_KEYS = ("due_days", "invoice_email_text", "qbo_tax_mode")
#: The Connection.settings key of each where it differs: the invoice e-mail text is the connection's
#: ``email_message``, which the connection's settings form edits and the push sends (one text).
STORED_AS = {"invoice_email_text": "email_message"}
TAX_MODES = {
    "us": "US sales tax (lines TAX/NON, one tax code per invoice)",
    "non_us": "VAT / GST (a tax code per line)",
}
#: bexio refuses a send whose message lacks this placeholder (bexio.md §3.4).
BEXIO_LINK_PLACEHOLDER = "[Network Link]"


class MappingRefused(Exception):
    """Input that cannot be stored; ``errors`` maps each field (or "form") to a precise sentence."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class DivisionRefused(Exception):
    """A division change that cannot be made; the message says why."""


class ConfirmationNeeded(Exception):
    """A division change that needs the explicit confirmation quoted in the message."""


def provider_name(connection: Connection) -> str:
    """Return the connection's ledger name."""
    return specs.get_spec(connection.provider).name


def catalog_of(connection: Connection) -> ProviderCatalog:
    """Return what the connection's ledger lets support map."""
    return catalog(connection.provider)


# -- reference data ---------------------------------------------------------------------------


def reference_data(connection: Connection) -> dict[str, ReferenceData]:
    """Return the cached reference data of a connection by kind."""
    rows = db.session.scalars(select(ReferenceData).where(ReferenceData.connection_id == connection.id))
    return {r.kind: r for r in rows}


def refresh_reference(connection: Connection) -> dict[str, int]:
    """Fetch every kind of reference data from the ledger and replace the cache; return counts.

    Everything is read before anything is written, so a failure leaves the previous cache.
    QuickBooks classes are fetched only while class tracking is on.

    :raise LedgerError: or :class:`vault.VaultError` when the ledger cannot be read.
    """
    adapter = vault.fresh_adapter(connection)
    fetched: dict[str, list[dict[str, Any]]] = {}
    for kind, (adapter_kind, _label) in catalog_of(connection).kinds.items():
        if kind == "divisions":
            fetched[kind] = [row_from_company(c) for c in adapter.list_companies()]
            continue
        if kind == "classes" and not class_tracking(fetched.get("preferences", [])):
            continue
        items = adapter.reference_data(adapter_kind)
        fetched[kind] = [row_from_item(connection.provider, kind, item) for item in items]
    now = datetime.now(UTC)
    cached = reference_data(connection)
    changed = set(cached) != set(fetched)
    for kind, rows in fetched.items():
        entry = cached.get(kind) or ReferenceData(connection_id=connection.id, kind=kind)
        changed = changed or entry.items != rows
        entry.items, entry.fetched_at = rows, now
        db.session.add(entry)
    for kind in set(cached) - set(fetched):
        db.session.delete(cached[kind])  # e.g. classes after class tracking was turned off
    if changed:
        release_mapping_holds(connection)  # a code's rate as the ledger has it now decides the holds
    return {kind: len(rows) for kind, rows in fetched.items()}


def preference(refs: dict[str, ReferenceData], key: str) -> Any:
    """Return a cached QuickBooks preference value, or None."""
    entry = refs.get("preferences")
    row = entry.find(key) if entry else None
    return (row or {}).get("extra", {}).get("value")


def class_tracking(preference_rows: list[dict[str, Any]]) -> bool:
    """Say whether QuickBooks class tracking (per line or per transaction) is on."""
    values = {r["code"]: r.get("extra", {}).get("value") for r in preference_rows}
    return bool(values.get("class_tracking_per_line") or values.get("class_tracking_per_txn"))


def options(connection: Connection, f: Field, refs: dict[str, ReferenceData], q: str = "") -> list[dict[str, Any]]:
    """Return the rows a pick-list offers for a field: active, right type, matching ``q``."""
    entry = refs.get(f.kind)
    if entry is None:
        return []
    needle = q.strip().lower()
    return [
        row
        for row in entry.items
        if row.get("active")
        and (f.right_type is None or f.right_type(row))
        and (not needle or needle in row["code"].lower() or needle in (row.get("name") or "").lower())
    ]


def picklist(
    connection: Connection, f: Field, refs: dict[str, ReferenceData], selected: str | None, q: str = ""
) -> dict[str, Any]:
    """Return what a pick-list shows: matching options and the current value, flagged when unusable."""
    rows = options(connection, f, refs, q)
    selected = (selected or "").strip()
    entry = refs.get(f.kind)
    return {
        "rows": rows,
        "selected": selected,
        "current": entry.find(selected) if entry and selected else None,
        "listed": any(r["code"] == selected for r in rows),
        "bad": check_code(connection, f, selected, refs) if selected else None,
    }


def check_code(connection: Connection, f: Field, value: str, refs: dict[str, ReferenceData]) -> str | None:
    """Return why ``value`` cannot be used for field ``f``, or None when it can."""
    name = provider_name(connection)
    entry = refs.get(f.kind)
    if entry is None:
        if f.kind == "classes":
            return f"Class tracking is off in {name}, so classes cannot be used: turn it on there first."
        return f"{f.label} codes have not been fetched from {name} yet: refresh the reference data first."
    row = entry.find(value)
    if row is None:
        return (
            f"{f.label} “{value.strip()}” does not exist in {name} {connection.company_label} "
            f"(list read {when(entry.fetched_at)}). Choose one from the list."
        )
    if not row.get("active"):
        hint = ""
        if connection.provider == specs.BEXIO and f.key == "tax_code":
            successors = [r["code"] for r in options(connection, f, refs) if r["code"][:2] == row["code"][:2]]
            hint = " bexio retires taxes after a rate change" + (
                f"; its successor is {', '.join(successors)}." if successors else "."
            )
        return f"{f.label} {label(row)} is inactive in {name}: choose an active one.{hint}"
    if f.right_type is not None and not f.right_type(row):
        return f"{label(row)} is {describe_type(connection.provider, row)}, not {f.type_words}."
    return None


# -- mappings ---------------------------------------------------------------------------------


def mappings(connection: Connection) -> dict[tuple[int | None, str], Mapping]:
    """Return every mapping of a connection by (product id or None, field)."""
    rows = db.session.scalars(select(Mapping).where(Mapping.connection_id == connection.id))
    return {(m.product_id, m.field): m for m in rows}


def defaults(connection: Connection) -> dict[str, str]:
    """Return the connection's default codes by field."""
    return {k[1]: m.value for k, m in mappings(connection).items() if k[0] is None}


def overrides(connection: Connection, product: Product) -> dict[str, str]:
    """Return a product's override codes by field."""
    rows = db.session.scalars(
        select(Mapping).where(Mapping.connection_id == connection.id, Mapping.product_id == product.id)
    )
    return {m.field: m.value for m in rows}


def plan_changes(
    connection: Connection,
    values: abc.Mapping[str, str | None],
    product: Product | None,
    refs: dict[str, ReferenceData],
) -> tuple[dict[str, tuple[str | None, str | None]], dict[str, str]]:
    """Validate wanted values against the current ones; return (changes, errors)."""
    cat = catalog_of(connection)
    current = overrides(connection, product) if product else defaults(connection)
    changes: dict[str, tuple[str | None, str | None]] = {}
    errors: dict[str, str] = {}
    for key, raw in values.items():
        f = cat.field(key)
        if f is None or (product is not None and not f.override):
            where = "per product" if product is not None else "here"
            errors[key] = f"{provider_name(connection)} has no field {key!r} to map {where}."
            continue
        wanted = (raw or "").strip() or None
        before = current.get(key)
        if wanted == before:
            continue  # unchanged values are left to the preflight, so one bad code never blocks others
        if wanted is not None:
            problem = check_code(connection, f, wanted, refs) or (
                _override_rate_problem(connection, f, wanted, product, refs) if product is not None else None
            )
            if problem:
                errors[key] = problem
                continue
        changes[key] = (before, wanted)
    return changes, errors


def _override_rate_problem(
    connection: Connection, f: Field, code: str, product: Product, refs: dict[str, ReferenceData]
) -> str | None:
    """Return why a product's tax override is at another rate than the product, or None when it is not."""
    if f.key != "tax_code":
        return None
    entry = refs.get(f.kind)
    row = entry.find(code) if entry else None
    rate = tax_rate_of(connection.provider, row) if row is not None else None
    if rate is None or rate == product.tax_rate:
        return None
    return (
        f"Product {product.code} {product.name} is at {format(product.tax_rate.normalize(), 'f')} %, but "
        f"{f.lower_label} {label(row)} is at {format(rate, 'f')} %: a product's {f.lower_label} must have its rate "
        "(lines at other rates take the tax table's code)."
    )


def release_mapping_holds(connection: Connection) -> int:
    """Send the connection's documents held for their mapping back to the push; return how many (flushed).

    Documents held before any ledger call for a rate without a code, a product's code at another
    rate or totals the ledger would compute differently (``MAPPING_HOLD_CLASSES``) are not due
    until something they depend on changes: a default, a product override, a tax table row, the
    invoice settings or the ledger's reference data. Then they become pending, and the next push
    checks them again (and holds them again if the change did not fix them).
    """
    from ..models.external_record import MAPPING_HOLD_CLASSES

    held = select(ExternalRecord).where(
        ExternalRecord.connection_id == connection.id,
        ExternalRecord.state == RecordState.needs_action,
        ExternalRecord.last_error_class.in_(sorted(MAPPING_HOLD_CLASSES)),
    )
    released = 0
    for record in db.session.scalars(held):
        record.transition(RecordState.pending)
        released += 1
    db.session.flush()
    return released


def apply_changes(connection: Connection, product: Product | None, changes: dict, staff_id: int | None) -> None:
    """Store planned changes of the defaults (no product) or a product's overrides (flushed by the caller).

    The documents held for their mapping go back to the push (:func:`release_mapping_holds`).
    """
    if changes:
        release_mapping_holds(connection)
    existing = mappings(connection)
    for key, (_before, after) in changes.items():
        mapping = existing.get((product.id if product else None, key))
        if after is None:
            if mapping is not None:
                db.session.delete(mapping)
            continue
        if mapping is None:
            mapping = Mapping(connection_id=connection.id, product_id=product.id if product else None, field=key)
            db.session.add(mapping)
        mapping.value, mapping.updated_by_id, mapping.updated_at = after, staff_id, datetime.now(UTC)


def _describe(connection: Connection, changes: dict) -> str:
    cat = catalog_of(connection)
    return ", ".join(audit.change_words(f.label if (f := cat.field(k)) else k, b, a) for k, (b, a) in changes.items())


def set_mappings(
    connection: Connection,
    values: abc.Mapping[str, str | None],
    *,
    product: Product | None = None,
    staff_id: int | None = None,
) -> dict[str, tuple[str | None, str | None]]:
    """Set defaults (no product) or a product's overrides; an empty value removes one.

    Returns the changes made, {field: (before, after)}.

    :raise MappingRefused: when any value is unknown, inactive or of the wrong type in the
        ledger (nothing is changed then).
    """
    refs = reference_data(connection)
    changes, errors = plan_changes(connection, values, product, refs)
    if errors:
        raise MappingRefused(errors)
    if not changes:
        return changes
    apply_changes(connection, product, changes, staff_id)
    whose = f"product {product.code} {product.name}" if product else "the defaults"
    audit.record(
        "mapping.changed",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=connection.business_unit.organization_id,
        summary=f"Mapping of {whose} changed: {_describe(connection, changes)}",
        before={"product_id": product.id if product else None, **{k: b for k, (b, _a) in changes.items()}},
        after={"product_id": product.id if product else None, **{k: a for k, (_b, a) in changes.items()}},
    )
    db.session.flush()
    return changes


# -- connection-level settings ----------------------------------------------------------------


def default_tax_mode(connection: Connection) -> str:
    """Return the QuickBooks tax mode the company's country implies ("us" or "non_us")."""
    return "us" if (connection.external_company_country or "").upper() in ("US", "USA") else "non_us"


def mapping_settings(connection: Connection) -> dict[str, Any]:
    """Return due days, invoice e-mail text and (QuickBooks) tax mode, with defaults filled in."""
    settings = connection.settings or {}
    result: dict[str, Any] = {
        "due_days": settings.get("due_days"),
        "invoice_email_text": settings.get(STORED_AS["invoice_email_text"]) or "",
    }
    if connection.provider == specs.QUICKBOOKS:
        result["qbo_tax_mode"] = settings.get("qbo_tax_mode") or default_tax_mode(connection)
    return result


def clean_settings(connection: Connection, raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate the submitted settings (keys absent from ``raw`` stay as they are); return (values, errors).

    ``values`` are keyed as stored in Connection.settings (:data:`STORED_AS`), ``errors`` by form field.
    """
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    if "due_days" in raw:
        due = str(raw["due_days"] or "").strip()
        if not due:
            values["due_days"] = None
        elif not due.isdigit() or int(due) > 365:
            errors["due_days"] = f"Due days must be a whole number from 0 to 365, not {due!r}."
        else:
            values["due_days"] = int(due)
    if "invoice_email_text" in raw:
        text = str(raw["invoice_email_text"] or "").strip()
        if len(text) > 2000:
            errors["invoice_email_text"] = f"The e-mail text may have at most 2,000 characters, not {len(text):,}."
        elif text and connection.provider == specs.BEXIO and BEXIO_LINK_PLACEHOLDER not in text:
            errors["invoice_email_text"] = (
                f"bexio refuses to send an e-mail whose text lacks {BEXIO_LINK_PLACEHOLDER} (where the link to "
                "the invoice goes): add it."
            )
        values[STORED_AS["invoice_email_text"]] = text or None
    if "qbo_tax_mode" in raw and connection.provider == specs.QUICKBOOKS:
        mode = str(raw["qbo_tax_mode"] or "").strip()
        if mode not in TAX_MODES:
            errors["qbo_tax_mode"] = "Choose the tax mode: US sales tax, or VAT / GST."
        values["qbo_tax_mode"] = mode
    return values, errors


def update_settings(connection: Connection, values: dict[str, Any]) -> bool:
    """Store cleaned settings (see :func:`clean_settings`); return whether anything changed."""
    settings = dict(connection.settings or {})
    stored = [STORED_AS.get(k, k) for k in SETTING_KEYS]
    before = {k: settings.get(k) for k in stored if k in values}
    after = {k: values[k] for k in before}
    if before == after:
        return False
    settings.update(after)
    connection.settings = settings  # a new dict, so the JSON column is seen as changed
    release_mapping_holds(connection)  # e.g. the QuickBooks tax mode decides the codes
    audit.record(
        "mapping.settings_changed",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=connection.business_unit.organization_id,
        summary="Invoice settings changed: " + audit.describe_changes(before, after),
        before=before,
        after=after,
    )
    return True


def save_defaults(
    connection: Connection, codes: abc.Mapping[str, str | None], settings: dict[str, Any], staff_id: int | None
):
    """Validate and store default codes and settings together, all or nothing.

    :raise MappingRefused: with every problem of either part; nothing is changed then.
    """
    refs = reference_data(connection)
    changes, errors = plan_changes(connection, codes, None, refs)
    values, setting_errors = clean_settings(connection, settings)
    errors.update(setting_errors)
    if errors:
        raise MappingRefused(errors)
    set_mappings(connection, {k: a for k, (_b, a) in changes.items()}, staff_id=staff_id)
    return bool(changes) | update_settings(connection, values)


# -- effective mapping ------------------------------------------------------------------------


@dataclass
class Effective:
    """The code a field of a product resolves to, and where it came from."""

    field: Field
    value: str | None
    #: "product override", "connection default", "<ledger> default (…)" or "not set".
    source: str
    row: dict[str, Any] | None = None


def ledger_default(connection: Connection, f: Field, refs: dict[str, ReferenceData]) -> tuple[str, str] | None:
    """Return (code, source) of what the ledger itself falls back to, where Ledgerlink relies on it."""
    if connection.provider == specs.EXACT_ONLINE and f.key == "tax_code":
        entry = refs.get("tax_codes")
        row = entry.find("2") if entry else None
        # Exact's usual high-rate code; used only when the division really has it, active.
        if row is not None and row.get("active") and (f.right_type is None or f.right_type(row)):
            return "2", "Exact default (VAT code 2)"
    if connection.provider == specs.QUICKBOOKS and f.key == "payment_condition":
        terms = preference(refs, "default_terms")
        if terms:
            return str(terms), "QuickBooks default terms"
    return None


def effective_mapping(
    connection: Connection,
    product: Product | None,
    *,
    refs: dict[str, ReferenceData] | None = None,
    maps: dict[tuple[int | None, str], Mapping] | None = None,
) -> list[Effective]:
    """Return every field's code for ``product`` (None: for a line without a product) with its source."""
    refs = reference_data(connection) if refs is None else refs
    maps = mappings(connection) if maps is None else maps
    result = []
    for f in catalog_of(connection).fields:
        override = maps.get((product.id, f.key)) if product is not None and f.override else None
        default = maps.get((None, f.key))
        if override is not None:
            value, source = override.value, "product override"
        elif default is not None:
            value, source = default.value, "connection default"
        elif fallback := ledger_default(connection, f, refs):
            value, source = fallback
        else:
            value, source = None, "not set"
        entry = refs.get(f.kind)
        result.append(Effective(f, value, source, entry.find(value) if entry and value else None))
    return result


def recent_products(connection: Connection, today: date | None = None) -> list[Product]:
    """Return the products the business unit invoiced in the last 12 months, by code."""
    since = (today or date.today()) - timedelta(days=RECENT_DAYS)
    ids = (
        select(InvoiceLine.product_id)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(Invoice.business_unit_id == connection.business_unit_id, Invoice.issue_date >= since)
        .where(InvoiceLine.product_id.is_not(None))
        .distinct()
    )
    return list(db.session.scalars(select(Product).where(Product.id.in_(ids)).order_by(Product.code, Product.id)))


def products_query(connection: Connection, q: str = ""):
    """Return a query of the organization's products, filtered by code or name."""
    stmt = select(Product).where(Product.organization_id == connection.business_unit.organization_id)
    if q:
        needle = f"%{q.lower()}%"
        stmt = stmt.where(func.lower(Product.code).like(needle) | func.lower(Product.name).like(needle))
    return stmt.order_by(Product.code, Product.id)


# -- preflight --------------------------------------------------------------------------------


@dataclass
class Problem:
    """One thing that would make the ledger refuse an invoice, in plain words, with its fix."""

    message: str
    fix_url: str
    fix_label: str
    severity: str = "error"
    field: str | None = None
    product_id: int | None = None


@dataclass
class PreflightReport:
    """What the mapping check found."""

    problems: list[Problem] = field(default_factory=list)
    products_checked: int = 0
    defaults_checked: int = 0
    error: str | None = None

    @property
    def errors(self) -> list[Problem]:
        """Return the problems that would make the ledger refuse invoices."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Return the problems that are risky but would not be refused."""
        return [p for p in self.problems if p.severity == "warning"]


def _defaults_url(connection: Connection, key: str | None = None) -> str:
    return url_for(
        "mappings.show_mappings", connection_id=connection.id, _anchor=f"default-{key}" if key else "defaults"
    )


def _product_url(connection: Connection, product: Product) -> str:
    return url_for("mappings.edit_product", connection_id=connection.id, product_id=product.id)


def _reference_url(connection: Connection) -> str:
    return url_for("mappings.show_mappings", connection_id=connection.id, _anchor="reference")


def field_required(connection: Connection, f: Field, tax_mode: str | None) -> bool:
    """Say whether the ledger refuses invoice lines without a code for ``f`` (QuickBooks: by tax mode)."""
    if connection.provider == specs.QUICKBOOKS and f.key == "tax_code":
        return tax_mode == "non_us"
    return f.required


def default_gaps(connection: Connection, refs: dict[str, ReferenceData] | None = None) -> list[Problem]:
    """Return what the defaults still lack for the ledger to take invoices, from the cached data (no ledger call).

    The same rules as :func:`preflight`: every required code without a default or a fallback of the
    ledger's own, the tax table's rates invoiced in the last 12 months that no code books (their
    documents would be held), Exact's payment condition, and bexio's due days (bexio refuses an
    invoice without a due date, and the SaaS may send none).
    """
    refs = reference_data(connection) if refs is None else refs
    maps = mappings(connection)
    tax_mode = mapping_settings(connection).get("qbo_tax_mode")
    gaps: list[Problem] = []
    for f in catalog_of(connection).fields:
        if not field_required(connection, f, tax_mode) or (None, f.key) in maps or ledger_default(connection, f, refs):
            continue
        gaps.append(
            Problem(
                f"No default {f.lower_label} is set: {provider_name(connection)} refuses invoice lines without one.",
                _defaults_url(connection, f.key),
                f"Set the default {f.lower_label}",
                field=f.key,
            )
        )
    gaps.extend(p for p in _provider_pitfalls(connection, refs, maps, [], tax_mode) if p.field == "payment_condition")
    if connection.provider == specs.BEXIO and mapping_settings(connection).get("due_days") is None:
        gaps.append(
            Problem(
                "No due days are set: bexio refuses an invoice without a due date, and the SaaS may send none.",
                _defaults_url(connection, "due_days"),
                "Set the due days",
                field="due_days",
            )
        )
    from . import taxes  # the tax table builds on this module

    for row in taxes.table(connection, refs):
        if row.held and row.lines:
            gaps.append(
                Problem(
                    f"Tax table, {row.key.label}: {row.held}",
                    taxes.tax_table_url(connection),
                    "Fix the tax table",
                    field="tax_code",
                )
            )
    return gaps


def last_mapping_change(connection: Connection) -> datetime | None:
    """Return when a default, product override or tax table row of the connection last changed."""
    from ..models import TaxMapping

    times = [
        db.session.scalar(select(func.max(Mapping.updated_at)).where(Mapping.connection_id == connection.id)),
        db.session.scalar(select(func.max(TaxMapping.updated_at)).where(TaxMapping.connection_id == connection.id)),
    ]
    known = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in times if t is not None]
    return max(known) if known else None


def preflight(connection: Connection, *, refresh: bool = True) -> PreflightReport:
    """Check every default and every product invoiced in the last 12 months against the ledger.

    Reads the ledger (reference data is refreshed first) and writes nothing to it.

    :raise LedgerError: or :class:`vault.VaultError` when the ledger cannot be read.
    """
    if refresh:
        refresh_reference(connection)
    refs = reference_data(connection)
    maps = mappings(connection)
    cat = catalog_of(connection)
    name = provider_name(connection)
    report = PreflightReport()
    problems = report.problems
    settings = mapping_settings(connection)
    tax_mode = settings.get("qbo_tax_mode")

    def required(f: Field) -> bool:
        return field_required(connection, f, tax_mode)

    # Defaults: each set code must exist, be active and of the right type.
    for f in cat.fields:
        default = maps.get((None, f.key))
        if default is None:
            continue
        report.defaults_checked += 1
        why = check_code(connection, f, default.value, refs)
        if why:
            fix = _reference_url(connection) if f.kind == "classes" and "classes" not in refs else None
            problems.append(
                Problem(
                    f"Default {f.lower_label}: {why}",
                    fix or _defaults_url(connection, f.key),
                    "Turn class tracking on, then refresh" if fix else f"Change the default {f.lower_label}",
                    field=f.key,
                )
            )

    # Products: overrides checked one by one; a missing required value is reported per field.
    products = recent_products(connection)
    overridden = {pid for (pid, _k) in maps if pid is not None}
    extra = [p for p in db.session.scalars(select(Product).where(Product.id.in_(overridden))) if p not in products]
    report.products_checked = len(products)
    missing: dict[str, list[Product]] = {}
    for product in [*products, *extra]:
        for eff in effective_mapping(connection, product, refs=refs, maps=maps):
            f = eff.field
            if eff.source == "product override" and eff.value is not None:  # an override always has its value
                why = check_code(connection, f, eff.value, refs)
                if why:
                    problems.append(
                        Problem(
                            f"Product {product.code} {product.name}, {f.lower_label}: {why}",
                            _product_url(connection, product),
                            f"Fix the mapping of {product.code}",
                            field=f.key,
                            product_id=product.id,
                        )
                    )
            if eff.value is None and required(f) and product in products:
                missing.setdefault(f.key, []).append(product)
    for f in cat.fields:
        if not required(f) or maps.get((None, f.key)) is not None or ledger_default(connection, f, refs):
            continue
        lacking = missing.get(f.key, [])
        if lacking or not products:
            few = ", ".join(p.code for p in lacking[:5]) + (" …" if len(lacking) > 5 else "")
            whom = f"{len(lacking)} product(s) invoiced in the last 12 months have none ({few})" if lacking else ""
            problems.append(
                Problem(
                    f"No default {f.lower_label} is set{': ' + whom if whom else ''}. "
                    f"{name} refuses invoice lines without one.",
                    _defaults_url(connection, f.key),
                    f"Set the default {f.lower_label}",
                    field=f.key,
                )
            )

    problems.extend(_provider_pitfalls(connection, refs, maps, products, tax_mode))
    problems.extend(_tax_problems(connection, refs))
    return report


def _tax_problems(connection: Connection, refs: dict[str, ReferenceData]) -> list[Problem]:
    """Check the tax table against the ledger, then run the totals guard over the last 12 months' documents."""
    # Imported here: the tax table and the guard build on this module.
    from ..sync import guard
    from . import taxes

    found: list[Problem] = []
    ledger_taxes = taxes.ledger_taxes(connection, refs)
    for key, mapping in sorted(taxes.table_mappings(connection).items()):
        why = taxes.check_tax_code(connection, key, mapping.value, refs, ledger_taxes)
        if why:
            found.append(
                Problem(
                    f"Tax table, {key.label}: {why}",
                    taxes.tax_table_url(connection),
                    "Fix the tax table",
                    field="tax_code",
                )
            )
    for finding in guard.scan(connection):
        numbers = finding.documents
        few = ", ".join(numbers[:5]) + (" …" if len(numbers) > 5 else "")
        found.append(
            Problem(
                f"{finding.message} {len(numbers)} document(s) of the last 12 months would be held ({few}).",
                finding.fix_url,
                finding.fix_label,
                field="tax_code",
                product_id=finding.product_id,
            )
        )
    return found


def _provider_pitfalls(connection, refs, maps, products, tax_mode) -> list[Problem]:
    found: list[Problem] = []
    if connection.provider == specs.EXACT_ONLINE:
        if (None, "payment_condition") not in maps:
            found.append(
                Problem(
                    "No default payment condition is set. Exact then takes the customer's own payment "
                    "condition, and customers Ledgerlink creates have none: their invoices would be due "
                    "on the invoice date.",
                    _defaults_url(connection, "payment_condition"),
                    "Set the default payment condition",
                    field="payment_condition",
                )
            )
        divisions = refs.get("divisions")
        pinned = divisions.find(connection.external_company_id or "") if divisions else None
        if divisions is not None and (pinned is None or not pinned.get("active")):
            reason = (pinned or {}).get("extra", {}).get("reason") or "not visible to the connected user"
            found.append(
                Problem(
                    f"Division {connection.company_label} cannot be used with this authorization ({reason}).",
                    url_for("mappings.change_division", connection_id=connection.id),
                    "Correct the division",
                )
            )
    if connection.provider == specs.QUICKBOOKS:
        if not preference(refs, "custom_txn_numbers"):
            found.append(
                Problem(
                    "Custom transaction numbers are off in QuickBooks: it then numbers invoices itself, so the "
                    "SaaS's invoice numbers are not kept and a retried push cannot find the invoice it made. Turn "
                    "them on in QuickBooks → Settings → Account and settings → Sales → Custom transaction numbers, "
                    "then run the check again.",
                    _reference_url(connection),
                    "After changing it in QuickBooks, refresh the reference data",
                )
            )
        items = refs.get("items")
        for (pid, key), mapping in maps.items():
            row = items.find(mapping.value) if key == "item" and items else None
            if row is not None and row.get("extra", {}).get("ParentRef"):
                product = db.session.get(Product, pid) if pid else None
                whose = f"Product {product.code} {product.name}" if product else "The default product/service"
                found.append(
                    Problem(
                        f"{whose} maps to {label(row)}, a sub-item: QuickBooks files its sales under the "
                        "parent and, when the parent is a category, reports show it there, not as its own "
                        "line. Choose a top-level product or service unless that is intended.",
                        _product_url(connection, product) if product else _defaults_url(connection, "item"),
                        "Choose another product/service",
                        severity="warning",
                        field="item",
                        product_id=pid,
                    )
                )
        closing = preference(refs, "closing_date")
        if closing and date.fromisoformat(str(closing)) >= connection.sync_from.date():
            found.append(
                Problem(
                    f"QuickBooks' books are closed up to {closing}, after this connection's start "
                    f"({connection.sync_from.date()}): invoices dated on or before {closing} will be refused.",
                    url_for("connections.show_connection", connection_id=connection.id),
                    "Move the connection date, or reopen the period in QuickBooks",
                    severity="warning",
                )
            )
        implied = default_tax_mode(connection)
        if tax_mode and tax_mode != implied:
            found.append(
                Problem(
                    f"The tax mode is {TAX_MODES[tax_mode]}, but the company is in "
                    f"{connection.external_company_country or 'an unknown country'}: QuickBooks expects "
                    f"{TAX_MODES[implied]}.",
                    _defaults_url(connection, "qbo_tax_mode"),
                    "Change the tax mode",
                )
            )
    return found


# -- division ---------------------------------------------------------------------------------


def pushed_record_count(connection: Connection) -> int:
    """Return how many records this connection has pushed into its ledger (ExternalRecords in state pushed)."""
    return db.session.execute(
        select(func.count())
        .select_from(ExternalRecord)
        .where(ExternalRecord.connection_id == connection.id, ExternalRecord.state == RecordState.pushed)
    ).scalar_one()


def reachable_companies(connection: Connection) -> list[Company]:
    """Return the divisions / companies the connection's token can see, reachable or not (live).

    :raise LedgerError: or :class:`vault.VaultError` when the ledger cannot be read.
    """
    return vault.fresh_adapter(connection).list_companies()


def division_counts(connection: Connection) -> dict[str, int]:
    """Return what belongs to the pinned division and goes with a change: links, cached customers, suggestions, …

    ``pushed`` records stay (they are in the old division's books); the rest is cleared.
    """
    from ..models.customer_link import CustomerLink, LedgerCustomerCache, LinkSuggestion

    def count(model, *where) -> int:
        return (
            db.session.scalar(
                select(func.count()).select_from(model).where(model.connection_id == connection.id, *where)
            )
            or 0
        )

    return {
        "pushed": pushed_record_count(connection),
        "links": count(CustomerLink),
        "ledger_customers": count(LedgerCustomerCache),
        "suggestions": count(LinkSuggestion),
        "customer_records": count(ExternalRecord, ExternalRecord.kind == RecordKind.customer),
        "reference_lists": count(ReferenceData),
    }


def division_consequences(connection: Connection, counts: dict[str, int] | int) -> str:
    """Say in words (with the counts of :func:`division_counts`) what a division change does."""
    if isinstance(counts, int):
        counts = {**division_counts(connection), "pushed": counts}
    pushed = counts.get("pushed", 0)
    if pushed:
        links = (
            f"{pushed} record(s) were pushed to {connection.company_label}. Their links keep pointing "
            f"there: Ledgerlink will not move or delete them, will not find them in the new division, "
            "and pushing them again would create them a second time there."
        )
    else:
        links = "Nothing has been pushed from this connection yet, so no record links are affected."
    cleared = [
        (counts.get("links", 0), "customer link(s) to the old division's customers"),
        (counts.get("ledger_customers", 0), "cached ledger customer(s)"),
        (counts.get("suggestions", 0), "link suggestion(s)"),
        (counts.get("customer_records", 0), "record(s) of customers created in or found in the old division"),
    ]
    said = ", ".join(f"{n} {what}" for n, what in cleared if n)
    customers_part = (
        f" Customers belong to one division: {said} are cleared, so customers are linked (or created) again in "
        "the new one; invoices held for their customer go back to the push."
        if said
        else " No customer links or cached ledger customers belong to the old division."
    )
    lists = counts.get("reference_lists", 0)
    reference = (
        f" The {lists} cached reference list(s) of the old division (its tax codes with their rates, items, "
        "journals …) are cleared and read again from the new one;"
        if lists
        else " The new division's reference data is read;"
    )
    return (
        f"{links}{customers_part}{reference} the mappings and the tax table are kept, and their codes are checked "
        "against the new division's lists (a code it does not have, or has at another rate, holds documents "
        "until it is mapped again)."
    )


def needs_confirmation(counts: dict[str, int]) -> bool:
    """Say whether a division change must be confirmed: something was pushed, or customers are linked or cached."""
    return any(counts.get(key) for key in ("pushed", "links", "ledger_customers", "customer_records"))


def _clear_customers(connection: Connection) -> None:
    """Forget the old division's customers: links, cache, suggestions, customer records; release held documents."""
    from ..customers.services import release_holds
    from ..models.customer_link import CustomerLink, LedgerCustomerCache, LinkSuggestion

    release_holds(connection, None)
    for model in (LinkSuggestion, CustomerLink, LedgerCustomerCache):
        db.session.execute(delete(model).where(model.connection_id == connection.id))
    db.session.execute(
        delete(ExternalRecord).where(
            ExternalRecord.connection_id == connection.id, ExternalRecord.kind == RecordKind.customer
        )
    )


def change_division(connection: Connection, number: str, companies: list[Company], *, confirmed: bool) -> Company:
    """Pin the connection to another division the token reaches; return it.

    :raise DivisionRefused: when the number is not reachable (with the reason) or unchanged.
    :raise ConfirmationNeeded: when records were pushed, or customers are linked or cached for the old
        division, and the change was not confirmed.
    """
    number = (number or "").strip()
    name = provider_name(connection)
    if not number:
        raise DivisionRefused(f"Choose the {name} division to use.")
    if number == connection.external_company_id:
        raise DivisionRefused(f"The connection is already pinned to {connection.company_label}; nothing was changed.")
    company = next((c for c in companies if str(c.id) == number), None)
    reachable = ", ".join(f"{c.name} ({c.id})" for c in companies if c.accessible) or "none"
    if company is None:
        raise DivisionRefused(
            f"{name} division {number} is not visible to the user who authorized this connection "
            f"(it reaches: {reachable}). Check the number with the customer, or re-authorize as a user "
            "who has access to it. Nothing was changed."
        )
    if not company.accessible:
        why = {
            "NoDivisionAccess": "the authorizing user has no rights in it, or it was not granted at consent",
            "DivisionBlocked": "the division is blocked in Exact",
        }.get(company.reason or "", company.reason or "access was not granted")
        raise DivisionRefused(
            f"{name} division {company.name} ({company.id}) cannot be used: {why}. "
            f"Reachable: {reachable}. Nothing was changed."
        )
    counts = division_counts(connection)
    pushed = counts["pushed"]
    if needs_confirmation(counts) and not confirmed:
        raise ConfirmationNeeded(division_consequences(connection, counts) + " Tick the box to confirm.")
    before = {
        "company": connection.external_company_id,
        "company_name": connection.external_company_name,
        "country": connection.external_company_country,
    }
    old_label = connection.company_label
    connection.external_company_id = str(company.id)
    connection.external_company_name = company.name
    connection.external_company_number = company.number
    connection.external_company_country = (company.country or "")[:2] or None
    # The cached lists, the customers' links and what was learnt about them belong to the old division.
    db.session.execute(delete(ReferenceData).where(ReferenceData.connection_id == connection.id))
    _clear_customers(connection)
    audit.record(
        "connection.division_changed",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=connection.business_unit.organization_id,
        summary=f"Division changed from {old_label} to {connection.company_label}; {pushed} pushed record(s)",
        before=before,
        after={
            "company": connection.external_company_id,
            "company_name": connection.external_company_name,
            "country": connection.external_company_country,
            "pushed_records": pushed,
            "cleared": {k: v for k, v in counts.items() if k != "pushed"},
            "confirmed": confirmed,
        },
    )
    db.session.flush()
    return company
