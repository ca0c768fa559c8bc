"""QBO Accounting API behaviour: tax models, numbering, SyncTokens, payments, batch, CDC, requestid."""

from __future__ import annotations

import pytest
import requests

from tests.sandbox.test_quickbooks_support import UK_REALM, US_REALM, Qbo


def line(amount, item="1", **detail):
    return {
        "Amount": amount,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": item}, **detail},
    }


def control(base, action, body):
    r = requests.post(f"{base}/_control/quickbooks/{action}", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def us(sandbox_url):
    return Qbo(sandbox_url)


@pytest.fixture
def uk(sandbox_url):
    return Qbo(sandbox_url, UK_REALM)


def test_us_tax_on_tax_lines_with_header_code(us):
    inv = us.create(
        "Invoice",
        {
            "CustomerRef": {"value": "1"},
            "Line": [line(100, "5", TaxCodeRef={"value": "TAX"}), line(50, "2", Qty=2, UnitPrice=25)],
        },
        minorversion="75",
    )
    assert inv["TxnTaxDetail"]["TxnTaxCodeRef"] == {"value": "2"}
    assert inv["TxnTaxDetail"]["TotalTax"] == 8
    assert inv["TotalAmt"] == 158
    assert inv["Line"][1]["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "NON"}
    az = us.create(
        "Invoice",
        {
            "CustomerRef": {"value": "1"},
            "Line": [line(325.75, "5", TaxCodeRef={"value": "TAX"})],
            "TxnTaxDetail": {"TxnTaxCodeRef": {"value": "3"}},
        },
    )
    assert az["TxnTaxDetail"]["TotalTax"] == 21.17  # 6.5 % half-up
    bad = us.post("invoice", {"CustomerRef": {"value": "1"}, "Line": [line(10, TaxCodeRef={"value": "2"})]})
    assert us.fault(bad)["code"] == "2500"


def test_uk_requires_vat_code_per_line_and_computes_vat(uk):
    r = uk.post("invoice", {"CustomerRef": {"value": "1"}, "Line": [line(100)]})
    err = uk.fault(r)
    assert err["code"] == "6000"
    assert "VAT rate" in err["Detail"]
    inv = uk.create(
        "Invoice",
        {
            "CustomerRef": {"value": "2"},
            "Line": [
                line(100, TaxCodeRef={"value": "2"}),
                line(40, "5", TaxCodeRef={"value": "3"}),
                line(25, "4", TaxCodeRef={"value": "5"}),
            ],
        },
    )
    assert inv["TxnTaxDetail"]["TotalTax"] == 22
    assert inv["TotalAmt"] == 187
    incl = uk.create(
        "Invoice",
        {
            "CustomerRef": {"value": "2"},
            "GlobalTaxCalculation": "TaxInclusive",
            "Line": [line(120, TaxCodeRef={"value": "2"})],
        },
    )
    assert incl["TxnTaxDetail"]["TotalTax"] == 20
    assert incl["TotalAmt"] == 120
    assert (
        uk.fault(uk.post("invoice", {"CustomerRef": {"value": "1"}, "Line": [line(1, TaxCodeRef={"value": "NON"})]}))[
            "code"
        ]
        == "2500"
    )


def test_amount_check_and_blank_fields_from_python_quickbooks(us):
    r = us.post("invoice", {"CustomerRef": {"value": "1"}, "Line": [line(1000, "2", Qty=3, UnitPrice=75)]})
    err = us.fault(r)
    assert err["code"] == "6070"
    assert err["Detail"].endswith("Supplied value:1,000.00")
    # "" means absent; Qty/UnitPrice 0 skip the check (quickbooks-online.md §3, §7).
    inv = us.create(
        "Invoice",
        {
            "CustomerRef": {"value": "1", "name": ""},
            "DueDate": "",
            "TxnDate": "",
            "TotalAmt": "",
            "SyncToken": 0,
            "domain": "QBO",
            "sparse": False,
            "GlobalTaxCalculation": "TaxExcluded",
            "Line": [{**line(100, Qty=0, UnitPrice=0, ServiceDate=""), "LineNum": 0}],
        },
    )
    assert inv["TotalAmt"] == 100


def test_doc_numbers_custom_numbering_and_duplicates(us, sandbox_url):
    first = us.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [line(10)]})
    second = us.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [line(10)]})
    assert int(second["DocNumber"]) == int(first["DocNumber"]) + 1
    dup = us.post("invoice", {"CustomerRef": {"value": "1"}, "DocNumber": first["DocNumber"], "Line": [line(1)]})
    assert us.fault(dup)["code"] == "6140"
    allowed = us.post(
        "invoice",
        {"CustomerRef": {"value": "1"}, "DocNumber": first["DocNumber"], "Line": [line(1)]},
        params={"include": "allowduplicatedocnum"},
    )
    assert allowed.status_code == 200
    too_long = us.post("invoice", {"CustomerRef": {"value": "1"}, "DocNumber": "X" * 22, "Line": [line(1)]})
    assert us.fault(too_long)["code"] == "2050"
    control(sandbox_url, "set_preferences", {"realm_id": US_REALM, "custom_txn_numbers": True})
    assert us.get("preferences").json()["Preferences"]["SalesFormsPrefs"]["CustomTxnNumbers"] is True
    blank = us.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [line(10)]})
    assert "DocNumber" not in blank
    auto = us.create("Invoice", {"CustomerRef": {"value": "1"}, "DocNumber": "AUTO_GENERATE", "Line": [line(10)]})
    assert auto["DocNumber"].isdigit()


