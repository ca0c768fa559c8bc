"""Refresh races: many worker processes refreshing the same connections at once never break one.

Eight processes (the production shape: several ``rq worker`` processes on several machines share one
database and one Redis) are told to refresh the same connection at the same instant, round after
round, for a connection of each provider, Exact's single-use refresh-token rotation included. After
every round each process holds the same token set, the connection is still connected, and a real
API call with the stored token succeeds at the ledger. Sizes follow PROOF_SCALE (see conftest).
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from portal.connections import vault
from portal.models import Connection, ConnectionStatus
from tests.portal.connections.conftest import (
    TOKEN_CASES,
    advance_ledger_clock,
    connect_token_case,
    refresh_processes,
    spend_access_token,
    tell,
)
from tests.proof.conftest import FULL, ROOT, scaled, write_result

#: The pattern of tests/portal/connections/refresh_worker.py, serving every connection of the race at once.
WORKER = ROOT / "tests" / "proof" / "race_worker.py"
PROCESSES = 8
ROUNDS = scaled(25, 1000)
#: How far ahead of "now" the start instant of a round is set, so all processes start together.
LEAD_SECONDS = 0.15


def _fingerprint(token: str | None) -> str:
    return hashlib.sha256((token or "").encode()).hexdigest()[:12]


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


@pytest.mark.slow
@pytest.mark.workers
def test_concurrent_refreshes_never_break_a_connection(app, flow, demo_data, database_url, redis_url):
    """Every process refreshes the connection of every provider at the same instant, round after round."""
    units = _free_units(app, len(TOKEN_CASES))
    cids = {
        provider: connect_token_case(flow, unit, provider) for provider, unit in zip(TOKEN_CASES, units, strict=True)
    }
    summaries = {
        provider: {"connection_id": cid, "attempts": 0, "refreshes_at_provider": 0, "broken": 0, "errors": []}
        for provider, cid in cids.items()
    }
    started = time.monotonic()
    try:
        with refresh_processes(app, database_url, redis_url, WORKER, count=PROCESSES) as workers:
            access_seen = {provider: {_check_connection(app, cid)[0]} for provider, cid in cids.items()}
            refresh_seen: dict[str, set[str]] = {provider: set() for provider in cids}
            ids = ",".join(str(cid) for cid in cids.values())
            for _round in range(ROUNDS):
                # The ledgers' clock moves past the access tokens' life; our copies say they are spent.
                advance_ledger_clock(flow.sandbox)
                for cid in cids.values():
                    spend_access_token(app, cid)
                answers = [json.loads(a) for a in tell(workers, f"go {time.time() + LEAD_SECONDS} {ids}")]
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
            if provider != "quickbooks":  # QBO keeps the same refresh token within ~24 h (quickbooks-online.md §1)
                # Each single-use refresh token was rotated and the new one kept, round after round.
                assert len(refresh_seen[provider]) == ROUNDS, (provider, summary)
    finally:
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
