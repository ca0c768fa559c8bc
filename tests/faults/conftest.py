"""Fixtures of the fault matrix, and the matrix itself: printed at the end and written as JSON.

Every case appends one row per provider to :data:`tests.faults.harness.MATRIX`; the terminal summary prints the
table and writes it to ``test-results/faults-matrix.json``.
"""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from decimal import Decimal

import pytest

from tests.portal.connections.conftest import flow, sandbox  # noqa: F401 - fixtures
from tests.portal.mappings.conftest import GOOD_DEFAULTS
from tests.portal.sync.conftest import CONNECT, PROVIDERS
from tests.portal.sync.rq_workers import ROOT

from .harness import INVOICES, MATRIX, Case, Pool, Target, control

MATRIX_PATH = ROOT / "test-results" / "faults-matrix.json"
COLUMNS = ("provider", "fault", "invoices", "in_ledger", "duplicates", "lost", "mismatched", "failed", "waiting")
COLUMNS += ("connection", "fault_events", "verdict")


@pytest.fixture
def targets(app, flow, sandbox):  # noqa: F811 - the flow and sandbox fixtures imported above
    """One organization with a business unit per provider, each connected with working mappings.

    Returns the :class:`~tests.faults.harness.Target` list, each with ``INVOICES`` committed
    invoices of today (the connections start at midnight, so all are due).
    """
    # The providers' own quotas (Exact: 60 calls a minute per division) would pace a batch for
    # minutes; the limiter is proven elsewhere (tests/portal/sync/test_limiter.py, bench/), so the
    # sandbox's limits are raised tenfold here. The 429 storm case injects its own 429s.
    control(sandbox, "quotas", {"scale": 10})
    from portal.extensions import db
    from portal.mappings import services
    from portal.models import BusinessUnit, Connection, Customer, Invoice, InvoiceLine, Organization, Product

    with app.app_context():
        org = Organization(external_id=f"org-{os.urandom(3).hex()}", name="Faults Holding", country="NL")
        customer = Customer(
            organization=org,
            external_id=f"cus-{os.urandom(3).hex()}",
            name=f"Faults Customer {os.urandom(2).hex()}",
            email="billing@faults.example",
            street="Keizersgracht 1",
            postcode="1015 AA",
            city="Amsterdam",
            country="NL",
        )
        units = {p: BusinessUnit(organization=org, name=f"Faults {p}", country="NL", currency="EUR") for p in PROVIDERS}
        db.session.add_all([org, customer, *units.values()])
        db.session.flush()
        product = Product(
            external_id="prd-1", code="CONSULT", name="Consulting", unit_price=Decimal("100"), tax_rate=Decimal("21")
        )
        product.organization_id = org.id
        db.session.add(product)
        db.session.commit()
        ids = {p: u.id for p, u in units.items()}
        org_id, customer_id, product_id = org.id, customer.id, product.id

    result = []
    for provider in PROVIDERS:
        region, company, choices = CONNECT[provider]
        connection_id = flow.connect(ids[provider], provider, region, company=company, **choices)
        with app.app_context():
            connection = db.session.get(Connection, connection_id)
            services.refresh_reference(connection)
            services.set_mappings(connection, dict(GOOD_DEFAULTS[provider]))
            connection.sync_from = connection.sync_from.replace(hour=0, minute=0, second=0, microsecond=0)
            day, net, tax = date.today(), Decimal("200.00"), Decimal("42.00")
            invoices = []
            for _ in range(INVOICES):
                number = f"FX-{os.urandom(4).hex().upper()}"
                invoice = Invoice(
                    organization_id=org_id,
                    business_unit_id=ids[provider],
                    customer_id=customer_id,
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
                        quantity=Decimal("2"),
                        unit_price=Decimal("100.00"),
                        tax_rate=Decimal("21"),
                        net_amount=net,
                        tax_amount=tax,
                        product_id=product_id,
                    )
                )
                db.session.add(invoice)
                invoices.append((invoice, number))
            db.session.commit()
            result.append(Target(provider, connection_id, [(inv.id, number) for inv, number in invoices]))
    return result


@pytest.fixture(scope="module")
def worker_pool(app, database_url, redis_url, tmp_path_factory):
    """Worker processes on the suite's Redis and database, shared by the cases (they replace killed ones).

    Module-scoped: the workers stop when the matrix is done, so they never take later tests' jobs.
    """
    pool = Pool(app, database_url, redis_url, tmp_path_factory.mktemp("workers"))
    pool.ensure()
    yield pool
    pool.stop()


@pytest.fixture
def make_case(app, worker_pool, sandbox, targets):  # noqa: F811 - sandbox fixture above
    """Return ``make_case(fault, app=…, pool=…)`` → a :class:`Case` on the three connections.

    By default the case runs on the suite's app and the shared workers; the sandbox's faults are
    cleared when the test ends.
    """
    cases: list[Case] = []

    def make(fault: str, *, app=app, pool=worker_pool) -> Case:
        case = Case(app, fault, targets, sandbox=sandbox, pool=pool)
        cases.append(case)
        return case

    yield make
    for case in cases:
        case.close()


def _table(rows: list[dict]) -> list[str]:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    lines.append("  ".join("-" * widths[c] for c in COLUMNS))
    for row in rows:
        lines.append("  ".join(str(row[c]).ljust(widths[c]) for c in COLUMNS))
        if row["notes"]:
            lines.append(f"    {row['notes']}")
    return lines


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Print the fault matrix and write it to test-results/faults-matrix.json."""
    if not MATRIX:
        return
    terminalreporter.section("fault matrix (provider x fault)")
    for line in _table(MATRIX):
        terminalreporter.write_line(line)
    MATRIX_PATH.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "scale": os.environ.get("PROOF_SCALE") or "ci",
        "database": "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgresql") else "sqlite",
        "rows": MATRIX,
        "passed": all(r["verdict"] == "PASS" for r in MATRIX),
    }
    MATRIX_PATH.write_text(json.dumps(payload, indent=2) + "\n")
    terminalreporter.write_line(f"written to {MATRIX_PATH.relative_to(ROOT)}")
