"""Setting or correcting the division on the customer's behalf, from what the token can reach."""

from __future__ import annotations

import html

import pytest

from portal.mappings import services
from portal.models import AuditEvent, Connection, ReferenceData


def _connection(db, connection_id) -> Connection:
    db.session.expire_all()
    return db.session.get(Connection, connection_id)


def _division_events(db, connection_id) -> list[AuditEvent]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            db.select(AuditEvent).where(
                AuditEvent.subject_id == connection_id, AuditEvent.kind == "connection.division_changed"
            )
        )
    )


def test_the_page_lists_what_the_token_reaches(connect):
    mapper = connect("exact-online", refresh=False)
    page = mapper.flow.client.get(f"/connections/{mapper.id}/division").get_data(as_text=True)
    assert "3010002" in page and "Holding De Vries" in page and "no — NoDivisionAccess" in page
    assert "Nothing has been pushed from this connection yet, so no record links are affected." in page


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("3010003", "cannot be used: the authorizing user has no rights in it, or it was not granted at consent"),
        ("4242424", "division 4242424 is not visible to the user who authorized this connection"),
        ("3010001", "already pinned to Ledgerlink Demo B.V. (3010001)"),
    ],
)
def test_an_unreachable_number_is_refused_with_the_reason(db, connect, number, message):
    mapper = connect("exact-online", refresh=False)
    refused = mapper.flow.post(f"/connections/{mapper.id}/division", number=number)
    assert refused.status_code == 400
    assert message in refused.get_data(as_text=True)
    assert _connection(db, mapper.id).external_company_id == "3010001"
    assert _division_events(db, mapper.id) == []


def test_a_reachable_division_is_pinned_audited_and_its_reference_data_read(db, connect):
    mapper = connect("exact-online")
    changed = mapper.flow.post(f"/connections/{mapper.id}/division", number="3010002")
    assert changed.status_code == 302, changed.get_data(as_text=True)
    connection = _connection(db, mapper.id)
    assert (connection.external_company_id, connection.external_company_name) == ("3010002", "Ledgerlink Services B.V.")
    (event,) = _division_events(db, mapper.id)
    assert event.before["company"] == "3010001" and event.after["company"] == "3010002"
    assert event.after["pushed_records"] == 0
    divisions = db.session.scalars(
        db.select(ReferenceData).where(ReferenceData.connection_id == mapper.id, ReferenceData.kind == "divisions")
    ).one()
    assert divisions.find("3010002")["active"]
    assert "Division changed from Ledgerlink Demo B.V. (3010001)" in mapper.page()  # mapping history


def test_after_pushes_the_change_needs_an_explicit_confirmation(db, connect, monkeypatch):
    monkeypatch.setattr(services, "pushed_record_count", lambda connection: 12)
    mapper = connect("exact-online", refresh=False)
    page = mapper.flow.client.get(f"/connections/{mapper.id}/division").get_data(as_text=True)
    assert "12 record(s) were pushed to Ledgerlink Demo B.V. (3010001)" in page and 'name="confirm"' in page
    unconfirmed = mapper.flow.post(f"/connections/{mapper.id}/division", number="3010002")
    assert unconfirmed.status_code == 409
    body = unconfirmed.get_data(as_text=True)
    assert "pushing them again would create them a second time there" in body and "Tick the box" in body
    assert _connection(db, mapper.id).external_company_id == "3010001" and _division_events(db, mapper.id) == []
    confirmed = mapper.flow.post(f"/connections/{mapper.id}/division", number="3010002", confirm="y")
    assert confirmed.status_code == 302
    (event,) = _division_events(db, mapper.id)
    assert event.after["pushed_records"] == 12 and event.after["confirmed"] is True


def test_qbo_reaches_one_company_only(connect):
    mapper = connect("quickbooks", refresh=False)
    page = mapper.flow.client.get(f"/connections/{mapper.id}/division").get_data(as_text=True)
    assert "reaches exactly one company" in page
    refused = mapper.flow.post(f"/connections/{mapper.id}/division", number="9341453908061187")
    assert refused.status_code == 400 and "is not visible" in refused.get_data(as_text=True)


