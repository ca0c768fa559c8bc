"""Customers carry our reference in every ledger, are found again by it only, and are updated field by field."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.integrations.base import (
    CUSTOMER_CODE_MAX,
    CustomerDraft,
    CustomerQuery,
    NotSupported,
    Unavailable,
    clean_name,
    customer_code,
)
from portal.integrations.quickbooks import DISPLAY_NAME_MAX, display_name, distinct_name

from . import test_bexio_adapter, test_exact_online_adapter, test_quickbooks_adapter
from .conftest import BEXIO_COMPANY, add_fault, ledger

QBO_US = "9341453908059321"


def _exact(sandbox, make_adapter):
    adapter, _ = test_exact_online_adapter._connect(sandbox, make_adapter, "nl", [])
    adapter.company_id = "3010001"
    return adapter


def _qbo(sandbox, make_adapter):
    adapter, _ = test_quickbooks_adapter._connect(sandbox, make_adapter, [])
    return adapter


def _bexio(sandbox, make_adapter):
    adapter, _ = test_bexio_adapter._connect(sandbox, make_adapter, [])
    return adapter


ADAPTERS = {"exact-online": _exact, "quickbooks": _qbo, "bexio": _bexio}


def _accounts(sandbox) -> list[dict]:
    return ledger(sandbox, "exact-online", "3010001")["tables"]["Accounts"]


def _qbo_customers(sandbox) -> list[dict]:
    return ledger(sandbox, "quickbooks", QBO_US)["entities"]["Customer"]


def _contacts(sandbox) -> list[dict]:
    return ledger(sandbox, "bexio", BEXIO_COMPANY)["contacts"]


# -- codes and names (pure) ----------------------------------------------------------------------


@given(st.text(min_size=1, max_size=80))
def test_a_customer_code_is_deterministic_short_and_never_plain_digits(reference):
    code = customer_code(reference)
    assert code == customer_code(reference)
    assert 0 < len(code) <= CUSTOMER_CODE_MAX
    assert not code.isdigit()  # never meets the ledger's own numbering 1, 2, 3 …


@given(st.text(min_size=1, max_size=16, alphabet="0123456789"))
def test_a_numeric_customer_id_keeps_its_digits_readable(digits):
    assert customer_code(digits) == f"LL{digits}"


def test_a_short_customer_id_is_its_own_code_and_a_long_one_a_hash():
    assert customer_code("cus_000001_0001") == "cus_000001_0001"
    long_one = customer_code("cus_" + "x" * 60)
    assert long_one.startswith("LL") and len(long_one) == CUSTOMER_CODE_MAX
    assert long_one != customer_code("cus_" + "x" * 59)


@given(st.text(max_size=60))
def test_names_are_cleaned_the_same_way_for_create_and_look_up(name):
    cleaned = clean_name(name)
    assert cleaned == clean_name(cleaned) == cleaned.strip()
    assert "  " not in cleaned
    qbo = display_name(name)
    assert ":" not in qbo and qbo == display_name(qbo) and len(qbo) <= DISPLAY_NAME_MAX


def test_a_quickbooks_distinct_name_adds_the_reference_within_the_limit():
    draft = CustomerDraft(reference="cus-7", name="A" * 600)
    named = distinct_name(draft)
    assert named.endswith(" (cus-7)") and len(named) == DISPLAY_NAME_MAX


# -- each ledger ---------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", list(ADAPTERS))
def test_a_created_customer_is_found_by_its_reference_and_a_namesake_is_not(sandbox, make_adapter, provider):
    adapter = ADAPTERS[provider](sandbox, make_adapter)
    mine = CustomerDraft(reference="cus-ident-1", name="  Twin   Names  Ltd ", email="one@twin.example")
    theirs = CustomerDraft(reference="cus-ident-2", name="Twin Names Ltd", email="two@twin.example")
    assert adapter.find_customer_by_reference(mine) is None

    created = adapter.create_customer(mine)

    assert created.name in ("Twin Names Ltd",)  # created as looked up: trimmed, spaces collapsed
    found = adapter.find_customer_by_reference(mine)
    assert found is not None and found.id == created.id
    # Another SaaS customer with the same name is never the one found by reference.
    assert adapter.find_customer_by_reference(theirs) is None
    other = adapter.create_customer(theirs)
    assert other.id != created.id
    assert adapter.find_customer_by_reference(theirs).id == other.id
    assert adapter.find_customer_by_reference(mine).id == created.id
    # The name look-up finds both (a name alone says nothing about who is who).
    assert {c.id for c in adapter.find_customers(CustomerQuery("name", " Twin Names  Ltd"))} >= {created.id}


def test_exact_stores_our_reference_as_the_account_code_and_a_second_create_returns_the_first(sandbox, make_adapter):
    adapter = _exact(sandbox, make_adapter)
    draft = CustomerDraft(reference="cus-code-1", name="Code Carrier B.V.", coc_number="99887766")
    first = adapter.create_customer(draft)
    [account] = [a for a in _accounts(sandbox) if a["ID"] == first.id]
    assert account["Code"] == "cus-code-1".rjust(18) and account["ChamberOfCommerce"] == "99887766"
    # Exact refuses a second account with the code ("Gegeven bestaat reeds"): the first is returned.
    again = adapter.create_customer(draft)
    assert again.id == first.id
    assert len([a for a in _accounts(sandbox) if a["Code"].strip() == "cus-code-1"]) == 1
    assert adapter.find_customers(CustomerQuery("coc", "99887766"))[0].id == first.id


def test_quickbooks_creates_with_a_requestid_and_a_note_and_replays_after_a_lost_answer(sandbox, make_adapter):
    adapter = _qbo(sandbox, make_adapter)
    draft = CustomerDraft(reference="cus-rid-1", name="Replay: Gardens  Inc")
    add_fault(sandbox, provider="quickbooks", kind="timeout_after_commit", count=1, path_contains="/customer")
    with pytest.raises(Unavailable):  # the lost answer (504)
        adapter.create_customer(draft)
    # The same draft again replays the committed create: one customer, the colon gone, the note carries us.
    created = adapter.create_customer(draft)
    rows = [c for c in _qbo_customers(sandbox) if c.get("DisplayName") == "Replay Gardens Inc"]
    assert [r["Id"] for r in rows] == [created.id]
    assert "Ledgerlink reference: cus-rid-1" in rows[0]["Notes"]
    assert adapter.find_customer_by_reference(draft).id == created.id


def test_quickbooks_gives_a_second_customer_of_one_name_the_reference_in_its_name(sandbox, make_adapter):
    adapter = _qbo(sandbox, make_adapter)
    first = adapter.create_customer(CustomerDraft(reference="cus-a", name="Same Name Co"))
    second_draft = CustomerDraft(reference="cus-b", name="Same Name Co")
    second = adapter.create_customer(second_draft)
    assert (first.name, second.name) == ("Same Name Co", "Same Name Co (cus-b)")
    assert adapter.find_customer_by_reference(second_draft).id == second.id
    # Creating the second again replays its own create: still two customers.
    assert adapter.create_customer(second_draft).id == second.id
    assert len([c for c in _qbo_customers(sandbox) if c["DisplayName"].startswith("Same Name Co")]) == 2


def test_bexio_stores_our_reference_as_the_contact_number(sandbox, make_adapter):
    adapter = _bexio(sandbox, make_adapter)
    created = adapter.create_customer(CustomerDraft(reference="4711", name="Nummer AG"))
    [contact] = [c for c in _contacts(sandbox) if str(c["id"]) == created.id]
    assert contact["nr"] == "LL4711"  # a numeric id never meets bexio's own numbering


@pytest.mark.parametrize("provider", list(ADAPTERS))
def test_an_update_changes_only_the_fields_named(sandbox, make_adapter, provider):
    adapter = ADAPTERS[provider](sandbox, make_adapter)
    draft = CustomerDraft(
        reference=f"cus-upd-{provider}",
        name="Before GmbH",
        email="before@upd.example",
        address_lines=("Old Street 1",),
        postcode="1000",
        city="Oldtown",
        country="NL",
    )
    created = adapter.create_customer(draft)
    changed = CustomerDraft(
        reference=draft.reference,
        name="After  GmbH",
        email="after@upd.example",
        address_lines=("New Street 2",),
        postcode="2000",
        city="Newtown",
        country="NL",
    )

    adapter.update_customer(created.id, changed, ["name", "email", "address_lines", "postcode", "city"])

    [now] = adapter.find_customers(CustomerQuery("id", created.id))
    assert (now.name, now.email) == ("After GmbH", "after@upd.example")
    if provider == "exact-online":
        [row] = [a for a in _accounts(sandbox) if a["ID"] == created.id]
        assert (row["AddressLine1"], row["Postcode"], row["City"]) == ("New Street 2", "2000", "Newtown")
        assert row["Code"].strip() == customer_code(draft.reference)  # the code is never re-sent
    elif provider == "quickbooks":
        [row] = [c for c in _qbo_customers(sandbox) if c["Id"] == created.id]
        assert row["BillAddr"]["Line1"] == "New Street 2" and row["BillAddr"]["City"] == "Newtown"
        assert "Ledgerlink reference" in row["Notes"]  # a sparse update leaves the note
    else:
        [row] = [c for c in _contacts(sandbox) if str(c["id"]) == created.id]
        assert (row["street_name"], row["postcode"], row["city"]) == ("New Street 2", "2000", "Newtown")
    # Only the e-mail changes now: the name stays as the ledger has it.
    adapter.update_customer(
        created.id, CustomerDraft(reference=draft.reference, name="Ignored", email="x@upd.example"), ["email"]
    )
    [now] = adapter.find_customers(CustomerQuery("id", created.id))
    assert (now.name, now.email) == ("After GmbH", "x@upd.example")


def test_a_quickbooks_update_reads_the_synctoken_again_when_it_went_stale(sandbox, make_adapter):
    adapter = _qbo(sandbox, make_adapter)
    created = adapter.create_customer(CustomerDraft(reference="cus-stale", name="Stale Co"))
    real = adapter._call
    bumped = []

    def bump_first_read(method, url, **kwargs):
        answer = real(method, url, **kwargs)
        if method == "GET" and url.endswith(f"/customer/{created.id}") and not bumped:
            # Someone changes the customer between our read and our write.
            row = answer["Customer"]
            real(
                "POST",
                url.rsplit("/", 1)[0],
                json={"Id": row["Id"], "SyncToken": row["SyncToken"], "sparse": True, "Notes": row["Notes"] + " x"},
            )
            bumped.append(True)
        return answer

    adapter._call = bump_first_read
    adapter.update_customer(created.id, CustomerDraft(reference="cus-stale", name="Fresh Co"), ["name"])
    assert bumped and adapter.find_customers(CustomerQuery("id", created.id))[0].name == "Fresh Co"


def test_quickbooks_and_bexio_have_no_vat_number_to_look_up(sandbox, make_adapter):
    for make in (_qbo, _bexio):
        with pytest.raises(NotSupported):
            make(sandbox, make_adapter).find_customers(CustomerQuery("vat", "NL123456782B01"))


def test_exact_asks_for_every_identifier_in_one_query(sandbox, make_adapter):
    adapter = _exact(sandbox, make_adapter)
    vat = adapter.create_customer(CustomerDraft(reference="cus-or-1", name="Or One B.V.", vat_number="NL123456782B01"))
    mail = adapter.create_customer(CustomerDraft(reference="cus-or-2", name="Or Two B.V.", email="two@or.example"))
    gets = []
    real = adapter._call

    def counting(method, url, **kwargs):
        gets.append(method)
        return real(method, url, **kwargs)

    adapter._call = counting
    found = adapter.find_customers_matching(
        [
            CustomerQuery("vat", "NL123456782B01"),
            CustomerQuery("coc", "00000000"),
            CustomerQuery("email", "two@or.example"),
            CustomerQuery("name", "  Nobody   Here "),
        ]
    )
    assert {c.id for c in found} == {vat.id, mail.id}
    assert gets == ["GET"]


def test_other_ledgers_ask_per_key_and_leave_out_keys_they_do_not_keep(sandbox, make_adapter):
    adapter = _bexio(sandbox, make_adapter)
    made = adapter.create_customer(CustomerDraft(reference="cus-or-3", name="Oder AG", email="oder@ag.example"))
    found = adapter.find_customers_matching(
        [CustomerQuery("vat", "CHE-123.456.789"), CustomerQuery("email", "oder@ag.example")]
    )
    assert [c.id for c in found] == [made.id]
