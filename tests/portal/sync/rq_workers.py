"""Real ``rq worker`` processes for sync tests, started as production starts them (Makefile ``worker``).

Each worker is its own process running ``jobs.worker.LedgerlinkWorker`` (or a subclass a test
names, such as the fault matrix's) with the JSON serializer and RQ's scheduler, on the test's Redis
and database, talking to the sandbox over HTTP. Tests stop the workers they start by process id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests

from tests.portal.connections.conftest import process_env

ROOT = Path(__file__).resolve().parents[3]
#: Generous: a loaded 2-core machine starts a worker (and the Flask app inside it) slowly.
WAIT_SECONDS = 90.0


def wait_for(predicate: Callable[[], Any], *, timeout: float = WAIT_SECONDS, what: str = "the condition") -> Any:
    """Poll ``predicate`` until it returns something truthy and return that.

    :raise AssertionError: naming ``what`` when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.15)


class WorkerProcess:
    """One ``rq worker`` process on the sync, history and default queues.

    ``worker_class`` is the dotted name of the RQ worker class the process runs (production's by
    default). The process gets its own process group, which :meth:`kill` and :meth:`stop` end whole.
    """

    def __init__(
        self,
        app,
        database_url: str,
        redis_url: str,
        log_dir: Path,
        name: str,
        *,
        worker_class: str = "jobs.worker.LedgerlinkWorker",
    ) -> None:
        self.name = f"{name}-{os.urandom(3).hex()}"
        self.log_path = log_dir / f"{self.name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "rq.cli", "worker", "--with-scheduler"),
                *("-w", worker_class, "-S", "rq.serializers.JSONSerializer"),
                *("-u", redis_url, "-n", self.name, "sync", "history", "default"),
            ],
            cwd=ROOT,
            env=process_env(app, database_url, redis_url),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own process group: killing the worker also kills the scheduler process RQ forks
            # for --with-scheduler, which would otherwise live on and take later tests' jobs.
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """Return the end of the worker's output (for assertion messages)."""
        self._log.flush()
        return self.log_path.read_bytes()[-chars:].decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker: no handler runs, nothing is committed or released."""
        _kill_group(self.process.pid)
        self.process.wait(30)

    def stop(self) -> None:
        """Stop the worker (warm shutdown: the current job finishes), then SIGKILL if it does not go."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        _kill_group(self.process.pid)  # whatever the worker left behind
        self._log.close()


def start_worker(app, database_url: str, redis_url: str, log_dir: Path, name: str = "sync-test") -> WorkerProcess:
    """Start one worker process; see :class:`WorkerProcess`."""
    return WorkerProcess(app, database_url, redis_url, log_dir, name)


def enqueue_push(app, connection_id: int) -> int:
    """Enqueue a push of the connection as the scheduler does; return its SyncRun id."""
    from portal.extensions import db
    from portal.models import Connection
    from portal.sync import schedule

    with app.app_context():
        run = schedule.enqueue_push(db.session.get(Connection, connection_id), reason="test")
        assert run is not None, "a push of this connection is already queued"
        return run.id


def run_outcome(app, run_id: int) -> tuple[str, dict, str | None] | None:
    """Return (status, counts, message) of a finished SyncRun, or None while it is queued or running."""
    from portal.extensions import db
    from portal.models import SyncRun

    with app.app_context():
        db.session.expire_all()
        run = db.session.get(SyncRun, run_id)
        if not run.status.finished:
            return None
        return run.status.value, dict(run.counts or {}), run.message


def records(app, connection_id: int) -> list[dict]:
    """Return the connection's invoice ExternalRecords as plain dicts."""
    from portal.extensions import db
    from portal.models import ExternalRecord, RecordKind

    with app.app_context():
        db.session.expire_all()
        rows = db.session.scalars(
            db.select(ExternalRecord).where(
                ExternalRecord.connection_id == connection_id, ExternalRecord.kind == RecordKind.invoice
            )
        )
        return [
            {
                "local_id": r.local_id,
                "state": r.state.value,
                "attempts": r.attempts,
                "external_id": r.external_id,
                "reference": r.reference,
                "error_class": r.last_error_class,
                "error_text": r.last_error_text,
            }
            for r in rows
        ]


def control(sandbox_url: str, path: str, body: dict | None = None, method: str = "POST") -> Any:
    """Call the sandbox control API (``/_control/<path>``) and return its JSON."""
    response = requests.request(method, f"{sandbox_url}/_control/{path}", json=body, timeout=10)
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


def sandbox_get(sandbox_url: str, path: str) -> Any:
    """GET a sandbox control resource and return its JSON."""
    return control(sandbox_url, path, method="GET")


def sandbox_post(sandbox_url: str, path: str, body: dict) -> Any:
    """POST to a sandbox control resource and return its JSON."""
    return control(sandbox_url, path, body)


def _kill_group(pid: int) -> None:
    """SIGKILL every process of the worker's process group (the worker and its scheduler)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pid, signal.SIGKILL)


def run_queued_jobs(flask_app) -> None:
    """Work every queued job once on the test's Redis, in this process, as a worker would."""
    from rq.serializers import JSONSerializer

    from portal.extensions import queue
    from portal.queue import AppContextWorker

    with flask_app.app_context():
        state = queue.state
        worker = AppContextWorker(list(state.queues.values()), connection=state.connection, serializer=JSONSerializer)
        worker.flask_app = flask_app
        worker.work(burst=True, logging_level="WARNING")


def expire_push_hold(app, connection_id: int) -> None:
    """Let go of a killed worker's hold on a connection now rather than when it expires.

    A SIGKILLed worker cannot release its push lock (Redis) or its lease (database); both lapse
    after the lease's time. Tests that do not want to wait that long expire both at once.
    """
    from portal.database import utcnow
    from portal.extensions import db, queue
    from portal.models import ConnectionLease
    from portal.sync import schedule

    with app.app_context():
        queue.connection.delete(schedule.lock_key(connection_id))
        table = ConnectionLease.__table__
        with db.engine.begin() as conn:
            conn.execute(
                table.update()
                .where(table.c.connection_id == connection_id, table.c.expires_at.is_not(None))
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
