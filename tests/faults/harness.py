"""Drive invoice pushes of three connections through real ``rq worker`` processes under a fault.

A :class:`Case` owns one connection per provider (Exact Online NL division 3010001, the
QuickBooks US realm, bexio's main company), their invoices, a pool of worker processes
(:class:`tests.faults.worker.FaultWorker`, started as production starts workers) and the Redis
they share. A test starts pushes, injects its fault while they run, then recovers: the fault is
cleared, dead workers are replaced and pushes run again until nothing is due. :meth:`Case.verify`
then compares every invoice with the sandbox ledger and yields one matrix row per provider.

Sizes come from ``PROOF_SCALE``: unset (CI) keeps the whole directory quick; ``full`` pushes a few
hundred invoices per connection and kills workers twenty times.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests
from rq.serializers import JSONSerializer

from tests.portal.sync.conftest import REFERENCE_FIELD, ledger_invoices
from tests.portal.sync.rq_workers import WorkerProcess, control, expire_push_hold, records, run_outcome, wait_for
from tests.sandbox_server import free_port

FULL = os.environ.get("PROOF_SCALE", "").strip().lower() == "full"
#: Invoices per connection.
INVOICES = 200 if FULL else 12
#: Times the worker pool is SIGKILLed in the kill case.
KILL_RUNS = 20 if FULL else 3
#: Worker processes per case.
WORKERS = 3 if FULL else 2
#: Generous: recovery of a large batch on a loaded 2-core machine.
RECOVERY_SECONDS = 900.0 if FULL else 240.0
#: Latency the sandbox adds to each provider request while a fault is injected, so that the
#: fault lands in the middle of a run rather than after it.
LATENCY_MS = 40

#: Rows of the fault matrix, one per provider and fault, in the order the cases ran.
MATRIX: list[dict] = []

#: The ledger's id field of an invoice in the sandbox's ledger view.
LEDGER_ID = {"exact-online": "InvoiceID", "quickbooks": "Id", "bexio": "id"}
#: The path of an invoice creation (not of a search); QuickBooks creates the invoices of a run in batch calls.
INVOICE_PATH = {"exact-online": "/SalesInvoices$", "quickbooks": "/(invoice|batch)$", "bexio": "/kb_invoice$"}


def ledger_index(sandbox: str, provider: str) -> dict[str, list[str]]:
    """Return our reference → the ledger ids of the invoices carrying it, from the sandbox ledger."""
    index: dict[str, list[str]] = {}
    for row in ledger_invoices(sandbox, provider):
        if row.get(REFERENCE_FIELD[provider]):
            index.setdefault(row[REFERENCE_FIELD[provider]], []).append(str(row[LEDGER_ID[provider]]))
    return index


class PrivateRedis:
    """A redis-server of one test on a free port, which the test may crash and start again.

    It keeps nothing on disk: a restart loses every queue, job, lock and counter, the harshest
    form of a Redis restart.
    """

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        assert binary, "the fault tests need a redis-server binary (apt-get install redis-server)"
        self.binary, self.directory, self.port = binary, directory, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=30, what="the private redis-server")

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.ConnectionError:
            return False

    def crash(self) -> None:
        """SIGKILL the server: every client connection drops, all data is gone."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class Worker(WorkerProcess):
    """One ``rq worker`` process running :class:`tests.faults.worker.FaultWorker` on the sync queues."""

    def __init__(self, app, database_url: str, redis_url: str, log_dir: Path, name: str) -> None:
        super().__init__(app, database_url, redis_url, log_dir, name, worker_class="tests.faults.worker.FaultWorker")

    def break_database_connections(self) -> None:
        """Close the worker's database connections underneath its pool (see tests/faults/worker.py)."""
        if self.alive:
            os.kill(self.pid, signal.SIGUSR1)


@dataclass
class Target:
    """One connection of the case and the invoices it must push."""

    provider: str
    connection_id: int
    #: (invoice id, invoice number = our reference in the ledger)
    invoices: list[tuple[int, str]] = field(default_factory=list)
    #: The current push run started by the case.
    run_id: int | None = None
    #: The connection is expected to lose its grant (the run stops with it, records wait).
    revoked: bool = False
    notes: list[str] = field(default_factory=list)
    #: The organization (as new_organization returns it) and business unit the invoices are made in.
    org: dict | None = None
    unit_id: int | None = None


