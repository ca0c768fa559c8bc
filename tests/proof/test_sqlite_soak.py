"""SQLite soak: the demo's embedded runtime pushes, back-fills and serves pages at once, and loses nothing.

An app as ``make run`` builds it (a SQLite file, the in-process fake Redis, the embedded runtime's
worker threads, RQ's scheduler and the schedule tick) is connected to Exact Online NL in the
sandbox with access tokens that live :data:`ACCESS_TTL` seconds, so the push, the back-fill and
their lanes refresh the rotating refresh token many times. For the soak's length the SaaS PUTs an
invoice through the API every second, a back-fill of last month runs on the history queue, and
staff open pages. Then: no "database is locked" anywhere (logs, runs, records), the connection
is still connected, the stored refresh token is the one Exact last issued (a refresh with it
succeeds), and every invoice is in the ledger exactly once.

The soak lasts ``SOAK_SECONDS`` (default: 45 s of traffic, about 75 s in all; an hour with
``PROOF_SCALE=full``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from datetime import date, timedelta
from functools import partial
from unittest import mock

import pytest
import requests
from werkzeug.security import generate_password_hash

from tests.conftest import TEST_PASSWORD, TEST_PASSWORD_HASH, csrf_token_of
from tests.portal.connections.conftest import Flow
from tests.portal.sync.conftest import add_invoice, connect_unit, ledger_invoices, new_organization

from .conftest import FULL, write_result

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS") or (3600 if FULL else 45))
#: Seconds an Exact access token lives in the soak (600 at Exact).
ACCESS_TTL = 8
BACKFILL_INVOICES = 30 if not FULL else 300


class Locked(logging.Handler):
    """Collects every log record that mentions a locked database."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        if "database is locked" in text or "database table is locked" in text:
            self.seen.append(f"{record.name}: {text[:300]}")


@pytest.fixture
def demo_app(tmp_path, sandbox, app):
    """The demo's app on a fresh SQLite file, with its embedded runtime running."""
    from flask_migrate import upgrade

    from portal import create_app
    from portal.queue import EmbeddedRuntime

    soak = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'demo.sqlite'}",
            "REDIS_URL": "",
            "EMBEDDED_WORKER": False,
            "SECRET_KEY": app.config["SECRET_KEY"],
            "TOKEN_KEYS": app.config["TOKEN_KEYS"],
            "SANDBOX_URL": sandbox,
            "HISTORY_CHUNK_SIZE": 10,
        }
    )
    soak.instance_path = str(tmp_path)
    with soak.app_context():
        upgrade()
    state = soak.extensions["ledgerlink_queue"]
    state.connection.flushdb()
    state.runtime = EmbeddedRuntime(soak, state, tick_seconds=2)
    yield soak
    state.runtime.stop(timeout=60)
    state.connection.flushdb()
    with soak.app_context():
        from portal.extensions import db

        db.session.remove()
        db.engine.dispose()


