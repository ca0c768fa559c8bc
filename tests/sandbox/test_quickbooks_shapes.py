"""The emulated QuickBooks Online API answers as the real one does, endpoint by endpoint.

Each test sends a client's request and checks the sandbox's answer against the declared shape
of Intuit's answer (:mod:`tests.sandbox.shapes.quickbooks`): status, headers, the envelope and
every entity's keys and value types.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
import requests

from tests.sandbox.shapes import check
from tests.sandbox.shapes.quickbooks import ENDPOINTS
from tests.sandbox.test_quickbooks_support import Qbo

#: A small XML document to attach (any file type QuickBooks accepts).
ATTACHMENT = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Note><Text>Delivery confirmed by the customer on site.</Text></Note>\n'
)


@pytest.fixture
def us(sandbox_url):
    return Qbo(sandbox_url)


def one_line_invoice(us: Qbo, amount: float = 100, item: str = "1") -> dict:
    return us.create(
        "Invoice",
        {
            "CustomerRef": {"value": "1"},
            "Line": [
                {
                    "Amount": amount,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": item}},
                }
            ],
        },
    )


def upload(us: Qbo, entity_type: str, entity_id: str) -> requests.Response:
    """Upload :data:`ATTACHMENT` linked to an entity, as the multipart upload endpoint takes it."""
    metadata = {
        "AttachableRef": [{"EntityRef": {"type": entity_type, "value": entity_id}}],
        "FileName": "note.xml",
        "ContentType": "text/xml",
    }
    return us.session.post(
        us.url("upload"),
        files={
            "file_metadata_01": ("attachment.json", json.dumps(metadata), "application/json"),
            "file_content_01": ("note.xml", ATTACHMENT, "text/xml"),
        },
        timeout=10,
    )


def test_create_invoice_has_intuits_shape(us):
    r = us.post(
        "invoice",
        {
            "Line": [
                {
                    "Amount": 100.0,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "1", "name": "Services"}},
                }
            ],
            "CustomerRef": {"value": "1"},
        },
    )
    inv = check(ENDPOINTS["POST invoice"], r)["Invoice"]
    assert inv["SyncToken"] == "0"
    assert inv["Balance"] == inv["TotalAmt"] == 100
    assert inv["Line"][-1] == {"Amount": 100, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}
    assert inv["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "NON"}
    # Sent without DueDate, an invoice falls due by the company's terms: Net 30 after TxnDate.
    assert date.fromisoformat(inv["DueDate"]) - date.fromisoformat(inv["TxnDate"]) == timedelta(days=30)


def test_create_customer_has_intuits_shape(us):
    customer = check(ENDPOINTS["POST customer"], us.post("customer", {"DisplayName": "Doe5, Jane"}))["Customer"]
    assert (customer["DisplayName"], customer["SyncToken"], customer["Active"]) == ("Doe5, Jane", "0", True)


def test_read_customer_has_intuits_shape(us):
    r = us.get("customer/4")
    assert set(check(ENDPOINTS["GET customer/{id}"], r)) == {"Customer", "time"}
    assert r.json()["Customer"]["Id"] == "4"


def test_query_by_display_name_with_escaped_quote(us):
    r = us.query("SELECT * FROM Customer WHERE DisplayName = 'Amy\\'s Bird Sanctuary'")
    qr = check(ENDPOINTS["GET query (rows)"], r)["QueryResponse"]
    assert set(qr) == {"Customer", "startPosition", "maxResults"}
    assert qr["maxResults"] == 1
    assert qr["Customer"][0]["DisplayName"] == "Amy's Bird Sanctuary"
    for key in ("GivenName", "FamilyName", "CompanyName", "PrimaryEmailAddr", "BillAddr"):
        assert key in qr["Customer"][0], key


def test_query_with_ampersand(us):
    r = us.query("SELECT * FROM Vendor WHERE DisplayName = 'Robertson & Associates'")
    qr = check(ENDPOINTS["GET query (rows)"], r)["QueryResponse"]
    assert set(qr) == {"Vendor", "startPosition", "maxResults"}
    assert qr["Vendor"][0]["DisplayName"] == "Robertson & Associates"
    uk = Qbo(us.base, "9341453908061187")
    r = uk.query("SELECT * FROM Customer WHERE DisplayName = 'O\\'Neill & Sons'")
    assert r.json()["QueryResponse"]["Customer"][0]["CompanyName"] == "O'Neill & Sons"


def test_count_and_paging(us):
    r = us.query("SELECT COUNT(*) FROM Customer")
    assert check(ENDPOINTS["GET query (count)"], r)["QueryResponse"]["totalCount"] == 6  # one of seven is inactive
    r = us.query(
        "SELECT * FROM Customer WHERE Id IN ('1', '2', '3', '4', '5', '7') AND Active IN ( true, false ) "
        "MAXRESULTS 2 STARTPOSITION 1"
    )
    qr = check(ENDPOINTS["GET query (rows)"], r)["QueryResponse"]
    assert set(qr) == {"Customer", "startPosition", "maxResults"}
    assert qr["maxResults"] == 2
    r = us.query("SELECT * FROM Customer WHERE Id IN ('1', '2') MAXRESULTS 2 STARTPOSITION 7")
    assert check(ENDPOINTS["GET query (past the end)"], r)["QueryResponse"] == {}


def test_inactive_rows_need_active_filter(us):
    r = us.query("SELECT * FROM Customer WHERE Active IN (true, false)")
    names = [c["DisplayName"] for c in r.json()["QueryResponse"]["Customer"]]
    assert "Jeff's Jalopies" in names
    r = us.query("SELECT COUNT(*) FROM Employee WHERE Active IN (true, false) ")
    check(ENDPOINTS["GET query (count)"], r)


def test_sparse_update_customer_has_intuits_shape(us):
    before = us.get("customer/4").json()["Customer"]
    r = us.post(
        "customer",
        {
            "DisplayName": "Jack Moe",
            "PrimaryPhone": {"FreeFormNumber": "(415) 444-1234"},
            "Id": "4",
            "SyncToken": before["SyncToken"],
            "sparse": True,
        },
        params={"minorversion": "8", "requestid": "upd-1"},
    )
    after = check(ENDPOINTS["POST customer"], r)["Customer"]
    assert after["SyncToken"] == "1"
    assert after["PrimaryEmailAddr"] == before["PrimaryEmailAddr"]


def test_update_sales_receipt_has_intuits_shape(us):
    sr = us.create(
        "SalesReceipt",
        {
            "Line": [
                {
                    "Description": "Custom Design",
                    "Amount": 337.5,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": "2"},
                        "UnitPrice": 75,
                        "Qty": 4.5,
                        "TaxCodeRef": {"value": "NON"},
                    },
                }
            ]
        },
    )
    r = us.post(
        "salesreceipt",
        {"Line": sr["Line"][:1], "Id": sr["Id"], "SyncToken": sr["SyncToken"]},
        params={"minorversion": "4", "requestid": "sr-upd-1"},
    )
    assert check(ENDPOINTS["POST salesreceipt"], r)["SalesReceipt"]["TotalAmt"] == 337.5


def test_delete_invoice_has_intuits_shape(us):
    inv = one_line_invoice(us)
    r = us.post("invoice", {"Id": inv["Id"], "SyncToken": "0"}, params={"operation": "delete"})
    assert check(ENDPOINTS["POST invoice?operation=delete"], r)["Invoice"] == {
        "domain": "QBO",
        "status": "Deleted",
        "Id": inv["Id"],
    }
    assert us.get(f"invoice/{inv['Id']}").json()["Fault"]["Error"][0]["code"] == "610"


def test_void_invoice_has_intuits_shape(us):
    inv = one_line_invoice(us)
    r = us.post("invoice", {"Id": inv["Id"], "SyncToken": "0"}, params={"operation": "void"})
    voided = check(ENDPOINTS["POST invoice?operation=void"], r)["Invoice"]
    assert (voided["SyncToken"], voided["TotalAmt"], voided["PrivateNote"]) == ("1", 0, "Voided")


def test_batch_has_intuits_shape(us):
    inv = one_line_invoice(us, amount=10)
    sr = us.create(
        "SalesReceipt",
        {
            "Line": [
                {
                    "Amount": 400,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
                }
            ]
        },
    )
    r = us.post(
        "batch",
        {
            "BatchItemRequest": [
                {"bId": "bid1", "operation": "create", "Vendor": {"DisplayName": "Boraski Family Store"}},
                {"bId": "bid2", "operation": "delete", "Invoice": {"Id": "999", "SyncToken": "0"}},
                {
                    "bId": "bid3",
                    "operation": "update",
                    "SalesReceipt": {
                        "domain": "QBO",
                        "sparse": True,
                        "Id": sr["Id"],
                        "SyncToken": "7",
                        "PrivateNote": "A private note.",
                    },
                },
                {"bId": "bid4", "Query": "select * from SalesReceipt where TotalAmt > '300.00'"},
            ]
        },
    )
    items = check(ENDPOINTS["POST batch"], r)["BatchItemResponse"]
    # One element per request, in order, each with its bId and exactly one answer.
    assert [set(item) for item in items] == [
        {"bId", "Vendor"},
        {"bId", "Fault"},
        {"bId", "Fault"},
        {"bId", "QueryResponse"},
    ]
    assert [item["bId"] for item in items] == ["bid1", "bid2", "bid3", "bid4"]
    assert [i.get("Fault", {}).get("Error", [{}])[0].get("code") for i in items] == [None, "610", "5010", None]
    assert sr["Id"] in [row["Id"] for row in items[3]["QueryResponse"]["SalesReceipt"]]
    assert inv["Id"]


def test_cdc_has_intuits_shape(us, sandbox_url):
    us.create(
        "Estimate",
        {
            "CustomerRef": {"value": "1"},
            "Line": [
                {
                    "Amount": 300,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "2"}},
                }
            ],
        },
    )
    clock = requests.get(f"{sandbox_url}/_control/clock", timeout=5).json()["now"]
    since = clock[:10] + "T00:00:00+00:00"
    r = us.get("cdc", params={"changedSince": since, "entities": "estimate"})
    resp = check(ENDPOINTS["GET cdc"], r)["CDCResponse"][0]["QueryResponse"][0]
    assert set(resp) == {"Estimate", "startPosition", "maxResults"}
    assert resp["Estimate"]


def test_upload_attachment_has_intuits_shape(us):
    inv = one_line_invoice(us, amount=10)
    r = upload(us, "Invoice", inv["Id"])
    att = check(ENDPOINTS["POST upload"], r)["AttachableResponse"][0]["Attachable"]
    assert att["Size"] == len(ATTACHMENT)
    assert att["AttachableRef"][0]["EntityRef"] == {"value": inv["Id"], "type": "Invoice"}
    check(ENDPOINTS["GET attachable/{id}"], us.get(f"attachable/{att['Id']}"))
    gone = us.post("attachable", {"Id": att["Id"]}, params={"operation": "delete"})
    assert check(ENDPOINTS["POST attachable?operation=delete"], gone)["Attachable"]["Id"] == att["Id"]


def test_upload_to_missing_entity_is_fault_in_200(us):
    r = upload(us, "Estimate", "75")
    (item,) = check(ENDPOINTS["POST upload"], r)["AttachableResponse"]
    assert set(item) == {"Fault"}
    assert item["Fault"]["Error"][0]["Detail"] == (
        "Business Validation Error: The entity Estimate 75 that you are trying to link does not exist. Estimate 75"
    )


def test_query_errors_have_intuits_shape(us):
    ok = us.query("SELECT * FROM Customer")
    assert set(check(ENDPOINTS["GET query (rows)"], ok)["QueryResponse"]) == {"Customer", "startPosition", "maxResults"}
    r = us.query("SELECT * FROM Custmoer")
    fault = check(ENDPOINTS["error 400"], r)["Fault"]
    assert fault["Error"][0]["Detail"] == "QueryValidationError: invalid context declaration: Custmoer"
    assert fault["Error"][0]["code"] == "4001"


def test_unknown_property_has_intuits_shape(us):
    r = us.post("invoice", {"BadJson": True})
    assert 'Unrecognized field "BadJson"' in check(ENDPOINTS["error 400"], r)["Fault"]["Error"][0]["Detail"]


def test_duplicate_name_has_intuits_shape(us):
    r = us.post("customer", {"DisplayName": "Books by Bessie"})  # a vendor's name
    assert check(ENDPOINTS["error 400"], r)["Fault"]["Error"][0]["code"] == "6240"


def test_bad_paths_have_intuits_shape(us):
    check(ENDPOINTS["error 400"], us.get("customer/1/5"))
    r = us.get("customer/1.5")
    error = check(ENDPOINTS["error 400"], r)["Fault"]["Error"][0]
    assert error["Detail"] == "Id should be a valid number. Supplied value:1.5"
    assert (error["code"], error["element"]) == ("2030", "Id")


def test_expired_token_has_intuits_shape(us, sandbox_url):
    requests.post(f"{sandbox_url}/_control/clock", json={"advance_seconds": 3601}, timeout=5)
    r = us.get("customer/1")
    body = check(ENDPOINTS["error 401"], r)
    assert body["fault"]["error"][0]["detail"].startswith("Token expired: ")
    assert body["fault"]["error"][0]["code"] == "3200"


def test_invoice_pdf(us):
    r = us.session.get(us.url("invoice/1/pdf"), headers={"Accept": "application/pdf"}, timeout=10)
    check(ENDPOINTS["GET invoice/{id}/pdf"], r)
    assert r.content.startswith(b"%PDF-1.4")
