"""The Exact Online adapter's documents and payments against the sandbox over HTTP.

Credit notes, finalizing (print + e-mail), PDF attachments, payment status and payments,
listing documents and closed periods (exact-online.md §3.7 to §3.11).
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.integrations import specs
from portal.integrations.base import (
    CustomerQuery,
    DocumentDraft,
    LineDraft,
    NotFound,
    NotSent,
    PaymentDraft,
    Rejected,
    Unavailable,
)
from portal.integrations.exact_online import _exact_date, _guid

from .conftest import REDIRECT_URI, add_fault, control, decide_consent, ledger

E = specs.EXACT_ONLINE
DIVISION = "3010001"


@pytest.fixture
def exact(sandbox, make_adapter):
    """Return an adapter connected as jan.devries and pinned on division 3010001."""
    adapter = make_adapter(E, region="nl")
    url = adapter.authorization_url(redirect_uri=REDIRECT_URI, state="docs")
    callback = decide_consent(sandbox, E, url, region="nl", user="jan.devries", decision="approve")
    adapter.exchange_code(code=callback["code"], redirect_uri=REDIRECT_URI)
    adapter.company_id = DIVISION
    return adapter


@pytest.fixture
def draft(exact):
    """Return a factory of invoice / credit-note drafts on demo customer 1 (who has an e-mail address)."""
    item = next(i for i in exact.reference_data("items") if i.code.strip() == "CONSULT")
    customer = exact.find_customers(CustomerQuery("code", "1"))[0]

    def make(reference: str, *, customer_id: str | None = None, day: date | None = None, **fields) -> DocumentDraft:
        return DocumentDraft(
            reference=reference,
            number=reference,
            customer_id=customer_id or customer.id,
            issue_date=day or date.today(),
            due_date=None,
            currency="EUR",
            lines=(LineDraft("Consulting", Decimal(2), Decimal("100.00"), item=item.id),),
            **fields,
        )

    return make


def _tables(sandbox: str, division: str = DIVISION) -> dict:
    return ledger(sandbox, E, division)["tables"]


def _count_calls(adapter) -> list[tuple[str, str]]:
    """Record (method, url) of every API call the adapter makes from now on."""
    calls: list[tuple[str, str]] = []
    original = adapter.http.request

    def request(method, url, **kwargs):
        calls.append((method, url))
        return original(method, url, **kwargs)

    adapter.http.request = request
    return calls


def test_credit_note_is_a_negative_type_8021_invoice_naming_the_corrected_one(sandbox, exact, draft):
    invoice = exact.push_invoice(draft("INV-1"))
    number = exact.finalize_invoice(invoice.external_id, send=False)
    note_draft = draft("CN-1", corrects_id=invoice.external_id, journal="70")

    note = exact.push_credit_note(note_draft)
    assert note.created and note.external_id != invoice.external_id
    again = exact.push_credit_note(note_draft)
    assert (again.external_id, again.created) == (note.external_id, False)

    notes = [i for i in _tables(sandbox)["SalesInvoices"] if i["Type"] == 8021]
    assert len(notes) == 1
    (stored,) = notes
    assert (stored["YourRef"], stored["Journal"], stored["AmountFCExclVat"], stored["AmountFC"]) == (
        "CN-1",
        "70",
        -200,
        -242,
    )
    assert stored["Remarks"] == f"Credit note for invoice {number}"
    lines = [line for line in _tables(sandbox)["SalesInvoiceLines"] if line["InvoiceID"] == note.external_id]
    assert [(line["Quantity"], line["UnitPrice"]) for line in lines] == [(-2, 100)]

    assert exact.find_by_reference("credit_note", "CN-1").external_id == note.external_id
    assert exact.find_by_reference("invoice", "CN-1") is None
    assert exact.find_by_reference("credit_note", "INV-1") is None


@pytest.mark.faults
def test_finalize_numbers_at_print_and_e_mails_once_when_retried_after_a_lost_answer(sandbox, exact, draft):
    pushed = exact.push_invoice(draft("INV-2"))
    assert pushed.external_number is None  # 3010001 numbers at print
    add_fault(
        sandbox, provider=E, kind="timeout_after_commit", count=1, mode="504", path_contains="PrintedSalesInvoices"
    )
    with pytest.raises(Unavailable) as lost:
        exact.finalize_invoice(pushed.external_id, send=True, message="Thank you!")
    assert lost.value.outcome_unknown

    # The retry does not print again (one e-mail), and does not claim an e-mail Exact never confirmed.
    with pytest.raises(NotSent) as unconfirmed:
        exact.finalize_invoice(pushed.external_id, send=True, message="Thank you!")
    number = unconfirmed.value.number
    assert number and "does not say whether it was e-mailed" in str(unconfirmed.value)
    assert exact.finalize_invoice(pushed.external_id, send=False) == number
    book = ledger(sandbox, E, DIVISION)
    assert [(m["to"], m["invoice_number"], m["extra_text"]) for m in book["outbox"]] == [
        ("info@bakkerijjansen.example", int(number), "Thank you!")
    ]
    (invoice,) = book["tables"]["SalesInvoices"]
    assert (invoice["Status"], str(invoice["InvoiceNumber"])) == (50, number)
    assert exact.find_by_reference("invoice", "INV-2").external_number == number


def test_finalize_without_sending_in_a_division_that_numbers_at_entry(sandbox, exact, draft):
    control(sandbox, "exact-online/set_division_settings", {"division": int(DIVISION), "invoice_number_at_entry": True})
    pushed = exact.push_invoice(draft("INV-3"))
    assert pushed.external_number
    assert exact.finalize_invoice(pushed.external_id, send=False) == pushed.external_number
    assert ledger(sandbox, E, DIVISION)["outbox"] == []


def test_finalize_refuses_to_claim_a_mail_exact_could_not_create(sandbox, exact, draft):
    acme = exact.find_customers(CustomerQuery("code", "3"))[0]  # no e-mail address
    pushed = exact.push_invoice(draft("INV-4", customer_id=acme.id))
    with pytest.raises(NotSent) as refused:
        exact.finalize_invoice(pushed.external_id, send=True)
    assert refused.value.provider_text == "E-mailadres ontbreekt bij de relatie."
    assert "add an e-mail address to the account" in str(refused.value)
    assert ledger(sandbox, E, DIVISION)["outbox"] == []
    # The invoice is processed (numbered) all the same, and keeps its number.
    number = str(_tables(sandbox)["SalesInvoices"][0]["InvoiceNumber"])
    assert refused.value.number == number
    # A retry neither prints again nor reports the invoice sent.
    with pytest.raises(NotSent):
        exact.finalize_invoice(pushed.external_id, send=True)
    assert ledger(sandbox, E, DIVISION)["outbox"] == []


def test_closed_period_refuses_the_invoice_with_exacts_text_and_is_reported(sandbox, exact, draft):
    today = date.today()
    control(
        sandbox, "exact-online/close_period", {"division": int(DIVISION), "year": today.year, "period": today.month}
    )
    with pytest.raises(Rejected) as refused:
        exact.push_invoice(draft("INV-5"))
    assert refused.value.provider_text == f"Periode is afgesloten: {today.year} - {today.month}"
    assert not _tables(sandbox).get("SalesInvoices")

    first = today.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    (closed,) = exact.closed_periods(first - timedelta(days=3), last + timedelta(days=3))
    assert (closed.start, closed.end) == (first, last)
    assert closed.reason == f"period {today.year}-{today.month} is closed for sales journal 70, 71"

    # The demo has financial years for last, this and next year only.
    beyond = date(today.year + 2, 1, 1)
    (missing,) = exact.closed_periods(date(today.year + 1, 12, 20), beyond + timedelta(days=9))
    assert (missing.start, missing.end) == (beyond, beyond + timedelta(days=9))
    assert "no financial period" in missing.reason
    assert exact.closed_periods(date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)) == []
    with pytest.raises(Rejected) as no_year:
        exact.push_invoice(draft("INV-6", day=beyond))
    assert no_year.value.provider_text == f"Boekjaar bestaat niet: {beyond.year}"


def test_attach_pdf_links_a_sales_invoice_document_once(sandbox, exact, draft):
    pushed = exact.push_invoice(draft("INV-7"))
    content = b"%PDF-1.4 our own invoice layout"
    attachment = exact.attach_pdf(pushed.external_id, filename="INV-7.pdf", content=content)
    assert exact.attach_pdf(pushed.external_id, filename="INV-7.pdf", content=content) == attachment

    tables = _tables(sandbox)
    (document,) = tables["Documents"]
    (stored,) = tables["DocumentAttachments"]
    (invoice,) = tables["SalesInvoices"]
    assert (document["Type"], document["Subject"], document["Account"]) == (10, "INV-7 INV-7.pdf", invoice["InvoiceTo"])
    assert invoice["Document"] == document["ID"]
    assert (stored["ID"], stored["FileName"], stored["FileSize"]) == (attachment, "INV-7.pdf", len(content))

    # A processed invoice cannot change: the document is linked through its financial entry.
    exact.finalize_invoice(pushed.external_id, send=False)
    later = exact.attach_pdf(pushed.external_id, filename="reminder.pdf", content=b"%PDF-1.4 reminder")
    linked = [d for d in _tables(sandbox)["Documents"] if d["Subject"] == "INV-7 reminder.pdf"]
    assert [d["FinancialTransactionEntryID"] for d in linked] == [pushed.external_id]
    assert later in {a["ID"] for a in _tables(sandbox)["DocumentAttachments"]}
    (invoice,) = _tables(sandbox)["SalesInvoices"]
    assert invoice["Document"] == document["ID"]  # printing kept the document we linked


def test_payments_make_the_invoice_partly_then_fully_paid_once_each(sandbox, exact, draft):
    pushed = exact.push_invoice(draft("INV-8"))
    status = exact.payment_status(pushed.external_id)
    assert (status.paid, status.amount_open, status.amount_total, status.state) == (
        False,
        Decimal("242"),
        Decimal("242"),
        "open",
    )
    payment = PaymentDraft("PAY-8a", pushed.external_id, Decimal("100.00"), date.today())
    with pytest.raises(Rejected, match="finalize the invoice first"):
        exact.push_payment(payment)

    exact.finalize_invoice(pushed.external_id, send=False)
    first = exact.push_payment(payment)
    assert first.created and first.external_number
    assert exact.push_payment(payment) == type(first)(first.external_id, first.external_number, created=False)
    assert exact.find_by_reference("payment", "PAY-8a").external_id == first.external_id
    status = exact.payment_status(pushed.external_id)
    assert (status.paid, status.amount_open, status.state) == (False, Decimal("142"), "partial")

    exact.push_payment(PaymentDraft("PAY-8b", pushed.external_id, Decimal("142"), date.today(), bank_account="20"))
    status = exact.payment_status(pushed.external_id)
    assert (status.paid, status.amount_open, status.state) == (True, Decimal(0), "paid")
    tables = _tables(sandbox)
    assert len(tables["BankEntries"]) == 2
    assert [line["Description"] for line in tables["BankEntryLines"]] == ["PAY-8a", "PAY-8b"]
    assert exact.find_by_reference("payment", "PAY-unknown") is None


def test_payment_statuses_read_a_page_of_invoices_in_two_queries(sandbox, exact, draft):
    printed = exact.push_invoice(draft("INV-9"))
    exact.finalize_invoice(printed.external_id, send=False)
    control(sandbox, "exact-online/mark_paid", {"division": int(DIVISION), "invoice": printed.external_id})
    unprinted = exact.push_invoice(draft("INV-10"))
    unknown = str(uuid.uuid4())

    calls = _count_calls(exact)
    found = exact.payment_statuses([printed.external_id, unprinted.external_id, unknown])
    assert set(found) == {printed.external_id, unprinted.external_id}
    assert (found[printed.external_id].paid, found[printed.external_id].state) == (True, "paid")
    assert (found[unprinted.external_id].paid, found[unprinted.external_id].amount_open) == (False, Decimal("242"))
    assert [url.split("/")[-1].split("?")[0] for _, url in calls] == ["SalesInvoices", "ReceivablesList"]

    calls.clear()
    many = [str(uuid.uuid4()) for _ in range(45)]
    assert exact.payment_statuses(many) == {}
    assert len(calls) == 2  # pages of 40 ids; nothing processed, so no receivables to read
    with pytest.raises(NotFound):
        exact.payment_status(unknown)


def test_iter_documents_follows_next_pages_and_tells_invoices_from_credit_notes(sandbox, exact, draft):
    for n in range(3):
        exact.push_invoice(draft(f"INV-1{n}"))
    exact.push_credit_note(draft("CN-11"))
    control(sandbox, "exact-online/set_settings", {"page_size": 2})
    calls = _count_calls(exact)

    today = date.today()
    invoices = list(exact.iter_documents("invoice", today - timedelta(days=1), today))
    assert sorted(d.reference for d in invoices) == ["INV-10", "INV-11", "INV-12"]
    assert len(calls) == 2  # two pages of two, joined through __next
    assert {(d.total, d.currency, d.issue_date) for d in invoices} == {(Decimal("242"), "EUR", today)}
    (note,) = exact.iter_documents("credit_note", today, today)
    assert (note.reference, note.total) == ("CN-11", Decimal("242"))
    assert list(exact.iter_documents("invoice", today + timedelta(days=1), today + timedelta(days=5))) == []


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(9000, 12, 31)))
def test_wire_dates_read_back_as_the_same_day(day):
    ms = (day - date(1970, 1, 1)).days * 86_400_000
    assert _exact_date(f"/Date({ms})/") == day
    assert _exact_date(f"/Date({ms + 86_399_999})/") == day  # any time that day
    assert _exact_date(day.isoformat()) is None and _exact_date(None) is None


@given(st.text())
def test_only_guids_reach_key_urls(value):
    try:
        parsed = str(uuid.UUID(value))
    except ValueError:
        with pytest.raises(Rejected, match="is not an Exact Online id"):
            _guid(value)
    else:
        assert _guid(value) == parsed
