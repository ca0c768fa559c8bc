"""RQ wiring: named queues on Redis (or an in-process fake Redis) with the JSON serializer.

In embedded mode (no REDIS_URL, the demo) the web process runs everything production spreads
over worker processes and cron, in daemon threads (:class:`EmbeddedRuntime`): one worker per
queue group (``sync`` and ``default``; ``history``), so a back-fill never holds up another
connection's push; RQ's scheduler, which moves jobs enqueued with ``enqueue_at`` (a push
rescheduled for a rate limit's reset or after an outage) to their queue when due; and the
schedule tick every minute (:func:`portal.sync.schedule.run_tick`: due pushes, payments pulls,
log purge). Otherwise any number of ``rq worker --with-scheduler -w jobs.worker.LedgerlinkWorker``
processes run the jobs and cron runs ``flask schedule tick``.

The fake Redis lives in one process: a command run from a terminal against the demo cannot
reach the demo's queues, so such a process serves no jobs (:attr:`JobQueue.serves_jobs` is
false) and :meth:`JobQueue.enqueue` refuses with :class:`EmbeddedQueueUnavailable` rather than
leave a run queued forever.
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
#: The embedded runtime's worker threads, each with the queues it serves (in priority order).
EMBEDDED_GROUPS = (("sync", "default"), ("history",))
#: Seconds between two runs of the embedded schedule tick.
TICK_SECONDS = 60

log = logging.getLogger(__name__)

_fake_server = None


def _embedded_connection() -> redis.Redis:
    """Return a connection to the process-wide fake Redis server."""
    global _fake_server
    import fakeredis

    if _fake_server is None:
        _fake_server = fakeredis.FakeServer()
    return fakeredis.FakeRedis(server=_fake_server)


class EmbeddedQueueUnavailable(RuntimeError):
    """A job was enqueued on the in-process fake Redis of a process that runs no jobs."""


class QueueState:
    """One app's Redis connection, queues and (embedded mode) worker thread."""

    def __init__(self, url: str) -> None:
        self.embedded = not url
        self.connection: redis.Redis = _embedded_connection() if self.embedded else redis.Redis.from_url(url)
        self.queues = {name: Queue(name, connection=self.connection, serializer=JSONSerializer) for name in QUEUE_NAMES}
        self.runtime: EmbeddedRuntime | None = None


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

    @property
    def serves_jobs(self) -> bool:
        """Say whether jobs enqueued here get run: a real Redis, or this process's embedded runtime."""
        state = self.state
        return not state.embedded or state.runtime is not None

    def enqueue(self, func: str, *args: Any, queue: str = "default", **options: Any) -> Job:
        """Put the job named by dotted path ``func`` on ``queue``; options go to RQ's enqueue_call.

        :raise EmbeddedQueueUnavailable: on the fake Redis of a process without the embedded runtime.
        """
        queues = self.queues(queue)
        return queues.enqueue_call(func, args=args, **options)

    def queues(self, name: str) -> Queue:
        """Return the queue ``name`` of the current app, ready to take jobs.

        :raise EmbeddedQueueUnavailable: on the fake Redis of a process without the embedded runtime.
        """
        queues = self.state.queues
        if name not in queues:
            raise ValueError(f"unknown queue {name!r}; use one of {', '.join(QUEUE_NAMES)}")
        if not self.serves_jobs:
            raise EmbeddedQueueUnavailable(
                "This process has no Redis (REDIS_URL is empty): the demo (make run) runs its jobs and its schedule "
                "itself, in its own process. Start the work from the portal's pages, or set REDIS_URL and run "
                "rq workers."
            )
        return queues[name]

    def start_embedded_worker(self, app: Flask) -> None:
        """Run queued and scheduled jobs and the schedule tick in daemon threads (embedded mode only)."""
        state: QueueState = app.extensions["ledgerlink_queue"]
        if not state.embedded or state.runtime is not None:
            return
        state.runtime = EmbeddedRuntime(app, state)
        state.runtime.start()


class AppContextWorker(SimpleWorker):
    """An RQ worker that runs each job in the Flask app's context, without forking."""

    flask_app: Flask

    def perform_job(self, job, queue, execution=None):
        with self.flask_app.app_context():
            return super().perform_job(job, queue, execution)


class EmbeddedWorker(AppContextWorker):
    """One embedded worker thread: polls its queues of the fake Redis in burst passes."""

    # SIGALRM-based timeouts need the main thread; a timer thread enforces job timeouts here.
    death_penalty_class = TimerDeathPenalty

    def __init__(self, app: Flask, queues: list[Queue], connection: redis.Redis, name: str = "embedded") -> None:
        super().__init__(queues, connection=connection, serializer=JSONSerializer, name=name)
        self.flask_app = app

    def _install_signal_handlers(self) -> None:
        # Signal handlers can only be installed from the main thread; this worker is a thread.
        pass

    def run_forever(self, idle_sleep: float = 0.2, stop: threading.Event | None = None) -> None:
        """Work queued jobs until the process exits (or ``stop`` is set)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.work(burst=True, logging_level="WARNING")
            except Exception:  # keep the demo worker alive whatever one pass does
                log.exception("embedded worker pass failed")
            stop.wait(idle_sleep)


class EmbeddedRuntime:
    """Worker threads per queue group, RQ's scheduler and the minute tick, for one app on the fake Redis."""

    def __init__(self, app: Flask, state: QueueState, *, tick_seconds: float = TICK_SECONDS) -> None:
        self.app = app
        self.state = state
        self.tick_seconds = tick_seconds
        self.workers = [
            EmbeddedWorker(
                app,
                [state.queues[name] for name in group],
                _embedded_connection(),
                name=f"embedded-{'-'.join(group)}-{id(self):x}",
            )
            for group in EMBEDDED_GROUPS
        ]
        self.ticks = 0
        self.threads: list[threading.Thread] = []
        self.stopping = threading.Event()

    def start(self) -> None:
        """Start every thread (daemons: they end with the process)."""
        for worker in self.workers:
            self.threads.append(
                threading.Thread(
                    target=worker.run_forever,
                    kwargs={"stop": self.stopping},
                    name=f"ledgerlink-{worker.name}",
                    daemon=True,
                )
            )
        self.threads.append(threading.Thread(target=self._schedule_loop, name="ledgerlink-scheduler", daemon=True))
        for thread in self.threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Let every thread finish what it is doing and end (the jobs still queued stay queued)."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout)

    def _schedule_loop(self) -> None:
        from rq.scheduler import RQScheduler

        scheduler = RQScheduler(list(QUEUE_NAMES), connection=self.state.connection, serializer=JSONSerializer)
        scheduler._connection = self.state.connection  # type: ignore[assignment]  # the fake Redis cannot be re-opened from its pool kwargs
        next_tick = time.monotonic() + min(5.0, self.tick_seconds)  # the first tick soon after start
        while not self.stopping.is_set():
            try:
                scheduler.acquire_locks()
                scheduler.enqueue_scheduled_jobs()
            except Exception:
                log.exception("embedded scheduler pass failed")
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self.tick_seconds
                self.tick()
            self.stopping.wait(1.0)

    def tick(self) -> None:
        """Run the schedule tick once, as cron runs ``flask schedule tick`` in production."""
        from .extensions import db
        from .sync.schedule import run_tick

        with self.app.app_context():
            try:
                outcome = run_tick()
                self.ticks += 1
                log.debug("embedded schedule tick: %s", outcome.describe())
            except Exception:
                db.session.rollback()
                log.exception("embedded schedule tick failed")
            finally:
                db.session.remove()
