"""A fresh organization connected through the sandbox with good mappings, and invoices to push."""

from __future__ import annotations

import os
from datetime import date, timedelta
from decimal import Decimal

import pytest
import requests

from tests.portal.connections.conftest import BEXIO_MAIN, QBO_US, flow, sandbox  # noqa: F401 - fixtures
from tests.portal.mappings.conftest import GOOD_DEFAULTS

#: provider → (region, company, consent choices) for Flow.connect.
CONNECT = {
    "exact-online": ("nl", "3010001", {"user": "jan.devries", "divisions": ["3010001"]}),
    "quickbooks": (None, QBO_US, {"user": "u-ada", "realm_id": QBO_US}),
    "bexio": (None, BEXIO_MAIN, {"username": "max.mustermann", "company_id": BEXIO_MAIN}),
}
PROVIDERS = list(CONNECT)
#: Mapping values to blank per provider for these tests. None: the QuickBooks adapter turns the
#: mapped sales tax code into TAX lines plus the header's TxnTaxCodeRef in US companies.
NO_TAX_LINE: dict[str, dict[str, str]] = {}


def ledger_documents(sandbox_url: str, provider: str, reference: str) -> list[dict]:
    """Return the sandbox ledger's invoices carrying our reference (YourRef, DocNumber, api_reference)."""
    company = CONNECT[provider][1]
    response = requests.get(f"{sandbox_url}/_control/ledger/{provider}/{company}", timeout=10)
    response.raise_for_status()
    data = response.json()
    if provider == "exact-online":
        return [r for r in data["tables"].get("SalesInvoices", []) if r.get("YourRef") == reference]
    if provider == "quickbooks":
        return [r for r in data["entities"].get("Invoice", []) if r.get("DocNumber") == reference]
    return [r for r in data["invoices"] if r.get("api_reference") == reference]


def fault(sandbox_url: str, **body) -> None:
    """Inject a sandbox fault."""
    response = requests.post(f"{sandbox_url}/_control/faults", json=body, timeout=10)
    assert response.status_code < 300, response.text


@pytest.fixture
def org_unit(app) -> dict:
    """A fresh organization with one business unit, one customer and one product."""
    from portal.extensions import db
    from portal.models import BusinessUnit, Customer, Organization, Product

    with app.app_context():
        org = Organization(external_id=f"org-{os.urandom(3).hex()}", name="Pushtest Holding", country="NL")
        unit = BusinessUnit(organization=org, name="Pushtest NL", country="NL", currency="EUR")
        customer = Customer(
            organization=org,
            external_id=f"cus-{os.urandom(3).hex()}",
            name=f"Pushtest Customer {os.urandom(2).hex()}",
            email="billing@pushtest.example",
            street="Keizersgracht 1",
            postcode="1015 AA",
            city="Amsterdam",
            country="NL",
        )
        product = Product(
            external_id="prd-1",
            code="CONSULT",
            name="Consulting",
            unit_price=Decimal("100"),
            tax_rate=Decimal("21"),
        )
        db.session.add_all([org, unit, customer])
        db.session.flush()
        product.organization_id = org.id
        db.session.add(product)
        db.session.commit()
        return {"org_id": org.id, "unit_id": unit.id, "customer_id": customer.id, "product_id": product.id}


@pytest.fixture
def connect(app, flow, org_unit):  # noqa: F811 - the flow fixture imported above
    """Connect the unit to ``provider``, read its reference data and set working defaults; return the id."""
    from portal.extensions import db
    from portal.mappings import services
    from portal.models import Connection

    def do(provider: str, *, customer_mode: str | None = None, **mapping_overrides) -> int:
        region, company, choices = CONNECT[provider]
        connection_id = flow.connect(org_unit["unit_id"], provider, region, company=company, **choices)
        with app.app_context():
            connection = db.session.get(Connection, connection_id)
            services.refresh_reference(connection)
            values = {**GOOD_DEFAULTS[provider], **NO_TAX_LINE.get(provider, {}), **mapping_overrides}
            services.set_mappings(connection, values)
            # Invoices of today must be due: start the connection at midnight.
            connection.sync_from = connection.sync_from.replace(hour=0, minute=0, second=0, microsecond=0)
            if customer_mode:
                connection.settings = {**(connection.settings or {}), "customer_mode": customer_mode}
            db.session.commit()
        return connection_id

    return do


@pytest.fixture
def make_invoice(app, org_unit):
    """Return a function adding a committed invoice with one line; returns (id, number)."""
    from portal.extensions import db
    from portal.models import Invoice, InvoiceLine

    def make(number: str | None = None, *, issue_date: date | None = None, quantity: str = "2") -> tuple[int, str]:
        number = number or f"LL-{os.urandom(3).hex().upper()}"
        day = issue_date or date.today()
        qty, price = Decimal(quantity), Decimal("100.00")
        net = (qty * price).quantize(Decimal("0.01"))
        tax = (net * Decimal("0.21")).quantize(Decimal("0.01"))
        with app.app_context():
            invoice = Invoice(
                organization_id=org_unit["org_id"],
                business_unit_id=org_unit["unit_id"],
                customer_id=org_unit["customer_id"],
                external_id=f"inv-{number}",
                number=number,
                issue_date=day,
                due_date=day + timedelta(days=30),
                currency="EUR",
                subtotal=net,
                tax_total=tax,
                total=net + tax,
            )
            invoice.lines.append(
                InvoiceLine(
                    position=1,
                    description="Consulting hours",
                    quantity=qty,
                    unit_price=price,
                    tax_rate=Decimal("21"),
                    net_amount=net,
                    tax_amount=tax,
                    product_id=org_unit["product_id"],
                )
            )
            db.session.add(invoice)
            db.session.commit()
            return invoice.id, number

    return make


@pytest.fixture
def api(app, client, org_unit):
    """Return (put, get) callables on /api/v1/organizations/<org>/… with an ingest key."""
    from portal.api.auth import create_client
    from portal.extensions import db
    from portal.models import Organization

    with app.test_request_context():
        _, key = create_client(f"pipeline-{os.urandom(2).hex()}", ["ingest"])
        db.session.commit()
    with app.app_context():
        org_id = db.session.get(Organization, org_unit["org_id"]).external_id
    headers = {"Authorization": f"Bearer {key}"}
    base = f"/api/v1/organizations/{org_id}"

    def put(path: str, body: dict):
        response = client.put(f"{base}/{path}", json=body, headers=headers)
        assert response.status_code in (200, 201), response.get_json()
        return response.get_json()

    def get(path: str):
        return client.get(f"{base}/{path}", headers=headers)

    return put, get
