"""Partial failure keeps a push going: a transient error defers one record, not the whole run.

Inside :func:`deferring` (a push job), an outage met by one record (5xx, timeout, network:
:class:`~portal.integrations.base.Unavailable`) leaves that record pending with a next attempt
of its own (``ExternalRecord.next_attempt_at``: 15, 30, 60 seconds, 2, 4 … minutes by its
attempts, at most an hour) and the run goes on with the others; a step after the push (PDF, finalize) that meets one
is marked failed and done again on the next run. Only :data:`STOP_AFTER` such errors **in a
row** say the ledger as a whole is down: then the error is raised as before, the run stops and
the connection-level backoff applies (:func:`portal.sync.schedule.backoff`). Any call that goes
through resets the count. Rate limits and lost grants always stop the run.

A deferred record is not due before its time (:func:`not_due`); the run that deferred records
schedules one retry of the connection for the earliest of them.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update

from ..database import utcnow
from ..extensions import db
from ..integrations.base import Unavailable
from ..models import ExternalRecord, RecordKind, RecordState

#: Transient errors in a row after which the ledger counts as down and the run stops.
STOP_AFTER = 3
#: A deferred record's first wait, doubled by each further attempt up to :data:`LONGEST`.
FIRST = timedelta(seconds=15)
LONGEST = timedelta(hours=1)


@dataclass
class Streak:
    """The transient errors of one run: how many in a row now, how many records deferred, the earliest retry."""

    in_a_row: int = 0
    deferred: int = 0
    earliest: datetime | None = None
    #: Whether the run went over its deferred records again already (:func:`retry_now`).
    retried: bool = False
    #: Whether a customer's creation was deferred with its outcome unknown: other new customers wait
    #: (a look-up by name would find that customer's possible copy and hold theirs for a person).
    customer_unsure: bool = False


_current: contextvars.ContextVar[Streak | None] = contextvars.ContextVar("ledgerlink_push_streak", default=None)


@contextmanager
def deferring() -> Iterator[Streak]:
    """Defer records on transient errors while the block runs (a push job); yield the run's :class:`Streak`."""
    streak = Streak()
    reset = _current.set(streak)
    try:
        yield streak
    finally:
        _current.reset(reset)


def wait_for(attempts: int) -> timedelta:
    """Return how long a record waits after its ``attempts``-th attempt met an outage."""
    return min(FIRST * 2 ** min(max(attempts, 1) - 1, 10), LONGEST)


def defer(record: ExternalRecord, error: Exception) -> bool:
    """Give the record its own next attempt after ``error``; say whether the run goes on.

    False outside :func:`deferring`, for errors other than outages, and once :data:`STOP_AFTER`
    outages came in a row (the caller raises the error: the run stops, the record stays due).
    """
    streak = _current.get()
    if streak is None or not isinstance(error, Unavailable):
        return False
    if not getattr(error, "counted", False):  # a document waiting for its customer's outage counts once
        streak.in_a_row += 1
    if streak.in_a_row >= STOP_AFTER:
        return False
    if record.kind is RecordKind.customer and getattr(error, "outcome_unknown", False):
        streak.customer_unsure = True
    record.next_attempt_at = utcnow() + wait_for(record.attempts)
    streak.deferred += 1
    if streak.earliest is None or record.next_attempt_at < streak.earliest:
        streak.earliest = record.next_attempt_at
    return True


def customer_unsure() -> bool:
    """Say whether new customers wait in this run: an earlier customer's creation has an unknown outcome."""
    streak = _current.get()
    return streak is not None and streak.customer_unsure


def step_failed(error: Exception) -> bool:
    """Say whether a step after the push that met ``error`` is marked failed (retried next run) and the run goes on."""
    streak = _current.get()
    if streak is None or not isinstance(error, Unavailable):
        return False
    streak.in_a_row += 1
    if streak.in_a_row >= STOP_AFTER:
        return False
    soon = utcnow() + FIRST
    streak.earliest = min(streak.earliest or soon, soon)
    return True


def went_through() -> None:
    """Note a write the ledger took: the outages so far were not in a row."""
    streak = _current.get()
    if streak is not None:
        streak.in_a_row = 0


def ended_in_outages() -> bool:
    """Say whether the run's last ledger writes all met outages (it does not count as the ledger being back)."""
    streak = _current.get()
    return streak is not None and streak.in_a_row > 0


def retry_now(connection_id: int) -> bool:
    """Make the records this run deferred due again at its end; say whether to go over them once more.

    Once per run: when records were deferred and no second pass was made yet (a run the ledger's
    outages stopped makes none). Their next attempts are cleared (committed); those deferred again
    keep theirs.
    """
    streak = _current.get()
    if streak is None or streak.retried or not streak.deferred:
        return False
    streak.retried = True
    db.session.execute(
        update(ExternalRecord)
        .where(
            ExternalRecord.connection_id == connection_id,
            ExternalRecord.state == RecordState.pending,
            ExternalRecord.next_attempt_at.is_not(None),
        )
        .values(next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    streak.deferred, streak.earliest, streak.customer_unsure = 0, None, False
    return True


def stopped() -> None:
    """Note that the run stopped on an error about the connection: its own retry replaces the deferred records'."""
    streak = _current.get()
    if streak is not None:
        streak.earliest = None


def not_due(now: datetime | None = None):
    """Return the SQL condition of a record deferred to later than ``now``."""
    return ExternalRecord.next_attempt_at.is_not(None) & (ExternalRecord.next_attempt_at > (now or utcnow()))
