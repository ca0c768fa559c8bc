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
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from tests.portal.connections.conftest import BEXIO_MAIN, QBO_US
from tests.portal.sync.rq_workers import records, run_outcome, wait_for

from .harness import INVOICE_PATH, KILL_RUNS, MATRIX, RECOVERY_SECONDS, Pool, PrivateRedis, control
from .worker import BATCH_SIZE


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
    hits = 0
    for _ in range(KILL_RUNS):
        before = case.pushed_total()
        step = rng.randint(1, 3)
        # Push until a random number of further invoices are in, then kill at a random moment
        # after that: inside a request, between the ledger's answer and our commit, or idle.
        case.drive(lambda before=before, step=step: case.pushed_total() >= before + step, timeout=120)
        time.sleep(rng.uniform(0, 0.4))
        for provider in case.kill_worker(rng):
            case.note_event(provider)
            hits += 1

    case.recover()
    _killed_runs_interrupted(case, hits)

    _conclude(case)


def _killed_runs_interrupted(case, hits: int) -> None:
    """The tick's reconciliation leaves no run of the case running: the killed workers' runs are interrupted."""
    from portal.database import utcnow
    from portal.extensions import db
    from portal.models import SyncRun, SyncRunStatus
    from portal.sync import mirrors

    connections = {target.connection_id for target in case.targets}
    with case.app.app_context():
        # Past the start's grace: a killed worker's job reads "started" with no lock or lease behind it.
        mirrors.reconcile(utcnow() + timedelta(minutes=2))
        runs = [
            run
            for run in db.session.scalars(select(SyncRun)).all()
            if (run.parameters or {}).get("connection_id") in connections
        ]
        going = [(run.id, run.message) for run in runs if run.status is SyncRunStatus.running]
        interrupted = sum(run.status is SyncRunStatus.interrupted for run in runs)
        db.session.remove()
    assert not going, going

    for target in case.targets:
        target.notes.append(f"{hits} kills during a push, {interrupted} runs interrupted, none left running")


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
    # QuickBooks creates the invoices a few per batch call (tests/faults/worker.py): each call takes
    # as long as that many creates one by one would (the first latency that matches a request applies).
    control(
        case.sandbox,
        "faults",
        {"provider": "quickbooks", "kind": "latency", "ms": 150 * BATCH_SIZE, "path_pattern": "/batch$"},
    )
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


def _due_at_once(app, targets) -> None:
    """Give the case's connections no sync delay: their invoices are due for the tick at once (as cron fires)."""
    from portal.extensions import db
    from portal.models import Connection

    with app.app_context():
        for target in targets:
            connection = db.session.get(Connection, target.connection_id)
            connection.settings = {**(connection.settings or {}), "sync_delay_minutes": 0}
        db.session.commit()


def _no_run_succeeded_after_losing_its_lease(app, run_ids) -> None:
    from portal.extensions import db
    from portal.models import SyncRun

    with app.app_context():
        for run_id in run_ids:
            run = db.session.get(SyncRun, run_id)
            if run is not None and "lease_lost" in (run.counts or {}):
                assert run.status.value == "interrupted", (run.id, run.status, run.message)