def test_closing_date_blocks_old_transactions(us, sandbox_url):
    old = us.create("Invoice", {"CustomerRef": {"value": "1"}, "TxnDate": "2024-01-15", "Line": [line(10)]})
    control(sandbox_url, "set_preferences", {"realm_id": US_REALM, "closing_date": "2024-12-31"})
    prefs = us.get("preferences").json()["Preferences"]
    assert prefs["AccountingInfoPrefs"]["BookCloseDate"] == "2024-12-31"
    r = us.post("invoice", {"CustomerRef": {"value": "1"}, "TxnDate": "2024-12-31", "Line": [line(10)]})
    err = us.fault(r)
    assert err["Message"] == "Account Period Closed"
    assert err["element"] == "TxnDate"
    assert (
        us.fault(us.post("invoice", {"Id": old["Id"], "SyncToken": "0"}, params={"operation": "void"}))["Message"]
        == "Account Period Closed"
    )
    assert (
        us.post("invoice", {"CustomerRef": {"value": "1"}, "TxnDate": "2025-01-01", "Line": [line(10)]}).status_code
        == 200
    )


def test_stale_sync_token_sparse_and_full_update(us):
    inv = us.create("Invoice", {"CustomerRef": {"value": "1"}, "PrivateNote": "keep", "Line": [line(10)]})
    sparse = us.create("Invoice", {"Id": inv["Id"], "SyncToken": "0", "sparse": True, "CustomerMemo": {"value": "hi"}})
    assert sparse["SyncToken"] == "1"
    assert sparse["PrivateNote"] == "keep"
    stale = us.post("invoice", {"Id": inv["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "x"})
    err = us.fault(stale)
    assert err["code"] == "5010"
    assert err["Message"] == "Stale Object Error"
    full = us.create("Invoice", {"Id": inv["Id"], "SyncToken": "1", "CustomerRef": {"value": "1"}, "Line": [line(20)]})
    assert "PrivateNote" not in full
    assert full["TotalAmt"] == 20
    assert full["DocNumber"] == inv["DocNumber"]
    assert us.fault(us.post("invoice", {"Id": "999999", "SyncToken": "0", "sparse": True}))["code"] == "610"


def test_payment_reduces_balance_links_and_bumps_invoice(us, sandbox_url):
    inv = us.create("Invoice", {"CustomerRef": {"value": "4"}, "Line": [line(100)]})
    before = us.get("customer/4").json()["Customer"]["Balance"]
    pay = us.create(
        "Payment",
        {
            "CustomerRef": {"value": "4"},
            "TotalAmt": 65,
            "Line": [{"Amount": 55, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
        },
    )
    assert pay["UnappliedAmt"] == 10
    after = us.get(f"invoice/{inv['Id']}").json()["Invoice"]
    assert after["Balance"] == 45
    assert after["SyncToken"] == "1"
    assert after["LinkedTxn"] == [{"TxnId": pay["Id"], "TxnType": "Payment"}]
    assert us.get("customer/4").json()["Customer"]["Balance"] == before - 65
    # Re-pushing with the old token now fails (breeze#4624).
    assert us.fault(us.post("invoice", {"Id": inv["Id"], "SyncToken": "0", "sparse": True}))["code"] == "5010"
    over = us.post(
        "payment",
        {
            "CustomerRef": {"value": "4"},
            "TotalAmt": 100,
            "Line": [{"Amount": 100, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
        },
    )
    assert us.fault(over)["code"] == "6000"
    voided = us.create(
        "Payment",
        {"Id": pay["Id"], "SyncToken": pay["SyncToken"], "sparse": True},
        operation="update",
        include="void",
    )
    assert voided["TotalAmt"] == 0
    assert us.get(f"invoice/{inv['Id']}").json()["Invoice"]["Balance"] == 100
    paid = control(sandbox_url, "mark_paid", {"realm_id": US_REALM, "invoice_id": inv["Id"]})
    assert paid["Invoice"]["Balance"] == 0


def test_credit_memo_applied_through_payment(us):
    inv = us.create("Invoice", {"CustomerRef": {"value": "2"}, "Line": [line(100)]})
    cm = us.create("CreditMemo", {"CustomerRef": {"value": "2"}, "Line": [line(30)]})
    assert cm["RemainingCredit"] == 30
    pay = us.create(
        "Payment",
        {
            "CustomerRef": {"value": "2"},
            "TotalAmt": 70,
            "Line": [
                {"Amount": 100, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]},
                {"Amount": 30, "LinkedTxn": [{"TxnId": cm["Id"], "TxnType": "CreditMemo"}]},
            ],
        },
    )
    assert pay["UnappliedAmt"] == 0
    assert us.get(f"invoice/{inv['Id']}").json()["Invoice"]["Balance"] == 0
    assert us.get(f"creditmemo/{cm['Id']}").json()["CreditMemo"]["RemainingCredit"] == 0


def test_categories_sub_items_and_category_pitfalls(us, sandbox_url):
    items = us.query("SELECT * FROM Item WHERE Type = 'Category'").json()["QueryResponse"]["Item"]
    assert [i["Name"] for i in items] == ["Hardware"]
    cables = us.get("item/4").json()["Item"]
    assert cables["SubItem"] is True
    assert cables["FullyQualifiedName"] == "Hardware:Cables"
    assert cables["Level"] == 1
    err = us.fault(us.post("invoice", {"CustomerRef": {"value": "1"}, "Line": [line(10, "3")]}))
    assert err["code"] == "2500"
    assert "Categories cannot be used" in err["Detail"]
    control(sandbox_url, "make_item_category", {"realm_id": US_REALM, "item_id": "2"})
    assert us.fault(us.post("invoice", {"CustomerRef": {"value": "1"}, "Line": [line(10, "2")]}))["code"] == "2500"
    control(sandbox_url, "set_preferences", {"realm_id": US_REALM, "categories_enabled": False})
    err = us.fault(us.post("item", {"Name": "New cat", "Type": "Category"}))
    assert err["code"] == "500"
    assert "CREATE CATEGORY" in err["Detail"]
    assert (
        us.fault(
            us.post(
                "item",
                {
                    "Name": "Cables",
                    "Type": "Service",
                    "IncomeAccountRef": {"value": "1"},
                    "ParentRef": {"value": "3"},
                },
            )
        )["code"]
        == "6240"
    )
    assert us.fault(us.post("item", {"Name": "No account", "Type": "Service"}))["code"] == "2020"


def test_name_lists_accounts_classes_terms_taxes(us, uk):
    assert us.create("Account", {"Name": "Consulting income", "AccountType": "Income"})["Classification"] == "Revenue"
    assert us.fault(us.post("account", {"Name": "Services", "AccountType": "Income"}))["code"] == "6240"
    incomes = us.query("select * from Account where AccountType = 'Income'").json()["QueryResponse"]["Account"]
    assert {a["Name"] for a in incomes} >= {"Services", "Sales of Product Income"}
    assert us.create("Class", {"Name": "Events"})["FullyQualifiedName"] == "Events"
    assert us.create("Term", {"Name": "Net 45", "DueDays": 45})["Type"] == "STANDARD"
    codes = uk.query("select * from TaxCode").json()["QueryResponse"]["TaxCode"]
    assert {c["Name"] for c in codes} >= {"20.0% S", "5.0% R", "0.0% Z", "Exempt"}
    rate = uk.get("taxrate/1").json()["TaxRate"]
    assert rate["RateValue"] == 20
    assert uk.fault(uk.post("taxcode", {"Name": "X"}))["code"] == "500"
    assert us.fault(us.post("customer", {"Id": "1", "SyncToken": "0"}, params={"operation": "delete"}))["code"] == "500"
    assert us.fault(us.post("customer", {"DisplayName": "a:b"}))["code"] == "6000"


def test_class_tracking_per_line(us, uk):
    inv = us.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [line(10, ClassRef={"value": "1"})]})
    assert inv["Line"][0]["SalesItemLineDetail"]["ClassRef"] == {"value": "1", "name": "Retail"}
    assert (
        us.fault(us.post("invoice", {"CustomerRef": {"value": "1"}, "Line": [line(10, ClassRef={"value": "99"})]}))[
            "code"
        ]
        == "2500"
    )
    # Tracking off in the UK company: ClassRef is dropped (QBO's behaviour is unverified, quickbooks-online.md §9).
    off = uk.create(
        "Invoice",
        {
            "CustomerRef": {"value": "1"},
            "Line": [line(10, TaxCodeRef={"value": "2"}, ClassRef={"value": "1"})],
        },
    )
    assert "ClassRef" not in off["Line"][0]["SalesItemLineDetail"]


def test_send_and_pdf(us):
    inv = us.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [line(10)]})
    r = us.session.post(
        us.url(f"invoice/{inv['Id']}/send"),
        params={"sendTo": "x@example.test"},
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )
    sent = r.json()["Invoice"]
    assert sent["EmailStatus"] == "EmailSent"
    assert sent["BillEmail"] == {"Address": "x@example.test"}
    assert sent["DeliveryInfo"]["DeliveryType"] == "Email"
    assert sent["SyncToken"] == "1"
    pdf = us.session.get(us.url(f"invoice/{inv['Id']}/pdf"), headers={"Accept": "application/pdf"}, timeout=10)
    assert pdf.content.startswith(b"%PDF")
    assert inv["DocNumber"].encode() in pdf.content
    assert us.fault(us.get("invoice/9999/pdf"))["code"] == "610"


def test_requestid_replays_without_second_create(us):
    body = {"CustomerRef": {"value": "1"}, "Line": [line(10)]}
    a = us.post("invoice", body, params={"requestid": "req-1"}).json()["Invoice"]
    b = us.post("invoice", body, params={"requestid": "req-1"}).json()["Invoice"]
    assert a["Id"] == b["Id"]
    count = us.query("SELECT COUNT(*) FROM Invoice").json()["QueryResponse"]["totalCount"]
    us.post("invoice", {"Id": a["Id"], "SyncToken": "0"}, params={"operation": "delete"})
    replay = us.post("invoice", body, params={"requestid": "req-1"}).json()["Invoice"]
    assert replay["Id"] == a["Id"]  # the old response, a dead Id (quickbooks-online.md §2.4)
    assert us.query("SELECT COUNT(*) FROM Invoice").json()["QueryResponse"]["totalCount"] == count - 1
    err = us.fault(us.post("invoice", body, params={"requestid": "r" * 51}))
    assert err["code"] == "6000"
    assert "50 characters" in err["Detail"]


def test_batch_limits_visibility_and_requestid(us, sandbox_url):
    items = [{"bId": f"b{i}", "operation": "create", "Customer": {"DisplayName": f"Batch {i}"}} for i in range(31)]
    assert us.fault(us.post("batch", {"BatchItemRequest": items}))["code"] == "6000"
    r = us.post("batch", {"BatchItemRequest": items[:30]}, params={"requestid": "batch-1"})
    assert len(r.json()["BatchItemResponse"]) == 30
    again = us.post("batch", {"BatchItemRequest": items[:30]}, params={"requestid": "batch-1"})
    assert again.json() == r.json()
    new_id = str(int(r.json()["BatchItemResponse"][0]["Customer"]["Id"]) + 100)
    r = us.post(
        "batch",
        {
            "BatchItemRequest": [
                {"bId": "c", "operation": "create", "Customer": {"DisplayName": "Fresh"}},
                {"bId": "q", "Query": "select * from Customer where DisplayName = 'Fresh'"},
                {
                    "bId": "i",
                    "operation": "create",
                    "Invoice": {"CustomerRef": {"value": new_id}, "Line": [line(1)]},
                },
            ]
        },
    )
    out = r.json()["BatchItemResponse"]
    assert out[1]["QueryResponse"] == {}  # later items cannot see earlier creates (quickbooks-online.md §2.3)
    assert out[2]["Fault"]["Error"][0]["code"] == "2500"
    control(sandbox_url, "set_limits", {"batch_items": 2})
    assert us.post("batch", {"BatchItemRequest": items[:3]}).status_code == 400


def test_cdc_reports_changes_and_deletions(us, sandbox_url):
    requests.post(f"{sandbox_url}/_control/clock", json={"advance_seconds": 60}, timeout=5)
    now = requests.get(f"{sandbox_url}/_control/clock", timeout=5).json()["now"]
    requests.post(f"{sandbox_url}/_control/clock", json={"advance_seconds": 60}, timeout=5)
    inv = us.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [line(10)]})
    other = us.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [line(10)]})
    us.post("invoice", {"Id": other["Id"], "SyncToken": "0"}, params={"operation": "delete"})
    since = now[:19] + "+00:00"
    r = us.get("cdc", params={"entities": "Invoice,Customer", "changedSince": since})
    blocks = r.json()["CDCResponse"][0]["QueryResponse"]
    invoices = blocks[0]["Invoice"]
    assert {i["Id"] for i in invoices} == {inv["Id"], other["Id"]}
    assert next(i for i in invoices if i["Id"] == other["Id"])["status"] == "Deleted"
    assert blocks[1]["Customer"][0]["Id"] == "1"  # the balance change touched the customer
    old = us.fault(us.get("cdc", params={"entities": "Invoice", "changedSince": "2001-01-01T00:00:00Z"}))
    assert (old["code"], old["Message"]) == ("500", "Unsupported Operation")


