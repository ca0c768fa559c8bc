"""Exact Online REST API: envelopes, OData options, invoices, entries, documents, quotas, faults."""

from __future__ import annotations

import base64
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import requests

from tests.sandbox.test_exact_support import (
    NL_MAIN,
    api_for,
    control,
    create_invoice,
    error_value,
    first_account,
    item_by_code,
)

INVOICES = f"{NL_MAIN}/salesinvoice/SalesInvoices"


def test_me_is_a_collection_envelope_with_current_division(sandbox_url):
    api = api_for(sandbox_url)
    body = api.get("current/Me", **{"$select": "CurrentDivision"}).json()
    assert body["d"]["results"][0]["CurrentDivision"] == NL_MAIN
    assert body["d"]["results"][0]["__metadata"]["type"] == "Exact.Web.Api.Models.Me"


def test_current_division_follows_the_user_not_the_app(sandbox_url):
    api = api_for(sandbox_url)
    control(sandbox_url, "set_current_division", user="jan.devries", division=3010002)
    assert api.get("current/Me").json()["d"]["results"][0]["CurrentDivision"] == 3010002


def test_mandatory_filtering_on_accounts_and_items(sandbox_url):
    api = api_for(sandbox_url)
    for path in ("crm/Accounts", "logistics/Items"):
        response = api.get(f"{NL_MAIN}/{path}")
        assert response.status_code == 400
        assert error_value(response).startswith("This endpoint has mandatory filtering applied.")
    control(sandbox_url, "set_settings", mandatory_filtering=False)
    assert api.get(f"{NL_MAIN}/crm/Accounts").status_code == 200


def test_account_codes_are_padded_and_filter_needs_the_padding(sandbox_url):
    api = api_for(sandbox_url)
    unpadded = api.get(f"{NL_MAIN}/crm/Accounts", **{"$filter": "Code eq '1'"}).json()["d"]["results"]
    padded = api.get(f"{NL_MAIN}/crm/Accounts", **{"$filter": f"Code eq '{'1':>18}'"}).json()["d"]["results"]
    assert unpadded == []
    assert padded[0]["Code"] == " " * 17 + "1"
    assert padded[0]["Country"] == "NL "


def test_filter_select_orderby_inlinecount(sandbox_url):
    api = api_for(sandbox_url)
    body = api.get(
        f"{NL_MAIN}/financial/GLAccounts",
        **{
            "$filter": "Type eq 110 or Code eq '1300'",
            "$select": "Code,Type",
            "$orderby": "Code desc",
            "$inlinecount": "allpages",
        },
    ).json()["d"]
    assert body["__count"] == "3"
    assert [r["Code"] for r in body["results"]] == ["8010", "8000", "1300"]
    assert set(body["results"][0]) == {"__metadata", "Code", "Type"}


def test_vat_codes_are_padded_with_nl_code_2(sandbox_url):
    api = api_for(sandbox_url)
    rows = api.get(f"{NL_MAIN}/vat/VATCodes", **{"$filter": "Code eq '2  '"}).json()["d"]["results"]
    assert rows[0]["Percentage"] == 0.21


def test_unknown_property_and_bad_syntax_are_400_odata_errors(sandbox_url):
    api = api_for(sandbox_url)
    unknown = api.get(f"{NL_MAIN}/financial/Journals", **{"$filter": "Nope eq 1"})
    assert unknown.status_code == 400
    assert "No property 'Nope' exists in type 'Exact.Web.Api.Models.Journal'" in error_value(unknown)
    bad = api.get(f"{NL_MAIN}/financial/Journals", **{"$filter": "Code eq"})
    assert bad.status_code == 400
    top = api.get(f"{NL_MAIN}/financial/Journals", **{"$top": "-1"})
    assert top.status_code == 400


