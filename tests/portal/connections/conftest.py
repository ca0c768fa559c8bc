"""Helpers to drive the connect flow: the portal in a test client, the ledger consent over HTTP."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from tests.conftest import csrf_token_of

#: Demo data of the sandboxes (sandbox/*/README.md): who approves, and what they can reach.
EXACT_USERS = {
    "nl": ("jan.devries", ["3010001", "3010002"]),
    "be": ("lotte.peeters", ["3020001", "3020002"]),
    "de": ("anna.schmidt", ["3030001", "3030002"]),
    "uk": ("oliver.smith", ["3040001", "3040002"]),
    "us": ("emily.johnson", ["3050001", "3050002"]),
    "es": ("lucia.garcia", ["3060001", "3060002"]),
    "fr": ("camille.martin", ["3070001", "3070002"]),
}
EXACT_UNGRANTABLE = "3010003"
QBO_US, QBO_UK = "9341453908059321", "9341453908061187"
BEXIO_MAIN, BEXIO_OTHER = "q69vysq7fkzl", "b7xk2m4pq9rt"

ROOT = Path(__file__).resolve().parents[3]


def process_env(app, database_url: str, redis_url: str) -> dict[str, str]:
    """The environment of a separate portal process (an ``rq worker``, a refresher) as production sets it.

    The process runs on the test's database and Redis, with the test app's keys, and reaches the
    ledgers through the sandbox the app talks to.
    """
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LEDGERLINK_SECRET_KEY": app.config["SECRET_KEY"],
        "LEDGERLINK_TOKEN_KEYS": app.config["TOKEN_KEYS"],
        "LEDGERLINK_EMBEDDED_WORKER": "false",
        "LEDGERLINK_SANDBOX_URL": app.config["SANDBOX_URL"],
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def sandbox(sandbox_server):
    """The sandbox base URL, reset to its demo data, its QuickBooks companies prepared for Ledgerlink.

    Onboarding asks the customer to turn on custom transaction numbers (the SaaS's invoice numbers
    are kept as DocNumber); the demo companies start with them off, as new QuickBooks companies do.
    """
    requests.post(f"{sandbox_server}/_control/reset", timeout=10).raise_for_status()
    for realm_id in (QBO_US, QBO_UK):
        requests.post(
            f"{sandbox_server}/_control/quickbooks/set_preferences",
            json={"realm_id": realm_id, "custom_txn_numbers": True},
            timeout=10,
        ).raise_for_status()
    return sandbox_server


def consent(sandbox: str, authorize_url: str, *, decision: str = "approve", **choices) -> str:
    """Approve (or deny) the consent page at ``authorize_url`` as a person would; return the redirect."""
    parts = urlsplit(authorize_url)
    params = dict(parse_qsl(parts.query))
    path = parts.path
    if path.startswith("/exact-online/"):
        body = {"provider": "exact-online", "region": path.split("/")[2], **params}
    elif path.startswith("/quickbooks/"):
        body = {"provider": "quickbooks", **params}
    elif path.startswith("/bexio/"):
        body = {"provider": "bexio", **params}
    else:
        raise AssertionError(f"not a sandbox consent URL: {authorize_url}")
    response = requests.post(f"{sandbox}/_control/consent", json={**body, **choices, "decision": decision}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["redirect_url"]


def local_path(url: str) -> str:
    """Return the path and query of a URL (to replay a redirect in the Flask test client)."""
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


class Flow:
    """The connect flow, step by step, as support and the approver click through it."""

    def __init__(self, client, token: str, sandbox: str, staff_id: int | None = None) -> None:
        self.client, self.token, self.sandbox, self.staff_id = client, token, sandbox, staff_id

    def start(self, unit_id: int, provider: str, region: str | None = None, *, replace: bool = False):
        data = {"provider": provider, "region": region or "", "csrf_token": self.token}
        if replace:
            data["confirm_replace"] = "y"
        return self.client.post(f"/business-units/{unit_id}/connect", data=data)

    def authorize(self, unit_id: int, provider: str, region: str | None = None, *, replace=False, **choices):
        """Start, approve at the ledger and come back; return the callback response."""
        started = self.start(unit_id, provider, region, replace=replace)
        assert started.status_code == 302, started.get_data(as_text=True)
        redirect = consent(self.sandbox, started.headers["Location"], **choices)
        return self.client.get(local_path(redirect))

    def pick(self, callback, company_id: str, *, replace: bool = False):
        assert callback.status_code == 302, callback.get_data(as_text=True)
        pick_url = callback.headers["Location"]
        page = self.client.get(pick_url)
        assert page.status_code == 200, page.get_data(as_text=True)
        data = {"company": company_id, "csrf_token": csrf_token_of(page.get_data(as_text=True))}
        if replace:
            data["confirm_replace"] = "y"
        if "Already connected for" in page.get_data(as_text=True):
            data["confirm_shared"] = "y"  # as support does, having read the warning
        return self.client.post(pick_url, data=data)

    def connect(self, unit_id, provider, region=None, *, company, replace=False, live=True, **choices) -> int:
        """Run the whole flow; return the new connection's id.

        ``live`` (the default) takes the connection through its go-live gate as well, so that tests
        about what a connection does find it pushing; tests about the gate pass ``live=False``.
        """
        done = self.pick(
            self.authorize(unit_id, provider, region, replace=replace, **choices), company, replace=replace
        )
        assert done.status_code == 302, done.get_data(as_text=True)
        connection_id = int(done.headers["Location"].rsplit("/", 1)[1])
        if live:
            make_live(self.client.application, connection_id)
        return connection_id

    def post(self, url: str, **data):
        return self.client.post(url, data={"csrf_token": self.token, **data})

    def connected(
        self, unit_id: int, provider: str, region: str | None = None, *, company: str, live: bool = True, **choices
    ) -> int:
        """A connection as :meth:`connect` leaves it, made without the pages; return its id.

        Live by default (past its go-live gate, as every connection made before the gate existed);
        ``live=False`` leaves it being set up.

        For tests that need a connection rather than test connecting: the same services the
        pages call run in one request context as this support member (the consent request is
        started and remembered, the ledger's consent given through the sandbox's control API as
        the consent page's Approve gives it, the code exchanged and the companies listed by the
        adapter, the company pinned: tokens encrypted, the connection audited), without
        rendering or following the four pages in between.
        """
        from flask_login import login_user

        from portal.connections import services
        from portal.extensions import db
        from portal.models import BusinessUnit, StaffUser

        with self.client.application.test_request_context():
            if self.staff_id is not None:
                login_user(db.session.get(StaffUser, self.staff_id))
            url = services.start_authorization(
                db.session.get(BusinessUnit, unit_id), provider, region, staff_id=self.staff_id
            )
            callback = urlsplit(consent(self.sandbox, url, **choices))
            grant = services.complete_authorization(dict(parse_qsl(callback.query)))
            connection = services.pin_company(grant, company)
            if live:
                connection.live_since = connection.connected_at
            db.session.commit()
            return connection.id


def make_live(app, connection_id: int) -> None:
    """Take a connection through its go-live gate as of its connection date, without the checklist."""
    from portal.extensions import db
    from portal.models import Connection

    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        if connection.live_since is None:
            connection.live_since = connection.connected_at
            db.session.commit()


@pytest.fixture
def flow(client, make_staff, login, sandbox):
    """A logged-in support member's connect flow against the sandbox."""
    staff = make_staff("support")
    return Flow(client, login(staff), sandbox, staff["id"])


