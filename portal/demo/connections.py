"""Demo connections: one per ledger, connected to the sandbox, with pushed history, failures and a back-fill.

``flask seed connections --if-empty`` (run by ``make run`` after ``seed demo``) gives a newcomer an
ops console with something on it. It serves the provider sandbox on a free local port for the
time it runs, keeping the sandbox's state in ``instance/`` (the file the demo server reads at
start, so the tokens issued here still work there), and for each of Exact Online NL, QuickBooks
US and bexio connects a demo business unit of that country through the normal connect services
(the consent given as the sandbox's consent page gives it), reads the reference data, sets the
defaults, pushes the invoices of the last weeks (those at a tax rate without a code stay held:
the failures to look at) and back-fills the month before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..models import BusinessUnit, Connection, OAuthGrant, Organization, SyncRun, SyncRunKind

log = logging.getLogger(__name__)

#: provider → (unit country, Exact region, company, consent choices, mapping defaults).
LEDGERS: dict[str, tuple[str, str | None, str, dict[str, Any], dict[str, str]]] = {
    "exact-online": (
        "NL",
        "nl",
        "3010001",
        {"user": "jan.devries", "divisions": ["3010001"]},
        {"item": "CONSULT", "tax_code": "2", "journal": "70", "payment_condition": "30"},
    ),
    "quickbooks": (
        "US",
        None,
        "9341453908059321",
        {"user": "u-ada", "realm_id": "9341453908059321"},
        {"item": "1", "tax_code": "2", "class": "1", "payment_condition": "3", "gl_account": "1"},
    ),
    "bexio": (
        "CH",
        None,
        "q69vysq7fkzl",
        {"username": "max.mustermann", "company_id": "q69vysq7fkzl"},
        {"tax_code": "UN81", "gl_account": "3200", "bank_account": "1", "payment_condition": "4"},
    ),
}
#: Days of invoices the connections push at once (from their connection date on).
LIVE_DAYS = 180
#: Days before that which the back-fill pushes.
BACKFILL_DAYS = 365


class DemoConnectionError(RuntimeError):
    """The demo connections could not be made; the message says why."""


def _consent(sandbox_url: str, authorize_url: str, choices: dict) -> str:
    """Approve at the sandbox's consent page as its Approve button does; return the redirect URL."""
    parts = urlsplit(authorize_url)
    params = dict(parse_qsl(parts.query))
    path = parts.path[len(urlsplit(sandbox_url).path) :]
    if path.startswith("/exact-online/"):
        body = {"provider": "exact-online", "region": path.split("/")[2], **params}
    elif path.startswith("/quickbooks/"):
        body = {"provider": "quickbooks", **params}
    else:
        body = {"provider": "bexio", **params}
    response = requests.post(f"{sandbox_url}/_control/consent", json={**body, **choices}, timeout=30)
    if response.status_code != 200:
        raise DemoConnectionError(f"the sandbox refused the demo consent: {response.text[:300]}")
    return response.json()["redirect_url"]


def _unit(country: str) -> BusinessUnit | None:
    return db.session.scalar(
        select(BusinessUnit)
        .join(Organization)
        .where(BusinessUnit.country == country, Organization.country == country)
        .order_by(BusinessUnit.id)
        .limit(1)
    )


def _connect(sandbox_url: str, unit: BusinessUnit, provider: str) -> Connection:
    from ..connections import services

    _, region, company, choices, _ = LEDGERS[provider]
    with current_app.test_request_context(base_url="http://127.0.0.1:5000"):
        url = services.start_authorization(unit, provider, region, staff_id=None)
        callback = urlsplit(_consent(sandbox_url, url, choices))
        grant = services.complete_authorization(dict(parse_qsl(callback.query)))
        if not isinstance(grant, OAuthGrant):
            raise DemoConnectionError(f"the {provider} sandbox answered the consent without a company to pick")
        connection = services.pin_company(grant, company, shared_confirmed=True, actor_label="demo seed")
        db.session.commit()
    return connection