def test_pages_of_60_with_next_link_and_skiptoken(sandbox_url):
    # 65 creates would exceed the real 60/min quota; this test is about paging.
    requests.post(f"{sandbox_url}/_control/quotas", json={"enabled": False}, timeout=10).raise_for_status()
    api = api_for(sandbox_url)
    for n in range(65):
        assert api.post(f"{NL_MAIN}/crm/Accounts", {"Name": f"Paging {n}"}).status_code == 201
    first = api.get(f"{NL_MAIN}/crm/Accounts", **{"$filter": "Status eq 'C'", "$select": "ID"}).json()["d"]
    assert len(first["results"]) == 60
    assert "$skiptoken=guid'" in first["__next"]
    second = requests.get(first["__next"], headers=api.session.headers, timeout=10).json()["d"]
    assert len(second["results"]) == 68 - 60
    assert "__next" not in second
    ids = [r["ID"] for r in first["results"] + second["results"]]
    assert len(set(ids)) == 68


def test_bulk_endpoints_need_select_and_page_by_1000(sandbox_url):
    api = api_for(sandbox_url)
    refused = api.get(f"{NL_MAIN}/bulk/CRM/Accounts")
    assert error_value(refused) == "Please add a $select or a $top=1 statement to the query string."
    rows = api.get(f"{NL_MAIN}/bulk/CRM/Accounts", **{"$select": "ID,Name"}).json()["d"]["results"]
    assert len(rows) == 3


def test_sync_filters_only_on_timestamp(sandbox_url):
    api = api_for(sandbox_url)
    ok = api.get(f"{NL_MAIN}/sync/CRM/Accounts", **{"$select": "ID,Timestamp", "$filter": "Timestamp gt 1L"})
    stamps = [r["Timestamp"] for r in ok.json()["d"]["results"]]
    assert stamps == sorted(stamps)
    assert all(s > 1 for s in stamps)
    refused = api.get(f"{NL_MAIN}/sync/CRM/Accounts", **{"$select": "ID", "$filter": "Name eq 'x'"})
    assert error_value(refused) == "This $filter parameter is not supported for this resource"


def test_create_account_and_duplicate_code_fails_in_dutch_then_english(sandbox_url):
    api = api_for(sandbox_url)
    created = api.post(f"{NL_MAIN}/crm/Accounts", {"Name": "Nieuwe Klant", "Code": "500", "Email": "a@b.example"})
    assert created.status_code == 201
    assert created.json()["d"]["Code"] == "500".rjust(18)
    duplicate = api.post(f"{NL_MAIN}/crm/Accounts", {"Name": "Dubbel", "Code": "500"})
    assert duplicate.status_code == 500
    assert error_value(duplicate) == "Gegeven bestaat reeds."
    control(sandbox_url, "set_language", user="jan.devries", language="en")
    assert error_value(api.post(f"{NL_MAIN}/crm/Accounts", {"Name": "Dup", "Code": "500"})) == "Record already exists."
    resend = api.put(f"{NL_MAIN}/crm/Accounts(guid'{created.json()['d']['ID']}')", {"Code": "500"})
    assert resend.status_code == 500


def test_update_and_delete_account(sandbox_url):
    api = api_for(sandbox_url)
    account = first_account(api)
    assert api.put(f"{NL_MAIN}/crm/Accounts(guid'{account['ID']}')", {"Email": "new@x.example"}).status_code == 204
    got = api.get(f"{NL_MAIN}/crm/Accounts(guid'{account['ID']}')").json()["d"]
    assert got["Email"] == "new@x.example"
    assert api.delete(f"{NL_MAIN}/crm/Accounts(guid'{account['ID']}')").status_code == 204
    assert api.get(f"{NL_MAIN}/crm/Accounts(guid'{account['ID']}')").status_code == 404
    deleted = api.get(f"{NL_MAIN}/sync/Deleted", **{"$select": "EntityKey,EntityType", "$filter": "Timestamp gt 1"})
    assert {"EntityKey": account["ID"], "EntityType": 2} == {
        k: v for k, v in deleted.json()["d"]["results"][0].items() if k != "__metadata"
    }


