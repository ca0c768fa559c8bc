"""Push races: worker processes pushing for the same connections while their tokens expire mid-job.

Two processes (the production shape: several ``rq worker`` processes share one database and one Redis)
each run a long push for a connection of every provider at the same instant, round after round. Between
rounds the ledgers' clock moves past the access token's life, so every round starts with a token the
ledger refuses (a 401) in both processes at once, inside a push with its lanes: the refresh must be the
vault's (one process at a time, the stored token re-read, the rotated one committed first). After each
round both processes hold the stored token set, the connection is still connected, every invoice is in
the ledger exactly once, and there was one refresh per round at the ledger, never two with one token
(Exact and bexio refuse a spent refresh token, which would end the connection). Sizes follow PROOF_SCALE.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter

import pytest
import requests

from portal.connections import vault
from portal.models import Connection, ConnectionStatus
from tests.portal.connections.conftest import refresh_processes
from tests.portal.sync.conftest import PROVIDERS, add_invoice, connect_unit, ledger_invoices, new_organization
from tests.proof.conftest import FULL, ROOT, scaled, write_result

WORKER = ROOT / "tests" / "proof" / "push_race_worker.py"
PROCESSES = 2
ROUNDS = scaled(6, 1000)
#: Invoices each process pushes per connection and round.
PER_ROUND = 2
LEAD_SECONDS = 0.2
#: Past every provider's access-token life (Exact 10 min, QuickBooks and bexio 1 h).
CLOCK_STEP = 3700


def _fingerprint(token: str | None) -> str:
    return hashlib.sha256((token or "").encode()).hexdigest()[:12]


def _stored(app, connection_id: int) -> tuple[str, str, ConnectionStatus, str | None]:
    from portal.extensions import db

    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        tokens = vault.read_tokens(connection)
        return (
            _fingerprint(tokens.access_token),
            _fingerprint(tokens.refresh_token),
            connection.status,
            connection.status_reason,
        )


@pytest.mark.workers
def test_pushing_processes_never_spend_a_refresh_token_twice(app, flow, database_url, redis_url):
    org = new_organization(app, "Pushrace", [f"Pushrace {p}" for p in PROVIDERS])
    cids = {p: connect_unit(app, flow, unit, p) for p, unit in zip(PROVIDERS, org["unit_ids"], strict=True)}
    units = dict(zip(PROVIDERS, org["unit_ids"], strict=True))
    # The sandboxes' quotas would make 1,000 rounds take days: the race is about tokens, not pacing.
    requests.post(f"{flow.sandbox}/_control/quotas", json={"enabled": False}, timeout=10).raise_for_status()
    # Warm up: each connection's customer exists in the ledger before the race.
    from portal.extensions import db
    from portal.models import Invoice
    from portal.sync import push

    for provider, cid in cids.items():
        invoice_id, _ = add_invoice(app, org, units[provider])
        with app.app_context():
            record = push.push_invoice(db.session.get(Connection, cid), db.session.get(Invoice, invoice_id))
            assert record.state.value == "pushed", record.last_error_text
            db.session.commit()
    invoices = {
        p: [[add_invoice(app, org, units[p])[0] for _ in range(PER_ROUND)] for _ in range(ROUNDS * PROCESSES)]
        for p in PROVIDERS
    }
    summary = {
        p: {"connection_id": cid, "pushed": 0, "refreshes_at_provider": 0, "errors": []} for p, cid in cids.items()
    }
    started = time.monotonic()
    try:
        with refresh_processes(
            app, database_url, redis_url, WORKER, count=PROCESSES, extra_env={"LEDGERLINK_RATE_LIMITER": "false"}
        ) as workers:
            access_seen = {p: {_stored(app, cid)[0]} for p, cid in cids.items()}
            for round_ in range(ROUNDS):
                requests.post(
                    f"{flow.sandbox}/_control/clock", json={"advance_seconds": CLOCK_STEP}, timeout=10
                ).raise_for_status()
                lines = []
                for worker in range(PROCESSES):
                    batch = round_ * PROCESSES + worker
                    items = ",".join(f"{cids[p]}:{'+'.join(str(i) for i in invoices[p][batch])}" for p in PROVIDERS)
                    lines.append(f"go {time.time() + LEAD_SECONDS} {items}")
                for process, line in zip(workers, lines, strict=True):
                    process.stdin.write(f"{line}\n")
                    process.stdin.flush()
                answers = [json.loads(process.stdout.readline()) for process in workers]
                for provider, cid in cids.items():
                    mine = [answer[str(cid)] for answer in answers]
                    access, refresh, status, reason = _stored(app, cid)
                    access_seen[provider].add(access)
                    problems = [a for a in mine if not a.startswith("ok ") or "pushed" not in a.split()[1]]
                    problems += [a for a in mine if a.startswith("ok ") and a.split()[2] != refresh]
                    if status is not ConnectionStatus.connected:
                        problems.append(f"connection {status.value}: {reason}")
                    if problems:
                        summary[provider]["errors"].extend(problems[:4])
                    summary[provider]["pushed"] += sum(
                        Counter(a.split()[1].split("+"))["pushed"] for a in mine if a.startswith("ok ")
                    )
                assert not any(s["errors"] for s in summary.values()), summary
        for provider, cid in cids.items():
            summary[provider]["refreshes_at_provider"] = len(access_seen[provider]) - 1
            # One refresh per round at the ledger, whichever process met the refused token first.
            assert summary[provider]["refreshes_at_provider"] == ROUNDS, (provider, summary[provider])
            assert summary[provider]["pushed"] == ROUNDS * PROCESSES * PER_ROUND
            # Every invoice once in the ledger (the warm-up's too; the demo company's own invoices aside).
            field = {"exact-online": "YourRef", "quickbooks": "DocNumber", "bexio": "api_reference"}[provider]
            references = Counter(
                doc.get(field)
                for doc in ledger_invoices(flow.sandbox, provider)
                if str(doc.get(field) or "").startswith("LL-")
            )
            assert sum(references.values()) == ROUNDS * PROCESSES * PER_ROUND + 1, provider
            assert max(references.values()) == 1, provider
            with app.app_context():
                vault.fresh_adapter(db.session.get(Connection, cid)).company_info()  # the stored grant works
    finally:
        requests.post(f"{flow.sandbox}/_control/quotas", json={"enabled": True}, timeout=10)
        write_result(
            "push-races.json",
            {
                "processes": PROCESSES,
                "rounds_per_provider": ROUNDS,
                "invoices_per_process_and_round": PER_ROUND,
                "scale": "full" if FULL else "ci",
                "seconds": round(time.monotonic() - started, 1),
                "providers": summary,
            },
        )