def _customers_of_the_old_division(db, connection_id: int) -> dict:
    """A linked customer (with its cache row and suggestion) and a held one with its invoice, as pushes leave them."""
    from datetime import date
    from decimal import Decimal

    from portal.models import (
        Customer,
        CustomerLink,
        ExternalRecord,
        Invoice,
        LedgerCustomerCache,
        LinkMethod,
        LinkSuggestion,
        RecordKind,
        RecordState,
    )

    connection = db.session.get(Connection, connection_id)
    org_id = connection.business_unit.organization_id
    linked = Customer(organization_id=org_id, external_id="cus-div-1", name="Linked B.V.", country="NL")
    held = Customer(organization_id=org_id, external_id="cus-div-2", name="Held B.V.", country="NL")
    db.session.add_all([linked, held])
    db.session.flush()
    invoice = Invoice(
        organization_id=org_id,
        business_unit_id=connection.business_unit_id,
        customer_id=held.id,
        external_id="inv-div-1",
        number="DIV-1",
        issue_date=date.today(),
        currency="EUR",
        subtotal=Decimal(0),
        tax_total=Decimal(0),
        total=Decimal(0),
    )
    db.session.add(invoice)
    db.session.flush()
    db.session.add_all(
        [
            CustomerLink(
                connection_id=connection_id, customer_id=linked.id, external_id="acc-1", method=LinkMethod.push
            ),
            LedgerCustomerCache(connection_id=connection_id, external_id="acc-1", name="Linked B.V."),
            LedgerCustomerCache(connection_id=connection_id, external_id="acc-2", name="Held B.V."),
            LinkSuggestion(
                connection_id=connection_id, customer_id=held.id, external_id="acc-2", score=85, method="name"
            ),
            ExternalRecord(
                connection_id=connection_id,
                kind=RecordKind.customer,
                local_id=linked.id,
                state=RecordState.pushed,
                external_id="acc-1",
            ),
            ExternalRecord(
                connection_id=connection_id,
                kind=RecordKind.customer,
                local_id=held.id,
                state=RecordState.needs_action,
                last_error_class="customer_not_linked",
                last_error_text="held",
            ),
            ExternalRecord(
                connection_id=connection_id,
                kind=RecordKind.invoice,
                local_id=invoice.id,
                state=RecordState.needs_action,
                last_error_class="customer_not_linked",
                last_error_text="held",
            ),
        ]
    )
    db.session.commit()
    return {"invoice": invoice.id}


def test_a_division_change_clears_the_old_divisions_customers_and_says_so_with_the_counts(db, connect):
    from portal.models import CustomerLink, ExternalRecord, LedgerCustomerCache, LinkSuggestion, RecordKind

    mapper = connect("exact-online", refresh=False)
    made = _customers_of_the_old_division(db, mapper.id)

    page = mapper.flow.client.get(f"/connections/{mapper.id}/division").get_data(as_text=True)
    assert "1 customer link(s) to the old division" in page
    assert "2 cached ledger customer(s)" in page and "1 link suggestion(s)" in page
    assert "2 record(s) of customers created in or found in the old division" in page and 'name="confirm"' in page
    unconfirmed = mapper.flow.post(f"/connections/{mapper.id}/division", number="3010002")
    assert unconfirmed.status_code == 409 and "Tick the box" in unconfirmed.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count(CustomerLink.id))) == 1

    confirmed = mapper.flow.post(f"/connections/{mapper.id}/division", number="3010002", confirm="y")

    assert confirmed.status_code == 302, confirmed.get_data(as_text=True)
    db.session.expire_all()
    for model in (CustomerLink, LedgerCustomerCache, LinkSuggestion):
        assert db.session.scalar(db.select(db.func.count(model.id)).filter_by(connection_id=mapper.id)) == 0
    assert (
        db.session.scalar(
            db.select(db.func.count(ExternalRecord.id)).filter_by(connection_id=mapper.id, kind=RecordKind.customer)
        )
        == 0
    )
    # The invoice held for its customer goes back to the push: its customer is linked or created anew.
    invoice_record = db.session.scalar(
        db.select(ExternalRecord).filter_by(connection_id=mapper.id, kind=RecordKind.invoice, local_id=made["invoice"])
    )
    assert invoice_record.state.value == "pending"
    (event,) = _division_events(db, mapper.id)
    assert event.after["cleared"] == {
        "links": 1,
        "ledger_customers": 2,
        "suggestions": 1,
        "customer_records": 2,
        "reference_lists": 0,
    }


def test_the_confirmation_counts_the_reference_lists_which_are_read_again_from_the_new_division(db, connect):
    mapper = connect("exact-online")
    old = {
        r.kind: r.fetched_at for r in db.session.scalars(db.select(ReferenceData).filter_by(connection_id=mapper.id))
    }
    assert len(old) > 3

    page = html.unescape(mapper.flow.client.get(f"/connections/{mapper.id}/division").get_data(as_text=True))

    assert f"The {len(old)} cached reference list(s) of the old division" in page
    assert "are cleared and read again from the new one" in page
    assert "their codes are checked against the new division's lists" in page
    counts = page[page.index('id="division-counts"') :]
    assert f"<td>Reference lists (tax codes, items, journals …)</td><td>{len(old)}</td>" in counts
    assert "<td>Customer links</td><td>0</td><td>cleared</td>" in counts

    assert mapper.flow.post(f"/connections/{mapper.id}/division", number="3010002").status_code == 302
    db.session.expire_all()
    new = {
        r.kind: r.fetched_at for r in db.session.scalars(db.select(ReferenceData).filter_by(connection_id=mapper.id))
    }
    assert set(new) == set(old) and min(new.values()) > max(old.values())  # every list read anew
    (event,) = _division_events(db, mapper.id)
    assert event.after["cleared"]["reference_lists"] == len(old)
