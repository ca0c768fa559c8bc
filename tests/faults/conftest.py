"""Fixtures of the fault matrix, and the matrix itself: written as JSON and printed at the end.

Every case appends one row per provider to :data:`tests.faults.harness.MATRIX`; the process that ran
the cases writes them to ``test-results/faults-matrix.json`` (:mod:`tests.faults.matrix`), and the
run's terminal summary prints the table.
"""

from __future__ import annotations

import os

import pytest

from tests.portal.connections.conftest import flow, sandbox  # noqa: F401 - fixtures
from tests.portal.sync.conftest import PROVIDERS, add_invoice, connect_unit, new_organization
from tests.portal.sync.rq_workers import control

from . import matrix
from .harness import INVOICES, MATRIX, Case, Pool, Target


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
    org = new_organization(app, "Faults", [f"Faults {provider}" for provider in PROVIDERS])
    result = []
    for provider, unit_id in zip(PROVIDERS, org["unit_ids"], strict=True):
        connection_id = connect_unit(app, flow, unit_id, provider)
        numbers = [f"FX-{os.urandom(4).hex().upper()}" for _ in range(INVOICES)]
        invoices = [add_invoice(app, org, unit_id, n) for n in numbers]
        result.append(Target(provider, connection_id, invoices, org=org, unit_id=unit_id))
    return result


def more_invoices(app, targets: list[Target]) -> list[Target]:
    """Return targets of the same connections with ``INVOICES`` new invoices each (for a second batch)."""
    result = []
    for target in targets:
        numbers = [f"FY-{os.urandom(4).hex().upper()}" for _ in range(INVOICES)]
        invoices = [add_invoice(app, target.org, target.unit_id, n) for n in numbers]
        result.append(Target(target.provider, target.connection_id, invoices, org=target.org, unit_id=target.unit_id))
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

    def make(fault: str, *, app=app, pool=worker_pool, targets=targets) -> Case:
        case = Case(app, fault, targets, sandbox=sandbox, pool=pool)
        cases.append(case)
        return case

    yield make
    for case in cases:
        case.close()


def pytest_sessionfinish(session, exitstatus) -> None:
    """Write the rows of the cases this process ran to test-results/faults-matrix.json."""
    if MATRIX:
        matrix.write(MATRIX)
