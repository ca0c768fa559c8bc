"""Refresh races: many worker processes refreshing the same connections at once never break one.

Eight processes (the production shape: several ``rq worker`` processes on several machines share one
database and one Redis) are told to refresh the same connection at the same instant, round after
round, for a connection of each provider, Exact's single-use refresh-token rotation included. After
every round each process holds the same token set, the connection is still connected, and a real
API call with the stored token succeeds at the ledger. Sizes follow PROOF_SCALE (see conftest).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import requests

from portal.connections import vault
from portal.models import Connection, ConnectionStatus
from tests.portal.connections.conftest import BEXIO_MAIN, QBO_US
from tests.proof.conftest import FULL, ROOT, scaled, write_result

#: The pattern of tests/portal/connections/refresh_worker.py, serving every connection of the race at once.
WORKER = ROOT / "tests" / "proof" / "race_worker.py"
PROCESSES = 8
ROUNDS = scaled(25, 1000)
#: How far ahead of "now" the start instant of a round is set, so all processes start together.
LEAD_SECONDS = 0.15

CASES = {
    "exact-online": {"region": "nl", "company": "3010001", "user": "jan.devries"},
    "quickbooks": {"company": QBO_US, "user": "u-ada", "realm_id": QBO_US},
    "bexio": {"company": BEXIO_MAIN, "username": "max.mustermann", "company_id": BEXIO_MAIN},
}


def _fingerprint(token: str | None) -> str:
    return hashlib.sha256((token or "").encode()).hexdigest()[:12]


def _connect(flow, unit_id, provider) -> int:
    case = dict(CASES[provider])
    region, company = case.pop("region", None), case.pop("company")
    return flow.connect(unit_id, provider, region, company=company, **case)


def _spend_access_token(app, connection_id: int) -> None:
    """Make the stored access token look spent (and old enough for Exact's 570 s rule)."""
    from portal.extensions import db

    now = datetime.now(UTC)
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        tokens = vault.read_tokens(connection)
        spent = dataclasses.replace(
            tokens, access_expires_at=now - timedelta(seconds=1), issued_at=now - timedelta(seconds=700)
        )
        vault.store_tokens(connection, spent)
        db.session.commit()


def _check_connection(app, connection_id: int) -> tuple[str, str]:
    """Call the ledger with the stored token; return the stored (access, refresh) fingerprints.

    :raise: whatever the adapter raises when the token no longer works (the test fails on it).
    """
    from portal.extensions import db

    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        assert connection.status is ConnectionStatus.connected, connection.status_reason
        tokens = vault.read_tokens(connection)
        vault.fresh_adapter(connection).company_info()
        return _fingerprint(tokens.access_token), _fingerprint(tokens.refresh_token)


def _free_units(app, count: int) -> list[int]:
    from portal.extensions import db
    from portal.models import BusinessUnit

    with app.app_context():
        taken = db.select(Connection.business_unit_id)
        ids = db.session.scalars(
            db.select(BusinessUnit.id).where(BusinessUnit.id.not_in(taken)).order_by(BusinessUnit.id).limit(count)
        ).all()
    assert len(ids) == count
    return list(ids)


def test_concurrent_refreshes_never_break_a_connection(app, flow, demo_data, database_url, redis_url):
    """Every process refreshes the connection of every provider at the same instant, round after round."""
    units = _free_units(app, len(CASES))
    cids = {provider: _connect(flow, unit, provider) for provider, unit in zip(CASES, units, strict=True)}
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LEDGERLINK_SANDBOX_URL": flow.sandbox,
        "LEDGERLINK_SECRET_KEY": app.config["SECRET_KEY"],
        "LEDGERLINK_TOKEN_KEYS": app.config["TOKEN_KEYS"],
        "LEDGERLINK_EMBEDDED_WORKER": "false",
        "PYTHONPATH": str(ROOT),
    }
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER)], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(PROCESSES)
    ]
    summaries = {
        provider: {"connection_id": cid, "attempts": 0, "refreshes_at_provider": 0, "broken": 0, "errors": []}
        for provider, cid in cids.items()
    }
    started = time.monotonic()
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready"
        access_seen = {provider: {_check_connection(app, cid)[0]} for provider, cid in cids.items()}
        refresh_seen: dict[str, set[str]] = {provider: set() for provider in cids}
        ids = ",".join(str(cid) for cid in cids.values())
        for _round in range(ROUNDS):
            # The ledgers' clock moves past the access tokens' life; our copies say they are spent.
            requests.post(
                f"{flow.sandbox}/_control/clock", json={"advance_seconds": 600}, timeout=10
            ).raise_for_status()
            for cid in cids.values():
                _spend_access_token(app, cid)
            at = time.time() + LEAD_SECONDS
            for worker in workers:
                worker.stdin.write(f"go {at} {ids}\n")
                worker.stdin.flush()
            answers = [json.loads(worker.stdout.readline()) for worker in workers]
            for provider, cid in cids.items():
                summary = summaries[provider]
                mine = [answer[str(cid)] for answer in answers]
                summary["attempts"] += len(mine)
                errors = [a for a in mine if not a.startswith("ok ")]
                try:
                    # Every process ended with the token set that is stored, and it works at the ledger.
                    access, refresh = _check_connection(app, cid)
                    assert {a.split()[1] for a in mine} == {refresh}, mine
                except Exception as exc:
                    errors.append(f"final call: {type(exc).__name__}: {exc}")
                else:
                    access_seen[provider].add(access)
                    refresh_seen[provider].add(refresh)
                if errors:
                    summary["broken"] += 1
                    summary["errors"].extend(errors[:3])
            assert not any(s["broken"] for s in summaries.values()), summaries
        for provider, summary in summaries.items():
            summary["refreshes_at_provider"] = len(access_seen[provider]) - 1
            # One real refresh per round at the provider, not one per process.
            assert summary["refreshes_at_provider"] == ROUNDS, (provider, summary)
            if provider != "quickbooks":  # QBO keeps the same refresh token within ~24 h (qbo §1)
                # Each single-use refresh token was rotated and the new one kept, round after round.
                assert len(refresh_seen[provider]) == ROUNDS, (provider, summary)
    finally:
        for worker in workers:
            worker.stdin.close()
        for worker in workers:
            worker.wait(timeout=30)
        write_result(
            "refresh-races.json",
            {
                "processes": PROCESSES,
                "rounds_per_provider": ROUNDS,
                "scale": "full" if FULL else "ci",
                "seconds": round(time.monotonic() - started, 1),
                "providers": summaries,
                "attempts": sum(s["attempts"] for s in summaries.values()),
                "refreshes_at_provider": sum(s["refreshes_at_provider"] for s in summaries.values()),
                "broken": sum(s["broken"] for s in summaries.values()),
            },
        )
