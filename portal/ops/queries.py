"""Queries behind the ops console: health across every organization, failure groups, record lists.

Each page runs a fixed number of statements, whatever the number of rows it shows: lists are
paginated in SQL and what a row needs besides its own table is read for the whole page at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import typing
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import redis
from flask import current_app
from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    union,
    union_all,
)
from sqlalchemy.orm import InstrumentedAttribute, contains_eager

from ..database import utcnow
from ..extensions import db, queue
from ..integrations import specs
from ..models import (
    BusinessUnit,
    Connection,
    ConnectionStatus,
    CreditNote,
    Customer,
    ExternalRecord,
    Invoice,
    Organization,
    Payment,
    RecordKind,
    RecordState,
    SyncRun,
    SyncRunStatus,
)
from ..sync import schedule

#: Records that wait for a person: the failure queue shows these.
HELD = (RecordState.failed, RecordState.needs_action, RecordState.skipped)
#: Health buckets of the dashboard, in order, with the statuses each one counts.
HEALTH = {
    "healthy": (ConnectionStatus.connected,),
    "needs_reauthorization": (ConnectionStatus.needs_reauthorization,),
    "failing": (ConnectionStatus.failing,),
    "paused": (ConnectionStatus.paused,),
    "disconnected": (ConnectionStatus.disconnected,),
}
SORTS = {
    "organization": (Organization.name, Organization.id, Connection.id),
    "provider": (Connection.provider, Connection.region, Connection.id),
    "status": (Connection.status, Connection.id),
    "last_success": (Connection.last_success_at, Connection.id),
    "-last_success": (Connection.last_success_at.desc(), Connection.id.desc()),
    "created": (Connection.id,),
}
#: How far ahead a refresh token counts as expiring soon.
EXPIRY_HORIZON = timedelta(days=7)


def matches(text: str, *columns):
    """Return the condition that any of ``columns`` contains ``text`` (case-insensitive, wildcards literal)."""
    return or_(*(column.icontains(text, autoescape=True) for column in columns))


def provider_name(key: str) -> str:
    """Return a provider's display name (the key itself for an unknown one)."""
    try:
        return specs.get_spec(key).name
    except Exception:  # an unknown key in old data still shows
        return key


# -- figures over all held records, kept while the held records stay the same ---------------------

#: Longest a figure over the held records is kept (it is also dropped as soon as they change).
HELD_CACHE_SECONDS = 600


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
    return f"{n}:{_aware(latest).isoformat() if latest else ''}"


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


def _held_cached(name: str, fingerprint: str, key: dict, compute, encode, decode):
    """Return ``compute()``, kept in Redis under ``name``, ``key`` and the held records' fingerprint."""
    return _kept("held", name, [fingerprint, key], HELD_CACHE_SECONDS, compute, encode, decode)[0]


# -- connections ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionFilters:
    """What the connections list is narrowed to."""

    q: str = ""
    provider: str = ""
    region: str = ""
    status: ConnectionStatus | None = None
    health: str = ""
    #: Last success longer ago than this many days (or never).
    stale_days: int | None = None
    #: Refresh token expiring within this many days (or expired).
    expiring_days: int | None = None
    #: Only connections with records waiting longer than the promised delay.
    late: bool = False
    #: Only connections with held records.
    with_failures: bool = False
    sort: str = "organization"

    def args(self) -> dict[str, str]:
        """Return the filters as query arguments (for links and CSV)."""
        raw = {
            "q": self.q,
            "provider": self.provider,
            "region": self.region,
            "status": self.status.value if self.status else "",
            "health": self.health,
            "stale_days": "" if self.stale_days is None else str(self.stale_days),
            "expiring_days": "" if self.expiring_days is None else str(self.expiring_days),
            "late": "1" if self.late else "",
            "with_failures": "1" if self.with_failures else "",
            "sort": "" if self.sort == "organization" else self.sort,
        }
        return {k: v for k, v in raw.items() if v}


