"""The bexio adapter's invoice life after the push: issue, send, payments, statuses, listing."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.integrations import specs
from portal.integrations.base import (
    DocumentDraft,
    LineDraft,
    NotFound,
    NotSent,
    NotSupported,
    PaymentDraft,
    Rejected,
    Unavailable,
)
from portal.integrations.bexio import NETWORK_LINK, _chunks, default_message
from portal.integrations.errors_catalog import ErrorClass, Fix, explain

from .conftest import BEXIO_COMPANY, CLIENTS, REDIRECT_URI, add_fault, control, decide_consent, ledger

B = specs.BEXIO
MEIER = "4"  # contact with info@meier-treuhand.example
NO_MAIL = "1"  # "bexio AG" has no e-mail address


@pytest.fixture
def bexio(sandbox, make_http):
    """Return (adapter connected to Mustermann AG, list of every API response it received)."""
    from portal.integrations.base import get_adapter_class

    http, seen = make_http(B)
    adapter = get_adapter_class(B)(http=http, client_id=CLIENTS[B][0], client_secret=CLIENTS[B][1])
    verifier = secrets.token_urlsafe(48)
    url = adapter.authorization_url(redirect_uri=REDIRECT_URI, state="s", code_verifier=verifier)
    callback = decide_consent(sandbox, B, url, username="max.mustermann", company_id=BEXIO_COMPANY)
    adapter.exchange_code(code=callback["code"], redirect_uri=REDIRECT_URI, code_verifier=verifier)
    return adapter, seen


def _push(adapter, *, customer: str = MEIER, reference: str | None = None, day: date = date(2026, 5, 4)) -> str:
    reference = reference or f"ll-{secrets.token_hex(4)}"
    draft = DocumentDraft(
        reference=reference,
        number=reference.upper(),
        customer_id=customer,
        issue_date=day,
        due_date=date(2026, 12, 31),
        currency="CHF",
        lines=(LineDraft("Beratung", Decimal(2), Decimal("100.00"), tax_code="14", gl_account="96"),),
    )
    return adapter.push_invoice(draft).external_id


def _invoice(sandbox, external_id: str) -> dict:
    (invoice,) = [i for i in ledger(sandbox, B, BEXIO_COMPANY)["invoices"] if i["id"] == int(external_id)]
    return invoice


def _mails(sandbox, external_id: str) -> list[dict]:
    return [c for c in _invoice(sandbox, external_id)["communications"] if c["kind"] == "mail"]


def _calls(seen, method: str, fragment: str) -> int:
    return sum(1 for r in seen if r.method == method and fragment in r.url)


# -- finalize ---------------------------------------------------------------------------------------


def test_finalize_issues_once_and_returns_the_number(sandbox, bexio):
    adapter, seen = bexio
    invoice_id = _push(adapter)
    number = adapter.finalize_invoice(invoice_id, send=False)
    invoice = _invoice(sandbox, invoice_id)
    assert number == invoice["document_nr"] and number.startswith("RE-")
    assert invoice["kb_item_status_id"] == 8 and _mails(sandbox, invoice_id) == []
    assert adapter.finalize_invoice(invoice_id, send=False) == number  # already issued: no error
    assert _calls(seen, "POST", f"/kb_invoice/{invoice_id}/issue") == 1


def test_an_invoice_this_adapter_created_is_issued_without_reading_it_first_any_other_is_read(sandbox, bexio):
    from portal.integrations.base import get_adapter_class

    adapter, seen = bexio
    invoice_id = _push(adapter)
    assert _calls(seen, "GET", f"/kb_invoice/{invoice_id}") == 0
    number = adapter.finalize_invoice(invoice_id, send=False)
    # The creation answered the number and the draft state: create and issue, nothing else.
    assert _calls(seen, "GET", f"/kb_invoice/{invoice_id}") == 0
    assert _calls(seen, "POST", f"/kb_invoice/{invoice_id}/issue") == 1
    assert number == _invoice(sandbox, invoice_id)["document_nr"]
    # Once more (a retry), and from another adapter (a later run): both read bexio's state first.
    assert adapter.finalize_invoice(invoice_id, send=False) == number
    other = get_adapter_class(B)(http=adapter.http, client_id="c", client_secret="s", tokens=adapter.tokens)
    assert other.finalize_invoice(invoice_id, send=False) == number
    assert _calls(seen, "GET", f"/kb_invoice/{invoice_id}") == 2
    assert _calls(seen, "POST", f"/kb_invoice/{invoice_id}/issue") == 1


def test_an_adapter_joined_to_the_creating_one_issues_and_sends_without_reading_first(sandbox, bexio):
    from portal.integrations.base import get_adapter_class

    adapter, seen = bexio
    invoice_id = _push(adapter)
    joined = get_adapter_class(B)(http=adapter.http, client_id=adapter.client_id, client_secret="x")
    joined.share_state(adapter)
    number = joined.finalize_invoice(invoice_id, send=True)
    (mail,) = _mails(sandbox, invoice_id)
    assert mail["to"] == "info@meier-treuhand.example" and mail["subject"] == f"Invoice {number}"
    assert _calls(seen, "GET", f"/kb_invoice/{invoice_id}") == 0


def test_several_references_are_looked_up_with_one_search(sandbox, bexio):
    adapter, seen = bexio
    references = [f"ll-{secrets.token_hex(4)}" for _ in range(3)]
    ids = [_push(adapter, reference=r) for r in references[:2]]
    before = _calls(seen, "POST", "/kb_invoice/search")

    found = adapter.find_by_references("invoice", [*references, "seed-0001"])

    assert _calls(seen, "POST", "/kb_invoice/search") == before + 1
    assert {r: f.external_id for r, f in found.items() if r != "seed-0001"} == dict(zip(references, ids, strict=False))
    assert found["seed-0001"] == adapter.find_by_reference("invoice", "seed-0001")
    assert not any(f.created for f in found.values())


def test_finalize_sends_to_the_contact_with_the_default_message_and_never_twice(sandbox, bexio):
    adapter, seen = bexio
    invoice_id = _push(adapter)
    number = adapter.finalize_invoice(invoice_id, send=True)
    (mail,) = _mails(sandbox, invoice_id)
    assert mail["to"] == "info@meier-treuhand.example" and mail["subject"] == f"Invoice {number}"
    invoice = _invoice(sandbox, invoice_id)
    assert invoice["kb_item_status_id"] == 8 and invoice["network_link"]
    assert adapter.finalize_invoice(invoice_id, send=True) == number
    assert len(_mails(sandbox, invoice_id)) == 1
    assert _calls(seen, "POST", f"/kb_invoice/{invoice_id}/send") == 1
    assert NETWORK_LINK in default_message(number) and number in default_message(number)


def test_finalize_sends_to_the_given_address_with_the_given_message(sandbox, bexio):
    adapter, _ = bexio
    invoice_id = _push(adapter, customer=NO_MAIL)
    adapter.finalize_invoice(
        invoice_id, send=True, email=" ap@bexio.example ", message=f"Grüezi, Ihre Rechnung: {NETWORK_LINK}"
    )
    (mail,) = _mails(sandbox, invoice_id)
    assert mail["to"] == "ap@bexio.example"


def test_a_message_without_the_placeholder_is_refused_before_calling_bexio(sandbox, bexio):
    adapter, seen = bexio
    invoice_id = _push(adapter)
    before = len(seen)
    with pytest.raises(Rejected, match=r"add \[Network Link\]"):
        adapter.finalize_invoice(invoice_id, send=True, message="Please pay: https://example.org")
    assert len(seen) == before
    assert _invoice(sandbox, invoice_id)["kb_item_status_id"] == 7
    assert explain(Rejected("x", provider=B, provider_text=None)).error_class is ErrorClass.VALIDATION


def test_a_contact_without_e_mail_is_named_the_invoice_issued_and_numbered_not_e_mailed(sandbox, bexio):
    adapter, _ = bexio
    invoice_id = _push(adapter, customer=NO_MAIL)
    with pytest.raises(NotSent) as info:
        adapter.finalize_invoice(invoice_id, send=True)
    assert "'bexio AG' has no e-mail address" in str(info.value)
    assert "bexio → Contacts" in str(info.value)
    invoice = _invoice(sandbox, invoice_id)
    assert invoice["kb_item_status_id"] == 8 and info.value.number == invoice["document_nr"]
    assert _mails(sandbox, invoice_id) == []
    # A retry does not report it sent: it still is not.
    with pytest.raises(NotSent):
        adapter.finalize_invoice(invoice_id, send=True)
    # Once the contact has an address, "Send again" e-mails it, once.
    adapter._call("POST", f"https://api.bexio.com/2.0/contact/{NO_MAIL}", json={"mail": "office@bexio-ag.example"})
    assert adapter.send_invoice(invoice_id) == invoice["document_nr"]
    assert len(_mails(sandbox, invoice_id)) == 1
    adapter.send_invoice(invoice_id)
    assert len(_mails(sandbox, invoice_id)) == 1


def test_a_cancelled_invoice_is_refused(sandbox, bexio):
    adapter, _ = bexio
    invoice_id = _push(adapter)
    adapter.finalize_invoice(invoice_id, send=False)
    adapter._call("POST", f"https://api.bexio.com/2.0/kb_invoice/{invoice_id}/cancel")
    with pytest.raises(Rejected, match="is cancelled"):
        adapter.finalize_invoice(invoice_id, send=True)


def test_a_trial_company_refuses_other_recipients_with_its_own_text(sandbox, bexio):
    adapter, _ = bexio
    control(sandbox, "bexio/set_trial", {"company": BEXIO_COMPANY, "trial": True})
    invoice_id = _push(adapter)
    with pytest.raises(NotSent) as info:
        adapter.finalize_invoice(invoice_id, send=True)
    assert info.value.number == _invoice(sandbox, invoice_id)["document_nr"]
    assert "During the trial you can only send to your own address." in info.value.provider_text
    explained = explain(info.value)
    assert (explained.error_class, explained.fix) == (ErrorClass.VALIDATION, Fix.SETTINGS)
    # The owner's own address still works.
    adapter.finalize_invoice(invoice_id, send=True, email="max.mustermann@mustermann-ag.example")
    assert len(_mails(sandbox, invoice_id)) == 1


@pytest.mark.faults
def test_a_send_whose_answer_was_lost_is_not_repeated(sandbox, bexio):
    adapter, _ = bexio
    invoice_id = _push(adapter)
    add_fault(sandbox, provider=B, kind="timeout_after_commit", count=1, path_contains="/send", mode="504")
    with pytest.raises(Unavailable) as info:
        adapter.finalize_invoice(invoice_id, send=True)
    assert info.value.outcome_unknown
    assert len(_mails(sandbox, invoice_id)) == 1
    number = adapter.finalize_invoice(invoice_id, send=True)
    assert number and len(_mails(sandbox, invoice_id)) == 1


def test_an_unknown_invoice_is_not_found(sandbox, bexio):
    adapter, _ = bexio
    with pytest.raises(NotFound):
        adapter.finalize_invoice("999999", send=False)


# -- payments -------------------------------------------------------------------------------------


def test_payments_are_booked_found_by_date_and_amount_and_move_the_status(sandbox, bexio):
    adapter, _ = bexio
    invoice_id = _push(adapter)  # total 216.20 (2 x 100 + 8.1 %)
    adapter.finalize_invoice(invoice_id, send=False)
    first = PaymentDraft("pay-1", invoice_id, Decimal("100.00"), date(2026, 5, 10), bank_account="1")
    assert adapter.find_payment(first) is None
    pushed = adapter.push_payment(first)
    assert pushed.created
    status = adapter.payment_status(invoice_id)
    assert (status.paid, status.state, status.amount_open) == (False, "partial", Decimal("116.20"))
    (booked,) = _invoice(sandbox, invoice_id)["payments"]
    assert (str(booked["id"]), booked["date"], booked["value"], booked["bank_account_id"]) == (
        pushed.external_id,
        "2026-05-10",
        "100.000000",
        1,
    )

    found = adapter.find_payment(first)
    assert found is not None and (found.external_id, found.created) == (pushed.external_id, False)
    assert adapter.find_payment(replace(first, amount=Decimal("100.01"))) is None
    assert adapter.find_payment(replace(first, paid_on=date(2026, 5, 11))) is None
    # A second equal instalment on the same day is told apart by excluding the first.
    assert adapter.find_payment(first, exclude={pushed.external_id}) is None

    rest = adapter.push_payment(PaymentDraft("pay-2", invoice_id, Decimal("116.20"), date(2026, 5, 20)))
    assert rest.external_id != pushed.external_id
    status = adapter.payment_status(invoice_id)
    assert (status.paid, status.state, status.amount_open) == (True, "paid", Decimal(0))


def test_payment_refusals_are_precise(sandbox, bexio):
    adapter, seen = bexio
    draft_id = _push(adapter)
    before = len(seen)
    with pytest.raises(Rejected, match="positive"):
        adapter.push_payment(PaymentDraft("p0", draft_id, Decimal(0), date(2026, 5, 1)))
    assert len(seen) == before
    with pytest.raises(Rejected) as info:
        adapter.push_payment(PaymentDraft("p1", draft_id, Decimal(10), date(2026, 5, 1)))
    assert "issued invoices" in info.value.provider_text
    adapter.finalize_invoice(draft_id, send=False)
    with pytest.raises(Rejected) as info:
        adapter.push_payment(PaymentDraft("p2", draft_id, Decimal(10), date(2026, 5, 1), bank_account="77"))
    assert "bank_account_id" in info.value.provider_text
    assert explain(info.value).error_class is ErrorClass.MAPPING_MISSING
    assert _invoice(sandbox, draft_id)["payments"] == []
    with pytest.raises(NotSupported, match="find_payment"):
        adapter.find_by_reference("payment", "p2")


def test_payment_statuses_use_one_search_per_chunk_and_skip_unknown_invoices(sandbox, bexio):
    adapter, seen = bexio
    ids = [_push(adapter) for _ in range(3)]
    for invoice_id in ids[:2]:
        adapter.finalize_invoice(invoice_id, send=False)
    control(sandbox, "bexio/mark_paid", {"company": BEXIO_COMPANY, "invoice_id": int(ids[0])})
    before = _calls(seen, "POST", "/kb_invoice/search")
    statuses = adapter.payment_statuses([*ids, "1", "999999", ids[0]])
    assert _calls(seen, "POST", "/kb_invoice/search") == before + 1
    assert set(statuses) == {*ids, "1"}
    assert [statuses[i].state for i in ids] == ["paid", "open", "draft"]
    assert statuses["1"].paid and statuses[ids[1]].amount_open == Decimal("216.20")
    assert statuses[ids[1]] == adapter.payment_status(ids[1])


@given(st.lists(st.integers(min_value=1, max_value=10**12).map(str), max_size=120))
def test_id_chunks_keep_every_id_once_within_the_search_value_limit(ids):
    chunks = list(_chunks(ids, 255))
    assert [i for chunk in chunks for i in chunk] == ids
    assert all(chunk and len(",".join(chunk)) <= 255 for chunk in chunks)


# -- listing, PDFs, credit notes ------------------------------------------------------------------


def test_iter_documents_pages_through_the_date_range(sandbox, bexio):
    adapter, seen = bexio
    inside = [_push(adapter, day=date(2026, 3, d)) for d in (1, 15, 31)]
    _push(adapter, day=date(2026, 4, 1))
    paid = inside[1]
    adapter.finalize_invoice(paid, send=False)
    control(sandbox, "bexio/mark_paid", {"company": BEXIO_COMPANY, "invoice_id": int(paid), "amount": "16.20"})
    adapter.spec = replace(adapter.spec, page_size=2)
    before = _calls(seen, "POST", "/kb_invoice/search")
    docs = list(adapter.iter_documents("invoice", date(2026, 3, 1), date(2026, 3, 31)))
    assert _calls(seen, "POST", "/kb_invoice/search") == before + 2
    assert [d.external_id for d in docs] == inside
    by_id = {d.external_id: d for d in docs}
    first = by_id[inside[0]]
    assert (first.issue_date, first.total, first.currency, first.customer_id) == (
        date(2026, 3, 1),
        Decimal("216.20"),
        "CHF",
        MEIER,
    )
    assert first.reference and first.reference.startswith("ll-") and first.number.startswith("RE-")
    assert by_id[paid].amount_open == Decimal("200.00")
    assert list(adapter.iter_documents("invoice", date(2020, 1, 1), date(2020, 12, 31))) == []
    with pytest.raises(NotSupported, match="no credit-note API"):
        list(adapter.iter_documents("credit_note", date(2026, 1, 1), date(2026, 12, 31)))


def test_pdfs_cannot_be_attached_and_credit_notes_name_the_manual_step(sandbox, bexio):
    adapter, _ = bexio
    invoice_id = _push(adapter)
    with pytest.raises(NotSupported, match="renders its own invoice PDF"):
        adapter.attach_pdf(invoice_id, filename="inv.pdf", content=b"%PDF-1.4")
    note = DocumentDraft(
        reference="cn-9",
        number="CN-9",
        customer_id=MEIER,
        issue_date=date(2026, 5, 5),
        due_date=None,
        currency="CHF",
        lines=(LineDraft("Refund", Decimal(1), Decimal(10)),),
        corrects_id=invoice_id,
    )
    with pytest.raises(NotSupported) as info:
        adapter.push_credit_note(note)
    text = str(info.value)
    assert "by hand in bexio → Sales → Invoices" in text and f"bexio invoice id {invoice_id}" in text
    assert "CN-9" in text
    assert explain(info.value).error_class is ErrorClass.NOT_SUPPORTED