class Pool:
    """The worker processes of one Redis; cases share it, replacing the workers they kill."""

    def __init__(self, app, database_url: str, redis_url: str, log_dir: Path) -> None:
        self.app, self.database_url, self.redis_url, self.log_dir = app, database_url, redis_url, log_dir
        self.workers: list[Worker] = []
        self.started = 0

    def ensure(self, count: int = WORKERS) -> None:
        """Replace dead workers until ``count`` are running."""
        for worker in [w for w in self.workers if not w.alive]:
            worker.stop()
            self.workers.remove(worker)
        while len(self.workers) < count:
            self.started += 1
            self.workers.append(Worker(self.app, self.database_url, self.redis_url, self.log_dir, f"f{self.started}"))

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def logs(self) -> str:
        logs = sorted(self.log_dir.glob("f*.log"), key=lambda p: p.stat().st_mtime)[-3:]
        return "\n".join(f"--- {p.name}\n{p.read_bytes()[-1500:].decode(errors='replace')}" for p in logs)


class Case:
    """Three connections pushed by a pool of workers under one fault; see the module docstring."""

    def __init__(self, app, fault: str, targets: list[Target], *, sandbox: str, pool: Pool) -> None:
        self.app, self.fault, self.targets, self.sandbox, self.pool = app, fault, targets, sandbox, pool
        #: Run id → when the case started it.
        self.run_started: dict[int, float] = {}
        self.began = time.monotonic()
        #: Seconds of each phase (setup done → fault phase → recovery), for the matrix.
        self.seconds: dict[str, float] = {}
        #: Injected fault id → (provider, times it fired), read from the sandbox as the case goes.
        self.fired: dict[int, tuple[str, int]] = {}
        #: Provider → faults the test itself caused (kills, drops, restarts, revocations).
        self.events: dict[str, int] = {}
        #: Run id → provider of the run.
        self.run_provider: dict[int, str] = {}

    @property
    def workers(self) -> list[Worker]:
        return self.pool.workers

    # -- workers ------------------------------------------------------------------------------
    def kill_worker(self, rng) -> list[str]:
        """SIGKILL one worker, preferably one running a push of the case; a new one takes its place.

        The killed worker's run never finishes and its lock stays until it expires: the lock is
        deleted at once instead (only that connection's: the other workers' runs go on).
        Returns the providers whose push the killed worker was running.
        """
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        from portal.extensions import db, queue
        from portal.models import SyncRun

        holders: dict[str, list[Target]] = {}
        with self.app.app_context():
            for target in self.targets:
                run = db.session.get(SyncRun, target.run_id) if target.run_id else None
                if run is None or not run.rq_job_id:
                    continue
                try:
                    job = Job.fetch(run.rq_job_id, connection=queue.connection, serializer=JSONSerializer)
                except NoSuchJobError:
                    continue
                if job.worker_name:
                    holders.setdefault(job.worker_name, []).append(target)
            busy = [w for w in self.workers if w.name in holders and w.alive]

            def kills(worker: Worker) -> int:
                return min(self.events.get(t.provider, 0) for t in holders[worker.name])

            # Among busy workers, one pushing the provider killed least often: every provider gets its share.
            fewest = [w for w in busy if kills(w) == min(map(kills, busy))] if busy else []
            victim = rng.choice(fewest or self.workers)
            victim.kill()
            hit = holders.get(victim.name, [])
            for target in hit:
                expire_push_hold(self.app, target.connection_id)
                target.run_id = None
            db.session.remove()
        self.pool.ensure()
        return [t.provider for t in hit]

    def kill_workers(self) -> None:
        """SIGKILL every worker; their runs never finish, so the next pushes are new runs."""
        for worker in self.workers:
            worker.kill()
        self.pool.stop()
        self.release_locks()
        for target in self.targets:
            target.run_id = None

    def stop_workers(self) -> None:
        self.pool.stop()

    def ensure_workers(self, count: int = WORKERS) -> None:
        self.pool.ensure(count)

    def worker_logs(self) -> str:
        return self.pool.logs()

    def release_locks(self) -> None:
        """Expire the connections' push locks and leases: no live worker holds them (killed ones cannot release)."""
        for target in self.targets:
            expire_push_hold(self.app, target.connection_id)

    # -- pushes -------------------------------------------------------------------------------
    def start_push(self, target: Target) -> None:
        """Start a push of the target's connection as ops do (its own job id, whatever else is queued)."""
        from portal.models import SyncRunKind
        from portal.runs import start_run
        from portal.sync import schedule

        with self.app.app_context():
            run = start_run(
                SyncRunKind.incremental,
                schedule.PUSH_JOB,
                queue_name=schedule.QUEUE,
                parameters={"connection_id": target.connection_id},
                timeout=schedule.JOB_TIMEOUT,
            )
            target.run_id = run.id
            self.run_started[run.id] = time.monotonic()
            self.run_provider[run.id] = target.provider

    def state(self, target: Target) -> tuple[int, int, str]:
        """Return (invoices pushed, invoices still to push (due or deferred), connection status)."""
        from portal.extensions import db
        from portal.models import Connection
        from portal.sync import push

        with self.app.app_context():
            db.session.expire_all()
            connection = db.session.get(Connection, target.connection_id)
            due = set(push.due_invoice_ids(connection))
            status = connection.status.value
        rows = records(self.app, target.connection_id)
        pushed = sum(1 for r in rows if r["state"] == "pushed")
        # Records deferred after an outage of their own are not due until their next attempt: still to do.
        due |= {r["local_id"] for r in rows if r["state"] == "pending"}
        return pushed, len(due), status

    def done(self, target: Target) -> bool:
        """Say whether the target needs no more pushes: nothing due, or its grant is gone as expected."""
        _pushed, due, status = self.state(target)
        if target.revoked:
            return status == "needs_reauthorization"
        return due == 0

    def pushed_total(self) -> int:
        return sum(self.state(t)[0] for t in self.targets)

    def total(self) -> int:
        return sum(len(t.invoices) for t in self.targets)

    def drive(self, until: Callable[[], bool] | None = None, *, timeout: float, fail: bool = True) -> bool:
        """Keep one push per unfinished connection going until all are done (or ``until`` holds).

        A finished run is followed by the next at once; a run that lost its job (Redis lost it,
        or its worker died) is replaced after it has not finished for a while.
        :raise AssertionError: when ``timeout`` passes first and ``fail`` is set.
        """
        deadline = time.monotonic() + timeout
        while True:
            pending = [t for t in self.targets if not self.done(t)]
            if not pending or (until is not None and any(t.run_id for t in self.targets) and until()):
                return True
            if time.monotonic() >= deadline:
                if not fail:
                    return False
                states = {t.provider: self.state(t) for t in self.targets}
                raise AssertionError(
                    f"{self.fault}: pushes did not finish in {timeout:.0f} s; (pushed, due, status) = {states}\n"
                    + self.worker_logs()
                )
            self.ensure_workers(len(self.workers) or WORKERS)
            self.read_fired()
            for target in pending:
                outcome = run_outcome(self.app, target.run_id) if target.run_id is not None else None
                finished = target.run_id is None or outcome is not None
                stale = target.run_id is not None and time.monotonic() - self.run_started[target.run_id] > 90
                if outcome is not None and "already_running" in outcome[1]:
                    # Another run (a retry the pipeline scheduled, or a run of a killed worker's
                    # successor) holds the connection: give it time rather than flood the queue.
                    finished = time.monotonic() - self.run_started[target.run_id] > 2
                if finished or stale:
                    if os.environ.get("FAULTS_DEBUG") and outcome is not None:
                        print(f"{time.monotonic() - self.began:6.1f} {target.provider} {outcome}", flush=True)
                    self.start_push(target)
            time.sleep(0.3)

    def wait_progress(self, at_least: int, timeout: float = 90.0) -> None:
        """Drive pushes until ``at_least`` invoices in all are pushed (or everything is done)."""
        self.drive(lambda: self.pushed_total() >= at_least, timeout=timeout)

    def recover(self, *, restart_workers: bool = False) -> None:
        """Clear every fault, replace dead (or all) workers and push until nothing is due."""
        self.read_fired()
        control(self.sandbox, "faults", method="DELETE")
        self.seconds["fault"] = round(time.monotonic() - self.began, 1)
        recovery = time.monotonic()
        if restart_workers:
            self.stop_workers()
            self.release_locks()
        for target in self.targets:
            target.run_id = None
        self.ensure_workers()
        self.drive(timeout=RECOVERY_SECONDS)
        self.settle()
        self.seconds["recovery"] = round(time.monotonic() - recovery, 1)

    def settle(self, timeout: float = 120.0) -> None:
        """Run one more push per connection that kept its grant, to its end.

        Nothing is due any more, so the run only finishes after-push steps an outage interrupted
        and, reaching the end, brings a connection the outages marked failing back to connected.
        """
        for target in self.targets:
            if target.revoked:
                continue
            deadline = time.monotonic() + timeout
            while True:
                self.start_push(target)
                status, counts, message = wait_for(
                    lambda t=target: run_outcome(self.app, t.run_id), timeout=timeout, what="the settling push"
                )
                if "already_running" not in counts:
                    assert status == "succeeded", (target.provider, message)
                    break
                assert time.monotonic() < deadline, f"{target.provider}: another push kept the connection"
                time.sleep(1)

    # -- faults ---------------------------------------------------------------------------------
    def read_fired(self) -> None:
        """Note how often each injected fault (not the latency) fired so far; retired ones keep their count."""
        for fault in control(self.sandbox, "faults", method="GET"):
            if fault["kind"] != "latency":
                self.fired[fault["id"]] = (fault["provider"], fault["fired"])

    def note_event(self, provider: str | None = None, count: int = 1) -> None:
        """Count a fault the test caused itself, for one provider or all of them."""
        for target in self.targets:
            if provider in (None, target.provider):
                self.events[target.provider] = self.events.get(target.provider, 0) + count

    def fault_events(self, provider: str) -> int:
        """How often the fault hit the provider's pushes: sandbox firings plus the test's own."""
        return sum(n for p, n in self.fired.values() if p == provider) + self.events.get(provider, 0)

    def run_summary(self, provider: str) -> str:
        """Say how the case's runs of the provider's connection ended."""
        from collections import Counter

        from portal.extensions import db
        from portal.models import SyncRun

        ids = [run_id for run_id, p in self.run_provider.items() if p == provider]
        with self.app.app_context():
            statuses = Counter(
                db.session.get(SyncRun, run_id).status.value for run_id in ids if db.session.get(SyncRun, run_id)
            )
        return "runs " + ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))

    def slow_down(self, ms: int = LATENCY_MS) -> None:
        """Add latency to every provider request so that faults land in the middle of runs."""
        for target in self.targets:
            control(self.sandbox, "faults", {"provider": target.provider, "kind": "latency", "ms": ms})

    def each_provider(self, body: Callable[[Target], dict]) -> None:
        for target in self.targets:
            control(self.sandbox, "faults", {"provider": target.provider, **body(target)})

    # -- verdict -------------------------------------------------------------------------------
    def verify(self) -> list[dict]:
        """Compare every invoice with its ledger; return one matrix row per provider."""
        rows = []
        for target in self.targets:
            ledger = ledger_index(self.sandbox, target.provider)
            by_local = {r["local_id"]: r for r in records(self.app, target.connection_id)}
            _pushed, _due, status = self.state(target)
            in_ledger = duplicates = lost = mismatched = waiting = failed = 0
            problems: list[str] = []
            for invoice_id, number in target.invoices:
                ids = ledger.get(number, [])
                record = by_local.get(invoice_id)
                state = record["state"] if record else None
                in_ledger += bool(ids)
                duplicates += max(0, len(ids) - 1)
                if len(ids) > 1:
                    problems.append(f"{number}: {len(ids)} in the ledger")
                if state == "failed":
                    failed += 1
                    problems.append(f"{number}: failed ({record['error_class']}: {record['error_text']})")
                if state == "pushed":
                    if record["external_id"] not in ids:
                        mismatched += 1
                        problems.append(f"{number}: pushed as {record['external_id']}, ledger has {ids}")
                elif ids:
                    mismatched += 1
                    problems.append(f"{number}: in the ledger ({ids}) but our record is {state}")
                elif target.revoked and state in (None, "pending"):
                    waiting += 1
                else:
                    lost += 1
                    problems.append(f"{number}: not in the ledger, record {state}")
            expected_status = "needs_reauthorization" if target.revoked else "connected"
            status_ok = status == expected_status
            if not status_ok:
                problems.append(f"connection is {status}, expected {expected_status}")
            ok = not (duplicates or lost or mismatched or failed) and status_ok
            rows.append(
                {
                    "provider": target.provider,
                    "fault": self.fault,
                    "invoices": len(target.invoices),
                    "in_ledger": in_ledger,
                    "duplicates": duplicates,
                    "lost": lost,
                    "mismatched": mismatched,
                    "failed": failed,
                    "waiting": waiting,
                    "connection": status,
                    "verdict": "PASS" if ok else "FAIL",
                    "fault_events": self.fault_events(target.provider),
                    "seconds": dict(self.seconds),
                    "notes": "; ".join([*target.notes, self.run_summary(target.provider), *problems[:5]]),
                }
            )
        return rows

    def close(self) -> None:
        requests.delete(f"{self.sandbox}/_control/faults", timeout=10)
