"""The dashboard's figures: health, expiring grants, late invoices, volume per day, the oldest failure."""

from __future__ import annotations

import typing
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import redis
from sqlalchemy import (
    and_,
    case,
    exists,
    func,
    or_,
    select,
)

from ...database import utcnow
from ...extensions import db, queue
from ...integrations import specs
from ...models import (
    BusinessUnit,
    Connection,
    ConnectionStatus,
    ExternalRecord,
    Invoice,
    RecordKind,
    RecordState,
    SyncRun,
    SyncRunStatus,
)
from ...sync import schedule
from .cache import held_cached, held_fingerprint, minute_cached, minute_key
from .common import (
    EXPIRY_HORIZON,
    HEALTH,
    HELD,
    expiring_before,
    join_owners,
    not_live_statuses,
    waiting_since,
    with_connection,
)

# -- dashboard --------------------------------------------------------------------------------


def status_counts(now: datetime | None = None, horizon: timedelta = EXPIRY_HORIZON) -> dict:
    """Return connection counts by status, by provider and region with their statuses, and how many live
    connections have a refresh token expiring within ``horizon`` (as :func:`expiring_count`), in one query.
    """
    now = now or utcnow()
    expiring = case((and_(*expiring_before(now + horizon)), 1), else_=0)
    not_live = case((and_(*not_live_statuses()), 1), else_=0)
    rows = db.session.execute(
        select(
            Connection.provider,
            Connection.region,
            Connection.status,
            func.count(),
            func.sum(expiring),
            func.sum(not_live),
        ).group_by(Connection.provider, Connection.region, Connection.status)
    ).all()
    by_status: dict[str, int] = defaultdict(int)
    by_provider: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    expiring_total = not_live_total = 0
    for provider, region, status, n, soon, setting_up in rows:
        status = ConnectionStatus(status)
        by_status[status.value] += n
        by_provider[(provider, region or "")][status.value] += n
        by_provider[(provider, region or "")]["total"] += n
        expiring_total += int(soon or 0)
        not_live_total += int(typing.cast(int, setting_up) or 0)
    health = {name: sum(by_status.get(s.value, 0) for s in statuses) for name, statuses in HEALTH.items()}
    health["pending_authorization"] = by_status.get(ConnectionStatus.pending_authorization.value, 0)
    health["not_live"] = not_live_total
    return {
        "health": health,
        "by_provider": {key: dict(value) for key, value in sorted(by_provider.items())},
        "expiring": expiring_total,
    }


def not_live_waiting() -> int:
    """Return how many invoices dated from their connection's date wait because the connection is not live yet."""
    pushed = select(ExternalRecord.id).where(
        ExternalRecord.connection_id == Connection.id,
        ExternalRecord.kind == RecordKind.invoice,
        ExternalRecord.local_id == Invoice.id,
        ExternalRecord.state == RecordState.pushed,
    )
    return (
        db.session.scalar(
            select(func.count(Invoice.id))
            .select_from(Connection)
            .join(Invoice, Invoice.business_unit_id == Connection.business_unit_id)
            .where(*not_live_statuses(), Invoice.issue_date >= func.date(Connection.sync_from), ~exists(pushed))
        )
        or 0
    )


#: Jobs that failed within this long count as "jobs failing" on the dashboard.
FAILING_JOBS_WINDOW = timedelta(hours=1)


def failed_runs(now: datetime) -> int:
    """Return how many background runs failed within :data:`FAILING_JOBS_WINDOW`."""
    return (
        db.session.scalar(
            select(func.count(SyncRun.id)).where(
                SyncRun.status == SyncRunStatus.failed, SyncRun.finished_at >= now - FAILING_JOBS_WINDOW
            )
        )
        or 0
    )


def status_counts_at(now: datetime, key: dict) -> tuple[dict, datetime]:
    """Return :func:`status_counts` and when they were counted: at most once a minute under ``key``
    (:func:`minute_key`), so a new connection shows at once and a changed status within a minute."""
    return minute_cached("status", key, lambda: status_counts(now), _encode_status, _decode_status)


def _encode_status(counts: dict) -> dict:
    return {**counts, "by_provider": [[*key, value] for key, value in counts["by_provider"].items()]}


def _decode_status(raw: dict) -> dict:
    return {**raw, "by_provider": {(provider, region): value for provider, region, value in raw["by_provider"]}}


