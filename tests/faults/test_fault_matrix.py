"""Every invoice reaches each ledger exactly once, whatever fails while it is pushed.

Each case pushes a batch of invoices of three connections (Exact Online NL 3010001, the
QuickBooks US realm, bexio's main company) through real ``rq worker`` processes, over HTTP to the
sandboxes, on the test database and a real Redis, while one fault happens. After recovery
(fault cleared, dead workers replaced, pushes run again until nothing is due) every invoice is in
its ledger once, none is lost, and every ExternalRecord agrees with the ledger (pushed ↔ present
with the same external id). A connection whose grant is revoked ends needing re-authorization
with its unpushed invoices pending ("waiting"), none failed. Results go into the fault matrix
(tests/faults/conftest.py). ``PROOF_SEED`` repeats the kill case's random points.
"""

from __future__ import annotations

import os
import random
import time

import pytest
from sqlalchemy import text

from tests.portal.connections.conftest import BEXIO_MAIN, QBO_US
from tests.portal.sync.rq_workers import records, wait_for

from .harness import INVOICE_PATH, KILL_RUNS, MATRIX, Pool, PrivateRedis, control


def _conclude(case) -> None:
    rows = case.verify()
    MATRIX.extend(rows)
    failing = [r for r in rows if r["verdict"] != "PASS"]
    assert not failing, failing


def test_workers_killed_at_random_points(make_case):
    case = make_case("worker SIGKILL")
    seed = int(os.environ.get("PROOF_SEED") or random.SystemRandom().randrange(10**6))
    rng = random.Random(seed)
    for target in case.targets:
        target.notes.append(f"{KILL_RUNS} kills, seed {seed}")
    case.slow_down()
    for _ in range(KILL_RUNS):
        before = case.pushed_total()
        step = rng.randint(1, 3)
        # Push until a random number of further invoices are in, then kill at a random moment
        # after that: inside a request, between the ledger's answer and our commit, or idle.
        case.drive(lambda before=before, step=step: case.pushed_total() >= before + step, timeout=120)
        time.sleep(rng.uniform(0, 0.4))
        for provider in case.kill_worker(rng):
            case.note_event(provider)

    case.recover()

    _conclude(case)


