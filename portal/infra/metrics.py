"""Prometheus metrics of the whole installation, computed at scrape time from the database and Redis.

Web and worker processes are many and short-lived, so nothing is kept in process memory: queue
depths come from RQ, job outcomes and connections from the database, provider latency and 429
counts from counters in Redis that every process adds to: :func:`response_hook` (an
``on_response`` hook of :class:`~portal.integrations.http.LedgerHttp`) counts in memory and adds
its counts in one round trip about every second and at :func:`flush`.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time

import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select

from ..extensions import db, queue
from ..integrations.http import ResponseInfo
from ..models import Connection, ConnectionStatus, SyncRun

log = logging.getLogger(__name__)

KEY_PREFIX = "ledgerlink:metrics:provider"
#: The exposition format's media type.
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: Upper bounds (seconds) of the provider latency histogram.
BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _key(provider: str) -> str:
    return f"{KEY_PREFIX}:{provider}"


def _fields(info: ResponseInfo) -> dict[str, float]:
    """Return what one response adds to its provider's counters."""
    fields = {"count": 1.0, "sum": float(info.elapsed)}
    for bound in BUCKETS:
        if info.elapsed <= bound:
            fields[f"le:{bound}"] = 1.0
    if info.status == 429:
        fields["status_429"] = 1.0
    return fields


def _add(connection: redis.Redis, counts: dict[str, dict[str, float]], *, quiet: bool = False) -> None:
    """Add ``{provider: {field: n}}`` to the counters in one round trip (a warning when Redis fails)."""
    pipe = connection.pipeline(transaction=False)
    for provider, fields in counts.items():
        key = _key(provider)
        for name, value in fields.items():
            if name == "sum":
                pipe.hincrbyfloat(key, name, value)
            else:
                pipe.hincrby(key, name, int(value))
    try:
        pipe.execute()
    except redis.RedisError:
        if not quiet:
            log.warning("could not count %s responses for the metrics", ", ".join(sorted(counts)))


def observe_response(connection: redis.Redis, info: ResponseInfo) -> None:
    """Count one provider response at once: its latency bucket, and a 429 when it was one."""
    _add(connection, {info.provider: _fields(info)})


class _Tally:
    """Response counts of this process not yet added to Redis: added at most every :data:`FLUSH_SECONDS`."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection
        self.lock = threading.Lock()
        self.counts: dict[str, dict[str, float]] = {}
        self.since = time.monotonic()

    def observe(self, info: ResponseInfo) -> None:
        with self.lock:
            counted = self.counts.setdefault(info.provider, {})
            for name, value in _fields(info).items():
                counted[name] = counted.get(name, 0.0) + value
            due = time.monotonic() - self.since >= FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self, *, quiet: bool = False) -> None:
        with self.lock:
            counts, self.counts, self.since = self.counts, {}, time.monotonic()
        if counts:
            _add(self.redis, counts, quiet=quiet)


#: Seconds a process keeps counting responses in memory before adding them to Redis in one round trip.
FLUSH_SECONDS = 1.0
_tallies: dict[int, _Tally] = {}
_tallies_lock = threading.Lock()


def _tally(connection: redis.Redis) -> _Tally:
    with _tallies_lock:
        tally = _tallies.get(id(connection))
        if tally is None or tally.redis is not connection:
            tally = _tallies[id(connection)] = _Tally(connection)
        return tally


def response_hook(connection: redis.Redis):
    """Return an ``on_response`` hook that counts like :func:`observe_response`, batched.

    The counts are added to Redis at most every :data:`FLUSH_SECONDS` (one pipeline), and by
    :func:`flush` (a job calls it at its end; the process calls it when it exits).
    """
    return _tally(connection).observe


def flush(*, quiet: bool = False) -> None:
    """Add every count this process holds to Redis now (``quiet``: without a warning when Redis is gone)."""
    with _tallies_lock:
        tallies = list(_tallies.values())
    for tally in tallies:
        tally.flush(quiet=quiet)


# At exit the log handlers may be closed already: a Redis gone by then is not worth a word.
atexit.register(flush, quiet=True)


class PortalCollector:
    """Reads every metric when Prometheus scrapes."""

    def __init__(self, redis_connection: redis.Redis, queues: dict) -> None:
        self.redis = redis_connection
        self.queues = queues

    def collect(self):
        depth = GaugeMetricFamily("ledgerlink_queue_depth", "Jobs waiting in each RQ queue.", labels=["queue"])
        for name, rq_queue in self.queues.items():
            depth.add_metric([name], float(rq_queue.count))
        yield depth

        runs = CounterMetricFamily(
            "ledgerlink_sync_runs", "Background jobs by kind and status (SyncRun rows).", labels=["kind", "status"]
        )
        rows = db.session.execute(
            select(SyncRun.kind, SyncRun.status, func.count()).group_by(SyncRun.kind, SyncRun.status)
        ).all()
        for kind, status, n in rows:
            runs.add_metric([str(getattr(kind, "value", kind)), str(getattr(status, "value", status))], float(n))
        yield runs

        connections = GaugeMetricFamily(
            "ledgerlink_connections", "Connections by provider and status.", labels=["provider", "status"]
        )
        counted = {
            (provider, ConnectionStatus(status).value): n
            for provider, status, n in db.session.execute(
                select(Connection.provider, Connection.status, func.count()).group_by(
                    Connection.provider, Connection.status
                )
            )
        }
        for (provider, status), n in sorted(counted.items()):
            connections.add_metric([provider, status], float(n))
        yield connections

        latency = HistogramMetricFamily(
            "ledgerlink_provider_request_seconds", "Latency of ledger API responses.", labels=["provider"]
        )
        throttled = CounterMetricFamily(
            "ledgerlink_provider_throttled", "Ledger responses with status 429.", labels=["provider"]
        )
        for provider, fields in self._provider_counters().items():
            buckets = [(str(b), fields.get(f"le:{b}", 0.0)) for b in BUCKETS]
            buckets.append(("+Inf", fields.get("count", 0.0)))
            latency.add_metric([provider], buckets, sum_value=fields.get("sum", 0.0))
            throttled.add_metric([provider], fields.get("status_429", 0.0))
        yield latency
        yield throttled

    def _provider_counters(self) -> dict[str, dict[str, float]]:
        try:
            keys = sorted(k.decode() for k in self.redis.scan_iter(match=f"{KEY_PREFIX}:*", count=100))
            found = {}
            for key in keys:
                raw = self.redis.hgetall(key)
                found[key.rsplit(":", 1)[1]] = {k.decode(): float(v) for k, v in raw.items()}  # type: ignore[union-attr]  # bytes: no decode_responses
            return found
        except redis.RedisError:
            log.warning("provider metrics unavailable: Redis did not answer")
            return {}


def exposition() -> bytes:
    """Return the metrics in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PortalCollector(queue.connection, queue.state.queues))
    return generate_latest(registry)
