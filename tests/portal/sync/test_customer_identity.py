"""Customers in create mode: never created twice, recovered by our reference only, held for a person when unsure.

Every test runs against the sandbox ledgers over HTTP and ends by counting the ledger's customers
as an auditor would (tests/ledger_audit.py): no customer twice, every invoice on its own customer.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import csrf_token_of
from tests.ledger_audit import count_duplicate_ledger_customers, ledger_customers, ledger_view
from tests.portal.sync.conftest import CONNECT, PROVIDERS, add_invoice, fault

#: Each ledger's customer create, as a fault filter (bexio's contact search is a POST too).
CUSTOMER_POST = {
    "exact-online": {"path_contains": "crm/Accounts"},
    "quickbooks": {"path_pattern": "/customer$"},
    "bexio": {"path_pattern": "/2.0/contact$"},
}
#: Ways a customer create can end with its outcome unknown to us.
FAULTS = {
    "503": {"kind": "error_rate", "rate": 1.0, "status": 503},
    "lost answer": {"kind": "timeout_after_commit", "mode": "504"},
}


def _customer(app, org_unit, name: str, **fields) -> int:
    from portal.extensions import db
    from portal.models import Customer

    with app.app_context():
        customer = Customer(
            organization_id=org_unit["org_id"],
            external_id=f"cus-{os.urandom(4).hex()}",
            name=name,
            country=fields.pop("country", "NL"),
            **fields,
        )
        db.session.add(customer)
        db.session.commit()
        return customer.id


def _invoice(app, org_unit, customer_id: int) -> tuple[int, str]:
    return add_invoice(app, {**org_unit, "customer_id": customer_id}, org_unit["unit_id"])


def _push(app, connection_id: int, invoice_id: int):
    """Push one invoice; return (state, error text), or the error about the connection that stopped it."""
    from portal.extensions import db
    from portal.integrations.base import LedgerError
    from portal.models import Connection, Invoice
    from portal.sync import push

    with app.app_context():
        try:
            record = push.push_invoice(db.session.get(Connection, connection_id), db.session.get(Invoice, invoice_id))
        except LedgerError as exc:
            return exc
        return record.state.value, record.last_error_text


def _links(app, connection_id: int) -> dict[int, tuple[str, str]]:
    """Return customer id → (ledger id, method) of the connection's links."""
    from portal.extensions import db
    from portal.models import CustomerLink

    with app.app_context():
        rows = db.session.scalars(db.select(CustomerLink).where(CustomerLink.connection_id == connection_id))
        return {link.customer_id: (link.external_id, link.method.value) for link in rows}


def _record(app, connection_id: int, kind: str, local_id: int):
    from portal.extensions import db
    from portal.models import Connection, RecordKind
    from portal.sync import push

    with app.app_context():
        record = push.record_for(db.session.get(Connection, connection_id), RecordKind(kind), local_id)
        db.session.expunge(record)
        return record


def _document_customer(sandbox, provider: str, number: str) -> str:
    """Return the ledger customer id of the invoice with our reference ``number``."""
    view = ledger_view(sandbox, provider, CONNECT[provider][1])
    if provider == "exact-online":
        [doc] = [d for d in view["tables"]["SalesInvoices"] if d.get("YourRef") == number]
        return doc["InvoiceTo"]
    if provider == "quickbooks":
        [doc] = [d for d in view["entities"]["Invoice"] if d.get("DocNumber") == number]
        return str(doc["CustomerRef"]["value"])
    [doc] = [d for d in view["invoices"] if d.get("api_reference") == number]
    return str(doc["contact_id"])


def _by_hand(app, connection_id: int, provider: str, name: str, *, email=None, vat=None) -> str:
    """Create a customer in the ledger the way a bookkeeper would (no reference of ours); return its id."""
    from portal.connections import vault
    from portal.extensions import db
    from portal.integrations.bexio import API
    from portal.models import Connection

    with app.app_context():
        adapter = vault.fresh_adapter(db.session.get(Connection, connection_id))
        if provider == "exact-online":
            body = {"Name": name, "Status": "C", "IsSales": True, "Email": email, "VATNumber": vat}
            return adapter._create_account({k: v for k, v in body.items() if v})["ID"]
        if provider == "quickbooks":
            body = {"DisplayName": name, **({"PrimaryEmailAddr": {"Address": email}} if email else {})}
            return str(adapter._write("Customer", body)["Id"])
        user = adapter._user_id()
        body = {"contact_type_id": 1, "name_1": name, "user_id": user, "owner_id": user, "mail": email}
        return str(adapter._call("POST", f"{API}/2.0/contact", json={k: v for k, v in body.items() if v})["id"])


