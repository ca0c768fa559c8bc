"""Query the audit trail: filters by organization, staff member, kind and date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, or_, select

from ..extensions import db
from ..models import AuditEvent, Organization, StaffUser
from ..params import is_id

#: Subject types naming a connection (older writers used the lower-case form).
CONNECTION_SUBJECTS = ("Connection", "connection")


@dataclass(frozen=True)
class Filters:
    """What the audit list is narrowed to; ``organization`` is an id or part of a name."""

    organization: str = ""
    staff_id: int | None = None
    kind: str = ""
    day_from: date | None = None
    day_to: date | None = None

    def as_args(self) -> dict[str, Any]:
        """Return the filters as query arguments (empty ones left out)."""
        values = {
            "org": self.organization,
            "staff": self.staff_id or "",
            "kind": self.kind,
            "from": self.day_from.isoformat() if self.day_from else "",
            "to": self.day_to.isoformat() if self.day_to else "",
        }
        return {k: v for k, v in values.items() if v}


def events(filters: Filters, *, connection_id: int | None = None) -> Select:
    """Return the events matching ``filters``, newest first (organizations joined, for the name filter)."""
    stmt = select(AuditEvent).outerjoin(Organization, Organization.id == AuditEvent.organization_id)
    if connection_id is not None:
        stmt = stmt.where(AuditEvent.subject_type.in_(CONNECTION_SUBJECTS), AuditEvent.subject_id == connection_id)
    if filters.organization:
        if is_id(filters.organization):
            stmt = stmt.where(AuditEvent.organization_id == int(filters.organization))
        else:
            stmt = stmt.where(Organization.name.icontains(filters.organization, autoescape=True))
    if filters.staff_id is not None:
        stmt = stmt.where(AuditEvent.actor_id == filters.staff_id)
    if filters.kind:
        stmt = stmt.where(or_(AuditEvent.kind == filters.kind, AuditEvent.kind.startswith(filters.kind + ".")))
    if filters.day_from:
        stmt = stmt.where(AuditEvent.created_at >= datetime.combine(filters.day_from, time.min, UTC))
    if filters.day_to:
        stmt = stmt.where(AuditEvent.created_at < datetime.combine(filters.day_to + timedelta(days=1), time.min, UTC))
    return stmt.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())


def organization_names(events: list[AuditEvent]) -> dict[int, str]:
    """Return the names of the events' organizations, in one query."""
    ids = {e.organization_id for e in events if e.organization_id is not None}
    if not ids:
        return {}
    return dict(db.session.execute(select(Organization.id, Organization.name).where(Organization.id.in_(ids))).all())


def kinds() -> list[str]:
    """Return every kind recorded so far, with each dotted prefix ("connection") offered too."""
    found = set(db.session.scalars(select(AuditEvent.kind).distinct()))
    return sorted(found | {k.split(".", 1)[0] for k in found})


def staff_members() -> list[StaffUser]:
    """Return the staff accounts to filter by."""
    return list(db.session.scalars(select(StaffUser).order_by(StaffUser.email)))


def change_text(before: dict | None, after: dict | None) -> str:
    """Return before → after in one line for lists and CSV."""
    keys = list(dict.fromkeys([*(before or {}), *(after or {})]))
    parts = []
    for key in keys:
        old, new = (before or {}).get(key), (after or {}).get(key)
        if old == new:
            continue
        if old in (None, ""):
            parts.append(f"{key}: set to {new}")  # a first value is set, not changed from nothing
        elif new in (None, ""):
            parts.append(f"{key}: cleared (was {old})")
        else:
            parts.append(f"{key}: {old} → {new}")
    return "; ".join(parts)
