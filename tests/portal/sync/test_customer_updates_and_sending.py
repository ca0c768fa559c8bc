"""What the ledger did after the push, said as it did it, and customer changes that reach the ledger.

- A linked customer changed in the SaaS (name, address, e-mail) is updated in its ledger customer
  by the next push, field by field, once.
- An invoice the ledger numbered but did not e-mail stays "numbered, not e-mailed" with the
  ledger's reason and its number; no run turns it into "sent"; "Send again" e-mails it where the
  ledger can, and says so where it cannot (Exact e-mails only when it processes an invoice).
"""

from __future__ import annotations

import pytest

from tests.conftest import csrf_token_of
from tests.ledger_audit import ledger_customers
from tests.portal.sync.conftest import CONNECT, PROVIDERS, ledger_documents
from tests.portal.sync.test_pipeline import ingest_invoice, ledger_state, run_push, set_settings, times_sent


def _customer_body(app, org_unit, **changes) -> tuple[str, dict]:
    from portal.api.ingest import customer_json
    from portal.extensions import db
    from portal.models import Customer

    with app.app_context():
        customer = db.session.get(Customer, org_unit["customer_id"])
        body = {k: v for k, v in customer_json(customer).items() if k not in ("id", "created_at", "updated_at")}
        return customer.external_id, {**body, **changes}


def _ledger_customer(sandbox, provider: str, ledger_id: str) -> dict:
    view = ledger_state(sandbox, provider)
    if provider == "exact-online":
        return next(a for a in view["tables"]["Accounts"] if a["ID"] == ledger_id)
    if provider == "quickbooks":
        return next(c for c in view["entities"]["Customer"] if str(c["Id"]) == ledger_id)
    return next(c for c in view["contacts"] if str(c["id"]) == ledger_id)


def _link(app, connection_id: int, customer_id: int):
    from portal.extensions import db
    from portal.models import CustomerLink

    with app.app_context():
        link = db.session.scalar(
            db.select(CustomerLink).filter_by(connection_id=connection_id, customer_id=customer_id)
        )
        db.session.expunge(link)
        return link


def _due(app, connection_id: int) -> bool:
    from portal.extensions import db
    from portal.models import Connection
    from portal.sync import schedule

    with app.app_context():
        return schedule.has_due_records(db.session.get(Connection, connection_id))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_changed_customer_reaches_its_ledger_customer_once(app, sandbox, connect, org_unit, api, provider):
    connection_id = connect(provider)
    ingest_invoice(app, api, org_unit)
    assert run_push(app, connection_id)[1]["pushed"] == 1
    link = _link(app, connection_id, org_unit["customer_id"])
    before = _ledger_customer(sandbox, provider, link.external_id)
    external_id, body = _customer_body(
        app,
        org_unit,
        name="  Renamed   Holding B.V. ",
        email="new-billing@renamed.example",
        street="Herengracht 500",
        postcode="1017 CB",
        city="Amsterdam",
    )
    api[0](f"customers/{external_id}", body)
    assert _due(app, connection_id)

    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded" and counts.get("customers_updated") == 1, (counts, message)
    after = _ledger_customer(sandbox, provider, link.external_id)
    if provider == "exact-online":
        assert (after["Name"], after["Email"], after["AddressLine1"]) == (
            "Renamed Holding B.V.",
            "new-billing@renamed.example",
            "Herengracht 500",
        )
        assert after["Code"] == before["Code"]
    elif provider == "quickbooks":
        assert after["DisplayName"] == "Renamed Holding B.V."
        assert after["PrimaryEmailAddr"]["Address"] == "new-billing@renamed.example"
        assert after["BillAddr"]["Line1"] == "Herengracht 500" and int(after["SyncToken"]) > int(before["SyncToken"])
    else:
        assert (after["name_1"], after["mail"], after["street_name"]) == (
            "Renamed Holding B.V.",
            "new-billing@renamed.example",
            "Herengracht 500",
        )
        assert after["nr"] == before["nr"]
    # Remembered: the next run has nothing to send, and the ledger is not called for it.
    assert not _due(app, connection_id)
    again = run_push(app, connection_id)[1]
    assert "customers_updated" not in again and "customer_updates" not in again, again
    assert _link(app, connection_id, org_unit["customer_id"]).update_error is None


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_linked_customers_change_sends_only_what_changed(app, sandbox, connect, org_unit, api, provider):
    from portal.customers import services as customers
    from portal.extensions import db
    from portal.models import Connection

    connection_id = connect(provider)
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        customers.fetch_ledger_customers(connection)
        db.session.commit()
        existing = next(c for c in ledger_customers(sandbox, provider, CONNECT[provider][1]) if c["name"])
        from portal.models import Customer

        ref = db.session.get(Customer, org_unit["customer_id"]).external_id
        customers.link_manually(connection, ref, existing["id"])
        db.session.commit()
    external_id, body = _customer_body(app, org_unit, email="only-this@changed.example")
    api[0](f"customers/{external_id}", body)

    assert run_push(app, connection_id)[1].get("customers_updated") == 1

    after = ledger_customers(sandbox, provider, CONNECT[provider][1])
    [row] = [c for c in after if c["id"] == existing["id"]]
    assert row["email"] == "only-this@changed.example"
    assert row["name"] == existing["name"]  # the ledger's own name stays: only the change is sent