def _named(sandbox, provider: str, prefix: str) -> list[dict]:
    return [c for c in ledger_customers(sandbox, provider, CONNECT[provider][1]) if c["name"].startswith(prefix)]


# -- identity, not names ---------------------------------------------------------------------------


@pytest.mark.parametrize("what", list(FAULTS))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_two_saas_customers_of_one_name_and_a_failed_create_each_get_their_own_ledger_customer(
    app, sandbox, connect, org_unit, provider, what
):
    connection_id = connect(provider)
    name = f"Zwilling Consulting {os.urandom(2).hex()}"
    first = _customer(app, org_unit, name, email="first@zwilling.example")
    second = _customer(app, org_unit, name, email="second@zwilling.example")
    first_invoice, first_number = _invoice(app, org_unit, first)
    second_invoice, second_number = _invoice(app, org_unit, second)
    assert _push(app, connection_id, first_invoice)[0] == "pushed"

    fault(sandbox, provider=provider, methods=["POST"], count=1, **FAULTS[what], **CUSTOMER_POST[provider])
    stopped = _push(app, connection_id, second_invoice)
    assert not isinstance(stopped, tuple) and stopped.retryable, stopped  # the run stops, the record waits
    assert _record(app, connection_id, "invoice", second_invoice).state.value == "pending"

    assert _push(app, connection_id, second_invoice) == ("pushed", None)

    links = _links(app, connection_id)
    assert links[first][0] != links[second][0]
    assert _document_customer(sandbox, provider, first_number) == links[first][0]
    assert _document_customer(sandbox, provider, second_number) == links[second][0]
    assert len(_named(sandbox, provider, name)) == 2
    assert count_duplicate_ledger_customers(sandbox, provider, CONNECT[provider][1]) == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_spaced_and_colon_names_are_created_once_after_a_lost_answer(app, sandbox, connect, org_unit, provider):
    connection_id = connect(provider)
    tag = os.urandom(2).hex()
    spaced = _customer(app, org_unit, f"  Spaced   Out  {tag}  ")
    colon = _customer(app, org_unit, f"Colon: Works {tag}")
    pushed = {}
    for customer in (spaced, colon):
        invoice_id, number = _invoice(app, org_unit, customer)
        fault(sandbox, provider=provider, methods=["POST"], count=1, **FAULTS["lost answer"], **CUSTOMER_POST[provider])
        assert not isinstance(_push(app, connection_id, invoice_id), tuple)
        assert _push(app, connection_id, invoice_id) == ("pushed", None)
        pushed[customer] = number

    links = _links(app, connection_id)
    spaced_rows = _named(sandbox, provider, f"Spaced Out {tag}")
    colon_prefix = f"Colon Works {tag}" if provider == "quickbooks" else f"Colon: Works {tag}"
    colon_rows = _named(sandbox, provider, colon_prefix)
    assert [r["id"] for r in spaced_rows] == [links[spaced][0]]  # created trimmed, found again trimmed
    assert [r["id"] for r in colon_rows] == [links[colon][0]]
    for customer, number in pushed.items():
        assert _document_customer(sandbox, provider, number) == links[customer][0]
    assert count_duplicate_ledger_customers(sandbox, provider, CONNECT[provider][1]) == 0