@pytest.fixture
def unit_id(app, demo_data):
    """The id of a business unit without a connection."""
    from portal.extensions import db
    from portal.models import BusinessUnit

    with app.app_context():
        return db.session.scalars(db.select(BusinessUnit.id).order_by(BusinessUnit.id)).first()


def exact_choices(region: str, divisions=None) -> dict:
    user, _granted = EXACT_USERS[region]
    return {"user": user, **({"divisions": divisions} if divisions is not None else {})}


#: provider → how the token tests connect it: region (Exact only), company and consent choices.
TOKEN_CASES = {
    "exact-online": {"region": "nl", "company": "3010001", "user": "jan.devries"},
    "quickbooks": {"company": QBO_US, "user": "u-ada", "realm_id": QBO_US},
    "bexio": {"company": BEXIO_MAIN, "username": "max.mustermann", "company_id": BEXIO_MAIN},
}


def connect_token_case(flow, unit_id: int, provider: str) -> int:
    """Connect ``unit_id`` to the provider's company of :data:`TOKEN_CASES`; return the connection id."""
    case = dict(TOKEN_CASES[provider])
    region, company = case.pop("region", None), case.pop("company")
    return flow.connected(unit_id, provider, region, company=company, **case)


def spend_access_token(app, connection_id: int) -> None:
    """Make the stored access token look spent (and old enough for Exact's 570 s rule)."""
    from portal.connections import vault
    from portal.extensions import db
    from portal.models import Connection

    now = datetime.now(UTC)
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        tokens = vault.read_tokens(connection)
        spent = dataclasses.replace(
            tokens, access_expires_at=now - timedelta(seconds=1), issued_at=now - timedelta(seconds=700)
        )
        vault.store_tokens(connection, spent)
        db.session.commit()


def advance_ledger_clock(sandbox: str, seconds: int = 600) -> None:
    """Move the sandbox ledgers' clock forward (past the access tokens' life by default)."""
    requests.post(f"{sandbox}/_control/clock", json={"advance_seconds": seconds}, timeout=10).raise_for_status()


@contextlib.contextmanager
def refresh_processes(
    app,
    database_url: str,
    redis_url: str,
    script: Path,
    *args: str,
    count: int,
    extra_env: dict[str, str] | None = None,
) -> Iterator[list[subprocess.Popen]]:
    """Run ``count`` processes of ``script`` (a refresher answering on stdout) until the block ends.

    Yields them once each has said "ready"; on the way out their stdin is closed, which ends them.
    """
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), *args],
            cwd=ROOT,
            env={**process_env(app, database_url, redis_url), **(extra_env or {})},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        for process in processes:
            assert process.stdout.readline().strip() == "ready"
        yield processes
    finally:
        for process in processes:
            process.stdin.close()
        for process in processes:
            process.wait(timeout=30)


def tell(processes: list[subprocess.Popen], line: str) -> list[str]:
    """Send ``line`` to every process; return each one's answer line."""
    for process in processes:
        process.stdin.write(f"{line}\n")
        process.stdin.flush()
    return [process.stdout.readline().strip() for process in processes]
