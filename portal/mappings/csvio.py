"""CSV export and import of product mappings: one row per product, one column per override field.

Format: a header row, then rows. ``product_id`` (the SaaS's product id) says which product a row
is for; ``product_code`` and ``product_name`` are for people and ignored on import; each further
column is a field (``item``, ``tax_code``, …) holding the ledger code, empty for "use the
default". Comma or semicolon separated (spreadsheets in NL, BE, DE, CH save with ``;``), UTF-8
with or without a byte-order mark. An import is all or nothing: any bad row changes nothing.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

from sqlalchemy import select

from .. import audit, csvfiles
from ..extensions import db
from ..models import Connection, Mapping, Product
from . import services

ID_COLUMN = "product_id"
INFO_COLUMNS = ("product_code", "product_name")
MAX_BYTES = 2_000_000
MAX_ROWS = 20_000


@dataclass
class CsvRow:
    """One data row: its row number in the file (the header is row 1), product id and field values."""

    number: int
    product_id: str
    values: dict[str, str]


@dataclass
class ParsedCsv:
    """Rows that parsed, and what was wrong, each problem as "Row n: …"."""

    fields: list[str] = field(default_factory=list)
    rows: list[CsvRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_csv(text: str, allowed_fields: list[str]) -> ParsedCsv:
    """Parse CSV text into rows; never raises, every defect becomes an error sentence."""
    result = ParsedCsv()
    text = text.removeprefix("\ufeff")
    if not text.strip():
        result.errors.append("The file is empty: it needs a header row and one row per product.")
        return result
    reader = csvfiles.reader(text)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except (csv.Error, StopIteration) as exc:
        result.errors.append(f"Row 1: the header cannot be read ({exc}).")
        return result
    known = [ID_COLUMN, *INFO_COLUMNS, *allowed_fields]
    unknown = [h for h in header if h not in known]
    if unknown:
        result.errors.append(
            f"Row 1: unknown column(s) {', '.join(repr(u) for u in unknown)}; the columns are {', '.join(known)}."
        )
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        result.errors.append(f"Row 1: column(s) {', '.join(repeated)} appear more than once.")
    if ID_COLUMN not in header:
        result.errors.append(f"Row 1: the column {ID_COLUMN} (the SaaS's product id) is missing.")
    if result.errors:
        return result
    result.fields = [h for h in header if h in allowed_fields]
    seen: dict[str, int] = {}
    number = 1
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            result.errors.append(f"Row {number}: malformed CSV ({exc}).")
            break
        if not any(c.strip() for c in cells):
            continue  # blank lines are forgiven
        if number - 1 > MAX_ROWS:
            result.errors.append(f"The file has more than {MAX_ROWS:,} rows; split it.")
            break
        if len(cells) != len(header):
            result.errors.append(f"Row {number}: {len(cells)} cell(s), but the header has {len(header)}.")
            continue
        record = dict(zip(header, (csvfiles.uncell(c) for c in cells), strict=True))
        product_id = record[ID_COLUMN].strip()
        if not product_id:
            result.errors.append(f"Row {number}: {ID_COLUMN} is empty.")
            continue
        if product_id in seen:
            result.errors.append(f"Row {number}: product {product_id!r} is already on row {seen[product_id]}.")
            continue
        seen[product_id] = number
        result.rows.append(CsvRow(number, product_id, {f: record[f].strip() for f in result.fields}))
    return result


def write_csv(fields: list[str], rows: list[dict[str, str]]) -> str:
    """Return CSV text with a header of the id, info and field columns and one line per row (formulas guarded)."""
    columns = [ID_COLUMN, *INFO_COLUMNS, *fields]
    return csvfiles.csv_text(columns, ([row.get(c, "") for c in columns] for row in rows))


def export_csv(connection: Connection) -> str:
    """Return every product of the organization with its override codes (empty: the default)."""
    fields = [f.key for f in services.catalog_of(connection).override_fields]
    products = db.session.scalars(services.products_query(connection))
    maps = services.mappings(connection)
    rows = []
    for product in products:
        row = {ID_COLUMN: product.external_id, "product_code": product.code, "product_name": product.name}
        for key in fields:
            mapping = maps.get((product.id, key))
            row[key] = mapping.value if mapping else ""
        rows.append(row)
    return write_csv(fields, rows)


@dataclass
class ImportResult:
    """What an import did: the changes per product, or the errors that stopped it."""

    errors: list[str] = field(default_factory=list)
    changed_products: int = 0
    changed_fields: int = 0
    rows: int = 0


def import_csv(connection: Connection, raw: bytes, *, staff_id: int | None = None) -> ImportResult:
    """Validate every row against the products and the ledger's reference data, then apply all.

    Nothing is changed when any row is wrong; the result lists each problem with its row.
    """
    result = ImportResult()
    if len(raw) > MAX_BYTES:
        result.errors.append(f"The file is {len(raw):,} bytes; the limit is {MAX_BYTES:,}.")
        return result
    try:
        text = csvfiles.decode(raw)
    except csvfiles.CsvReadError as exc:
        result.errors.append(str(exc))
        return result
    cat = services.catalog_of(connection)
    parsed = parse_csv(text, [f.key for f in cat.override_fields])
    result.errors.extend(parsed.errors)
    result.rows = len(parsed.rows)
    if parsed.errors:
        return result
    org = connection.business_unit.organization
    ids = [r.product_id for r in parsed.rows]
    products = {
        p.external_id: p
        for p in db.session.scalars(
            select(Product).where(Product.organization_id == org.id, Product.external_id.in_(ids))
        )
    }
    refs = services.reference_data(connection)
    planned: list[tuple[Product, dict]] = []
    for row in parsed.rows:
        product = products.get(row.product_id)
        if product is None:
            result.errors.append(f"Row {row.number}: there is no product with id {row.product_id!r} in {org.name}.")
            continue
        changes, errors = services.plan_changes(connection, row.values, product, refs)
        for key, message in errors.items():
            result.errors.append(f"Row {row.number}, {key}: {message}")
        if changes:
            planned.append((product, changes))
    if result.errors or not planned:
        return result
    for product, changes in planned:
        services.apply_changes(connection, product, changes, staff_id)
        result.changed_fields += len(changes)
    result.changed_products = len(planned)
    audit.record(
        "mapping.imported",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=org.id,
        summary=f"Imported product mappings from CSV: {result.changed_fields} change(s) "
        f"on {result.changed_products} product(s)",
        before={p.external_id: {k: b for k, (b, _a) in c.items()} for p, c in planned},
        after={p.external_id: {k: a for k, (_b, a) in c.items()} for p, c in planned},
    )
    db.session.flush()
    return result


def override_count(connection: Connection) -> int:
    """Return how many product overrides the connection has."""
    return (
        db.session.query(Mapping).filter(Mapping.connection_id == connection.id, Mapping.product_id.isnot(None)).count()
    )
