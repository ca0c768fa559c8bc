"""Fencing of ledger writes: a push writes to a connection's ledger only while it holds the connection.

Holding is a row per connection in the database (:class:`~portal.models.ConnectionLease`) with a
fencing token that only grows — in PostgreSQL or SQLite, not in Redis, so a Redis restart cannot
hand one connection to two runs:

- a run **takes** the lease when it starts (:func:`acquire`): the token goes up by one, which
  fences off every earlier holder; a lease still held by a live run (not expired) is not taken;
- it **keeps** it by renewing (:func:`renew`, as it makes progress and before a rate limiter's
  wait), and gives it up at its end (:func:`release`);
- **immediately before every create** in the ledger — customer, invoice, credit note, payment —
  :func:`before_write` runs one short statement on a database connection of its own (never the
  run's transaction): ``UPDATE connection_lease … WHERE connection_id = :c AND token = :mine``.
  No row: a newer run has the connection; :class:`LeaseLost` stops the run before the write.

The records a run marks carry its token (``ExternalRecord.fence``, the row's version column):
every UPDATE of a record says ``WHERE fence = <as read>``, so once a newer run has marked a
record, the older run's writes to it fail (StaleDataError) instead of overwriting what the
newer run stored, and :func:`claim` refuses to lower a record's token.

A look-up made ahead of a create (the push's look-up lane) is trusted only if the lease did not
lapse since it started (:meth:`Lease.fresh_since`); otherwise the create path looks again.

On SQLite (one writer at a time) a statement made while the run's own session holds the write
lock — it flushed and has not committed yet — goes through that session's connection and commits
with it; on its own connection it would wait for a lock its own thread holds.

What fencing cannot close: a run that stalls for longer than the lease (``PUSH_LEASE_SECONDS``)
*between* its check and its request leaving the process. The check renews the lease, so such a
stall is a frozen process of more than a lease's length within a few microseconds of code.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from flask import current_app
from sqlalchemy import Connection, Table, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..database import utcnow
from ..extensions import db
from ..models import ConnectionLease, ExternalRecord

#: Seconds a push holds its connection without renewing (``PUSH_LEASE_SECONDS`` overrides).
LEASE_SECONDS = 120

_TABLE = cast(Table, ConnectionLease.__table__)
_current: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("ledgerlink_push_lease", default=None)


class LeaseLost(Exception):
    """The run no longer holds its connection: a newer run took it over. Nothing more may be written."""

    def __init__(self, connection_id: int, token: int) -> None:
        super().__init__(f"the lease of connection {connection_id} (token {token}) was taken over by a newer run")
        self.connection_id, self.token = connection_id, token


@dataclass
class Lease:
    """A run's hold on one connection: its token, and (locally) until when it is sure to hold it."""

    connection_id: int
    run_id: int | None
    token: int
    seconds: float
    #: time.monotonic() until which the lease is known not to have expired.
    valid_until: float = 0.0
    #: time.monotonic() of the last moment the lease was found lapsed (expired, then renewed).
    lapsed_at: float = field(default=-1.0)

    def fresh_since(self, started: float) -> bool:
        """Say whether the lease stayed valid since ``started`` (time.monotonic()): a look-up then is still good."""
        return self.lapsed_at < started


_FLUSHED = "ledgerlink_flushed_writes"


@event.listens_for(Session, "after_flush")
def _note_flush(session, _context) -> None:
    session.info[_FLUSHED] = True


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _note_end(session) -> None:
    session.info.pop(_FLUSHED, None)


@contextmanager
def _statement() -> Iterator[Connection]:
    """Yield a connection for one short fencing statement: its own transaction, or (see above) the session's."""
    session = db.session()
    if db.engine.dialect.name == "sqlite" and session.info.get(_FLUSHED):
        yield session.connection()
        return
    with db.engine.begin() as conn:
        yield conn


def lease_seconds() -> float:
    """Return how long a lease lasts without renewal (the app's ``PUSH_LEASE_SECONDS``, else 120)."""
    return float(current_app.config.get("PUSH_LEASE_SECONDS") or LEASE_SECONDS)