# -- found before created ------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_customer_the_ledger_has_already_is_linked_not_created_again(app, sandbox, connect, org_unit, provider):
    from portal.extensions import db
    from portal.models import AuditEvent

    connection_id = connect(provider)
    tag = os.urandom(2).hex()
    # Exact keeps VAT numbers (matched however they are typed); QuickBooks and bexio match by e-mail.
    vat = "NL123456782B01" if provider == "exact-online" else None
    existing = _by_hand(
        app, connection_id, provider, f"Bestaand {tag} B.V.", email=f"ap@bestaand-{tag}.example", vat=vat
    )
    customer = _customer(
        app,
        org_unit,
        f"Bestaand {tag} BV",
        email=f" AP@Bestaand-{tag}.example ",
        vat_number="nl 1234.56.782.b01" if vat else None,
    )
    invoice_id, number = _invoice(app, org_unit, customer)
    before = len(ledger_customers(sandbox, provider, CONNECT[provider][1]))

    assert _push(app, connection_id, invoice_id) == ("pushed", None)

    assert _links(app, connection_id)[customer] == (existing, "push_vat" if vat else "push_email")
    assert _document_customer(sandbox, provider, number) == existing
    assert len(ledger_customers(sandbox, provider, CONNECT[provider][1])) == before
    with app.app_context():
        summaries = db.session.scalars(db.select(AuditEvent.summary).where(AuditEvent.kind == "customer_link.created"))
        said = "matched by VAT number at push" if vat else "matched by e-mail at push"
        assert any(said in s for s in summaries)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_several_candidates_hold_the_invoice_until_a_person_links_one(app, sandbox, connect, org_unit, provider, flow):
    from portal.extensions import db
    from portal.models import Connection
    from portal.sync import push, schedule

    connection_id = connect(provider)
    tag = os.urandom(2).hex()
    mailbox = f"billing@twice-{tag}.example"
    one = _by_hand(app, connection_id, provider, f"Twice {tag} North", email=mailbox)
    two = _by_hand(app, connection_id, provider, f"Twice {tag} South", email=mailbox)
    customer = _customer(app, org_unit, f"Twice {tag}", email=mailbox)
    invoice_id, number = _invoice(app, org_unit, customer)
    before = len(ledger_customers(sandbox, provider, CONNECT[provider][1]))

    state, words = _push(app, connection_id, invoice_id)

    assert state == "needs_action" and "Link the right one" in words, words
    held = _record(app, connection_id, "customer", customer)
    assert held.state.value == "needs_action" and held.last_error_class == "customer_not_linked"
    assert f"Twice {tag} North" in held.last_error_text and f"Twice {tag} South" in held.last_error_text
    assert len(ledger_customers(sandbox, provider, CONNECT[provider][1])) == before  # nothing created
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        assert invoice_id not in push.due_invoice_ids(connection)  # a hold is a hold
        assert not schedule.has_due_records(connection)

    page = flow.client.get(f"/connections/{connection_id}/customers").get_data(as_text=True)
    assert "Held for their customer" in page and number in page
    assert f'data-candidate="{one}"' in page and f'data-candidate="{two}"' in page
    assert "Create anyway" in page
    # Link to the second candidate from the held customer's own list.
    section = page[page.index(f'data-candidate="{two}"') :]
    suggestion = section.split('name="suggestion" value="', 1)[1].split('"', 1)[0]
    linked = flow.client.post(
        f"/connections/{connection_id}/customers/confirm",
        data={"csrf_token": csrf_token_of(page), "suggestion": suggestion, "action": "selected"},
    )
    assert linked.status_code == 302, linked.get_data(as_text=True)
    assert _record(app, connection_id, "invoice", invoice_id).state.value == "pending"

    assert _push(app, connection_id, invoice_id) == ("pushed", None)
    assert _document_customer(sandbox, provider, number) == two
    assert len(ledger_customers(sandbox, provider, CONNECT[provider][1])) == before


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_namesake_alone_is_never_adopted_and_create_anyway_creates_the_customer(
    app, sandbox, connect, org_unit, provider, flow
):
    connection_id = connect(provider)
    name = f"Namensvetter {os.urandom(2).hex()} AG"
    theirs = _by_hand(app, connection_id, provider, name, email="someone@else.example")
    customer = _customer(app, org_unit, name, email="us@namensvetter.example")
    invoice_id, number = _invoice(app, org_unit, customer)

    state, words = _push(app, connection_id, invoice_id)
    assert state == "needs_action" and "same name" in words, words
    assert _links(app, connection_id).get(customer) is None

    records = flow.client.get(f"/ops/connections/{connection_id}/records").get_data(as_text=True)
    assert "Held until someone acts" in records and "Create anyway" in records
    created = flow.post(f"/connections/{connection_id}/customers/{customer}/create-anyway")
    assert created.status_code == 302, created.get_data(as_text=True)
    assert _record(app, connection_id, "invoice", invoice_id).state.value == "pending"

    assert _push(app, connection_id, invoice_id) == ("pushed", None)
    mine = _links(app, connection_id)[customer][0]
    assert mine != theirs and _document_customer(sandbox, provider, number) == mine
    assert len(_named(sandbox, provider, name)) == 2
    assert count_duplicate_ledger_customers(sandbox, provider, CONNECT[provider][1]) == 0