def test_malformed_body_and_unknown_property_are_400(sandbox_url):
    api = api_for(sandbox_url)
    broken = api.session.post(f"{api.root}/{INVOICES}", data="{not json", timeout=10)
    assert broken.status_code == 400
    assert error_value(broken).startswith("Error processing request stream.")
    lines_object = api.post(INVOICES, {"OrderedBy": first_account(api)["ID"], "SalesInvoiceLines": {"Item": "x"}})
    assert lines_object.status_code == 400
    unknown = api.post(f"{NL_MAIN}/crm/Accounts", {"Name": "x", "Bogus": 1})
    assert unknown.status_code == 400
    assert "The property 'Bogus' does not exist on type 'Exact.Web.Api.Models.Account'" in error_value(unknown)


def test_sales_invoice_create_computes_amounts_and_stays_open(sandbox_url):
    api = api_for(sandbox_url)
    invoice = create_invoice(api)
    assert invoice["Status"] == 20
    assert invoice["InvoiceNumber"] is None
    assert invoice["Journal"] == "70"
    assert invoice["AmountFCExclVat"] == 300
    assert invoice["VATAmountFC"] == 63
    assert invoice["AmountFC"] == 363
    line = invoice["SalesInvoiceLines"]["results"][0]
    assert line["VATCode"] == "2  "
    assert line["VATPercentage"] == 0.21
    assert invoice["OrderDate"].startswith("/Date(")


def test_sales_invoice_validation_messages_are_joined_with_crlf(sandbox_url):
    api = api_for(sandbox_url)
    response = api.post(
        INVOICES, {"Journal": "90", "SalesInvoiceLines": [{"Item": "00000000-0000-0000-0000-000000000000"}]}
    )
    assert response.status_code == 500
    assert error_value(response).split("\r\n") == [
        "Verplicht: Besteld door",
        "Ongeldig dagboek. Het dagboek moet een verkoopboek zijn.",
        "Ongeldige referentie: Artikel",
    ]
    control(sandbox_url, "set_settings", business_status=400)
    guid_journal = api.post(
        INVOICES,
        {
            "OrderedBy": first_account(api)["ID"],
            "Journal": "6f1c0e2a-0000-0000-0000-000000000000",
            "SalesInvoiceLines": [{"Item": item_by_code(api, "BOOK")["ID"]}],
        },
    )
    assert guid_journal.status_code == 400
    assert error_value(guid_journal) == "Ongeldige referentie: Journals"


def test_non_revenue_gl_account_on_a_line_is_refused(sandbox_url):
    api = api_for(sandbox_url)
    gl = api.get(f"{NL_MAIN}/financial/GLAccounts", **{"$filter": "Code eq '1300'"}).json()["d"]["results"][0]
    response = api.post(
        INVOICES,
        {
            "OrderedBy": first_account(api)["ID"],
            "SalesInvoiceLines": [{"Item": item_by_code(api, "BOOK")["ID"], "GLAccount": gl["ID"]}],
        },
    )
    assert error_value(response) == "Ongeldig: Grootboekrekeningtype"


def test_print_processes_invoice_numbers_it_books_entry_document_receivable_and_mail(sandbox_url):
    api = api_for(sandbox_url)
    invoice = create_invoice(api)
    printed = api.post(
        f"{NL_MAIN}/salesinvoice/PrintedSalesInvoices",
        {"InvoiceID": invoice["InvoiceID"], "SendEmailToCustomer": True, "SenderEmailAddress": "f@x.example"},
    )
    assert printed.status_code == 201, printed.text
    result = printed.json()["d"]
    assert result["EmailCreationSuccess"]
    assert result["Document"]
    again = api.get(f"{INVOICES}(guid'{invoice['InvoiceID']}')").json()["d"]
    assert again["Status"] == 50
    assert isinstance(again["InvoiceNumber"], int)
    entry = api.get(f"{NL_MAIN}/salesentry/SalesEntries(guid'{invoice['InvoiceID']}')")
    assert entry.status_code == 200
    receivable = api.get(f"{NL_MAIN}/cashflow/Receivables", **{"$filter": f"EntryID eq guid'{invoice['InvoiceID']}'"})
    row = receivable.json()["d"]["results"][0]
    assert (row["Status"], row["IsFullyPaid"], row["AmountDC"]) == (20, False, 363)
    ledger = requests.get(f"{sandbox_url}/_control/ledger/exact-online/{NL_MAIN}", timeout=10).json()
    assert ledger["outbox"][0]["to"] == "info@bakkerijjansen.example"
    reprint = api.post(f"{NL_MAIN}/salesinvoice/PrintedSalesInvoices", {"InvoiceID": invoice["InvoiceID"]})
    assert error_value(reprint) == "Reeds verwerkt"
    assert api.put(f"{INVOICES}(guid'{invoice['InvoiceID']}')", {"YourRef": "x"}).status_code == 500


