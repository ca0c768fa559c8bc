"""Back-fill fixtures: the sync fixtures (org_unit, connect, make_invoice) plus older invoices and a runner."""

from __future__ import annotations

import logging
import os
from datetime import date, timedelta
from decimal import Decimal

import pytest

from tests.portal.connections.conftest import flow, sandbox  # noqa: F401 - fixtures
from tests.portal.sync.conftest import connect, make_invoice, org_unit  # noqa: F401 - fixtures

#: A range well before any connection date.
FROM, TO = date(2025, 1, 1), date(2025, 12, 31)


@pytest.fixture(autouse=True)
def backfill_settings(app, monkeypatch):
    """Small chunks, and no pacing: pacing under the quota is measured in bench/backfill.py.

    The sandbox quotas stay on; the tests stay within them without waiting for minute windows.
    Settings the app did not have are removed again afterwards, not left as None.
    """
    monkeypatch.setitem(app.config, "HISTORY_CHUNK_SIZE", 2)
    monkeypatch.setitem(app.config, "RATE_LIMITER", False)


@pytest.fixture
def old_invoices(make_invoice):  # noqa: F811
    """Return a function adding ``n`` invoices dated in 2025 (before the connection date); returns numbers."""

    def make(n: int, *, start: date = FROM + timedelta(days=30)) -> list[str]:
        prefix = f"H{os.urandom(2).hex().upper()}"
        return [make_invoice(f"{prefix}-{i:03d}", issue_date=start + timedelta(days=i))[1] for i in range(n)]

    return make


@pytest.fixture
def other_customer(app, org_unit):  # noqa: F811
    """Add a second customer of the organization; return its id."""
    from portal.extensions import db
    from portal.models import Customer

    with app.app_context():
        customer = Customer(
            organization_id=org_unit["org_id"],
            external_id=f"cus-{os.urandom(3).hex()}",
            name=f"Unlinked Customer {os.urandom(2).hex()}",
            email="ap@unlinked.example",
            country="NL",
        )
        db.session.add(customer)
        db.session.commit()
        return customer.id


@pytest.fixture
def invoice_for(app, org_unit):  # noqa: F811
    """Return a function adding an invoice of another customer: (customer_id, number, day) -> id."""
    from portal.extensions import db
    from portal.models import Invoice, InvoiceLine

    def make(customer_id: int, number: str, day: date) -> int:
        with app.app_context():
            invoice = Invoice(
                organization_id=org_unit["org_id"],
                business_unit_id=org_unit["unit_id"],
                customer_id=customer_id,
                external_id=f"inv-{number}",
                number=number,
                issue_date=day,
                due_date=day + timedelta(days=30),
                currency="EUR",
                subtotal=Decimal("100.00"),
                tax_total=Decimal("21.00"),
                total=Decimal("121.00"),
            )
            invoice.lines.append(
                InvoiceLine(
                    position=1,
                    description="Consulting",
                    quantity=Decimal("1"),
                    unit_price=Decimal("100"),
                    tax_rate=Decimal("21"),
                    net_amount=Decimal("100.00"),
                    tax_amount=Decimal("21.00"),
                    product_id=org_unit["product_id"],
                )
            )
            db.session.add(invoice)
            db.session.commit()
            return invoice.id

    return make


@pytest.fixture
def backfill_of(app):
    """Return helpers: preview(connection_id, kinds) -> dict, start(...) -> id, run(id), state(id) -> dict."""
    from portal.extensions import db
    from portal.history import services
    from portal.models import Connection

    class Helper:
        def scope(self, connection_id, kinds=None, date_from=FROM, date_to=TO):
            connection = db.session.get(Connection, connection_id)
            return connection, services.parse_scope(connection, date_from, date_to, kinds)

        def preview(self, connection_id, kinds=None, **dates) -> dict:
            with app.app_context():
                connection, scope = self.scope(connection_id, kinds, **dates)
                return services.preview(connection, scope).as_dict()

        def start(self, connection_id, kinds=None, **dates) -> int:
            with app.app_context():
                connection, scope = self.scope(connection_id, kinds, **dates)
                data = services.preview(connection, scope).as_dict()
                connection = db.session.get(Connection, connection_id)
                return services.start(connection, scope, started_by=None, preview_data=data).id

        def run(self, backfill_id: int) -> dict:
            """Run the job as a worker would (jobs.history.run_backfill in the app's context)."""
            from jobs.history import run_backfill

            with app.app_context():
                return run_backfill(backfill_id)

        def state(self, backfill_id: int) -> dict:
            from portal.models import Backfill

            with app.app_context():
                return services.as_dict(db.session.get(Backfill, backfill_id))

        def call(self, backfill_id: int, action: str) -> str:
            from portal.models import Backfill

            with app.app_context():
                return getattr(services, action)(db.session.get(Backfill, backfill_id))

    logging.getLogger("ledgerlink.jobs.history").setLevel(logging.ERROR)
    return Helper()


def ledger_invoices(sandbox_url: str, reference: str) -> int:
    """Return how many Exact sandbox invoices carry ``reference``."""
    from tests.portal.sync.conftest import ledger_documents

    return len(ledger_documents(sandbox_url, "exact-online", reference))
