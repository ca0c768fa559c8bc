"""CSV import of links: all or nothing, every bad row named precisely."""

from __future__ import annotations

import io

import pytest

from portal.models import AuditEvent
from portal.models.customer_link import CustomerLink


@pytest.fixture
def bexio_setup(db, connect, add_customers, run_suggestions):
    cid = connect("bexio")
    ids = add_customers(
        {"external_id": "K-1", "name": "One"},
        {"external_id": "K-2", "name": "Two"},
        {"external_id": "K-3", "name": "Three"},
    )
    run_suggestions(cid)  # fills the ledger customer cache (contacts 1 to 7)
    return cid, ids


def _upload(flow, cid, content: bytes | str):
    data = content.encode() if isinstance(content, str) else content
    return flow.client.post(
        f"/connections/{cid}/customers/import",
        data={"csrf_token": flow.token, "file": (io.BytesIO(data), "links.csv")},
        content_type="multipart/form-data",
    )


def _links(db, cid):
    db.session.expire_all()
    return {
        link.customer_id: link
        for link in db.session.scalars(db.select(CustomerLink).where(CustomerLink.connection_id == cid))
    }


def test_a_valid_csv_links_every_row_audited_as_csv(db, flow, bexio_setup):
    cid, ids = bexio_setup
    response = _upload(flow, cid, "\ufeffcustomer;name;ledger_id\nK-1;One;1\nK-2;Two; 2 \n\n")
    assert response.status_code == 302, response.get_data(as_text=True)
    links = _links(db, cid)
    assert {c: link.external_id for c, link in links.items()} == {ids["K-1"]: "1", ids["K-2"]: "2"}
    assert {link.method.value for link in links.values()} == {"csv"}
    events = db.session.scalars(db.select(AuditEvent).where(AuditEvent.kind == "customer_link.created")).all()
    assert sorted(e.after["method"] for e in events) == ["csv", "csv"]


@pytest.mark.parametrize(
    ("content", "errors"),
    [
        (
            "customer,ledger_id\nK-1,1\nK-9,2\nK-2,999\n",
            ["Row 3: there is no customer 'K-9' in Linktest Holding.", "Row 4: there is no ledger customer '999' in "],
        ),
        (
            "customer,ledger_id\nK-1,1\nK-1,2\nK-3,1\n",
            [
                "Row 3: customer 'K-1' appears again (first on row 2).",
                "Row 4: ledger customer '1' is given to customer 'K-1' on row 2 already.",
            ],
        ),
        (
            "customer,ledger_id\nK-1,1,extra\nK-2,\n",
            ["Row 2: expected 2 values as in the header, found 3.", "Row 3: the ledger_id is empty."],
        ),
        ('customer,ledger_id\nK-1,"1\nK-2,2\n', ["malformed CSV"]),
        ("name,id\nOne,1\n", ["Row 1: the header must name the columns customer and ledger_id; found: name, id."]),
        ("", ["The file is empty"]),
        (b"customer,ledger_id\nK-1,\xff\n", ["The file is not UTF-8 text"]),
    ],
    ids=["unknown-customer-and-ledger-id", "duplicates", "row-shape", "malformed", "header", "empty", "not-utf8"],
)
def test_bad_files_change_nothing_and_name_each_row(db, flow, bexio_setup, content, errors):
    cid, _ids = bexio_setup
    response = _upload(flow, cid, content)
    html = response.get_data(as_text=True).replace("&#39;", "'")
    assert response.status_code == 422, html
    assert "Nothing was imported" in html
    for error in errors:
        assert error in html
    assert _links(db, cid) == {}
    assert db.session.scalars(db.select(AuditEvent).where(AuditEvent.kind.like("customer_link.%"))).all() == []


def test_a_row_for_a_deleted_contact_is_refused(db, flow, bexio_setup, run_suggestions):
    from portal.connections import vault
    from portal.models import Connection

    cid, _ids = bexio_setup
    adapter = vault.fresh_adapter(db.session.get(Connection, cid))
    adapter._call("DELETE", "https://api.bexio.com/2.0/contact/5")
    run_suggestions(cid)
    response = _upload(flow, cid, "customer,ledger_id\nK-1,1\nK-2,5\n")
    html = response.get_data(as_text=True).replace("&#39;", "'")
    assert response.status_code == 422 and "Row 3: ledger customer '5' (Anna Meier) was deleted in the ledger." in html
    assert _links(db, cid) == {}