def _push(connection_id: int) -> dict:
    from jobs.sync import push_connection

    run = SyncRun(kind=SyncRunKind.incremental, queue="sync", parameters={"connection_id": connection_id})
    run.message = "Demo: first push of the connection's recent invoices."
    db.session.add(run)
    db.session.commit()
    return push_connection(run.id) or {}


def _backfill(connection: Connection, first: date, last: date) -> None:
    from ..history import services as history

    scope = history.parse_scope(connection, first.isoformat(), last.isoformat(), "customer,invoice")
    backfill = history.start(
        connection,
        scope,
        started_by=None,
        preview_data=history.range_counts(connection, scope),
        enqueue_job=False,
    )
    history.run(backfill.id, logging.getLogger("ledgerlink.history"))


def seed_demo_connections(progress: Callable[[str], None], *, if_empty: bool = True) -> dict | None:
    """Connect one business unit per ledger to the sandbox, push, fail a few, back-fill; return counts.

    Returns None when connections exist already and ``if_empty`` is set.

    :raise DemoConnectionError: when there are no demo organizations to connect.
    """
    if if_empty and db.session.scalar(select(Connection.id).limit(1)) is not None:
        return None
    from waitress import create_server  # type: ignore[attr-defined]  # the stubs lack the server factory

    import sandbox
    from sandbox.cli import STATE_FILE_NAME

    from ..connections import onboarding
    from ..mappings import services as mappings

    instance = Path(current_app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    sandbox_app = sandbox.create_app({"SANDBOX_STATE_FILE": str(instance / STATE_FILE_NAME), "SANDBOX_QUOTAS": False})
    server = create_server(sandbox_app, host="127.0.0.1", port=0, threads=8)
    import threading

    threading.Thread(target=server.run, name="demo-sandbox", daemon=True).start()
    sandbox_url = f"http://127.0.0.1:{server.effective_port}"
    saved = {key: current_app.config.get(key) for key in ("SANDBOX_URL", "RATE_LIMITER")}
    current_app.config.update(SANDBOX_URL=sandbox_url, RATE_LIMITER=False)
    summary = {"connections": 0, "pushed": 0, "held": 0, "back-filled": 0}
    try:
        requests.post(
            f"{sandbox_url}/_control/quickbooks/set_preferences",
            json={"realm_id": LEDGERS["quickbooks"][2], "custom_txn_numbers": True},
            timeout=30,
        ).raise_for_status()
        today = datetime.now(UTC).date()
        for provider, (country, *_rest, defaults) in LEDGERS.items():
            unit = _unit(country)
            if unit is None:
                raise DemoConnectionError(f"no demo business unit in {country}: run `flask --app app seed demo` first")
            progress(f"Connecting {unit.name} ({country}) to the {provider} sandbox …")
            connection = _connect(sandbox_url, unit, provider)
            mappings.refresh_reference(connection)
            mappings.set_mappings(connection, dict(defaults))
            # Through the same gate support uses: live from LIVE_DAYS ago, older records for the back-fill.
            with current_app.test_request_context(base_url="http://127.0.0.1:5000"):  # the checklist links its steps
                onboarding.go_live(
                    connection,
                    datetime.combine(today - timedelta(days=LIVE_DAYS), datetime.min.time(), UTC),
                    open_steps_confirmed=True,
                    actor_label="demo seed",
                )
            db.session.commit()
            connection_id = connection.id
            counts = _push(connection_id)
            summary["connections"] += 1
            summary["pushed"] += counts.get("pushed", 0)
            summary["held"] += sum(n for state, n in counts.items() if state in ("failed", "needs_action"))
            connection = db.session.get_one(Connection, connection_id)
            first = today - timedelta(days=LIVE_DAYS + BACKFILL_DAYS)
            _backfill(connection, first, today - timedelta(days=LIVE_DAYS + 1))
            summary["back-filled"] += 1
            progress(f"  pushed {counts.get('pushed', 0)}, held {summary['held']} so far, back-fill done.")
        sandbox_app.extensions["sandbox"].state_file.save()
    finally:
        current_app.config.update(saved)
        server.close()
    return summary