def test_redis_restarted_during_a_push_with_a_tick_right_after(app, make_case, database_url, tmp_path):
    """Redis loses everything for a moment while the workers keep pushing; cron's tick fires right after.

    The runs under way keep their connections (their lease is in the database); the tick's runs
    find the connections held and write nothing, and no invoice reaches a ledger twice.
    """
    from portal import create_app
    from portal.extensions import db
    from portal.models import SyncRun
    from portal.sync import schedule

    redis_server = PrivateRedis(tmp_path)
    pool = None
    try:
        keys = ("TESTING", "SQLALCHEMY_DATABASE_URI", "SECRET_KEY", "TOKEN_KEYS", "SERVER_NAME", "SANDBOX_URL")
        queue_app = create_app({**{k: app.config[k] for k in keys}, "REDIS_URL": redis_server.url})
        queue_app.config["EMBEDDED_WORKER"] = False
        pool = Pool(queue_app, database_url, redis_server.url, tmp_path)
        pool.ensure()
        case = make_case("Redis restart + tick", app=queue_app, pool=pool)
        _due_at_once(queue_app, case.targets)
        case.slow_down()
        case.wait_progress(case.total() // 4)

        redis_server.crash()
        case.note_event()
        time.sleep(0.3)
        redis_server.start()
        with queue_app.app_context():
            ticked = schedule.tick()  # cron fires right after the restart: every connection has due invoices
            tick_runs = [
                run.id for run in db.session.scalars(db.select(SyncRun).where(SyncRun.message.like("Scheduled push%")))
            ]
        for target in case.targets:
            pushed, _due, _status = case.state(target)
            target.notes.append(f"Redis lost all data with {pushed} pushed; tick enqueued {len(ticked.enqueued)}")
        assert ticked.enqueued, "the tick found due invoices and enqueued pushes"

        case.drive(timeout=RECOVERY_SECONDS)
        case.recover()
        _conclude(case)
        _no_run_succeeded_after_losing_its_lease(queue_app, [*case.run_provider, *tick_runs])
    finally:
        if pool is not None:
            pool.stop()
        redis_server.close()


def test_a_worker_frozen_past_its_lease_and_resumed_writes_nothing_more(
    app, make_case, database_url, tmp_path, monkeypatch
):
    """SIGSTOP a worker in the middle of a push for longer than the lease, push on with another, then SIGCONT it.

    The newer run takes the connection over (a higher fencing token); the resumed worker's run
    stops before its next create, cannot overwrite a record the newer run marked, and ends
    interrupted. Every invoice is in its ledger once.
    """
    import signal

    from rq.job import Job
    from rq.serializers import JSONSerializer

    from portal import create_app
    from portal.extensions import db, queue
    from portal.models import SyncRun

    lease = 4
    monkeypatch.setenv("LEDGERLINK_PUSH_LEASE_SECONDS", str(lease))  # the pool's workers take it up
    # A Redis of its own: only this test's workers take its jobs.
    redis_server = PrivateRedis(tmp_path)
    keys = ("TESTING", "SQLALCHEMY_DATABASE_URI", "SECRET_KEY", "TOKEN_KEYS", "SERVER_NAME", "SANDBOX_URL")
    queue_app = create_app({**{k: app.config[k] for k in keys}, "REDIS_URL": redis_server.url})
    queue_app.config["EMBEDDED_WORKER"] = False
    pool = Pool(queue_app, database_url, redis_server.url, tmp_path)
    frozen = None
    try:
        pool.ensure()
        case = make_case("worker SIGSTOP past the lease", app=queue_app, pool=pool)
        case.slow_down(ms=80)
        case.drive(lambda: case.pushed_total() >= case.total() // 4, timeout=120)

        def running_push():
            """Return (worker, target, run id) of a push under way with invoices left, else None."""
            with queue_app.app_context():
                db.session.expire_all()
                for target in sorted(case.targets, key=lambda t: case.state(t)[0]):
                    run = db.session.get(SyncRun, target.run_id) if target.run_id else None
                    if run is None or run.status.value != "running" or not run.rq_job_id or case.done(target):
                        continue
                    job = Job.fetch(run.rq_job_id, connection=queue.connection, serializer=JSONSerializer)
                    worker = next((w for w in pool.workers if w.name == job.worker_name), None)
                    if worker is not None:
                        return worker, target, run.id
            case.drive(lambda: True, timeout=5, fail=False)  # keep pushes going meanwhile
            return None

        frozen, victim_target, victim_run = wait_for(running_push, timeout=60, what="a push under way")
        os.kill(frozen.pid, signal.SIGSTOP)
        case.note_event(victim_target.provider)
        pushed_at_freeze = case.state(victim_target)[0]
        time.sleep(lease + 2)  # past the lease (and the Redis lock, which lasts as long)

        pool.workers.remove(frozen)  # not counted as one of the pool's: another worker takes the work
        pool.ensure()
        case.start_push(victim_target)
        newer = victim_target.run_id
        case.drive(
            lambda: case.state(victim_target)[0] >= pushed_at_freeze + 2 or case.done(victim_target), timeout=120
        )
        os.kill(frozen.pid, signal.SIGCONT)
        victim_target.notes.append(f"worker frozen {lease + 2} s with {pushed_at_freeze} pushed, then resumed")

        status = wait_for(
            lambda: (run_outcome(queue_app, victim_run) or (None,))[0], timeout=120, what="the resumed run to end"
        )
        assert status == "interrupted", (status, run_outcome(queue_app, victim_run))
        case.recover()
        _conclude(case)
        assert run_outcome(queue_app, newer)[0] in ("succeeded", "interrupted", "cancelled")
        _no_run_succeeded_after_losing_its_lease(queue_app, list(case.run_provider))
    finally:
        if frozen is not None and frozen.alive:
            os.kill(frozen.pid, signal.SIGCONT)
            frozen.stop()
        pool.stop()
        redis_server.close()


def test_throughput_under_ten_percent_5xx_against_fault_free(make_case, app, targets):
    """Push a batch fault-free, then an equal batch with 10 % of requests answered 500/502/503, faults left on.

    Every invoice reaches its ledger once in both; the matrix notes both times and their ratio.
    """
    from .conftest import more_invoices

    baseline = make_case("fault-free (baseline)")
    baseline.slow_down()
    started = time.monotonic()
    baseline.drive(timeout=RECOVERY_SECONDS)
    clean_seconds = time.monotonic() - started
    baseline.settle()
    _conclude(baseline)

    faulty = make_case("10% 5xx, left on", targets=more_invoices(app, targets))
    faulty.slow_down()
    for status in (500, 502, 503):
        faulty.each_provider(lambda _t, status=status: {"kind": "error_rate", "rate": 0.034, "status": status})
    started = time.monotonic()
    faulty.drive(timeout=RECOVERY_SECONDS)  # the faults stay on until every invoice is in
    faulty_seconds = time.monotonic() - started
    ratio = clean_seconds / faulty_seconds if faulty_seconds else 1.0
    for target in faulty.targets:
        target.notes.append(
            f"all in with 10% 5xx on: {faulty_seconds:.1f} s vs fault-free {clean_seconds:.1f} s "
            f"(throughput ratio {ratio:.2f})"
        )
    print(f"\nthroughput: fault-free {clean_seconds:.1f} s, 10% 5xx {faulty_seconds:.1f} s, ratio {ratio:.2f}")
    faulty.recover()
    _conclude(faulty)
