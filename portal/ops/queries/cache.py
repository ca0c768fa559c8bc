"""Figures kept in Redis: over the held records while they stay the same, and for the minute."""

from __future__ import annotations

import contextlib
import hashlib
import json
from datetime import datetime

import redis
from sqlalchemy import (
    func,
    select,
)

from ...database import utcnow
from ...extensions import db, queue
from ...models import (
    Connection,
    ExternalRecord,
    Invoice,
)
from .common import HELD, aware

# -- figures over all held records, kept while the held records stay the same ---------------------

#: Longest a figure over the held records is kept (it is also dropped as soon as they change).
HELD_CACHE_SECONDS = 600
#: Dashboard figures that need no more precision than this are kept this long (see :func:`minute_key`).
MINUTE_SECONDS = 60


def held_fingerprint() -> str:
    """Return what changes whenever any held record changes: their number and latest update (one query).

    A record entering, changing or leaving the held states is written through the ORM, which stamps
    ``updated_at``: the latest stamp moves, or (for a record leaving, or deleted with its connection)
    the number does. Read from the partial index of held records alone.
    """
    facts = _held_facts()
    n, latest = db.session.execute(select(facts.c.n, facts.c.latest)).one()
    return _fingerprint(n, latest)


def _held_facts():
    """Return the held records' number and latest update as one subquery: one scan of their index."""
    return (
        select(func.count().label("n"), func.max(ExternalRecord.updated_at).label("latest"))
        .where(ExternalRecord.state.in_(HELD))
        .subquery("held_facts")
    )


def _fingerprint(n: int, latest) -> str:
    return f"{n}:{aware(latest).isoformat() if latest else ''}"


def _kept(kind: str, name: str, key, seconds: int, compute, encode, decode) -> tuple:
    """Return ``compute()`` and when it was computed, kept in Redis for ``seconds`` under ``name`` and ``key``.

    ``encode`` turns the value into JSON-ready data and ``decode`` back. Without Redis, the value is
    computed every time.
    """
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]
    redis_key = f"ops:kept:{kind}:{name}:{digest}"
    try:
        raw = queue.connection.get(redis_key)
    except redis.RedisError:
        raw = None
    if raw is not None:
        stored = json.loads(raw)
        return decode(stored["value"]), datetime.fromisoformat(stored["at"])
    value, at = compute(), utcnow()
    with contextlib.suppress(redis.RedisError):  # else computed again next time
        stored = {"at": at.isoformat(), "value": encode(value)}
        queue.connection.set(redis_key, json.dumps(stored), ex=seconds)
    return value, at


def held_cached(name: str, fingerprint: str, key: dict, compute, encode, decode):
    """Return ``compute()``, kept in Redis under ``name``, ``key`` and the held records' fingerprint."""
    return _kept("held", name, [fingerprint, key], HELD_CACHE_SECONDS, compute, encode, decode)[0]


def minute_key(now: datetime) -> dict:
    """Return what a minute-precise figure is kept under: the minute, and the newest connection,
    invoice and record (one query, each read from its primary key).

    New rows show at once; a changed state (a record pushed, a connection paused) or quota counter shows
    within a minute.
    """
    return dashboard_keys(now, held=False)[0]


def dashboard_keys(now: datetime, held: bool = True) -> tuple[dict, str | None]:
    """Return :func:`minute_key` and (with ``held``) :func:`held_fingerprint`, read in one query."""
    newest = (
        select(func.max(Connection.id)).scalar_subquery(),
        select(func.max(Invoice.id)).scalar_subquery(),
        select(func.max(ExternalRecord.id)).scalar_subquery(),
    )
    if held:
        facts = _held_facts()
        row = tuple(db.session.execute(select(*newest, facts.c.n, facts.c.latest).select_from(facts)).one())
    else:
        row = tuple(db.session.execute(select(*newest)).one())
    key = {"minute": now.strftime("%Y-%m-%dT%H:%M"), "newest": list(row[:3])}
    return key, _fingerprint(row[3], row[4]) if held else None


def minute_cached(name: str, key: dict, compute, encode, decode) -> tuple:
    """Return ``compute()`` and when it was computed, kept in Redis under ``name`` and ``key`` for at
    most a minute (``key`` holds the minute: see :func:`minute_key`)."""
    return _kept("minute", name, key, MINUTE_SECONDS, compute, encode, decode)