def _odata_day(value: str) -> date:
    return datetime.fromtimestamp(int(value[6:-2]) / 1000, tz=UTC).date()


def test_a_posted_due_date_is_kept_and_an_absent_one_follows_the_payment_condition(sandbox_url):
    api = api_for(sandbox_url)
    day = date.today()
    own = create_invoice(api, InvoiceDate=day.isoformat(), DueDate=(day + timedelta(days=45)).isoformat())
    derived = create_invoice(api, InvoiceDate=day.isoformat(), PaymentCondition="21")
    for invoice in (own, derived):
        printed = api.post(f"{NL_MAIN}/salesinvoice/PrintedSalesInvoices", {"InvoiceID": invoice["InvoiceID"]})
        assert printed.status_code == 201, printed.text
    dues = [_odata_day(api.get(f"{INVOICES}(guid'{i['InvoiceID']}')").json()["d"]["DueDate"]) for i in (own, derived)]
    # exact-online.md §3.6: without DueDate it is the date + the condition's days ("21 dagen"); a posted one stays.
    assert dues == [day + timedelta(days=45), day + timedelta(days=21)]


def test_mark_paid_removes_the_invoice_from_receivables_list(sandbox_url):
    api = api_for(sandbox_url)
    invoice = create_invoice(api)
    api.post(f"{NL_MAIN}/salesinvoice/PrintedSalesInvoices", {"InvoiceID": invoice["InvoiceID"]})
    number = api.get(f"{INVOICES}(guid'{invoice['InvoiceID']}')").json()["d"]["InvoiceNumber"]
    assert len(api.get(f"{NL_MAIN}/read/financial/ReceivablesList").json()["d"]["results"]) == 1
    control(sandbox_url, "mark_paid", division=NL_MAIN, invoice=number)
    assert api.get(f"{NL_MAIN}/read/financial/ReceivablesList").json()["d"]["results"] == []
    row = api.get(f"{NL_MAIN}/cashflow/Receivables").json()["d"]["results"][0]
    assert (row["IsFullyPaid"], row["Status"]) == (True, 50)
    control(sandbox_url, "mark_unpaid", division=NL_MAIN, invoice=number)
    assert api.get(f"{NL_MAIN}/cashflow/Receivables").json()["d"]["results"][0]["IsFullyPaid"] is False


def test_closed_period_refuses_invoices_and_entries_dated_in_it(sandbox_url):
    api = api_for(sandbox_url)
    year = time.gmtime().tm_year
    control(sandbox_url, "close_period", division=NL_MAIN, year=year, period=1)
    dated = f"{year}-01-15T00:00:00Z"
    response = api.post(
        INVOICES,
        {
            "OrderedBy": first_account(api)["ID"],
            "InvoiceDate": dated,
            "SalesInvoiceLines": [{"Item": item_by_code(api, "BOOK")["ID"]}],
        },
    )
    assert response.status_code == 500
    assert error_value(response) == f"Periode is afgesloten: {year} - 1"
    gl = api.get(f"{NL_MAIN}/financial/GLAccounts", **{"$filter": "Code eq '8000'"}).json()["d"]["results"][0]
    entry = api.post(
        f"{NL_MAIN}/salesentry/SalesEntries",
        {
            "Journal": "70",
            "Customer": first_account(api)["ID"],
            "EntryDate": dated,
            "SalesEntryLines": [{"GLAccount": gl["ID"], "AmountFC": 10}],
        },
    )
    assert error_value(entry) == f"Periode is afgesloten: {year} - 1"
    control(sandbox_url, "reopen_period", division=NL_MAIN, year=year, period=1)
    assert (
        api.post(
            INVOICES,
            {
                "OrderedBy": first_account(api)["ID"],
                "InvoiceDate": dated,
                "SalesInvoiceLines": [{"Item": item_by_code(api, "BOOK")["ID"]}],
            },
        ).status_code
        == 201
    )