def test_upload_python_quickbooks_style_lf_base64(us):
    body = (
        "\n--------------PythonMultipartPost\n"
        'Content-Disposition: form-data; name="file_metadata_01"\n'
        "Content-Type: application/json\n\n"
        '{"AttachableRef": [{"EntityRef": {"type": "Customer", "value": "1"}}], "FileName": "a.txt", '
        '"ContentType": "text/plain"}\n'
        "--------------PythonMultipartPost\n"
        'Content-Disposition: form-data; name="file_content_01"; filename="a.txt"\n'
        "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n"
        "aGVsbG8gd29ybGQ=\n"
        "--------------PythonMultipartPost--\n"
    )
    r = us.session.post(
        us.url("upload"),
        data=body,
        headers={"Content-Type": "multipart/form-data; boundary=------------PythonMultipartPost"},
        timeout=10,
    )
    att = r.json()["AttachableResponse"][0]["Attachable"]
    assert att["Size"] == 11
    assert att["FileName"] == "a.txt"
    assert us.session.get(us.url(f"download/{att['Id']}"), timeout=10).content == b"hello world"


def test_company_info_preferences_update_and_headers(us):
    info = us.get(f"companyinfo/{US_REALM}", params={"minorversion": "75"})
    assert info.json()["CompanyInfo"]["Country"] == "US"
    assert info.headers["Qbo-Version"]
    assert info.headers["intuit_tid"] == info.headers["Intuit-Tid"]
    prefs = us.get("preferences").json()["Preferences"]
    upd = us.create("Preferences", {"SyncToken": prefs["SyncToken"], "SalesFormsPrefs": {"CustomTxnNumbers": True}})
    assert upd["SalesFormsPrefs"]["CustomTxnNumbers"] is True
    assert upd["SalesFormsPrefs"]["AllowDiscount"] is True
    assert us.fault(us.post("preferences", {"SyncToken": "0"}))["code"] == "5010"
    assert (
        us.fault(us.post("invoice", None, data="{not json", headers={"Content-Type": "application/json"}))["code"]
        == "2010"
    )
    assert us.get("Invoice/1").json()["Fault"]["Error"][0]["code"] == "500"  # paths are case sensitive


