"""The connections list of the ops console: filters, the query, and what a page of rows needs."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    exists,
    func,
    or_,
    select,
    union,
)
from sqlalchemy.orm import contains_eager

from ...database import utcnow
from ...extensions import db
from ...models import (
    BusinessUnit,
    Connection,
    ConnectionStatus,
    ExternalRecord,
    Organization,
    RecordState,
)
from .common import HEALTH, HELD, SORTS, expiring_before, matches, not_live_statuses
from .dashboard import late_counts

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
        conditions += list(not_live_statuses())
    if f.stale_days is not None:
        cutoff = now - timedelta(days=f.stale_days)
        conditions += [
            Connection.status != ConnectionStatus.disconnected,
            or_(Connection.last_success_at.is_(None), Connection.last_success_at < cutoff),
        ]
    if f.expiring_days is not None:
        conditions += expiring_before(now + timedelta(days=f.expiring_days))
    if f.with_failures:
        held = select(ExternalRecord.id).where(
            ExternalRecord.connection_id == Connection.id, ExternalRecord.state.in_(HELD)
        )
        conditions.append(exists(held))
    if f.late:
        conditions.append(Connection.id.in_(list(late_counts(now)) or [-1]))
    return conditions


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