def test_sales_entry_books_with_own_number_and_validates(sandbox_url):
    api = api_for(sandbox_url)
    gl = api.get(f"{NL_MAIN}/financial/GLAccounts", **{"$filter": "Code eq '8000'"}).json()["d"]["results"][0]
    customer = first_account(api)
    created = api.post(
        f"{NL_MAIN}/salesentry/SalesEntries",
        {
            "Journal": "70",
            "Customer": customer["ID"],
            "EntryNumber": 24700999,
            "YourRef": "LL-9",
            "SalesEntryLines": [{"GLAccount": gl["ID"], "AmountFC": "100.00", "VATCode": "2"}],
        },
    )
    assert created.status_code == 201, created.text
    entry = created.json()["d"]
    assert (entry["EntryNumber"], entry["AmountFC"], entry["VATAmountFC"], entry["Status"]) == (
        24700999,
        121,
        21,
        20,
    )
    missing = api.post(f"{NL_MAIN}/salesentry/SalesEntries", {"SalesEntryLines": []})
    assert error_value(missing).split("\r\n") == [
        "Verplicht: Dagboek",
        "Verplicht: Klant",
        "Verplicht: Regels",
    ]


def test_documents_and_attachments(sandbox_url):
    api = api_for(sandbox_url)
    document = api.post(
        f"{NL_MAIN}/documents/Documents",
        {"Subject": "Factuur LL-1", "Type": 10, "Account": first_account(api)["ID"]},
    )
    assert document.status_code == 201
    doc_id = document.json()["d"]["ID"]
    bad = api.post(
        f"{NL_MAIN}/documents/DocumentAttachments",
        {"Document": doc_id, "FileName": "a.pdf", "Attachment": "not base64!!"},
    )
    assert bad.status_code == 400
    assert "property 'Attachment' to type 'Byte[]'" in error_value(bad)
    pdf = b"%PDF-1.4 test"
    ok = api.post(
        f"{NL_MAIN}/documents/DocumentAttachments",
        {"Document": doc_id, "FileName": "a.pdf", "Attachment": base64.b64encode(pdf).decode()},
    )
    assert ok.status_code == 201
    url = ok.json()["d"]["Url"]
    download = requests.get(
        url + "&Download=1", headers={"Authorization": api.session.headers["Authorization"]}, timeout=10
    )
    assert download.content == pdf
    missing = api.post(f"{NL_MAIN}/documents/Documents", {})
    assert error_value(missing).split("\r\n") == ["Verplicht: Onderwerp", "Verplicht: Soort"]


def test_rate_limit_headers_on_every_call_in_milliseconds(sandbox_url):
    api = api_for(sandbox_url)
    response = api.get(f"{NL_MAIN}/financial/Journals")
    headers = response.headers
    assert headers["X-RateLimit-Limit"] == "5000"
    assert headers["X-RateLimit-Minutely-Limit"] == "60"
    assert int(headers["X-RateLimit-Minutely-Remaining"]) == 59
    assert int(headers["X-RateLimit-Reset"]) % 86_400_000 == 0
    assert int(headers["X-RateLimit-Minutely-Reset"]) % 60_000 == 0
    assert int(headers["X-RateLimit-Reset"]) > time.time() * 1000