def oldest_failure(fingerprint: str | None = None) -> ExternalRecord | None:
    """Return the held record that has waited longest (failed or needing action), with its connection.

    One query: the search, or (while the held records stay the same, see :func:`held_fingerprint`)
    the record found last time, read by its id.
    """

    def find() -> ExternalRecord | None:
        stmt = (
            with_connection()
            .where(ExternalRecord.state.in_((RecordState.failed, RecordState.needs_action)))
            .order_by(waiting_since(), ExternalRecord.id)
            .limit(1)
        )
        return db.session.scalars(stmt).first()

    def load(record_id: int | None) -> ExternalRecord | None:
        if record_id is None:
            return None
        return db.session.scalars(with_connection().where(ExternalRecord.id == record_id)).first()

    return held_cached(
        "oldest", fingerprint or held_fingerprint(), {}, find, lambda r: r.id if r is not None else None, load
    )


def _held_total() -> dict[str, int]:
    """Return held records by state, and how many organizations they touch, in one query.

    Held records are counted per connection first (from the partial index of held records), so
    only one row per connection meets the join to units.
    """
    per_connection = (
        select(
            ExternalRecord.connection_id.label("connection_id"),
            func.count().label("n"),
            func.sum(case((ExternalRecord.state == RecordState.failed, 1), else_=0)).label("failed"),
            func.sum(case((ExternalRecord.state == RecordState.needs_action, 1), else_=0)).label("needs_action"),
        )
        .where(ExternalRecord.state.in_(HELD))
        .group_by(ExternalRecord.connection_id)
        .subquery()
    )
    row = db.session.execute(
        join_owners(
            select(
                func.sum(per_connection.c.n),
                func.count(func.distinct(BusinessUnit.organization_id)),
                func.sum(per_connection.c.failed),
                func.sum(per_connection.c.needs_action),
            ).select_from(per_connection),
            per_connection.c.connection_id,
        )
    ).one()
    return {
        "records": int(row[0] or 0),
        "organizations": row[1] or 0,
        "failed": int(row[2] or 0),
        "needs_action": int(row[3] or 0),
    }


def held_total(fingerprint: str | None = None) -> dict[str, int]:
    """Return held records by state, and how many organizations they touch.

    Counted again only when the held records changed (see :func:`held_fingerprint`, which is read
    unless given).
    """
    return held_cached("total", fingerprint or held_fingerprint(), {}, _held_total, dict, dict)


def _late_counts(now: datetime) -> dict[int, int]:
    """Return, per scheduled connection, how many invoices wait longer than its promised sync delay.

    An invoice waits when it is dated on or after the connection's ``sync_from``, is not in the
    ledger, not held for a person, and was created longer ago than the connection's delay. One
    query reads the distinct delay settings of scheduled connections, then one runs per distinct
    delay (usually one or two); connections are chosen by their setting in SQL, never by id lists.
    """
    raw_delay = Connection.settings["sync_delay_minutes"].as_string()
    scheduled = schedule.scheduled_clause()
    settings = db.session.execute(select(raw_delay).where(scheduled).group_by(raw_delay)).scalars().all()
    buckets: dict[timedelta, list] = defaultdict(list)
    for raw in settings:
        value = {} if raw is None else {"sync_delay_minutes": raw}
        buckets[schedule.sync_delay(_SettingsOnly(value))].append(raw)
    finished = (RecordState.pushed, *HELD, RecordState.dismissed)
    counts: dict[int, int] = {}
    for delay, raws in buckets.items():
        chosen = [raw_delay.in_([r for r in raws if r is not None])] if any(r is not None for r in raws) else []
        if None in raws:
            chosen.append(raw_delay.is_(None))
        done = select(ExternalRecord.id).where(
            ExternalRecord.connection_id == Connection.id,
            ExternalRecord.kind == RecordKind.invoice,
            ExternalRecord.local_id == Invoice.id,
            ExternalRecord.state.in_(finished),
        )
        rows = db.session.execute(
            select(Connection.id, func.count(Invoice.id))
            .join(Invoice, Invoice.business_unit_id == Connection.business_unit_id)
            .where(
                scheduled,
                or_(*chosen),
                Invoice.issue_date >= func.date(Connection.sync_from),
                Invoice.created_at < now - delay,
                ~exists(done),
            )
            .group_by(Connection.id)
        )
        counts.update({connection_id: n for connection_id, n in rows if n})
    return counts


def late_counts(now: datetime | None = None, key: dict | None = None) -> dict[int, int]:
    """Return, per scheduled connection, how many invoices wait longer than its promised sync delay.

    Counted at most once a minute (and again as soon as a connection, invoice or record is added):
    the delays are minutes, and counting reads every invoice of every scheduled connection.
    ``key`` is :func:`minute_key` when the caller has read it already.
    """
    return late_counts_at(now, key)[0]


