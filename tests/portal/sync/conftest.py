"""A fresh organization connected through the sandbox with good mappings, and invoices to push."""

from __future__ import annotations

import os
from datetime import date, timedelta
from decimal import Decimal

import pytest

from tests.portal.connections.conftest import BEXIO_MAIN, QBO_US, flow, sandbox  # noqa: F401 - fixtures
from tests.portal.mappings.conftest import GOOD_DEFAULTS
from tests.portal.sync.rq_workers import control, sandbox_get

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


#: The rate of each provider's mapped default tax code (GOOD_DEFAULTS: Exact VAT code 2, QuickBooks US
#: "California", bexio UN81): the helpers' invoices are at it, so the ledger books them as the SaaS did.
DEFAULT_RATE = {"exact-online": Decimal("21"), "quickbooks": Decimal("8"), "bexio": Decimal("8.1")}


def unit_rate(unit_id: int) -> Decimal:
    """Return the rate of the default tax code of the unit's newest connection (21 without one); in an app context."""
    from portal.extensions import db
    from portal.models import Connection

    provider = db.session.scalar(
        db.select(Connection.provider).where(Connection.business_unit_id == unit_id).order_by(Connection.id.desc())
    )
    return DEFAULT_RATE.get(provider or "", Decimal("21"))


#: provider → the field of an invoice in the sandbox ledger that carries our reference (the invoice number).
REFERENCE_FIELD = {"exact-online": "YourRef", "quickbooks": "DocNumber", "bexio": "api_reference"}


def ledger_invoices(sandbox_url: str, provider: str) -> list[dict]:
    """Return every invoice of the provider's company (of :data:`CONNECT`) in the sandbox ledger."""
    data = sandbox_get(sandbox_url, f"ledger/{provider}/{CONNECT[provider][1]}")
    if provider == "exact-online":
        return data["tables"].get("SalesInvoices", [])
    if provider == "quickbooks":
        return data["entities"].get("Invoice", [])
    return data["invoices"]


def ledger_documents(sandbox_url: str, provider: str, reference: str) -> list[dict]:
    """Return the sandbox ledger's invoices carrying our reference (YourRef, DocNumber, api_reference)."""
    return [r for r in ledger_invoices(sandbox_url, provider) if r.get(REFERENCE_FIELD[provider]) == reference]


def fault(sandbox_url: str, **body) -> None:
    """Inject a sandbox fault."""
    control(sandbox_url, "faults", body)


def new_organization(app, label: str, unit_names: list[str]) -> dict:
    """Create an organization with the named business units, one customer and one product.

    Returns their ids: ``org_id``, ``unit_ids`` (in the order of ``unit_names``), ``customer_id``
    and ``product_id``. ``label`` names the organization ("<label> Holding") and its customer.
    """
    from portal.extensions import db
    from portal.models import BusinessUnit, Customer, Organization, Product

    with app.app_context():
        org = Organization(external_id=f"org-{os.urandom(3).hex()}", name=f"{label} Holding", country="NL")
        units = [BusinessUnit(organization=org, name=name, country="NL", currency="EUR") for name in unit_names]
        customer = Customer(
            organization=org,
            external_id=f"cus-{os.urandom(3).hex()}",
            name=f"{label} Customer {os.urandom(2).hex()}",
            email=f"billing@{label.lower()}.example",
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
        db.session.add_all([org, *units, customer])
        db.session.flush()
        product.organization_id = org.id
        db.session.add(product)
        db.session.commit()
        return {
            "org_id": org.id,
            "unit_ids": [unit.id for unit in units],
            "customer_id": customer.id,
            "product_id": product.id,
        }


def connect_unit(
    app,
    flow,  # noqa: F811 - a Flow, as the flow fixture imported above returns
    unit_id: int,
    provider: str,
    *,
    customer_mode: str | None = None,
    **mapping_overrides,
) -> int:
    """Connect the unit to the provider's company of :data:`CONNECT` with working mappings; return the id.

    The connection is made by the connect services without their pages (:meth:`Flow.connected`;
    the pages are tested in tests/portal/connections), its reference data is read, its mappings
    set to the working defaults (with ``mapping_overrides``), and it starts at midnight so that
    invoices of today are due.
    """
    from portal.extensions import db
    from portal.mappings import services
    from portal.models import Connection

    region, company, choices = CONNECT[provider]
    connection_id = flow.connected(unit_id, provider, region, company=company, **choices)
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        services.refresh_reference(connection)
        values = {**GOOD_DEFAULTS[provider], **NO_TAX_LINE.get(provider, {}), **mapping_overrides}
        services.set_mappings(connection, values)
        connection.sync_from = connection.sync_from.replace(hour=0, minute=0, second=0, microsecond=0)
        if customer_mode:
            connection.settings = {**(connection.settings or {}), "customer_mode": customer_mode}
        db.session.commit()
    return connection_id


def add_invoice(
    app,
    org: dict,
    unit_id: int,
    number: str | None = None,
    *,
    issue_date: date | None = None,
    quantity: str = "2",
    tax_rate: Decimal | None = None,
) -> tuple[int, str]:
    """Add a committed one-line invoice of the unit (to ``org``'s customer, of its product); return (id, number).

    ``org`` is what :func:`new_organization` returns. The line is ``quantity`` hours at 100.00
    with ``tax_rate`` % tax (default: the rate of the unit's connection's default tax code,
    :func:`unit_rate`); the invoice is of today unless ``issue_date`` says otherwise.
    """
    from portal.extensions import db
    from portal.models import Invoice, InvoiceLine

    number = number or f"LL-{os.urandom(3).hex().upper()}"
    day = issue_date or date.today()
    qty, price = Decimal(quantity), Decimal("100.00")
    with app.app_context():
        rate = tax_rate if tax_rate is not None else unit_rate(unit_id)
    net = (qty * price).quantize(Decimal("0.01"))
    tax = (net * rate / 100).quantize(Decimal("0.01"))
    with app.app_context():
        invoice = Invoice(
            organization_id=org["org_id"],
            business_unit_id=unit_id,
            customer_id=org["customer_id"],
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
                tax_rate=rate,
                net_amount=net,
                tax_amount=tax,
                product_id=org["product_id"],
            )
        )
        db.session.add(invoice)
        db.session.commit()
        return invoice.id, number


@pytest.fixture
def org_unit(app) -> dict:
    """A fresh organization with one business unit, one customer and one product."""
    org = new_organization(app, "Pushtest", ["Pushtest NL"])
    (unit_id,) = org["unit_ids"]
    return {
        "org_id": org["org_id"],
        "unit_id": unit_id,
        "customer_id": org["customer_id"],
        "product_id": org["product_id"],
    }


@pytest.fixture
def connect(app, flow, org_unit):  # noqa: F811 - the flow fixture imported above
    """Connect the unit to ``provider``, read its reference data and set working defaults; return the id."""

    def do(provider: str, *, customer_mode: str | None = None, **mapping_overrides) -> int:
        return connect_unit(app, flow, org_unit["unit_id"], provider, customer_mode=customer_mode, **mapping_overrides)

    return do


@pytest.fixture
def make_invoice(app, org_unit):
    """Return a function adding a committed invoice with one line; returns (id, number)."""

    def make(number: str | None = None, *, issue_date: date | None = None, quantity: str = "2") -> tuple[int, str]:
        return add_invoice(app, org_unit, org_unit["unit_id"], number, issue_date=issue_date, quantity=quantity)

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