def connections_query(f: ConnectionFilters, now: datetime | None = None, *, columns: tuple = ()) -> Select:
    """Return connections of every organization with their unit and organization, filtered and sorted.

    With ``columns``, the same rows give only those columns (e.g. the ids of a page).
    """
    if columns:
        stmt = select(*columns).select_from(Connection).join(Connection.business_unit).join(BusinessUnit.organization)
    else:
        stmt = (
            select(Connection)
            .join(Connection.business_unit)
            .join(BusinessUnit.organization)
            .options(contains_eager(Connection.business_unit).contains_eager(BusinessUnit.organization))
        )
    stmt = stmt.where(*connection_conditions(f, now))
    return stmt.order_by(*SORTS.get(f.sort, SORTS["organization"]))


def connection_count(f: ConnectionFilters, now: datetime | None = None) -> int:
    """Return how many connections match ``f`` (one query over connections alone, no joins)."""
    return db.session.execute(
        select(func.count()).select_from(Connection).where(*connection_conditions(f, now))
    ).scalar_one()


def _matching_connections(q: str) -> CompoundSelect:
    """Return the ids of connections whose organization, unit or company matches ``q`` anywhere.

    Each part reads its own names (from their trigram indexes on PostgreSQL), so only the connections
    found meet the rest of the query.
    """
    organizations = select(Organization.id).where(matches(q, Organization.name, Organization.external_id))
    units = select(BusinessUnit.id).where(matches(q, BusinessUnit.name))
    return union(
        select(Connection.id)
        .join(BusinessUnit, Connection.business_unit_id == BusinessUnit.id)
        .where(BusinessUnit.organization_id.in_(organizations)),
        select(Connection.id).where(Connection.business_unit_id.in_(units)),
        select(Connection.id).where(
            matches(
                q, Connection.external_company_name, Connection.external_company_number, Connection.external_company_id
            )
        ),
    )


def connection_conditions(f: ConnectionFilters, now: datetime | None = None) -> list:
    """Return the conditions on connections that ``f`` sets (none needs a join)."""
    now = now or utcnow()
    conditions: list[ColumnElement[bool]] = []
    if f.q:
        conditions.append(Connection.id.in_(_matching_connections(f.q)))
    if f.provider:
        conditions.append(Connection.provider == f.provider)
    if f.region:
        conditions.append(Connection.region == f.region)
    if f.status:
        conditions.append(Connection.status == f.status)
    if f.health in HEALTH:
        conditions.append(Connection.status.in_(HEALTH[f.health]))
    elif f.health == "not_live":
        conditions += list(_not_live())
    if f.stale_days is not None:
        cutoff = now - timedelta(days=f.stale_days)
        conditions += [
            Connection.status != ConnectionStatus.disconnected,
            or_(Connection.last_success_at.is_(None), Connection.last_success_at < cutoff),
        ]
    if f.expiring_days is not None:
        conditions += _expiring(now + timedelta(days=f.expiring_days))
    if f.with_failures:
        held = select(ExternalRecord.id).where(
            ExternalRecord.connection_id == Connection.id, ExternalRecord.state.in_(HELD)
        )
        conditions.append(exists(held))
    if f.late:
        conditions.append(Connection.id.in_(list(late_counts(now)) or [-1]))
    return conditions


def _expiring(before: datetime) -> list:
    """Return the conditions of a live connection whose refresh token expires before ``before``."""
    return [
        Connection.status != ConnectionStatus.disconnected,
        Connection.refresh_expires_at.is_not(None),
        Connection.refresh_expires_at < before,
    ]


def held_counts(connection_ids: list[int]) -> dict[int, dict[str, int]]:
    """Return held record counts by state for each of the given connections, in one query."""
    if not connection_ids:
        return {}
    rows = db.session.execute(
        select(ExternalRecord.connection_id, ExternalRecord.state, func.count())
        .where(ExternalRecord.connection_id.in_(connection_ids), ExternalRecord.state.in_(HELD))
        .group_by(ExternalRecord.connection_id, ExternalRecord.state)
    )
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for connection_id, state, n in rows:
        found[connection_id][RecordState(state).value] = n
    return found


