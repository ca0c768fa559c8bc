"""What the ops pages share: record and health groupings, text matching, provider names."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import (
    Select,
    func,
    or_,
    select,
)
from sqlalchemy.orm import contains_eager

from ...integrations import specs
from ...models import (
    BusinessUnit,
    Connection,
    ConnectionStatus,
    ExternalRecord,
    Organization,
    RecordState,
)

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


def expiring_before(before: datetime) -> list:
    """Return the conditions of a live connection whose refresh token expires before ``before``."""
    return [
        Connection.status != ConnectionStatus.disconnected,
        Connection.refresh_expires_at.is_not(None),
        Connection.refresh_expires_at < before,
    ]


def not_live_statuses() -> tuple:
    """Return the conditions of a connection being set up: not disconnected, not through its go-live gate."""
    return (Connection.status != ConnectionStatus.disconnected, Connection.live_since.is_(None))


def join_owners(stmt: Select, connection_id) -> Select:
    """Join ``stmt`` to the connection that ``connection_id`` names and to its business unit."""
    return stmt.join(Connection, connection_id == Connection.id).join(
        BusinessUnit, Connection.business_unit_id == BusinessUnit.id
    )


def waiting_since():
    """Return since when a held record waits: its last attempt, else its creation."""
    return func.coalesce(ExternalRecord.last_attempt_at, ExternalRecord.created_at)


def with_connection() -> Select:
    """Return a select of records with their connection, business unit and organization loaded."""
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


def aware(value):
    """Return a timestamp read by an aggregate as aware UTC (SQLite gives a naive string)."""
    from datetime import UTC

    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
