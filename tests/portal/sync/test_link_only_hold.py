"""Link-only mode: a held invoice is shown with a link to fix it, and pushes once the customer is linked."""

from __future__ import annotations

from tests.conftest import csrf_token_of
from tests.portal.sync.conftest import ledger_documents


def test_held_invoice_is_listed_with_a_fix_link_and_pushes_after_linking(app, sandbox, connect, make_invoice, flow):
    from portal.customers import services as customers
    from portal.extensions import db
    from portal.models import Connection, Customer, ExternalRecord, Invoice
    from portal.sync import push

    connection_id = connect("bexio", customer_mode="link_only")
    invoice_id, number = make_invoice()
    with app.app_context():
        customers.fetch_ledger_customers(db.session.get(Connection, connection_id))
        db.session.commit()
        record = push.push_invoice(db.session.get(Connection, connection_id), db.session.get(Invoice, invoice_id))
        assert record.state.value == "needs_action"
        # A hold is a hold: the push does not take the invoice again until someone acts.
        connection = db.session.get(Connection, connection_id)
        assert invoice_id not in push.due_invoice_ids(connection)
        customer = db.session.get(Customer, db.session.get(Invoice, invoice_id).customer_id)
        customer_ref, customer_name = customer.external_id, customer.name

    page = flow.client.get(f"/connections/{connection_id}/customers").get_data(as_text=True)
    assert "Held for their customer" in page and number in page and customer_name in page
    assert "The push does not retry them by itself" in page
    fix = f"/connections/{connection_id}/customers?link_customer={customer_ref}"
    assert f'href="{fix}#manual-link"' in page

    # Follow the link: the form comes filled in with the customer; link it to a ledger contact.
    form_page = flow.client.get(fix).get_data(as_text=True)
    assert f'value="{customer_ref}"' in form_page
    linked = flow.client.post(
        f"/connections/{connection_id}/customers/links",
        data={"customer": customer_ref, "external_id": "1", "csrf_token": csrf_token_of(form_page)},
    )
    assert linked.status_code in (200, 302), linked.get_data(as_text=True)

    with app.app_context():
        # Linking released the hold: the invoice is due again.
        assert push.record_for(db.session.get(Connection, connection_id), record.kind, invoice_id).state.value == (
            "pending"
        )
        assert invoice_id in push.due_invoice_ids(db.session.get(Connection, connection_id))
        record = push.push_invoice(db.session.get(Connection, connection_id), db.session.get(Invoice, invoice_id))
        assert record.state.value == "pushed", record.last_error_text
        assert (
            db.session.scalar(db.select(db.func.count(ExternalRecord.id)).filter_by(state="pushed", kind="invoice"))
            == 1
        )
    assert len(ledger_documents(sandbox, "bexio", number)) == 1
    assert "Held for their customer" not in flow.client.get(f"/connections/{connection_id}/customers").get_data(
        as_text=True
    )
