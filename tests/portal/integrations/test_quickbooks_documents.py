"""The QuickBooks adapter's document, payment, batch and reconciliation methods against the sandbox over HTTP."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal

import pytest
import requests

from portal.integrations import specs
from portal.integrations.base import (
    BatchOperation,
    CustomerDraft,
    DocumentDraft,
    LineDraft,
    NotFound,
    NotSent,
    NotSupported,
    PaymentDraft,
    RateLimited,
    Rejected,
    Unavailable,
)
from portal.integrations.quickbooks import QueryItemResult, request_id

from .conftest import CLIENTS, QBO_REALM, REDIRECT_URI, add_fault, control, decide_consent, ledger

Q = specs.QUICKBOOKS
UK_REALM = "9341453908061187"
TODAY = date.today()


@pytest.fixture
def connected(sandbox, make_http):
    """Return a factory: realm → (adapter connected to it, list of every API response it got)."""

    def make(realm: str = QBO_REALM):
        from portal.integrations.base import get_adapter_class

        http, seen = make_http(Q)
        adapter = get_adapter_class(Q)(http=http, client_id=CLIENTS[Q][0], client_secret=CLIENTS[Q][1])
        url = adapter.authorization_url(redirect_uri=REDIRECT_URI, state="s")
        callback = decide_consent(sandbox, Q, url, user="u-ada", realm_id=realm, decision="approve")
        adapter.exchange_code(code=callback["code"], redirect_uri=REDIRECT_URI, callback_params=callback)
        seen.clear()
        return adapter, seen

    return make


def calls(seen, fragment: str, method: str | None = None) -> int:
    """Count API responses whose URL path contains ``fragment``."""
    return sum(1 for r in seen if fragment in r.url.split("?")[0] and (method is None or r.method == method))


def entities(sandbox: str, realm: str, entity: str) -> list[dict]:
    return ledger(sandbox, Q, realm)["entities"].get(entity, [])


def draft(number: str, *lines: LineDraft, customer: str = "1", day: date = TODAY, **extra) -> DocumentDraft:
    return DocumentDraft(
        reference=extra.pop("reference", number),
        number=number,
        customer_id=customer,
        issue_date=day,
        due_date=day + timedelta(days=30),
        currency="USD",
        lines=lines or (LineDraft("Two hours", Decimal(2), Decimal("75.00"), item="2", tax_code="NON"),),
        **extra,
    )


# -- credit memos, requestid ------------------------------------------------------------------


def test_credit_note_is_a_credit_memo_found_again_by_its_number(sandbox, connected):
    adapter, _ = connected()
    note = draft(
        "CN-2026-0001",
        LineDraft("Refund of one hour", Decimal(1), Decimal("75.00"), item="2", tax_code="2"),
        memo="Goodwill",
    )
    pushed = adapter.push_credit_note(note)
    assert (pushed.external_number, pushed.created) == ("CN-2026-0001", True)
    (memo,) = [m for m in entities(sandbox, QBO_REALM, "CreditMemo") if m["DocNumber"] == "CN-2026-0001"]
    assert memo["Id"] == pushed.external_id and memo["CustomerRef"]["value"] == "1"
    assert memo["PrivateNote"] == "Goodwill"
    assert memo["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "TAX"}
    assert memo["TxnTaxDetail"]["TxnTaxCodeRef"] == {"value": "2"}
    assert memo["TotalAmt"] == 81  # 75 + 8 % California sales tax
    again = adapter.push_credit_note(note)
    assert (again.external_id, again.created) == (pushed.external_id, False)
    assert adapter.find_by_reference("credit_note", "CN-2026-0001").external_id == pushed.external_id
    assert adapter.find_by_reference("credit_note", "CN-nope") is None
    assert len([m for m in entities(sandbox, QBO_REALM, "CreditMemo") if m["DocNumber"] == "CN-2026-0001"]) == 1


def test_several_doc_numbers_are_looked_up_with_one_query_whatever_their_case(sandbox, connected):
    adapter, seen = connected()
    first = adapter.push_invoice(draft("LL-IN-1"), looked_up=True)
    second = adapter.push_invoice(draft("LL-IN-2"), looked_up=True)
    note = adapter.push_credit_note(draft("LL-IN-3"))
    seen.clear()

    found = adapter.find_by_references("invoice", ["LL-IN-1", "ll-in-2", "LL-IN-3", "LL-IN-1", "O'Brien-1"])

    assert calls(seen, "/query") == 1
    assert {r: (f.external_id, f.created) for r, f in found.items()} == {
        "LL-IN-1": (first.external_id, False),
        "ll-in-2": (second.external_id, False),
    }
    assert adapter.find_by_references("credit_note", ["LL-IN-3"])["LL-IN-3"].external_id == note.external_id


def test_a_create_refused_for_its_own_doc_number_returns_the_invoice_there(sandbox, connected):
    control(sandbox, "quickbooks/set_preferences", {"realm_id": QBO_REALM, "custom_txn_numbers": True})
    adapter, seen = connected()
    made = adapter.push_invoice(draft("LL-DUP-1"), looked_up=True)
    seen.clear()

    # Created without a look-up, as a first push is: QuickBooks refuses the number (6140).
    again = adapter.push_invoice(draft("LL-DUP-1", reference="another-request"), looked_up=True)

    assert (again.external_id, again.created) == (made.external_id, False)
    assert [(r.method, r.url.split("?")[0].rsplit("/", 1)[-1], r.status) for r in seen] == [
        ("POST", "invoice", 400),
        ("GET", "query", 200),
    ]
    assert len([i for i in entities(sandbox, QBO_REALM, "Invoice") if i.get("DocNumber") == "LL-DUP-1"]) == 1


@pytest.mark.faults
def test_a_lost_answer_is_replayed_by_requestid_not_created_twice(sandbox, connected):
    adapter, seen = connected()
    note = draft("CN-LOST-1", LineDraft("Refund", Decimal(1), Decimal("10.00"), item="1"))
    add_fault(sandbox, provider=Q, kind="timeout_after_commit", path_contains="/creditmemo", count=1)
    with pytest.raises(Unavailable) as lost:
        adapter.push_credit_note(note)
    assert lost.value.outcome_unknown
    # Even when the look-up by number misses (here: skipped), the same requestid replays the first answer.
    payload = adapter._document_payload("credit_note", note)
    replayed = adapter._write("CreditMemo", payload, requestid=request_id("credit_note", note.reference))
    memos = [m for m in entities(sandbox, QBO_REALM, "CreditMemo") if m["DocNumber"] == "CN-LOST-1"]
    assert [m["Id"] for m in memos] == [replayed["Id"]]
    assert calls(seen, "/creditmemo", "POST") == 2


def test_requestids_are_stable_short_and_kind_specific():
    assert request_id("invoice", "LL-1") == request_id("invoice", "LL-1")
    assert request_id("invoice", "LL-1") != request_id("credit_note", "LL-1")
    assert len(request_id("payment", "x" * 500)) <= 50


def test_invoice_and_credit_note_with_one_number_are_two_documents(sandbox, connected):
    adapter, _ = connected()
    invoice = adapter.push_invoice(draft("DUO-7"))
    note = adapter.push_credit_note(draft("DUO-7"))
    assert invoice.external_id in {i["Id"] for i in entities(sandbox, QBO_REALM, "Invoice")}
    assert note.external_id in {m["Id"] for m in entities(sandbox, QBO_REALM, "CreditMemo")}


# -- tax models ----------------------------------------------------------------------------------


def test_us_lines_say_tax_or_non_and_the_header_carries_the_rate(sandbox, connected):
    adapter, _ = connected()
    pushed = adapter.push_invoice(
        draft(
            "US-TAX-1",
            LineDraft("Fountain", Decimal(1), Decimal("200.00"), item="5", tax_code="3"),
            LineDraft("Labour", Decimal(2), Decimal("50.00"), item="2", tax_code="NON"),
            LineDraft("Cables", Decimal(1), Decimal("100.00"), item="1"),
        )
    )
    (invoice,) = [i for i in entities(sandbox, QBO_REALM, "Invoice") if i["Id"] == pushed.external_id]
    codes = [ln["SalesItemLineDetail"]["TaxCodeRef"]["value"] for ln in invoice["Line"] if "Id" in ln]
    assert codes == ["TAX", "NON", "NON"]
    assert invoice["TxnTaxDetail"]["TxnTaxCodeRef"] == {"value": "3"}
    assert invoice["TxnTaxDetail"]["TotalTax"] == 13  # 6.5 % Arizona on the taxable 200
    assert invoice["TotalAmt"] == 413
    with pytest.raises(Rejected, match="one sales tax code per invoice"):
        adapter.push_invoice(
            draft(
                "US-TAX-2",
                LineDraft("A", Decimal(1), Decimal("1.00"), item="1", tax_code="2"),
                LineDraft("B", Decimal(1), Decimal("1.00"), item="1", tax_code="3"),
            )
        )
    assert not [i for i in entities(sandbox, QBO_REALM, "Invoice") if i.get("DocNumber") == "US-TAX-2"]


def test_non_us_lines_carry_the_mapped_tax_code_and_quickbooks_refuses_lines_without(sandbox, connected):
    adapter, _ = connected(UK_REALM)
    pushed = adapter.push_invoice(
        draft("UK-VAT-1", LineDraft("Consulting", Decimal(2), Decimal("120.00"), item="1", tax_code="2"), customer="2")
    )
    (invoice,) = [i for i in entities(sandbox, UK_REALM, "Invoice") if i["Id"] == pushed.external_id]
    assert invoice["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "2"}
    assert "TxnTaxCodeRef" not in invoice["TxnTaxDetail"]
    assert (invoice["TxnTaxDetail"]["TotalTax"], invoice["TotalAmt"]) == (48, 288)
    with pytest.raises(Rejected) as refused:
        adapter.push_invoice(draft("UK-VAT-2", LineDraft("No code", Decimal(1), Decimal("5.00"), item="1")))
    assert refused.value.provider_code == "6000"
    assert "Make sure all your transactions have a VAT rate before you save" in refused.value.provider_text
    with pytest.raises(Rejected) as pseudo:
        adapter.push_invoice(draft("UK-VAT-3", LineDraft("US form", Decimal(1), Decimal("5.00"), tax_code="TAX")))
    assert pseudo.value.provider_code == "2500"


# -- sending, attachments ----------------------------------------------------------------------


def test_finalizing_an_invoice_it_just_created_without_sending_reads_nothing_back(sandbox, connected):
    """QuickBooks invoices are final when created: the number from the create answer is the number."""
    adapter, seen = connected()
    pushed = adapter.push_invoice(draft("FIN-1"))
    calls_before = len(seen)
    assert adapter.finalize_invoice(pushed.external_id, send=False) == "FIN-1"
    assert len(seen) == calls_before
    other, _ = connected()  # another job's adapter, after a crash, reads it back
    assert other.finalize_invoice(pushed.external_id, send=False) == "FIN-1"


def test_finalize_sends_once_and_returns_the_number(sandbox, connected):
    adapter, seen = connected()
    pushed = adapter.push_invoice(draft("SEND-1"))
    assert adapter.finalize_invoice(pushed.external_id, send=False) == "SEND-1"
    assert calls(seen, "/send") == 0
    assert adapter.finalize_invoice(pushed.external_id, send=True, email="ap@amy.test", message="ignored") == "SEND-1"
    (invoice,) = [i for i in entities(sandbox, QBO_REALM, "Invoice") if i["Id"] == pushed.external_id]
    assert invoice["EmailStatus"] == "EmailSent" and invoice["BillEmail"] == {"Address": "ap@amy.test"}
    sent_at = invoice["DeliveryInfo"]["DeliveryTime"]
    assert adapter.finalize_invoice(pushed.external_id, send=True) == "SEND-1"
    assert calls(seen, "/send") == 1
    (invoice,) = [i for i in entities(sandbox, QBO_REALM, "Invoice") if i["Id"] == pushed.external_id]
    assert invoice["DeliveryInfo"]["DeliveryTime"] == sent_at
    with pytest.raises(NotFound):
        adapter.finalize_invoice("99999", send=True)


def test_send_without_any_address_carries_quickbooks_words(connected):
    adapter, _ = connected()
    pushed = adapter.push_invoice(draft("SEND-2", customer="6"))  # 55 Twin Lane has no e-mail address
    with pytest.raises(NotSent, match="Give the customer an e-mail address") as refused:
        adapter.finalize_invoice(pushed.external_id, send=True)
    assert "Email address is missing" in refused.value.provider_text
    assert refused.value.number == "SEND-2"  # final and numbered in QuickBooks all the same
    assert adapter.send_invoice(pushed.external_id, email="twin@example.test") == "SEND-2"


def test_attach_pdf_uploads_once_and_goes_out_with_the_invoice(sandbox, connected):
    adapter, seen = connected()
    pushed = adapter.push_invoice(draft("PDF-1"))
    content = b"%PDF-1.4\r\n\x00\xff binary \r\n--not-a-boundary\r\n%%EOF\r\n"
    attachable_id = adapter.attach_pdf(pushed.external_id, filename="PDF-1.pdf", content=content)
    (attachment,) = [a for a in entities(sandbox, QBO_REALM, "Attachable") if a["Id"] == attachable_id]
    assert attachment["FileName"] == "PDF-1.pdf" and attachment["ContentType"] == "application/pdf"
    assert attachment["AttachableRef"] == [
        {"EntityRef": {"value": pushed.external_id, "type": "Invoice"}, "IncludeOnSend": True}
    ]
    download = adapter.http.get(adapter._url(f"download/{attachable_id}"), token=adapter.tokens.access_token)
    assert download.content == content
    assert adapter.attach_pdf(pushed.external_id, filename="PDF-1.pdf", content=content) == attachable_id
    assert len([a for a in entities(sandbox, QBO_REALM, "Attachable") if a.get("FileName") == "PDF-1.pdf"]) == 1
    assert calls(seen, "/upload") == 2  # the second answer is the replay of the first
    with pytest.raises(Rejected) as refused:
        adapter.attach_pdf("99999", filename="x.pdf", content=b"%PDF-1.4")
    assert refused.value.provider_code == "6000" and "Invoice 99999" in refused.value.provider_text


# -- payments ------------------------------------------------------------------------------------


@pytest.mark.faults
def test_payment_lowers_the_balance_is_found_by_reference_and_replays(sandbox, connected):
    adapter, _ = connected()
    invoice = adapter.push_invoice(draft("PAY-1"))  # 150.00
    payment = PaymentDraft(reference="pay_7Hq2", invoice_id=invoice.external_id, amount=Decimal("40"), paid_on=TODAY)
    add_fault(sandbox, provider=Q, kind="timeout_after_commit", path_contains="/payment", count=1)
    with pytest.raises(Unavailable):
        adapter.push_payment(payment)
    found = adapter.find_by_reference("payment", "pay_7Hq2")
    assert found is not None and not found.created
    again = adapter.push_payment(payment)  # the requestid replays the committed create
    assert again.external_id == found.external_id
    paid = [p for p in entities(sandbox, QBO_REALM, "Payment") if p.get("PrivateNote") == "pay_7Hq2"]
    assert len(paid) == 1
    assert paid[0]["CustomerRef"]["value"] == "1" and paid[0]["TxnDate"] == TODAY.isoformat()
    assert paid[0]["Line"] == [{"Amount": 40, "LinkedTxn": [{"TxnId": invoice.external_id, "TxnType": "Invoice"}]}]
    status = adapter.payment_status(invoice.external_id)
    assert (status.amount_open, status.amount_total, status.state, status.paid) == (110, 150, "partial", False)
    adapter.push_payment(dataclasses.replace(payment, reference="pay_8Zk1", amount=Decimal("200")))
    status = adapter.payment_status(invoice.external_id)
    assert (status.amount_open, status.state, status.paid) == (0, "paid", True)
    (over,) = [p for p in entities(sandbox, QBO_REALM, "Payment") if p.get("PrivateNote") == "pay_8Zk1"]
    assert over["UnappliedAmt"] == 90  # applied up to the balance, the rest stays as credit
    assert adapter.find_by_reference("payment", "pay_unknown") is None
    with pytest.raises(NotFound):
        adapter.push_payment(dataclasses.replace(payment, reference="pay_x", invoice_id="99999"))


def test_payment_statuses_ask_once_per_page_of_ids(connected):
    adapter, seen = connected()
    ids = [adapter.push_invoice(draft(f"ST-{n}")).external_id for n in range(3)]
    seen.clear()
    statuses = adapter.payment_statuses([*ids, "99999", "1"])
    assert calls(seen, "/query") == 1
    assert set(statuses) == {*ids, "1"}  # an invoice QuickBooks does not have is left out
    assert statuses["1"].state == "partial" and statuses["1"].amount_open == 100  # demo: 150, 50 paid
    with pytest.raises(NotFound):
        adapter.payment_status("99999")
    assert adapter.payment_statuses([]) == {}
    assert calls(seen, "/query") == 2


# -- batch -----------------------------------------------------------------------------------------


def test_batch_mixes_successes_and_typed_faults_in_one_call(sandbox, connected):
    adapter, seen = connected()
    known = adapter.push_invoice(draft("B-OLD"))
    seen.clear()
    operations = [
        BatchOperation("c1", "customer", "create", CustomerDraft(reference="c1", name="Batch Bakery")),
        BatchOperation("c2", "customer", "create", CustomerDraft(reference="c2", name="Amy's Bird Sanctuary")),
        BatchOperation("i1", "invoice", "create", draft("B-NEW-1")),
        BatchOperation("i2", "invoice", "create", draft("B-BAD", LineDraft("x", Decimal(1), Decimal(1), item="3"))),
        BatchOperation("i3", "invoice", "create", draft("B-OLD")),
        BatchOperation("n1", "credit_note", "create", draft("B-CN-1")),
        BatchOperation("p1", "payment", "create", PaymentDraft("bp-1", known.external_id, Decimal(50), TODAY)),
        BatchOperation("p2", "payment", "create", PaymentDraft("bp-2", "99999", Decimal(5), TODAY)),
        BatchOperation("q1", "query", "query", "SELECT * FROM Customer WHERE DisplayName = 'Bill''s'"),
        BatchOperation("q2", "query", "query", "SELECT * FROM Term WHERE Id = '3'"),
        BatchOperation("v1", "invoice", "void", {"Id": "1"}),
    ]
    results = {r.id: r for r in adapter.batch(operations)}
    assert list(results) == [op.id for op in operations]
    assert calls(seen, "/batch") == 1
    assert results["c1"].result is not None and results["c1"].error is None
    assert isinstance(results["c2"].error, Rejected) and results["c2"].error.provider_code == "6240"
    assert results["i1"].result.external_number == "B-NEW-1" and results["i1"].result.created
    assert (
        isinstance(results["i2"].error, Rejected) and "Categories cannot be used" in results["i2"].error.provider_text
    )
    assert (results["i3"].result.external_id, results["i3"].result.created) == (known.external_id, False)
    assert results["n1"].result.external_number == "B-CN-1"
    assert results["p1"].result is not None
    assert isinstance(results["p2"].error, NotFound)
    assert isinstance(results["q1"].error, Rejected) and results["q1"].error.provider_code == "4001"
    assert isinstance(results["q2"], QueryItemResult) and results["q2"].rows[0]["Name"] == "Net 30"
    assert isinstance(results["v1"].error, NotSupported)
    assert adapter.payment_status(known.external_id).amount_open == 100
    numbers = [i.get("DocNumber") for i in entities(sandbox, QBO_REALM, "Invoice")]
    assert numbers.count("B-NEW-1") == 1 and numbers.count("B-OLD") == 1 and "B-BAD" not in numbers


@pytest.mark.faults
def test_a_batch_of_new_invoices_is_one_call_and_a_taken_number_is_answered_with_its_invoice(sandbox, connected):
    control(sandbox, "quickbooks/set_preferences", {"realm_id": QBO_REALM, "custom_txn_numbers": True})
    adapter, seen = connected()
    taken = adapter.push_invoice(draft("LB-1"), looked_up=True)
    seen.clear()
    operations = [BatchOperation(f"i{n}", "invoice", "create", draft(f"LB-{n}")) for n in (1, 2, 3)]

    results = adapter.batch(operations, looked_up=True)

    # No look-up before the call; the number QuickBooks refused (6140) is looked up after it.
    assert [(r.method, r.url.split("?")[0].rsplit("/", 1)[-1]) for r in seen] == [("POST", "batch"), ("GET", "query")]
    first, second, third = (r.result for r in results)
    assert (first.external_id, first.created) == (taken.external_id, False)
    assert second.created and third.created and second.external_number == "LB-2"
    numbers = [i.get("DocNumber") for i in entities(sandbox, QBO_REALM, "Invoice")]
    assert [numbers.count(f"LB-{n}") for n in (1, 2, 3)] == [1, 1, 1]
    seen.clear()
    # Created final, their numbers known: finalizing them (not sent) needs no call.
    assert adapter.finalize_invoice(third.external_id, send=False) == "LB-3"
    assert seen == []


def test_batch_of_many_uses_thirty_per_call_and_skips_what_a_lost_answer_created(sandbox, connected):
    adapter, seen = connected()
    operations = [
        BatchOperation(f"b{n}", "invoice", "create", draft(f"BULK-{n:03d}", day=TODAY - timedelta(days=n % 5)))
        for n in range(65)
    ]
    add_fault(sandbox, provider=Q, kind="timeout_after_commit", path_contains="/batch", count=1)
    with pytest.raises(Unavailable):
        adapter.batch(operations[:30])
    results = adapter.batch(operations)
    # The first 30 were committed before the answer was lost: found by DocNumber, not sent again.
    assert calls(seen, "/batch") == 1 + 2  # then 30 + 5: far fewer calls than one per invoice
    assert [r.result.created for r in results] == [False] * 30 + [True] * 35
    numbers = [i.get("DocNumber") for i in entities(sandbox, QBO_REALM, "Invoice")]
    assert all(numbers.count(f"BULK-{n:03d}") == 1 for n in range(65))


@pytest.mark.faults
def test_batch_with_short_ids_replays_by_requestid(sandbox, connected):
    adapter, seen = connected()
    operations = [
        BatchOperation(f"c{n}", "customer", "create", CustomerDraft(reference=f"c{n}", name=f"Replay Co {n}"))
        for n in range(3)
    ]
    add_fault(sandbox, provider=Q, kind="timeout_after_commit", path_contains="/batch", count=1)
    with pytest.raises(Unavailable):
        adapter.batch(operations)
    results = adapter.batch(operations)
    assert all(r.error is None for r in results)  # not "Duplicate Name Exists": the first answer, replayed
    assert calls(seen, "/batch") == 2
    names = [c["DisplayName"] for c in entities(sandbox, QBO_REALM, "Customer")]
    assert all(names.count(f"Replay Co {n}") == 1 for n in range(3))
    ids = {r.result.external_id for r in results}
    assert len(ids) == 3


@pytest.mark.faults
def test_batch_whole_call_failures_are_raised(sandbox, connected):
    adapter, _ = connected()
    operations = [BatchOperation("c1", "customer", "create", CustomerDraft(reference="c1", name="Storm Ltd"))]
    add_fault(sandbox, provider=Q, kind="rate_limit_storm", seconds=30, path_contains="/batch")
    with pytest.raises(RateLimited):
        adapter.batch(operations)
    requests.delete(f"{sandbox}/_control/faults", timeout=10)
    add_fault(sandbox, provider=Q, kind="error_rate", status=503, path_contains="/batch", count=1)
    with pytest.raises(Unavailable):
        adapter.batch(operations)


# -- reconciliation, closing date -----------------------------------------------------------------


def test_iter_documents_pages_through_the_date_range(connected):
    adapter, seen = connected()
    day = date(2026, 3, 10)
    for n in range(5):
        adapter.push_invoice(draft(f"IT-{n}", day=day + timedelta(days=n)))
    adapter.push_credit_note(draft("IT-CN", day=day))
    adapter.spec = dataclasses.replace(adapter.spec, max_page_size=2)
    seen.clear()
    found = list(adapter.iter_documents("invoice", day + timedelta(days=1), day + timedelta(days=4)))
    assert [d.number for d in found] == ["IT-1", "IT-2", "IT-3", "IT-4"]
    assert calls(seen, "/query") == 3  # 2 + 2 + an empty page
    first = found[0]
    assert (first.reference, first.issue_date, first.total, first.amount_open) == ("IT-1", day + timedelta(1), 150, 150)
    assert (first.currency, first.customer_id) == ("USD", "1")
    (note,) = adapter.iter_documents("credit_note", day, day)
    assert note.number == "IT-CN" and note.total == 150
    with pytest.raises(NotSupported):
        list(adapter.iter_documents("payment", day, day))


def test_closing_date_is_reported_and_enforced(sandbox, connected):
    adapter, _ = connected()
    assert adapter.closed_periods(date(2026, 1, 1), date(2026, 12, 31)) == []
    control(sandbox, "quickbooks/set_preferences", {"realm_id": QBO_REALM, "closing_date": "2026-03-31"})
    (period,) = adapter.closed_periods(date(2026, 1, 1), date(2026, 12, 31))
    assert (period.start, period.end) == (None, date(2026, 3, 31)) and "2026-03-31" in period.reason
    (clipped,) = adapter.closed_periods(date(2026, 1, 1), date(2026, 2, 28))
    assert clipped.end == date(2026, 2, 28)
    assert adapter.closed_periods(date(2026, 4, 1), date(2026, 4, 30)) == []
    with pytest.raises(Rejected) as refused:
        adapter.push_invoice(draft("CLOSED-1", day=date(2026, 3, 31)))
    assert "The account period has closed" in refused.value.provider_text
    assert adapter.push_invoice(draft("OPEN-1", day=date(2026, 4, 1))).created


# -- preflight ----------------------------------------------------------------------------------


def test_preflight_names_off_numbering_and_a_category_default_item(sandbox, connected):
    adapter, _ = connected()
    checks = {c.name: c for c in adapter.preflight(default_item="3")}
    numbering = checks["custom_transaction_numbers"]
    assert not numbering.ok and "Custom transaction numbers are off" in numbering.detail
    assert "Turn them on" in numbering.detail
    item = checks["default_item"]
    assert not item.ok and "Hardware is a category" in item.detail and "Choose a product or service" in item.detail
    control(sandbox, "quickbooks/set_preferences", {"realm_id": QBO_REALM, "custom_txn_numbers": True})
    checks = {c.name: c for c in adapter.preflight(default_item="1")}
    assert all(c.ok for c in checks.values()), checks
    assert "default_item" not in {c.name for c in adapter.preflight()}
    checks = {c.name: c for c in adapter.preflight(default_item="6")}
    assert not checks["default_item"].ok and "inactive" in checks["default_item"].detail
    checks = {c.name: c for c in adapter.preflight(default_item="4242")}
    assert not checks["default_item"].ok and "does not exist" in checks["default_item"].detail