def shared_companies(connections: list[Connection]) -> dict[int, int]:
    """Return, for each given live connection whose ledger company other organizations use too, how many.

    One query: live connections grouped by (provider, region, company), counting organizations.
    """
    keys = {(c.provider, c.region or "", c.external_company_id) for c in connections if c.external_company_id}
    if not keys:
        return {}
    region = func.coalesce(Connection.region, "")
    rows = db.session.execute(
        select(
            Connection.provider,
            region,
            Connection.external_company_id,
            func.count(BusinessUnit.organization_id.distinct()),
        )
        .join(BusinessUnit, Connection.business_unit_id == BusinessUnit.id)
        .where(
            Connection.status != ConnectionStatus.disconnected,
            Connection.external_company_id.in_({k[2] for k in keys}),
        )
        .group_by(Connection.provider, region, Connection.external_company_id)
    )
    organizations = {(provider, reg, company): n for provider, reg, company, n in rows}
    return {
        c.id: organizations[key] - 1
        for c in connections
        if c.is_live and organizations.get(key := (c.provider, c.region or "", c.external_company_id), 0) > 1
    }


# -- dashboard --------------------------------------------------------------------------------


def status_counts(now: datetime | None = None, horizon: timedelta = EXPIRY_HORIZON) -> dict:
    """Return connection counts by status, by provider and region with their statuses, and how many live
    connections have a refresh token expiring within ``horizon`` (as :func:`expiring_count`), in one query.
    """
    now = now or utcnow()
    expiring = case((and_(*_expiring(now + horizon)), 1), else_=0)
    not_live = case((and_(*_not_live()), 1), else_=0)
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


def _not_live() -> tuple:
    """Return the conditions of a connection being set up: not disconnected, not through its go-live gate."""
    return (Connection.status != ConnectionStatus.disconnected, Connection.live_since.is_(None))


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
            .where(*_not_live(), Invoice.issue_date >= func.date(Connection.sync_from), ~exists(pushed))
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


def _join_owners(stmt: Select, connection_id) -> Select:
    """Join ``stmt`` to the connection that ``connection_id`` names and to its business unit."""
    return stmt.join(Connection, connection_id == Connection.id).join(
        BusinessUnit, Connection.business_unit_id == BusinessUnit.id
    )


def _waiting_since():
    """Return since when a held record waits: its last attempt, else its creation."""
    return func.coalesce(ExternalRecord.last_attempt_at, ExternalRecord.created_at)


def _with_connection() -> Select:
    return (
        select(ExternalRecord)
        .join(ExternalRecord.connection)
        .join(Connection.business_unit)
        .join(BusinessUnit.organization)
        .options(
            contains_eager(ExternalRecord.connection)
            .contains_eager(Connection.business_unit)
            .contains_eager(BusinessUnit.organization)
        )
    )