def test_minutely_limit_gives_429_with_only_minutely_headers(sandbox_url):
    requests.post(
        f"{sandbox_url}/_control/clock", json={"set": "2026-03-02T10:00:05+00:00", "freeze": True}, timeout=10
    ).raise_for_status()
    api = api_for(sandbox_url)
    for _ in range(60):
        assert api.get(f"{NL_MAIN}/financial/Journals").status_code == 200
    refused = api.get(f"{NL_MAIN}/financial/Journals")
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Minutely-Remaining"] == "0"
    assert "X-RateLimit-Limit" not in refused.headers
    assert error_value(refused)
    requests.post(f"{sandbox_url}/_control/clock", json={"advance_seconds": 60}, timeout=10)
    assert api.get(f"{NL_MAIN}/financial/Journals").status_code == 200


def test_daily_limit_gives_429_with_only_daily_headers(sandbox_url):
    control(sandbox_url, "set_settings", daily_limit=3)
    api = api_for(sandbox_url)
    for _ in range(3):
        assert api.get(f"{NL_MAIN}/financial/Journals").status_code == 200
    refused = api.get(f"{NL_MAIN}/financial/Journals")
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Minutely-Limit" not in refused.headers


def test_quotas_off_never_refuse_but_keep_headers(sandbox_url):
    requests.post(f"{sandbox_url}/_control/quotas", json={"enabled": False, "scale": 0.05}, timeout=10)
    api = api_for(sandbox_url)
    for _ in range(5):
        response = api.get(f"{NL_MAIN}/financial/Journals")
        assert response.status_code == 200
    assert response.headers["X-RateLimit-Minutely-Limit"] == "3"


@pytest.mark.faults
def test_injected_errors_storms_and_timeouts(sandbox_url):
    api = api_for(sandbox_url)
    faults = f"{sandbox_url}/_control/faults"
    requests.post(
        faults, json={"provider": "exact-online", "kind": "error_rate", "status": 503, "count": 1}, timeout=10
    )
    failed = api.get(f"{NL_MAIN}/financial/Journals")
    assert failed.status_code == 503
    assert error_value(failed)
    requests.post(faults, json={"provider": "exact-online", "kind": "rate_limit_storm", "count": 1}, timeout=10)
    stormed = api.get(f"{NL_MAIN}/financial/Journals")
    assert stormed.status_code == 429
    assert "X-RateLimit-Limit" not in stormed.headers
    requests.post(
        faults,
        json={"provider": "exact-online", "kind": "timeout_after_commit", "count": 1, "methods": ["POST"]},
        timeout=10,
    )
    timed_out = api.post(f"{NL_MAIN}/crm/Accounts", {"Name": "Committed anyway", "Code": "777"})
    assert timed_out.status_code == 504
    found = api.get(f"{NL_MAIN}/crm/Accounts", **{"$filter": "trim(Code) eq '777'"}).json()["d"]["results"]
    assert found[0]["Name"] == "Committed anyway"


def test_unknown_resource_and_method_errors(sandbox_url):
    api = api_for(sandbox_url)
    assert api.get(f"{NL_MAIN}/crm/Nothing").status_code == 404
    assert api.delete(f"{NL_MAIN}/financial/Journals").status_code == 405
    bad_key = api.get(f"{NL_MAIN}/crm/Accounts(123)")
    assert bad_key.status_code == 400
    assert error_value(bad_key) == "Bad Request - Error in query syntax."


def test_control_actions_reject_bad_input(sandbox_url):
    bad = requests.post(f"{sandbox_url}/_control/exact-online/close_period", json={"division": NL_MAIN}, timeout=10)
    assert bad.status_code == 400
    unknown = requests.post(f"{sandbox_url}/_control/exact-online/nope", json={}, timeout=10)
    assert unknown.status_code == 404
    ledger = requests.get(f"{sandbox_url}/_control/ledger/exact-online/999", timeout=10)
    assert ledger.status_code == 404


def test_companies_lists_every_region(sandbox_url):
    rows = requests.get(f"{sandbox_url}/_control/companies", timeout=10).json()["exact-online"]
    assert {r["region"] for r in rows} == {"nl", "be", "de", "uk", "us", "es", "fr"}
    accountant = next(r for r in rows if r["division"] == 3010003)
    assert accountant["users"] == [{"username": "jan.devries", "has_rights": False}]