def late_counts_at(now: datetime | None = None, key: dict | None = None) -> tuple[dict[int, int], datetime]:
    """Return :func:`late_counts` and when they were counted."""
    now = now or utcnow()
    return minute_cached(
        "late",
        key or minute_key(now),
        lambda: _late_counts(now),
        lambda counts: {str(k): v for k, v in counts.items()},
        lambda raw: {int(k): v for k, v in raw.items()},
    )


@dataclass(frozen=True)
class _SettingsOnly:
    """Enough of a connection for :func:`portal.sync.schedule.sync_delay`."""

    settings: dict | None


def expiring_count(now: datetime | None = None, horizon: timedelta = EXPIRY_HORIZON) -> int:
    """Return how many live connections have a refresh token expiring within ``horizon`` (or expired)."""
    now = now or utcnow()
    return db.session.execute(select(func.count()).where(*expiring_before(now + horizon))).scalar_one()


def exact_divisions() -> list[tuple[str, str, str]]:
    """Return (division, name, region) of every live Exact Online connection, by division."""
    rows = db.session.execute(
        select(Connection.external_company_id, Connection.external_company_name, Connection.region)
        .where(
            Connection.provider == specs.EXACT_ONLINE,
            Connection.status != ConnectionStatus.disconnected,
            Connection.external_company_id.is_not(None),
        )
        .order_by(Connection.external_company_id)
    ).all()
    seen: dict[str, tuple[str, str, str]] = {}
    for division, name, region in rows:
        if division is None:  # excluded by the query
            continue
        seen.setdefault(division, (division, name or "", region or ""))
    return list(seen.values())


@dataclass
class DailySeries:
    """Counts per day over a period, oldest first."""

    days: list[date]
    pushed: list[int]
    failed: list[int]

    @property
    def total_pushed(self) -> int:
        return sum(self.pushed)

    @property
    def total_failed(self) -> int:
        return sum(self.failed)


def _per_day(column, *conditions, since: datetime) -> dict[str, int]:
    day = func.date(column)
    rows = db.session.execute(select(day, func.count()).where(column >= since, *conditions).group_by(day)).all()
    return {str(d): n for d, n in rows}


#: Pushed records of a closed day never change (pushed is final), so their count is kept in Redis this long.
CLOSED_DAY_SECONDS = 6 * 3600
_PUSHED_KEY = "ops:pushed-per-day:{}"


def _pushed_per_day(first: date, now: datetime) -> dict[str, int]:
    """Return records pushed per day since ``first``: closed days from Redis where known, in one query.

    The query counts from the first closed day not yet known (today only, once every closed day is
    known) and stores the closed days it counted.
    """
    today = now.date()
    closed = [first + timedelta(days=i) for i in range((today - first).days)]
    try:
        known = queue.connection.mget([_PUSHED_KEY.format(d.isoformat()) for d in closed]) if closed else []
    except redis.RedisError:
        known = [None] * len(closed)
    missing = [d for d, value in zip(closed, known, strict=True) if value is None]
    start = missing[0] if missing else today
    since = datetime.combine(start, datetime.min.time(), tzinfo=now.tzinfo)
    counted = _per_day(ExternalRecord.pushed_at, ExternalRecord.state == RecordState.pushed, since=since)
    found = {d.isoformat(): int(value) for d, value in zip(closed, known, strict=True) if value is not None}
    found.update(counted)
    if missing:
        try:
            pipe = queue.connection.pipeline(transaction=False)
            for d in closed[closed.index(start) :]:
                pipe.set(_PUSHED_KEY.format(d.isoformat()), counted.get(d.isoformat(), 0), ex=CLOSED_DAY_SECONDS)
            pipe.execute()
        except redis.RedisError:
            pass  # counted again next time
    return found


def daily_volume(days: int = 30, now: datetime | None = None, fingerprint: str | None = None) -> DailySeries:
    """Return records pushed and records failed per day over the last ``days`` days (at most two queries).

    Failed records per day are counted again only when the held records changed (see
    :func:`held_fingerprint`, which is read unless given).
    """
    now = now or utcnow()
    first = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(first, datetime.min.time(), tzinfo=now.tzinfo)
    pushed = _pushed_per_day(first, now)
    failed = held_cached(
        "failed-per-day",
        fingerprint or held_fingerprint(),
        {"since": since.isoformat()},
        lambda: _per_day(
            ExternalRecord.last_attempt_at,
            ExternalRecord.state.in_((RecordState.failed, RecordState.needs_action)),
            since=since,
        ),
        dict,
        dict,
    )
    dates = [first + timedelta(days=i) for i in range(days)]
    return DailySeries(
        dates, [pushed.get(d.isoformat(), 0) for d in dates], [failed.get(d.isoformat(), 0) for d in dates]
    )
