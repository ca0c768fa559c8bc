"""QuickBooks at the edges of the emulated surface: real entities the sandbox keeps none of, CDC's
look-back limit, and demo records that changed at different moments.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import requests
from intuitlib.client import AuthClient
from quickbooks import QuickBooks
from quickbooks.cdc import change_data_capture
from quickbooks.objects.bill import Bill
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.journalentry import JournalEntry
from quickbooks.objects.vendorcredit import VendorCredit

from sandbox.quickbooks.catalog import QBO_ENTITIES
from tests.sandbox.test_quickbooks_support import CLIENT_ID, CLIENT_SECRET, REDIRECT, US_REALM, Qbo

#: Real entities a company may hold that the sandbox does not keep (catalog.py).
UNEMULATED = [
    "Bill",
    "BillPayment",
    "Budget",
    "Department",
    "Deposit",
    "JournalEntry",
    "PaymentMethod",
    "Purchase",
    "PurchaseOrder",
    "RefundReceipt",
    "Transfer",
    "VendorCredit",
    "TimeActivity",
    "TaxAgency",
    "CustomerType",
    "CompanyCurrency",
]


@pytest.fixture
def us(sandbox_url):
    return Qbo(sandbox_url)


def now_at(sandbox_url: str) -> datetime:
    return datetime.fromisoformat(requests.get(f"{sandbox_url}/_control/clock", timeout=5).json()["now"])


def test_the_catalog_names_every_emulated_entity():
    from sandbox.quickbooks.ledger import QUERYABLE

    assert set(QUERYABLE.values()) <= set(QBO_ENTITIES)
    assert {"Bill", "JournalEntry", "Vendor", "Estimate", "SalesReceipt"} <= set(QBO_ENTITIES)


@pytest.mark.parametrize("entity", UNEMULATED)
def test_a_real_entity_the_sandbox_does_not_keep_queries_as_none(us, entity):
    r = us.query(f"SELECT * FROM {entity} WHERE MetaData.LastUpdatedTime > '2025-01-01T00:00:00Z' MAXRESULTS 10")
    assert r.status_code == 200, r.text
    assert r.json()["QueryResponse"] == {}
    assert set(r.json()) == {"QueryResponse", "time"}
    count = us.query(f"select count(*) from {entity.lower()}")
    assert count.json()["QueryResponse"] == {"totalCount": 0}


def test_a_name_qbo_does_not_have_is_still_an_invalid_context(us):
    fault = us.fault(us.query("SELECT * FROM Custmoer"))
    assert (fault["code"], fault["Detail"]) == ("4001", "QueryValidationError: invalid context declaration: Custmoer")
    # QuickBooks Desktop types are not QBO entities either.
    assert us.fault(us.query("SELECT * FROM SalesOrder"))["code"] == "4001"


def test_reading_one_by_id_is_object_not_found(us):
    assert us.fault(us.get("bill/1"))["code"] == "610"
    assert us.fault(us.get("journalentry/42"))["code"] == "610"


def test_batch_queries_answer_empty_for_unkept_entities(us):
    r = us.post(
        "batch",
        {
            "BatchItemRequest": [
                {"bId": "b1", "Query": "SELECT * FROM Bill"},
                {"bId": "b2", "Query": "SELECT * FROM Invoice"},
                {"bId": "b3", "CDCQuery": {"Entities": "Deposit,Transfer", "ChangedSince": "2026-12-01"}},
            ]
        },
    )
    assert r.status_code == 200, r.text
    items = {item["bId"]: item for item in r.json()["BatchItemResponse"]}
    assert items["b1"]["QueryResponse"] == {}
    assert items["b2"]["QueryResponse"]["Invoice"]
    assert "Fault" not in items["b3"]
    assert items["b3"]["CDCResponse"][0]["QueryResponse"] == [{}, {}]


def test_one_unkept_entity_does_not_kill_a_cdc_call(us, sandbox_url):
    since = (now_at(sandbox_url) - timedelta(days=29)).isoformat(timespec="seconds")
    r = us.get("cdc", params={"entities": "Invoice,Bill,Customer,VendorCredit", "changedSince": since})
    assert r.status_code == 200, r.text
    blocks = r.json()["CDCResponse"][0]["QueryResponse"]
    assert len(blocks) == 4
    assert {i["Id"] for i in blocks[0]["Invoice"]} == {"1", "2"}
    assert blocks[1] == {} and blocks[3] == {}
    assert "Customer" in blocks[2]


def test_python_quickbooks_reads_unkept_entities_as_empty(us, sandbox_url, monkeypatch):
    monkeypatch.setattr(QuickBooks, "api_url_v3", f"{sandbox_url}/quickbooks/api/v3")
    monkeypatch.setattr(QuickBooks, "sandbox_api_url_v3", f"{sandbox_url}/quickbooks/api/v3")
    # requests-oauthlib refuses plain http; the test server has no TLS (oauthlib's documented switch).
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    discovery = f"{sandbox_url}/quickbooks/developer/.well-known/openid_sandbox_configuration/"
    auth = AuthClient(CLIENT_ID, CLIENT_SECRET, REDIRECT, discovery, access_token=us.tokens["access_token"])
    client = QuickBooks(
        auth_client=auth, refresh_token=us.tokens["refresh_token"], company_id=US_REALM, minorversion=75
    )
    assert Bill.all(qb=client) == []
    assert JournalEntry.count(qb=client) == 0
    since = (now_at(sandbox_url) - timedelta(days=29)).strftime("%Y-%m-%dT%H:%M:%S")
    changes = change_data_capture([Invoice, Bill, VendorCredit], since, qb=client)
    assert {i.Id for i in changes.Invoice} == {"1", "2"}


# -- CDC look-back ----------------------------------------------------------------------------


def test_changed_since_older_than_30_days_is_refused_with_qbos_wording(us, sandbox_url):
    since = (now_at(sandbox_url) - timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S")
    fault = us.fault(us.get("cdc", params={"entities": "Invoice", "changedSince": since}))
    assert fault == {
        "Message": "Unsupported Operation",
        "Detail": f"Operation cdc with changedSince date {since} which is older than fixed days is not supported.",
        "code": "500",
    }
    body = us.get("cdc", params={"entities": "Invoice", "changedSince": since}).json()
    assert body["Fault"]["type"] == "ValidationFault"
    ok = (now_at(sandbox_url) - timedelta(days=29)).strftime("%Y-%m-%dT%H:%M:%S")
    assert us.get("cdc", params={"entities": "Invoice", "changedSince": ok}).status_code == 200


# -- demo data: records that changed at different moments ------------------------------------


def test_seeded_records_carry_their_own_create_and_update_times(us, sandbox_url):
    stamps = []
    for entity in ("Customer", "Vendor", "Item", "Account", "Term", "Class", "TaxCode", "TaxRate", "Invoice"):
        where = " WHERE Active IN (true, false)" if entity != "Invoice" else ""
        rows = us.query(f"SELECT * FROM {entity}{where}").json()["QueryResponse"][entity]
        stamps += [row["MetaData"]["LastUpdatedTime"] for row in rows]
    assert len(stamps) > 30 and len(set(stamps)) == len(stamps)  # no two records share a moment
    oldest = min(datetime.fromisoformat(s) for s in stamps)
    assert now_at(sandbox_url) - oldest > timedelta(days=300)  # the company was set up long ago
    customers = us.query("SELECT * FROM Customer WHERE Active IN (true, false)").json()["QueryResponse"]["Customer"]
    edited = [c for c in customers if c["MetaData"]["LastUpdatedTime"] != c["MetaData"]["CreateTime"]]
    assert [(c["Id"], c["SyncToken"]) for c in edited] == [("3", "1")]


def test_an_incremental_reader_gets_only_what_changed_since_its_last_read(us, sandbox_url):
    week_ago = (now_at(sandbox_url) - timedelta(days=7)).isoformat(timespec="seconds")
    every = us.query("SELECT * FROM Customer").json()["QueryResponse"]["Customer"]
    recent = us.query(f"SELECT * FROM Customer WHERE MetaData.LastUpdatedTime > '{week_ago}'").json()
    assert 0 < len(recent["QueryResponse"]["Customer"]) < len(every)
    invoices = us.query(f"SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime > '{week_ago}'").json()
    assert [i["Id"] for i in invoices["QueryResponse"]["Invoice"]] == ["1"]  # the one a payment touched
    # The invoices are dated when they were made, weeks apart.
    dates = {i["Id"]: i["TxnDate"] for i in us.query("SELECT * FROM Invoice").json()["QueryResponse"]["Invoice"]}
    assert dates["1"] < dates["2"] < now_at(sandbox_url).date().isoformat()
    since = (now_at(sandbox_url) - timedelta(days=29)).isoformat(timespec="seconds")
    cdc = us.get("cdc", params={"entities": "Customer,Item", "changedSince": since}).json()
    blocks = cdc["CDCResponse"][0]["QueryResponse"]
    assert 0 < len(blocks[0]["Customer"]) < len(every) and blocks[1] == {}  # no item changed this month