def test_push_backfill_and_pages_together_on_sqlite_lose_nothing(demo_app, sandbox):
    from portal.api.auth import create_client
    from portal.auth.services import create_staff
    from portal.connections import vault
    from portal.extensions import db
    from portal.history import services as history
    from portal.models import Backfill, Connection, ConnectionStatus, ExternalRecord, Invoice, SyncRun

    requests.post(
        f"{sandbox}/_control/exact-online/set_settings",
        json={
            "access_ttl": ACCESS_TTL,
            "refresh_min_age": 0,
            "minutely_limit": 100_000,
            "daily_limit": 1_000_000,
            "token_daily_limit": 100_000,
        },
        timeout=10,
    ).raise_for_status()

    # The SaaS's organization, connected to Exact NL through the connect services.
    org = new_organization(demo_app, "Soak", ["Soak NL"])
    (unit_id,) = org["unit_ids"]
    with (
        demo_app.app_context(),
        mock.patch(
            "portal.models.staff.generate_password_hash", partial(generate_password_hash, method=TEST_PASSWORD_HASH)
        ),
    ):
        staff = create_staff("ops-soak@example.test", "ops", TEST_PASSWORD, actor="test")
        db.session.commit()
        staff_id = staff.id
    connection_id = connect_unit(demo_app, Flow(demo_app.test_client(), "", sandbox, staff_id), unit_id, "exact-online")
    with demo_app.app_context():
        connection = db.session.get(Connection, connection_id)
        connection.settings = {**(connection.settings or {}), "sync_delay_minutes": 0}
        org_external = connection.business_unit.organization.external_id
        from portal.models import Customer

        customer_external = db.session.get(Customer, org["customer_id"]).external_id
        with demo_app.test_request_context():
            _, key = create_client("soak", ["ingest"])
        db.session.commit()

    # Last month's invoices, for the back-fill (before the connection's date: not pushed by the schedule).
    last_month = date.today().replace(day=1) - timedelta(days=1)
    old_numbers = [
        add_invoice(demo_app, org, unit_id, f"OLD-{i:04d}", issue_date=last_month - timedelta(days=i % 20))[1]
        for i in range(BACKFILL_INVOICES)
    ]

    stored = Counter()
    real_store = vault.store_tokens

    def counting_store(connection, tokens):
        stored["tokens"] += 1
        return real_store(connection, tokens)

    locked = Locked()
    logging.getLogger().addHandler(locked)
    stop = threading.Event()
    errors: list[str] = []
    pushed_numbers: list[str] = []
    pages = Counter()

    def ingest() -> None:
        client = demo_app.test_client()
        headers = {"Authorization": f"Bearer {key}"}
        n = 0
        while not stop.is_set():
            n += 1
            number = f"LIVE-{n:05d}"
            body = {
                "business_unit": unit_id,
                "number": number,
                "customer": customer_external,
                "issue_date": date.today().isoformat(),
                "due_date": (date.today() + timedelta(days=30)).isoformat(),
                "currency": "EUR",
                "lines": [
                    {"position": 1, "description": "Consulting", "quantity": 1, "unit_price": "100.00", "tax_rate": 21}
                ],
            }
            response = client.put(
                f"/api/v1/organizations/{org_external}/invoices/inv-{number}", json=body, headers=headers
            )
            if response.status_code != 201:
                errors.append(f"PUT {number}: {response.status_code} {response.get_data(as_text=True)[:300]}")
            else:
                pushed_numbers.append(number)
            stop.wait(1.0)

    def browse() -> None:
        client = demo_app.test_client()
        token = csrf_token_of(client.get("/login").get_data(as_text=True))
        client.post("/login", data={"email": "ops-soak@example.test", "password": TEST_PASSWORD, "csrf_token": token})
        paths = ["/", "/ops/", "/ops/connections", f"/connections/{connection_id}", "/jobs", "/ops/failures"]
        i = 0
        while not stop.is_set():
            path = paths[i % len(paths)]
            i += 1
            response = client.get(path)
            pages[response.status_code] += 1
            if response.status_code != 200:
                errors.append(f"GET {path}: {response.status_code}")
            stop.wait(0.2)

    started = time.monotonic()
    with mock.patch.object(vault, "store_tokens", counting_store):
        demo_app.extensions["ledgerlink_queue"].runtime.start()
        with demo_app.app_context():
            connection = db.session.get(Connection, connection_id)
            scope = history.parse_scope(
                connection, (last_month - timedelta(days=25)).isoformat(), last_month.isoformat()
            )
            backfill_id = history.start(connection, scope, started_by=None).id
        threads = [threading.Thread(target=ingest), threading.Thread(target=browse), threading.Thread(target=browse)]
        for thread in threads:
            thread.start()
        time.sleep(SOAK_SECONDS)
        stop.set()
        for thread in threads:
            thread.join(30)

        # Let the last pushes and the back-fill finish (the tick keeps enqueuing what is due).
        def settled() -> bool:
            with demo_app.app_context():
                db.session.expire_all()
                waiting = db.session.scalar(
                    db.select(db.func.count(Invoice.id))
                    .outerjoin(
                        ExternalRecord, (ExternalRecord.local_id == Invoice.id) & (ExternalRecord.kind == "invoice")
                    )
                    .where((ExternalRecord.id.is_(None)) | (ExternalRecord.state != "pushed"))
                )
                return waiting == 0 and db.session.get(Backfill, backfill_id).status.finished

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not settled():
            time.sleep(1)
    logging.getLogger().removeHandler(locked)
    elapsed = time.monotonic() - started

    with demo_app.app_context():
        db.session.expire_all()
        connection = db.session.get(Connection, connection_id)
        runs = db.session.scalars(db.select(SyncRun)).all()
        records = db.session.scalars(db.select(ExternalRecord).where(ExternalRecord.kind == "invoice")).all()
        numbers = [invoice.number for invoice in db.session.scalars(db.select(Invoice))]
        states = Counter(record.state.value for record in records)
        run_states = Counter((run.kind.value, run.status.value) for run in runs)
        locked_runs = [run.message for run in runs if run.message and "locked" in run.message]
        status, reason = connection.status, connection.status_reason
        # The stored refresh token is the one Exact issued last: a refresh with it succeeds.
        vault.refresh(connection_id, force=True, refused=True)
        db.session.expire_all()
        still = db.session.get(Connection, connection_id).status

    ledger = Counter(doc.get("YourRef") for doc in ledger_invoices(sandbox, "exact-online"))
    write_result(
        "sqlite-soak.json",
        {
            "seconds": round(elapsed, 1),
            "soak_seconds": SOAK_SECONDS,
            "live_invoices": len(pushed_numbers),
            "backfill_invoices": len(old_numbers),
            "token_sets_stored": stored["tokens"],
            "pages": dict(pages),
            "record_states": dict(states),
            "database_locked": len(locked.seen),
            "runs": {f"{kind} {status}": n for (kind, status), n in run_states.items()},
        },
    )

    assert not locked.seen, locked.seen[:5]
    assert not locked_runs, locked_runs[:5]
    assert not errors, errors[:5]
    assert status is ConnectionStatus.connected and still is ConnectionStatus.connected, reason
    # Access tokens lived ACCESS_TTL seconds: each was refreshed and stored (about one per ACCESS_TTL).
    assert stored["tokens"] >= max(2, SOAK_SECONDS / ACCESS_TTL / 2), stored
    assert len(pushed_numbers) >= SOAK_SECONDS * 0.5
    assert states == Counter({"pushed": len(numbers)}), states
    assert {number: ledger[number] for number in numbers if ledger[number] != 1} == {}
    assert len(numbers) == len(pushed_numbers) + len(old_numbers)
