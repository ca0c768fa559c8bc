"""CSV downloads of the ops lists: the same rows as the pages, streamed, safe in a spreadsheet."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from portal.csvfiles import FORMULA_STARTS as FORMULA_PREFIXES
from portal.csvfiles import cell as safe_cell
from portal.csvfiles import rows_to_csv


def _rows(response) -> list[dict]:
    assert response.status_code == 200
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_downloads_are_streamed(app):
    from portal.csvfiles import csv_response

    with app.test_request_context("/ops/connections?format=csv"):
        response = csv_response("x.csv", ["a"], lambda: ([i] for i in range(3)))
        assert response.is_streamed and response.headers["Cache-Control"] == "no-store"
        assert response.get_data(as_text=True) == "a\r\n0\r\n1\r\n2\r\n"


def test_formula_cells_are_neutralised():
    assert safe_cell('=HYPERLINK("http://evil")') == '\'=HYPERLINK("http://evil")'
    assert safe_cell("+31 20 123") == "'+31 20 123"
    assert safe_cell("-5") == "'-5" and safe_cell("@SUM(A1)") == "'@SUM(A1)"
    assert safe_cell("Acme") == "Acme" and safe_cell(None) == "" and safe_cell(42) == "42"


@given(st.lists(st.lists(st.text(max_size=30), min_size=1, max_size=4), max_size=5))
def test_any_text_round_trips_and_never_starts_a_formula(rows):
    width = max((len(r) for r in rows), default=1)
    rows = [r + [""] * (width - len(r)) for r in rows]
    text = "".join(rows_to_csv([f"c{i}" for i in range(width)], rows))
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert len(parsed) == len(rows) + 1
    for original, cells in zip(rows, parsed[1:], strict=True):
        for value, cell in zip(original, cells, strict=True):
            assert not cell.startswith(FORMULA_PREFIXES)
            assert cell == value or cell == "'" + value


def test_connections_csv_follows_the_filters_and_escapes_names(ops_client, world):
    client, _ = ops_client
    evil = world.connection(org_name="=cmd|' /C calc'!A0", company="3300001")
    world.connection("quickbooks", org_name="Plain Org")
    rows = _rows(client.get(buffered=True, path="/ops/connections?provider=exact-online&format=csv"))
    assert [r["connection_id"] for r in rows] == [str(evil)]
    assert rows[0]["organization"] == "'=cmd|' /C calc'!A0" and rows[0]["status"] == "connected"
    assert rows[0]["company_number"] == "3300001"


def test_failure_groups_and_group_records_csv(ops_client, world):
    client, _ = ops_client
    cid = world.connection()
    a = world.record(cid)
    world.record(cid)
    groups = _rows(client.get(buffered=True, path="/ops/failures?format=csv"))
    assert len(groups) == 1 and groups[0]["records"] == "2" and groups[0]["error_class"] == "mapping_missing"
    assert groups[0]["organizations"] == "1" and groups[0]["fix"]
    records = _rows(client.get(buffered=True, path="/ops/failures/records?format=csv&error_class=mapping_missing"))
    assert len(records) == 2 and records[0]["record_id"] == str(a)
    assert records[0]["provider_text"] == "Ongeldige referentie: Artikel"
    assert records[0]["error"].startswith("A code used for this record")


def test_connection_records_csv(ops_client, world):
    client, _ = ops_client
    cid = world.connection()
    world.record(cid, "pushed")
    world.record(cid, "failed")
    rows = _rows(client.get(buffered=True, path=f"/ops/connections/{cid}/records?format=csv&state=pushed"))
    assert [r["state"] for r in rows] == ["pushed"] and rows[0]["external_id"] == "E-1"


def test_csv_needs_a_login(client, world):
    response = client.get(buffered=True, path="/ops/connections?format=csv")
    assert response.status_code == 302
