"""Exact Online emulator: bank entries matched to invoices, journal status per period, credit notes."""

from __future__ import annotations

import time

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
BANK_ENTRIES = f"{NL_MAIN}/financialtransaction/BankEntries"


def _printed(api) -> dict:
    invoice = create_invoice(api)
    response = api.post(f"{NL_MAIN}/salesinvoice/PrintedSalesInvoices", {"InvoiceID": invoice["InvoiceID"]})
    assert response.status_code == 201, response.text
    return api.get(f"{INVOICES}(guid'{invoice['InvoiceID']}')").json()["d"]


def _receipt(api, invoice: dict, amount: float, **line) -> requests.Response:
    body = {
        "JournalCode": "20",
        "BankEntryLines": [
            {
                "Account": invoice["InvoiceTo"],
                "AmountFC": -amount,
                "Description": "PAY-1",
                "OurRef": invoice["InvoiceNumber"],
                **line,
            }
        ],
    }
    return api.post(BANK_ENTRIES, body)


def _open_amounts(api) -> dict[int, float]:
    rows = api.get(f"{NL_MAIN}/read/financial/ReceivablesList").json()["d"]["results"]
    return {row["InvoiceNumber"]: row["Amount"] for row in rows}


def test_receipt_on_our_ref_pays_the_receivable_partly_then_fully(sandbox_url):
    api = api_for(sandbox_url)
    invoice = _printed(api)
    number = invoice["InvoiceNumber"]
    assert _open_amounts(api) == {number: 363}

    partial = _receipt(api, invoice, 100)
    assert partial.status_code == 201, partial.text
    entry = partial.json()["d"]
    assert entry["JournalCode"] == "20" and isinstance(entry["EntryNumber"], int)
    (line,) = entry["BankEntryLines"]["results"]
    assert (line["AmountFC"], line["OurRef"], line["GLAccountCode"]) == (-100, number, "1300")
    assert _open_amounts(api) == {number: 263}
    receivable = api.get(f"{NL_MAIN}/cashflow/Receivables").json()["d"]["results"][0]
    assert (receivable["IsFullyPaid"], receivable["Status"]) == (False, 20)
    assert receivable["LastPaymentDate"].startswith("/Date(")

    assert _receipt(api, invoice, 263).status_code == 201
    assert _open_amounts(api) == {}
    receivable = api.get(f"{NL_MAIN}/cashflow/Receivables").json()["d"]["results"][0]
    assert (receivable["IsFullyPaid"], receivable["Status"]) == (True, 50)
    lines = api.get(f"{NL_MAIN}/financialtransaction/BankEntryLines", **{"$filter": "Description eq 'PAY-1'"})
    assert len(lines.json()["d"]["results"]) == 2


def test_bank_entry_needs_a_bank_journal_and_an_amount(sandbox_url):
    api = api_for(sandbox_url)
    invoice = _printed(api)
    wrong = api.post(
        BANK_ENTRIES, {"JournalCode": "70", "BankEntryLines": [{"Account": invoice["InvoiceTo"], "AmountFC": -1}]}
    )
    assert wrong.status_code == 500
    assert error_value(wrong) == "Ongeldig dagboek. Het dagboek moet een bankboek zijn."
    missing = api.post(BANK_ENTRIES, {"BankEntryLines": [{"Account": invoice["InvoiceTo"]}]})
    assert error_value(missing).split("\r\n") == ["Verplicht: Dagboek", "Verplicht: Bedrag"]
    assert api.post(BANK_ENTRIES, {"JournalCode": "20", "BankEntryLines": {"AmountFC": 1}}).status_code == 400


def test_bank_entry_dated_in_a_closed_period_is_refused(sandbox_url):
    api = api_for(sandbox_url)
    invoice = _printed(api)
    year = time.gmtime().tm_year
    control(sandbox_url, "close_period", division=NL_MAIN, year=year, period=2)
    response = _receipt(api, invoice, 10, Date=f"{year}-02-10T00:00:00Z")
    assert response.status_code == 500
    assert error_value(response) == f"Periode is afgesloten: {year} - 2"
    assert _open_amounts(api) == {invoice["InvoiceNumber"]: 363}


def test_journal_status_list_shows_closed_periods_per_journal(sandbox_url):
    api = api_for(sandbox_url)
    year = time.gmtime().tm_year
    control(sandbox_url, "close_period", division=NL_MAIN, year=year, period=3)
    response = api.get(
        f"{NL_MAIN}/read/financial/JournalStatusList",
        **{"$filter": f"JournalType eq 20 and Year eq {year} and Status eq 1", "$select": "Journal,Year,Period,Status"},
    )
    rows = response.json()["d"]["results"]
    assert sorted((r["Journal"], r["Period"], r["Status"]) for r in rows) == [("70", 3, 1), ("71", 3, 1)]
    every = api.get(f"{NL_MAIN}/read/financial/JournalStatusList", **{"$filter": "JournalType eq 20"}).json()["d"]
    assert len(every["results"]) == 60 and "__next" in every  # 2 sales journals x 36 periods, paged


def test_credit_note_posted_with_the_processed_invoice_id_is_already_processed(sandbox_url):
    api = api_for(sandbox_url)
    invoice = _printed(api)
    item = item_by_code(api, "CONSULT")
    body = {
        "InvoiceID": invoice["InvoiceID"],
        "Type": 8021,
        "OrderedBy": first_account(api)["ID"],
        "SalesInvoiceLines": [{"Item": item["ID"], "Quantity": -1}],
    }
    response = api.post(INVOICES, body)
    assert response.status_code == 500
    assert error_value(response) == "Reeds verwerkt"  # picqer#464


def test_credit_note_with_negative_quantities_has_negative_amounts(sandbox_url):
    api = api_for(sandbox_url)
    item = item_by_code(api, "CONSULT")
    body = {
        "OrderedBy": first_account(api)["ID"],
        "Type": 8021,
        "YourRef": "CN-1",
        "SalesInvoiceLines": [{"Item": item["ID"], "Quantity": -2, "UnitPrice": 50}],
    }
    credit = api.post(INVOICES, body).json()["d"]
    assert (credit["Type"], credit["AmountFCExclVat"], credit["AmountFC"]) == (8021, -100, -121)
    found = api.get(INVOICES, **{"$filter": "YourRef eq 'CN-1' and (Type eq 8021 or Type eq 8024)"})
    assert [r["InvoiceID"] for r in found.json()["d"]["results"]] == [credit["InvoiceID"]]


def test_a_document_can_be_linked_to_an_open_invoice_but_must_exist(sandbox_url):
    api = api_for(sandbox_url)
    invoice = create_invoice(api)
    document = api.post(
        f"{NL_MAIN}/documents/Documents",
        {"Subject": "LL-1001 invoice.pdf", "Type": 10, "Account": invoice["InvoiceTo"]},
    ).json()["d"]
    url = f"{INVOICES}(guid'{invoice['InvoiceID']}')"
    assert api.put(url, {"Document": document["ID"]}).status_code == 204
    linked = api.get(url).json()["d"]
    assert (linked["Document"], linked["DocumentSubject"]) == (document["ID"], "LL-1001 invoice.pdf")
    unknown = api.put(url, {"Document": "00000000-0000-0000-0000-000000000000"})
    assert error_value(unknown) == "Ongeldige referentie: Document"
