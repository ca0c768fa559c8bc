"""How long until a connection's waiting documents are in the ledger: the backlog and its ETA.

A month-start burst (thousands of invoices ingested at once) drains at the ledger's pace, and the
people watching want three numbers: how many wait, how fast they go, and when the last one lands.

- **Waiting**: the invoices and credit notes a push would take now or after their sync delay
  (:func:`portal.sync.push.due_invoice_ids` rules: not in the ledger, not held for a person, not
  deferred after an outage of their own, not failed).
- **Rate**: measured — the documents the connection's pushes confirmed in the last
  :data:`WINDOW` per minute of pushing; with too few to measure, the **floor** stands in: the
  ledger's per-minute quota divided by the calls a document costs (measured from the operation
  log over the same window, else the provider's ``calls_per_invoice``).
- **When the last lands**: now plus waiting ÷ rate; where the ledger also has a daily budget
  (Exact Online: 5,000 calls a day per division) and the rest needs more calls than the day has
  left, the documents past it go after the budget resets, and the page says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from ..database import utcnow
from ..extensions import db, queue
from ..integrations import specs
from ..models import (
    Connection,
    ExternalRecord,
    OperationLog,
    RecordKind,
    RecordState,
    SyncRun,
    SyncRunKind,
    SyncRunStatus,
)
from . import limiter
from .push import due_credit_note_count, due_invoice_count

#: The stretch of recent pushing the rate and the calls per document are measured over.
WINDOW = timedelta(minutes=15)
#: Fewer confirmed documents than this in the window: the floor stands in for the measured rate.
MEASURED_FROM = 3
_DOCUMENTS = (RecordKind.invoice, RecordKind.credit_note)


@dataclass(frozen=True)
class Backlog:
    """The waiting documents of one connection and when the last of them should be in the ledger."""

    waiting: int
    #: Documents the ledger confirmed in the last :data:`WINDOW`.
    pushed_recently: int
    #: Documents per minute: measured when :attr:`measured`, else the floor.
    rate: float
    measured: bool
    #: Ledger calls per document: measured from the operation log, else the usual count.
    calls_per_document: float
    #: The fastest the ledger's per-minute quota allows at those calls per document.
    floor: float
    #: When the last waiting document should be in the ledger (None when nothing waits).
    eta: datetime | None
    #: When the ledger's daily budget resets, where the rest needs the next day's budget too.
    daily_reset: datetime | None
    #: Documents that still fit in today's daily budget (None without a daily budget).
    fit_today: int | None
    #: Today's daily budget: calls used and the limit (None without a daily budget).
    day_used: int | None = None
    day_limit: int | None = None

    @property
    def text(self) -> str:
        """Say it in a sentence a person reads at a glance."""
        if not self.waiting:
            return "Nothing waits to be pushed."
        how = (
            f"going at {self.rate:.1f} a minute"
            if self.measured
            else f"expected at about {self.rate:.1f} a minute (the quota's pace; none pushed in the last "
            f"{int(WINDOW.total_seconds() // 60)} minutes)"
        )
        words = (
            f"{self.waiting:,} invoice(s) and credit note(s) wait, {how}, "
            f"{self.calls_per_document:.1f} ledger calls each; the quota allows {self.floor:.1f} a minute."
        )
        if self.daily_reset is not None and self.fit_today is not None:
            words += (
                f" Today's daily budget takes {self.fit_today:,} more; the rest go after it resets at "
                f"{self.daily_reset:%H:%M} UTC."
            )
        if self.eta is not None:
            words += f" The last should be in the ledger at about {self.eta:%Y-%m-%d %H:%M} UTC."
        return words


def of(connection: Connection, now: datetime | None = None) -> Backlog:
    """Return the backlog of one connection."""
    now = now or utcnow()
    waiting = due_invoice_count(connection) + due_credit_note_count(connection)
    since = now - WINDOW
    pushed = db.session.execute(
        select(func.count(), func.min(ExternalRecord.pushed_at)).where(
            ExternalRecord.connection_id == connection.id,
            ExternalRecord.kind.in_(_DOCUMENTS),
            ExternalRecord.state == RecordState.pushed,
            ExternalRecord.pushed_at >= since,
        )
    ).one()
    count, first = int(pushed[0] or 0), pushed[1]
    calls = int(
        db.session.scalar(
            select(func.count()).where(OperationLog.connection_id == connection.id, OperationLog.created_at >= since)
        )
        or 0
    )
    spec = specs.get_spec(connection.provider)
    per_call = calls / count if count and calls else spec.capabilities.calls_per_invoice
    floor = spec.quotas.per_minute / max(per_call, 0.01)
    rate, measured = floor, False
    if count >= MEASURED_FROM and first is not None:
        first_at = first if first.tzinfo else first.replace(tzinfo=UTC)
        minutes = max((now - first_at).total_seconds() / 60, 1.0)
        rate, measured = count / minutes, True
    day = _day(connection, now)
    eta, reset, fit_today = _eta(connection, waiting, max(rate, 1e-6), per_call, now, day)
    return Backlog(
        waiting=waiting,
        pushed_recently=count,
        rate=rate,
        measured=measured,
        calls_per_document=per_call,
        floor=floor,
        eta=eta,
        daily_reset=reset,
        fit_today=fit_today,
        day_used=int(day["used"]) if day else None,
        day_limit=int(day["limit"]) if day else None,
    )


def _day(connection: Connection, now: datetime) -> dict[str, float] | None:
    """Return today's daily budget of the connection's company ({used, limit, reset ms}), None without one."""
    spec = specs.get_spec(connection.provider)
    if not spec.quotas.per_day or not connection.external_company_id:
        return None
    company = str(connection.external_company_id)
    stored = limiter.window_usage(queue.connection, connection.provider, [company], "day", now).get(company) or {}
    reset = stored.get("reset")
    return {
        "used": float(stored.get("used") or 0),
        "limit": float(stored.get("limit") or spec.quotas.per_day),
        "reset": float(reset) if reset and reset > now.timestamp() * 1000 else 0.0,
    }


def _eta(
    connection: Connection, waiting: int, rate: float, per_call: float, now: datetime, day: dict[str, float] | None
) -> tuple[datetime | None, datetime | None, int | None]:
    """Return (when the last lands, the daily reset the rest waits for, documents fitting today)."""
    if not waiting:
        return None, None, None
    eta = now + timedelta(minutes=waiting / rate)
    if day is None:
        return eta, None, None
    left = max(day["limit"] - day["used"], 0.0)
    if waiting * per_call <= left:
        return eta, None, None
    fit = int(left // per_call)
    reset = (
        datetime.fromtimestamp(day["reset"] / 1000, UTC)
        if day["reset"]
        else datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    )
    rest = waiting - fit
    per_day = max(int(day["limit"] // per_call), 1)
    whole_days = math.ceil(rest / per_day) - 1
    eta = reset + timedelta(days=whole_days, minutes=(rest - whole_days * per_day) / rate)
    return eta, reset, fit


def draining(limit: int = 10, now: datetime | None = None) -> list[tuple[Connection, Backlog]]:
    """Return the connections a push is running or queued for, with their backlogs: the latest to finish first.

    These are the bursts and catch-ups under way; the ops dashboard lists them.
    """
    now = now or utcnow()
    runs = db.session.scalars(
        select(SyncRun).where(
            SyncRun.kind.in_([SyncRunKind.incremental, SyncRunKind.resync]),
            SyncRun.status.in_([SyncRunStatus.queued, SyncRunStatus.running]),
        )
    ).all()
    ids = sorted({cid for run in runs if isinstance(cid := (run.parameters or {}).get("connection_id"), int)})
    found = []
    for connection in db.session.scalars(select(Connection).where(Connection.id.in_(ids))).all():
        if connection.is_live and connection.went_live:
            waiting = of(connection, now)
            if waiting.waiting:
                found.append((connection, waiting))
    far = datetime.max.replace(tzinfo=UTC)
    found.sort(key=lambda pair: (pair[1].eta or far, pair[1].waiting), reverse=True)
    return found[:limit]