def test_redis_restarted_mid_run(app, make_case, database_url, tmp_path):
    from portal import create_app

    redis_server = PrivateRedis(tmp_path)
    pool = None
    try:
        keys = ("TESTING", "SQLALCHEMY_DATABASE_URI", "SECRET_KEY", "TOKEN_KEYS", "SERVER_NAME", "SANDBOX_URL")
        # The app under test (its queues, locks and backoff counters) and its workers use the
        # private Redis, which the test crashes.
        queue_app = create_app({**{k: app.config[k] for k in keys}, "REDIS_URL": redis_server.url})
        queue_app.config["EMBEDDED_WORKER"] = False
        pool = Pool(queue_app, database_url, redis_server.url, tmp_path)
        pool.ensure()
        case = make_case("Redis restart", app=queue_app, pool=pool)
        case.slow_down()
        case.wait_progress(case.total() // 4)

        redis_server.crash()
        case.note_event()
        for target in case.targets:
            pushed, _due, _status = case.state(target)
            target.notes.append(f"Redis lost all data with {pushed} pushed")
        time.sleep(1)  # the outage: workers and the app find no Redis for a moment
        redis_server.start()

        # Workers are restarted after the outage (their current job finishes first): the locks
        # of runs still going were lost with Redis's data.
        case.recover(restart_workers=True)
        _conclude(case)
    finally:
        if pool is not None:
            pool.stop()
        redis_server.close()


def test_provider_errors_5xx_on_ten_percent_of_requests(make_case):
    case = make_case("10% 5xx")
    case.slow_down()
    for status in (500, 502, 503):
        case.each_provider(lambda _t, status=status: {"kind": "error_rate", "rate": 0.034, "status": status})
    case.drive(lambda: case.pushed_total() >= case.total() * 3 // 4, timeout=60, fail=False)

    case.recover()

    _conclude(case)


def test_rate_limit_storm(make_case):
    case = make_case("429 storm")
    # Shortened quota windows (a minute lasts 3 s): the 429s announce resets in seconds.
    control(case.sandbox, "quotas", {"window_scale": 0.05})
    case.slow_down()
    case.wait_progress(case.total() // 4)
    case.each_provider(lambda _t: {"kind": "rate_limit_storm", "seconds": 3})
    case.drive(timeout=5, fail=False)

    case.recover()

    _conclude(case)


def test_responses_lost_after_the_ledger_committed(make_case):
    case = make_case("timeout after commit")
    case.slow_down()
    case.each_provider(
        lambda t: {
            "kind": "timeout_after_commit",
            "mode": "504",
            "rate": 0.3,
            "methods": ["POST"],
            "path_pattern": INVOICE_PATH[t.provider],
        }
    )
    case.drive(lambda: case.pushed_total() >= case.total() * 3 // 4, timeout=60, fail=False)

    case.recover()

    _conclude(case)


REVOKE = {
    "exact-online": ("exact-online/revoke_grant", {"user": "jan.devries"}),
    "quickbooks": ("quickbooks/revoke_tokens", {"realm_id": QBO_US}),
    "bexio": ("bexio/revoke_tokens", {"company": BEXIO_MAIN}),
}


def test_refresh_token_revoked_mid_run(make_case, app):
    case = make_case("grant revoked")
    # Slow enough that a push still has most of its batch to do well after a poll saw it a quarter in.
    case.slow_down(ms=150)
    # Each connection loses its grant while its own push is under way (a quarter of its batch in).
    live = list(case.targets)
    while live:
        case.drive(lambda: any(case.state(t)[0] >= len(t.invoices) // 4 for t in live), timeout=90)
        for target in [t for t in live if case.state(t)[0] >= len(t.invoices) // 4]:
            path, body = REVOKE[target.provider]
            control(case.sandbox, path, body)
            case.note_event(target.provider)
            target.revoked = True
            live.remove(target)
            pushed, _due, _status = case.state(target)
            target.notes.append(f"revoked with {pushed} pushed")

    case.recover()

    _conclude(case)
    for target in case.targets:
        from portal.extensions import db
        from portal.models import Connection

        with app.app_context():
            assert db.session.get(Connection, target.connection_id).status.value == "needs_reauthorization"
        states = {r["state"] for r in records(app, target.connection_id)}
        assert states <= {"pushed", "pending"}, states


def test_database_connections_dropped_mid_run(make_case, app, database_url):
    """PostgreSQL: every other backend of the test database is terminated (pg_terminate_backend).

    SQLite has no backends: each worker closes its DBAPI connections underneath its pool on
    SIGUSR1 (tests/faults/worker.py), so its next statement fails as on a dropped connection.
    """
    case = make_case("DB connections dropped")
    postgres = database_url.startswith("postgresql")

    def drop() -> None:
        case.note_event()
        if postgres:
            from portal.extensions import db

            with app.app_context(), db.engine.connect() as conn:
                terminated = conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).all()
            # The workers' connections (and the test's own idle ones) were there to terminate.
            assert terminated, "no database backend to terminate"
        else:
            before = {w: w.log_tail(10**6).count("fault: closed") for w in case.workers}
            for worker in before:
                worker.break_database_connections()
            wait_for(
                lambda: all(w.log_tail(10**6).count("fault: closed") > n for w, n in before.items()),
                timeout=30,
                what="the workers to close their database connections",
            )

    case.slow_down()
    for share in (4, 2):
        case.wait_progress(case.total() // share)
        drop()
    for target in case.targets:
        target.notes.append("pg_terminate_backend x2" if postgres else "worker DBAPI connections closed x2")

    case.recover()

    _conclude(case)


@pytest.fixture(autouse=True)
def _sandbox_quotas_back(sandbox):
    yield
    control(sandbox, "quotas", {"window_scale": 1.0})
