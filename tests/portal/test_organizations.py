"""Organization search and record lists: htmx fragments, filters, pagination, bad parameters."""

from __future__ import annotations

import pytest


@pytest.fixture
def staff_client(client, make_staff, login, demo_data):
    login(make_staff("support"))
    return client


def _first_org(app):
    from portal.extensions import db
    from portal.models import Organization

    with app.app_context():
        org = db.session.scalars(db.select(Organization).order_by(Organization.id)).first()
        return {"id": org.id, "name": org.name, "external_id": org.external_id}


def test_search_returns_the_full_page_or_the_fragment(app, staff_client):
    org = _first_org(app)
    word = org["name"].split()[0]
    page = staff_client.get(f"/organizations/?q={word}")
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    assert org["name"] in page.get_data(as_text=True)
    fragment = staff_client.get(f"/organizations/?q={word}", headers={"HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and org["name"] in body
    assert "HX-Request" in fragment.headers.get("Vary", "")


def test_search_by_saas_id_and_no_match(app, staff_client):
    org = _first_org(app)
    assert org["name"] in staff_client.get(f"/organizations/?q={org['external_id']}").get_data(as_text=True)
    empty = staff_client.get("/organizations/?q=zzz-no-such-org").get_data(as_text=True)
    assert "No organization matches" in empty


def test_search_text_is_escaped(staff_client):
    body = staff_client.get("/organizations/?q=<script>alert(1)</script>").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;" in body


def test_pagination(app, staff_client):
    app.config["PAGE_SIZE"] = 3
    try:
        first = staff_client.get("/organizations/").get_data(as_text=True)
        assert "Page 1 of 3" in first
        third = staff_client.get("/organizations/?page=3").get_data(as_text=True)
        assert "Page 3 of 3" in third
        beyond = staff_client.get("/organizations/?page=9").get_data(as_text=True)
        assert "No organizations yet" in beyond or "Page 9" not in beyond
    finally:
        app.config["PAGE_SIZE"] = 25


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/organizations/?page=abc", "page must be a whole number"),
        ("/organizations/?page=0", "page must be a whole number"),
        ("/organizations/?page=-1", "page must be a whole number"),
        ("/organizations/{id}/invoices?from=2024-13-01", "from must be a date"),
        ("/organizations/{id}/invoices?status=lost", "status must be one of"),
        ("/organizations/{id}/invoices?from=2025-01-02&to=2025-01-01", "from must be on or before to"),
        ("/organizations/{id}/payments?method=cash", "method must be one of"),
        ("/organizations/{id}/customers?country=N1", "country must be a two-letter code"),
        ("/organizations/{id}/invoices?business_unit=x", "business_unit must be a whole number"),
    ],
)
def test_malformed_parameters_are_400_with_a_message(app, staff_client, url, message):
    response = staff_client.get(url.format(id=_first_org(app)["id"]))
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_unknown_organization_is_404(staff_client):
    response = staff_client.get("/organizations/999999")
    assert response.status_code == 404
    assert "no organization with id 999999" in response.get_data(as_text=True)
    assert staff_client.get("/organizations/999999/invoices").status_code == 404
    assert staff_client.get("/organizations/1/ledgers").status_code == 404


def test_organization_page_shows_units_and_counts(app, staff_client):
    org = _first_org(app)
    body = staff_client.get(f"/organizations/{org['id']}").get_data(as_text=True)
    assert "Business units" in body and "Invoices" in body and "Credit notes" in body


def test_invoice_filters(app, staff_client):
    from portal.extensions import db
    from portal.models import Invoice, InvoiceStatus

    org = _first_org(app)
    with app.app_context():
        invoices = db.session.scalars(db.select(Invoice).filter_by(organization_id=org["id"])).all()
        paid = [i.number for i in invoices if i.status is InvoiceStatus.paid]
        unpaid = [i.number for i in invoices if i.status is InvoiceStatus.open]
        newest = max(invoices, key=lambda i: i.issue_date)
        oldest = min(invoices, key=lambda i: i.issue_date)
    assert paid and unpaid
    body = staff_client.get(f"/organizations/{org['id']}/invoices?status=paid", headers={"HX-Request": "true"})
    text = body.get_data(as_text=True)
    assert paid[0] in text and unpaid[0] not in text
    ranged = staff_client.get(
        f"/organizations/{org['id']}/invoices?from={newest.issue_date}&to={newest.issue_date}"
    ).get_data(as_text=True)
    assert newest.number in ranged and (oldest.issue_date == newest.issue_date or oldest.number not in ranged)


@pytest.mark.parametrize("section", ["customers", "products", "invoices", "credit-notes", "payments"])
def test_every_section_lists_records(app, staff_client, section):
    org = _first_org(app)
    response = staff_client.get(f"/organizations/{org['id']}/{section}")
    assert response.status_code == 200
    assert "<table" in response.get_data(as_text=True) or "No " in response.get_data(as_text=True)


@pytest.mark.parametrize("section", ["invoices", "credit-notes", "payments"])
def test_query_count_does_not_grow_with_rows(app, staff_client, count_queries, section):
    org = _first_org(app)
    url = f"/organizations/{org['id']}/{section}"
    app.config["PAGE_SIZE"] = 2
    try:
        with count_queries() as few:
            staff_client.get(url)
        app.config["PAGE_SIZE"] = 25
        with count_queries() as many:
            staff_client.get(url)
    finally:
        app.config["PAGE_SIZE"] = 25
    assert len(many) <= len(few)