def acquire(connection_id: int, run_id: int | None, seconds: float | None = None) -> Lease | None:
    """Take the connection's lease for a run, raising its token; None when a live run holds it.

    A lease whose holder stopped renewing (expired) is taken over; one given up is taken at once.
    """
    seconds = seconds or lease_seconds()
    now = utcnow()
    try:
        with db.engine.begin() as conn:
            present = conn.execute(select(_TABLE.c.token).where(_TABLE.c.connection_id == connection_id)).first()
            if present is None:
                conn.execute(insert(_TABLE).values(connection_id=connection_id, token=0))
    except IntegrityError:  # made by a run starting at the same moment: the UPDATE below decides
        pass
    started = time.monotonic()
    with db.engine.begin() as conn:
        taken = conn.execute(
            update(_TABLE)
            .where(
                _TABLE.c.connection_id == connection_id,
                _TABLE.c.expires_at.is_(None) | (_TABLE.c.expires_at <= now),
            )
            .values(
                token=_TABLE.c.token + 1,
                run_id=run_id,
                expires_at=now + timedelta(seconds=seconds),
                renewed_at=now,
            )
        ).rowcount
        if taken != 1:
            return None
        token = conn.execute(select(_TABLE.c.token).where(_TABLE.c.connection_id == connection_id)).scalar_one()
    return Lease(connection_id, run_id, int(token), seconds, valid_until=started + seconds)


def renew(lease: Lease, extra: float = 0.0) -> bool:
    """Renew the lease for its length plus ``extra`` seconds; say whether the run still holds it.

    One indexed UPDATE on its own short transaction. A lease that expired but was taken by nobody
    (same token) is renewed, and noted as lapsed (look-ups made before are repeated).
    """
    started = time.monotonic()
    now = utcnow()
    with _statement() as conn:
        held = conn.execute(
            update(_TABLE)
            .where(_TABLE.c.connection_id == lease.connection_id, _TABLE.c.token == lease.token)
            .values(expires_at=now + timedelta(seconds=lease.seconds + extra), renewed_at=now)
        ).rowcount
    if held != 1:
        return False
    if started > lease.valid_until:
        lease.lapsed_at = started
    lease.valid_until = started + lease.seconds + extra
    return True


def check(lease: Lease) -> None:
    """Make sure the run still holds its connection (and renew it), right before a write.

    :raise LeaseLost: when a newer run took the connection over.
    """
    if not renew(lease):
        raise LeaseLost(lease.connection_id, lease.token)


def release(lease: Lease) -> None:
    """Give the lease up (the token stays, so the next run's is higher); a lease taken over is left alone."""
    with _statement() as conn:
        conn.execute(
            update(_TABLE)
            .where(_TABLE.c.connection_id == lease.connection_id, _TABLE.c.token == lease.token)
            .values(expires_at=None, run_id=None)
        )


def holder(connection_id: int, now: datetime | None = None) -> int | None:
    """Return the id of the run holding the connection's lease now (not expired), else None."""
    now = now or utcnow()
    row = db.session.execute(
        select(ConnectionLease.run_id, ConnectionLease.expires_at).where(ConnectionLease.connection_id == connection_id)
    ).first()
    if row is None or row.expires_at is None or row.expires_at <= now:
        return None
    return row.run_id


@contextmanager
def holding(lease: Lease) -> Iterator[Lease]:
    """Make ``lease`` the one :func:`before_write` and :func:`claim` check in this thread while the block runs."""
    reset = _current.set(lease)
    try:
        yield lease
    finally:
        _current.reset(reset)


def current() -> Lease | None:
    """Return the lease this thread's push holds, if any (pushes outside a job hold none)."""
    return _current.get()


def before_write() -> None:
    """Check the lease of this thread's push immediately before a create in the ledger (nothing without one).

    :raise LeaseLost: when a newer run took the connection over.
    """
    lease = _current.get()
    if lease is not None:
        check(lease)


def claim(record: ExternalRecord) -> None:
    """Stamp a record being marked for an attempt with the run's token (the row's new version).

    :raise LeaseLost: when a newer run has marked the record already (its token is higher).
    """
    lease = _current.get()
    if lease is None:
        return
    if (record.fence or 0) > lease.token:
        raise LeaseLost(lease.connection_id, lease.token)
    record.fence = lease.token


def token() -> int | None:
    """Return the token of this thread's lease, if it holds one."""
    lease = _current.get()
    return lease.token if lease is not None else None