def oldest_failure(fingerprint: str | None = None) -> ExternalRecord | None:
    """Return the held record that has waited longest (failed or needing action), with its connection.

    One query: the search, or (while the held records stay the same, see :func:`held_fingerprint`)
    the record found last time, read by its id.
    """

    def find() -> ExternalRecord | None:
        stmt = (
            _with_connection()
            .where(ExternalRecord.state.in_((RecordState.failed, RecordState.needs_action)))
            .order_by(_waiting_since(), ExternalRecord.id)
            .limit(1)
        )
        return db.session.scalars(stmt).first()

    def load(record_id: int | None) -> ExternalRecord | None:
        if record_id is None:
            return None
        return db.session.scalars(_with_connection().where(ExternalRecord.id == record_id)).first()

    return _held_cached(
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
        _join_owners(
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
    return _held_cached("total", fingerprint or held_fingerprint(), {}, _held_total, dict, dict)


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


#: Dashboard figures that need no more precision than this are kept this long (see :func:`minute_key`).
MINUTE_SECONDS = 60


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
    return db.session.execute(select(func.count()).where(*_expiring(now + horizon))).scalar_one()


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
    failed = _held_cached(
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


# -- failures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailureFilters:
    """Which held records a failure list shows."""

    error_class: str = ""
    provider: str = ""
    #: The exact last error text (a group's key); "" for any.
    text: str | None = None
    q: str = ""
    state: RecordState | None = None

    def args(self) -> dict[str, str]:
        """Return the filters as query arguments."""
        raw = {
            "error_class": self.error_class,
            "provider": self.provider,
            "text": self.text or "",
            "q": self.q,
            "state": self.state.value if self.state else "",
        }
        return {k: v for k, v in raw.items() if v}


@dataclass
class FailureGroup:
    """Held records sharing a cause: error class, provider and the error's words."""

    error_class: str
    provider: str
    text: str
    records: int
    organizations: int
    connections: int
    oldest: datetime | None
    #: One connection and organization of the group (the only ones when ``connections`` is 1).
    connection_id: int | None = None
    organization_id: int | None = None


@dataclass
class ErrorClassGroup:
    """One error class with its groups."""

    error_class: str
    records: int = 0
    groups: list[FailureGroup] = field(default_factory=list)
    organization_ids: set = field(default_factory=set)


def _held_where(f: FailureFilters) -> list:
    conditions: list[ColumnElement[bool]] = (
        [ExternalRecord.state == f.state] if f.state else [ExternalRecord.state.in_(HELD)]
    )
    if f.error_class:
        conditions.append(
            ExternalRecord.last_error_class.is_(None)
            if f.error_class == "unclassified"
            else ExternalRecord.last_error_class == f.error_class
        )
    if f.provider:
        conditions.append(Connection.provider == f.provider)
    if f.text is not None and f.text != "":
        conditions.append(ExternalRecord.last_error_text == f.text)
    if f.q:
        conditions.append(
            matches(
                f.q,
                Organization.name,
                Connection.external_company_name,
                Connection.external_company_id,
                ExternalRecord.last_error_text,
                ExternalRecord.reference,
            )
        )
    return conditions


def _failure_groups(f: FailureFilters, limit: int = 500) -> tuple[list[ErrorClassGroup], dict[str, int]]:
    """Return held records grouped by error class, then by provider and error text, and how many
    organizations each error class shown touches (one query).

    The held records are counted once per (error class, text, connection), in a common table read by
    both the groups and the organizations per class, so the records are read once and the joins to
    connections and units meet one row per connection and cause instead of one per record. On
    PostgreSQL the texts are grouped by their MD5 digest and each group's text is read from one
    sample record at the end, so the sorts and hashes carry 32 characters instead of the whole
    provider text.
    """
    error_class = ExternalRecord.last_error_class
    digest = db.session.get_bind().dialect.name == "postgresql"
    text_key = func.md5(ExternalRecord.last_error_text) if digest else ExternalRecord.last_error_text
    per_connection = select(
        error_class.label("error_class"),
        text_key.label("text_key"),
        ExternalRecord.connection_id.label("connection_id"),
        func.count().label("n"),
        func.min(_waiting_since()).label("oldest"),
        func.min(ExternalRecord.id).label("sample_id"),
    ).select_from(ExternalRecord)
    if f.provider or f.q:
        per_connection = _join_owners(per_connection, ExternalRecord.connection_id).join(
            Organization, BusinessUnit.organization_id == Organization.id
        )
    grouped = (
        per_connection.where(*_held_where(f))
        .group_by(error_class, text_key, ExternalRecord.connection_id)
        .cte("per_connection")
    )
    base = _join_owners(select().select_from(grouped), grouped.c.connection_id)
    records = func.sum(grouped.c.n)
    groups = (
        base.add_columns(
            grouped.c.error_class.label("error_class"),
            Connection.provider.label("provider"),
            records.label("records"),
            func.count(func.distinct(BusinessUnit.organization_id)).label("organizations"),
            func.count(func.distinct(Connection.id)).label("connections"),
            func.min(grouped.c.oldest).label("oldest"),
            func.min(Connection.id).label("connection_id"),
            func.min(BusinessUnit.organization_id).label("organization_id"),
            func.min(grouped.c.sample_id).label("sample_id"),
        )
        .group_by(grouped.c.error_class, Connection.provider, grouped.c.text_key)
        .order_by(records.desc(), grouped.c.error_class, Connection.provider, grouped.c.text_key)
        .limit(limit)
        .subquery("groups")
    )
    per_class = (
        base.add_columns(
            grouped.c.error_class.label("error_class"),
            func.count(func.distinct(BusinessUnit.organization_id)).label("organizations"),
        )
        .group_by(grouped.c.error_class)
        .subquery("per_class")
    )
    sample = ExternalRecord.__table__.alias("sample")
    rows = db.session.execute(
        select(
            groups.c.error_class,
            groups.c.provider,
            sample.c.last_error_text,
            groups.c.records,
            groups.c.organizations,
            groups.c.connections,
            groups.c.oldest,
            groups.c.connection_id,
            groups.c.organization_id,
            per_class.c.organizations,
        )
        .join(sample, sample.c.id == groups.c.sample_id)
        .join(per_class, per_class.c.error_class.is_not_distinct_from(groups.c.error_class))
    ).all()
    classes: dict[str, ErrorClassGroup] = {}
    touched: dict[str, int] = {}
    rows = sorted(rows, key=lambda r: (-int(r[3]), r[0] or "", r[1], r[2] or ""))
    for cls, provider, words, n, orgs, conns, oldest, connection_id, org_id, class_orgs in rows:
        cls, words, n = cls or "unclassified", words or "", int(n)
        group = classes.setdefault(cls, ErrorClassGroup(cls))
        group.records += n
        group.groups.append(FailureGroup(cls, provider, words, n, orgs, conns, _aware(oldest), connection_id, org_id))
        touched[cls] = class_orgs
    ordered = sorted(classes.values(), key=lambda g: (-g.records, g.error_class))
    return ordered, touched


def failure_groups(f: FailureFilters, limit: int = 500) -> tuple[list[ErrorClassGroup], dict[str, int]]:
    """Return held records grouped by error class, then by provider and error text, and how many
    organizations each error class touches.

    The groups are kept in Redis for as long as the held records stay the same (see
    :func:`held_fingerprint`): one query when nothing changed, two when something did.
    """
    return _held_cached(
        "groups",
        held_fingerprint(),
        {**f.args(), "text": f.text, "limit": limit},
        lambda: _failure_groups(f, limit),
        _encode_groups,
        _decode_groups,
    )


def _encode_groups(value: tuple[list[ErrorClassGroup], dict[str, int]]) -> dict:
    classes, touched = value
    return {
        "classes": [
            {
                "error_class": c.error_class,
                "records": c.records,
                "groups": [{**g.__dict__, "oldest": g.oldest.isoformat() if g.oldest else None} for g in c.groups],
            }
            for c in classes
        ],
        "touched": touched,
    }


def _decode_groups(raw: dict) -> tuple[list[ErrorClassGroup], dict[str, int]]:
    classes = [
        ErrorClassGroup(
            c["error_class"],
            c["records"],
            [FailureGroup(**{**g, "oldest": _aware(g["oldest"])}) for g in c["groups"]],
        )
        for c in raw["classes"]
    ]
    return classes, raw["touched"]


def _aware(value):
    """Return a timestamp read by an aggregate as aware UTC (SQLite gives a naive string)."""
    from datetime import UTC

    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def held_records_query(f: FailureFilters) -> Select:
    """Return held records matching ``f`` with connection, unit and organization, oldest first."""
    return _with_connection().where(*_held_where(f)).order_by(_waiting_since(), ExternalRecord.id)


def held_ids_query(f: FailureFilters) -> Select:
    """Return the ids of the held records matching ``f`` (for bulk actions on a whole group)."""
    return (
        _join_owners(select(ExternalRecord), ExternalRecord.connection_id)
        .join(Organization, BusinessUnit.organization_id == Organization.id)
        .where(*_held_where(f))
        .order_by(ExternalRecord.id)
    )


# -- records of one connection ----------------------------------------------------------------


@dataclass(frozen=True)
class RecordFilters:
    """Which records of a connection are listed."""

    state: RecordState | None = None
    kind: RecordKind | None = None
    q: str = ""

    def args(self) -> dict[str, str]:
        """Return the filters as query arguments."""
        raw = {
            "state": self.state.value if self.state else "",
            "kind": self.kind.value if self.kind else "",
            "q": self.q,
        }
        return {k: v for k, v in raw.items() if v}


def connection_records_query(connection: Connection, f: RecordFilters) -> Select:
    """Return the connection's records, held ones first, then newest."""
    held_first = case((ExternalRecord.state.in_(HELD), 0), else_=1)
    stmt = (
        select(ExternalRecord)
        .where(ExternalRecord.connection_id == connection.id)
        .order_by(held_first, ExternalRecord.updated_at.desc(), ExternalRecord.id.desc())
    )
    if f.state:
        stmt = stmt.where(ExternalRecord.state == f.state)
    if f.kind:
        stmt = stmt.where(ExternalRecord.kind == f.kind)
    if f.q:
        stmt = stmt.where(
            matches(f.q, ExternalRecord.reference, ExternalRecord.external_number, ExternalRecord.last_error_text)
        )
    return stmt


#: What each record kind points at locally, and the column people know it by.
_LOCAL: dict[RecordKind, tuple[type[Invoice | CreditNote | Customer | Payment], InstrumentedAttribute[Any]]] = {
    RecordKind.invoice: (Invoice, Invoice.number),
    RecordKind.credit_note: (CreditNote, CreditNote.number),
    RecordKind.customer: (Customer, Customer.name),
    RecordKind.payment: (Payment, Payment.id),
}


def local_labels(records: list[ExternalRecord]) -> dict[tuple[str, int], str]:
    """Return what people call each record's local object (invoice number, customer name), in one query."""
    wanted: dict[RecordKind, set[int]] = defaultdict(set)
    for record in records:
        wanted[RecordKind(record.kind)].add(record.local_id)
    if not wanted:
        return {}
    parts = [
        select(literal(kind.value).label("kind"), model.id.label("id"), cast(column, String).label("label")).where(
            model.id.in_(sorted(wanted.get(kind, ())))
        )
        for kind, (model, column) in _LOCAL.items()
    ]
    labels: dict[tuple[str, int], str] = {}
    for kind, local_id, label in db.session.execute(union_all(*parts)):
        labels[(kind, local_id)] = f"payment #{label}" if kind == RecordKind.payment.value else str(label)
    return labels


def held_customers(records: list[ExternalRecord]) -> dict[int, Customer]:
    """Return, by record id, the SaaS customer of each record held because its customer is not linked (one query)."""
    wanted = {
        record.id: (RecordKind(record.kind), record.local_id)
        for record in records
        if record.state is RecordState.needs_action and record.last_error_class == "customer_not_linked"
    }
    if not wanted:
        return {}
    by_kind: dict[RecordKind, set[int]] = defaultdict(set)
    for kind, local_id in wanted.values():
        by_kind[kind].add(local_id)
    owner: dict[tuple[RecordKind, int], int] = {}
    for kind, model in ((RecordKind.invoice, Invoice), (RecordKind.credit_note, CreditNote)):
        if by_kind.get(kind):
            for local_id, customer_id in db.session.execute(
                select(model.id, model.customer_id).where(model.id.in_(by_kind[kind]))
            ):
                owner[(kind, local_id)] = customer_id
    for local_id in by_kind.get(RecordKind.customer, ()):
        owner[(RecordKind.customer, local_id)] = local_id
    customers = {c.id: c for c in db.session.scalars(select(Customer).where(Customer.id.in_(set(owner.values()))))}
    return {
        record_id: customers[owner[key]]
        for record_id, key in wanted.items()
        if key in owner and owner[key] in customers
    }


def state_counts(connection: Connection) -> dict[str, int]:
    """Return the connection's records by state, in one query."""
    rows = db.session.execute(
        select(ExternalRecord.state, func.count())
        .where(ExternalRecord.connection_id == connection.id)
        .group_by(ExternalRecord.state)
    )
    return {RecordState(state).value: n for state, n in rows}


def sync_delay_minutes() -> int:
    """Return the default promised sync delay in minutes."""
    return int(current_app.config.get("SYNC_DELAY_MINUTES", 5))