@pytest.mark.parametrize("provider", PROVIDERS)
def test_numbered_but_not_e_mailed_keeps_its_number_is_never_reported_sent_and_can_be_sent_again(
    app, sandbox, connect, org_unit, api, make_staff, login, provider
):
    from portal.extensions import db
    from portal.models import Connection

    connection_id = connect(provider)
    set_settings(app, connection_id, sending_method="ledger", auto_send=True)
    external_id, body = _customer_body(app, org_unit, email=None)  # no address anywhere
    api[0](f"customers/{external_id}", body)
    invoice_id, number = ingest_invoice(app, api, org_unit, pdf=None)

    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded" and counts.get("pushed") == 1 and counts.get("not_sent") == 1, (counts, message)
    [document] = ledger_documents(sandbox, provider, number)
    ledger_number = str(document.get("InvoiceNumber") or document.get("DocNumber") or document.get("document_nr"))
    assert times_sent(sandbox, provider, document) == 0
    ledger = api[1](f"invoices/{invoice_id}").get_json()["ledger"]
    assert ledger["number"] == ledger_number  # the number came back although the e-mail did not go
    assert ledger["sent"]["state"] == "not_sent" and ledger["sent"]["sent_at"] is None
    assert ledger["sent"]["error"].startswith(f"Numbered {ledger_number}, not e-mailed:"), ledger["sent"]

    # Runs after that never turn it into "sent" — not even once the customer has an address.
    _, body = _customer_body(app, org_unit, email="accounts@finally.example")
    api[0](f"customers/{external_id}", body)
    status, counts, message = run_push(app, connection_id)
    assert counts.get("customers_updated") == 1 and "sent" not in counts, (counts, message)
    assert api[1](f"invoices/{invoice_id}").get_json()["ledger"]["sent"]["state"] == "not_sent"

    # The records page shows it with "Send again" for ops.
    ops = app.test_client()
    login(make_staff("ops"), client=ops)
    page = ops.get(f"/ops/connections/{connection_id}/records").get_data(as_text=True)
    assert "numbered, not e-mailed" in page and "Send again" in page
    with app.app_context():
        from portal.models import ExternalRecord, Invoice, RecordKind

        local = db.session.scalar(db.select(Invoice.id).filter_by(external_id=invoice_id))
        record_id = db.session.scalar(
            db.select(ExternalRecord.id).filter_by(connection_id=connection_id, kind=RecordKind.invoice, local_id=local)
        )
        assert db.session.get(Connection, connection_id) is not None
    sent = ops.post(
        f"/ops/records/{record_id}/send-again",
        data={"csrf_token": csrf_token_of(page), "next": f"/ops/connections/{connection_id}/records"},
    )
    assert sent.status_code in (302, 303)

    ledger = api[1](f"invoices/{invoice_id}").get_json()["ledger"]
    [document] = ledger_documents(sandbox, provider, number)
    assert ledger["number"] == ledger_number
    if provider == "exact-online":
        # Exact e-mails an invoice through its API only when it processes it: honest words, nothing sent.
        assert ledger["sent"]["state"] == "not_sent" and times_sent(sandbox, provider, document) == 0
        assert "only when it processes it" in ledger["sent"]["error"]
        # The account's new address reached Exact: the next invoice goes to it.
        ingest_invoice(app, api, org_unit, pdf=None)
        assert run_push(app, connection_id)[1].get("sent") == 1
        outbox = ledger_state(sandbox, provider)["outbox"]
        [(to,)] = [(m["to"],) for m in outbox]
        assert to == "accounts@finally.example"
    else:
        assert ledger["sent"]["state"] == "sent" and ledger["sent"]["sent_at"] and ledger["sent"]["error"] is None
        assert times_sent(sandbox, provider, document) == 1


def test_a_change_the_ledger_refuses_is_kept_on_the_link_and_shown(app, sandbox, connect, org_unit, api, flow):
    import json

    from tests.portal.sync.conftest import fault

    connection_id = connect("bexio")
    ingest_invoice(app, api, org_unit)
    assert run_push(app, connection_id)[1]["pushed"] == 1
    external_id, body = _customer_body(app, org_unit, street="Bahnhofstrasse 1")
    api[0](f"customers/{external_id}", body)
    refusal = {
        "error_code": 422,
        "message": "The form could not be saved due to the following errors:.",
        "errors": ["street_name [Invalid.]"],
    }
    fault(
        sandbox,
        provider="bexio",
        kind="hostile_reply",
        status=422,
        body=json.dumps(refusal),
        methods=["POST"],
        path_pattern=r"/2\.0/contact/\d+$",
        count=1,
    )

    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded" and counts.get("customers_failed") == 1, (counts, message)
    link = _link(app, connection_id, org_unit["customer_id"])
    assert link.update_error.startswith("The change of address_lines was not taken:")
    assert "street_name [Invalid.]" in link.update_error
    assert not _due(app, connection_id)  # not retried every run: it waits for the next change
    page = flow.client.get(f"/connections/{connection_id}/customers").get_data(as_text=True)
    assert "data-update-error" in page and "The change of address_lines was not taken" in page