def test_a_select_list_still_returns_every_property(us):
    # Projections are not supported: the response set always returns all properties (quickbooks-online.md §2.2).
    rows = us.query("SELECT Id, Balance FROM Invoice WHERE Id IN ('1', '2')").json()["QueryResponse"]["Invoice"]
    assert [r["Id"] for r in rows] == ["1", "2"]
    assert all({"CustomerRef", "TotalAmt", "Balance", "Line", "DocNumber"} <= set(r) for r in rows)
    assert all(r["sparse"] is False for r in rows)


def test_batch_payment_item_lowers_the_balance_and_faults_stay_per_item(us):
    inv = us.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [line(100)]})
    pay = {
        "CustomerRef": {"value": "1"},
        "TotalAmt": 30,
        "Line": [{"Amount": 30, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
    }
    bad = {**pay, "Line": [{"Amount": 30, "LinkedTxn": [{"TxnId": "99999", "TxnType": "Invoice"}]}]}
    r = us.post(
        "batch",
        {
            "BatchItemRequest": [
                {"bId": "p1", "operation": "create", "Payment": pay},
                {"bId": "p2", "operation": "create", "Payment": bad},
            ]
        },
    )
    assert r.status_code == 200
    first, second = r.json()["BatchItemResponse"]
    assert first["bId"] == "p1" and first["Payment"]["TotalAmt"] == 30
    assert second["bId"] == "p2" and second["Fault"]["Error"][0]["code"] == "610"
    assert us.get(f"invoice/{inv['Id']}").json()["Invoice"]["Balance"] == 70