def test_a_vat_number_that_differs_is_another_company_even_with_the_same_name(app, sandbox, connect, org_unit):
    connection_id = connect("exact-online")
    name = f"Gelijknamig {os.urandom(2).hex()} B.V."
    _by_hand(app, connection_id, "exact-online", name, vat="NL000099998B57")
    customer = _customer(app, org_unit, name, vat_number="NL123456782B01")
    invoice_id, _ = _invoice(app, org_unit, customer)
    assert _push(app, connection_id, invoice_id) == ("pushed", None)  # created: its own VAT number
    assert len(_named(sandbox, "exact-online", name)) == 2


def test_a_held_invoice_can_be_dismissed_from_the_records_page(app, sandbox, connect, org_unit, make_staff, login):
    connection_id = connect("bexio", customer_mode="link_only")
    customer = _customer(app, org_unit, f"Never Linked {os.urandom(2).hex()}")
    invoice_id, _ = _invoice(app, org_unit, customer)
    assert _push(app, connection_id, invoice_id)[0] == "needs_action"
    record_id = _record(app, connection_id, "invoice", invoice_id).id
    ops = app.test_client()
    login(make_staff("ops"), client=ops)
    page = ops.get(f"/ops/connections/{connection_id}/records").get_data(as_text=True)
    assert "Held until someone acts" in page and f'name="ids" value="{record_id}"' in page

    done = ops.post(
        "/ops/failures/dismiss",
        data={
            "csrf_token": csrf_token_of(page),
            "ids": str(record_id),
            "resolution": "ignored",
            "note": "A test customer of the SaaS",
            "next": f"/ops/connections/{connection_id}/records",
        },
    )

    assert done.status_code == 303 and done.headers["Location"].endswith(f"/ops/connections/{connection_id}/records")
    record = _record(app, connection_id, "invoice", invoice_id)
    assert (record.state.value, record.resolution.value, record.resolution_note) == (
        "dismissed",
        "ignored",
        "A test customer of the SaaS",
    )


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_push_job_recovers_a_failed_customer_create_by_reference(app, sandbox, connect, org_unit, provider):
    from tests.portal.sync.test_pipeline import run_push

    connection_id = connect(provider)
    name = f"Job Zwilling {os.urandom(2).hex()}"
    customers = [_customer(app, org_unit, name) for _ in range(2)]
    numbers = {c: _invoice(app, org_unit, c)[1] for c in customers}
    fault(sandbox, provider=provider, methods=["POST"], count=1, **FAULTS["lost answer"], **CUSTOMER_POST[provider])

    first = run_push(app, connection_id)
    second = run_push(app, connection_id)

    # The lost answer deferred that customer's invoice; the run went on and came back to it at its end.
    assert first[1].get("pending", 0) >= 1, first
    assert second[0] == "succeeded" and first[1].get("pushed", 0) + second[1].get("pushed", 0) == 2, (first, second)
    links = _links(app, connection_id)
    assert len({links[c][0] for c in customers}) == 2
    for customer, number in numbers.items():
        assert _document_customer(sandbox, provider, number) == links[customer][0]
    assert len(_named(sandbox, provider, name)) == 2
    assert count_duplicate_ledger_customers(sandbox, provider, CONNECT[provider][1]) == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_shared_mailbox_alone_is_not_enough_to_adopt(app, sandbox, connect, org_unit, provider):
    """A bookkeeper's address on another company's ledger customer holds the invoice; it is not booked there."""
    connection_id = connect(provider)
    tag = os.urandom(2).hex()
    mailbox = f"facturen@boekhouder-{tag}.example"
    other = _by_hand(app, connection_id, provider, f"Bakkerij {tag} Oost", email=mailbox)
    customer = _customer(app, org_unit, f"Garage {tag} West", email=mailbox)
    invoice_id, _ = _invoice(app, org_unit, customer)

    state, words = _push(app, connection_id, invoice_id)

    assert state == "needs_action" and f"Bakkerij {tag} Oost" in words and "same e-mail" in words, words
    assert _links(app, connection_id).get(customer) is None
    assert other  # still the bookkeeper's other client only
    # Once a person says it is not that one, the customer is created on its own.
    from portal.customers import services as customers
    from portal.extensions import db
    from portal.models import Connection, Customer

    with app.app_context():
        customers.create_anyway(db.session.get(Connection, connection_id), db.session.get(Customer, customer))
        db.session.commit()
    assert _push(app, connection_id, invoice_id) == ("pushed", None)
    assert _links(app, connection_id)[customer][0] != other
