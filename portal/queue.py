"""RQ wiring: named queues on Redis (or an in-process fake Redis) with the JSON serializer.

In embedded mode (no REDIS_URL) jobs run in a worker thread of the web process; otherwise
any number of ``rq worker -w jobs.worker.LedgerlinkWorker`` processes run them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

if TYPE_CHECKING:
    from flask import Flask
    from rq.job import Job

QUEUE_NAMES = ("sync", "history", "default")

log = logging.getLogger(__name__)

_fake_server = None


def _embedded_connection() -> redis.Redis:
    """Return a connection to the process-wide fake Redis server."""
    global _fake_server
    import fakeredis

    if _fake_server is None:
        _fake_server = fakeredis.FakeServer()
    return fakeredis.FakeRedis(server=_fake_server)


class QueueState:
    """One app's Redis connection, queues and (embedded mode) worker thread."""

    def __init__(self, url: str) -> None:
        self.embedded = not url
        self.connection: redis.Redis = _embedded_connection() if self.embedded else redis.Redis.from_url(url)
        self.queues = {name: Queue(name, connection=self.connection, serializer=JSONSerializer) for name in QUEUE_NAMES}
        self.worker: EmbeddedWorker | None = None


class JobQueue:
    """The extension: binds a :class:`QueueState` to each app and reaches it through current_app."""

    def init_app(self, app: Flask) -> None:
        """Connect to REDIS_URL, or to an in-process fake Redis when it is empty."""
        app.extensions["ledgerlink_queue"] = QueueState(app.config.get("REDIS_URL") or "")

    @property
    def state(self) -> QueueState:
        """Return the current app's queue state."""
        from flask import current_app

        return current_app.extensions["ledgerlink_queue"]

    @property
    def connection(self) -> redis.Redis:
        """Return the current app's Redis connection."""
        return self.state.connection

    @property
    def embedded(self) -> bool:
        """Say whether the current app runs on the in-process fake Redis."""
        return self.state.embedded

    def enqueue(self, func: str, *args: Any, queue: str = "default", **options: Any) -> Job:
        """Put the job named by dotted path ``func`` on ``queue``; options go to RQ's enqueue_call."""
        queues = self.state.queues
        if queue not in queues:
            raise ValueError(f"unknown queue {queue!r}; use one of {', '.join(QUEUE_NAMES)}")
        return queues[queue].enqueue_call(func, args=args, **options)

    def start_embedded_worker(self, app: Flask) -> None:
        """Run queued jobs in a daemon thread of this process (embedded mode only)."""
        state: QueueState = app.extensions["ledgerlink_queue"]
        if not state.embedded or state.worker is not None:
            return
        state.worker = EmbeddedWorker(app, list(state.queues.values()), state.connection)
        thread = threading.Thread(target=state.worker.run_forever, name="ledgerlink-worker", daemon=True)
        thread.start()


class AppContextWorker(SimpleWorker):
    """An RQ worker that runs each job in the Flask app's context, without forking."""

    flask_app: Flask

    def perform_job(self, job, queue, execution=None):
        with self.flask_app.app_context():
            return super().perform_job(job, queue, execution)


class EmbeddedWorker(AppContextWorker):
    """The embedded worker thread: polls the fake Redis in burst passes."""

    # SIGALRM-based timeouts need the main thread; a timer thread enforces job timeouts here.
    death_penalty_class = TimerDeathPenalty

    def __init__(self, app: Flask, queues: list[Queue], connection: redis.Redis) -> None:
        super().__init__(queues, connection=connection, serializer=JSONSerializer, name="embedded")
        self.flask_app = app

    def _install_signal_handlers(self) -> None:
        # Signal handlers can only be installed from the main thread; this worker is a thread.
        pass

    def run_forever(self, idle_sleep: float = 0.2) -> None:
        """Work queued jobs until the process exits."""
        while True:
            try:
                self.work(burst=True, logging_level="WARNING")
            except Exception:  # keep the demo worker alive whatever one pass does
                log.exception("embedded worker pass failed")
            time.sleep(idle_sleep)
