"""Write AuditEvents: who changed what on whose behalf, in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from flask_login import current_user

from .extensions import db
from .models import AuditEvent


def record(
    kind: str,
    *,
    subject_type: str,
    subject_id: int | None,
    summary: str,
    organization_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    actor_label: str | None = None,
) -> AuditEvent:
    """Add an audit event to the session; the caller's commit writes it with the change."""
    actor = current_user if current_user and getattr(current_user, "is_authenticated", False) else None
    event = AuditEvent(
        actor_id=actor.id if actor else None,
        actor_label=actor_label or (actor.email if actor else "system"),
        organization_id=organization_id,
        kind=kind,
        subject_type=subject_type,
        subject_id=subject_id,
        summary=summary[:500],
        before=before,
        after=after,
    )
    db.session.add(event)
    return event
