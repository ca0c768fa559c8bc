"""Read and prune the operation log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from flask import current_app
from sqlalchemy import Select, Table, delete, select
from sqlalchemy.orm import defer

from ..database import utcnow
from ..extensions import db
from ..models import OperationLog

DEFAULT_DAYS = 14
#: Status classes to filter by; "none" is a call that got no answer (status 0).
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "none")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def retention_days() -> int:
    """Return how many days entries are kept (OPERATION_LOG_DAYS, at least 1)."""
    try:
        return max(1, int(current_app.config.get("OPERATION_LOG_DAYS", DEFAULT_DAYS)))
    except (TypeError, ValueError):
        return DEFAULT_DAYS


def purge_expired(now: datetime | None = None) -> int:
    """Delete entries older than the retention in a transaction of their own; return how many went."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days())
    with db.engine.begin() as conn:
        table = cast(Table, OperationLog.__table__)
        result = conn.execute(delete(table).where(table.c.created_at < cutoff))
    return result.rowcount or 0


@dataclass(frozen=True)
class Filters:
    """What the operation list is narrowed to."""

    status_class: str = ""
    method: str = ""
    path: str = ""
    day_from: date | None = None
    day_to: date | None = None

    def as_args(self) -> dict[str, Any]:
        """Return the filters as query arguments (empty ones left out)."""
        values = {
            "status": self.status_class,
            "method": self.method,
            "path": self.path,
            "from": self.day_from.isoformat() if self.day_from else "",
            "to": self.day_to.isoformat() if self.day_to else "",
        }
        return {k: v for k, v in values.items() if v}


def operations(connection_id: int, filters: Filters, *, with_bodies: bool = False) -> Select:
    """Return the connection's entries matching ``filters``, newest first."""
    stmt = select(OperationLog).where(OperationLog.connection_id == connection_id)
    if not with_bodies:
        stmt = stmt.options(defer(OperationLog.request_body), defer(OperationLog.response_body))
    if filters.status_class == "none":
        stmt = stmt.where(OperationLog.status == 0)
    elif filters.status_class:
        low = int(filters.status_class[0]) * 100
        stmt = stmt.where(OperationLog.status >= low, OperationLog.status < low + 100)
    if filters.method:
        stmt = stmt.where(OperationLog.method == filters.method)
    if filters.path:
        stmt = stmt.where(OperationLog.path.icontains(filters.path, autoescape=True))
    if filters.day_from:
        stmt = stmt.where(OperationLog.created_at >= datetime.combine(filters.day_from, time.min, UTC))
    if filters.day_to:
        stmt = stmt.where(OperationLog.created_at < datetime.combine(filters.day_to + timedelta(days=1), time.min, UTC))
    return stmt.order_by(OperationLog.created_at.desc(), OperationLog.id.desc())
