"""Write AuditEvents: who changed what on whose behalf, in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from flask_login import current_user

from .extensions import db
from .models import AuditEvent


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def change_words(label: str, before: Any, after: Any) -> str:
    """Return one change in words: "set to", "cleared (was …)" or "before → after".

    A value that was never set (None or empty) reads as set, not as a change from None.
    """
    if before in (None, ""):
        return f"{label} set to {_shown(after)}"
    if after in (None, ""):
        return f"{label} cleared (was {_shown(before)})"
    return f"{label} {_shown(before)} → {_shown(after)}"


def describe_changes(before: dict[str, Any], after: dict[str, Any], labels: dict[str, str] | None = None) -> str:
    """Return the keys whose value differs, in words, joined by commas (labels default to the key in words)."""
    labels = labels or {}
    return ", ".join(
        change_words(labels.get(key) or key.replace("_", " "), before.get(key), after.get(key))
        for key in dict.fromkeys([*before, *after])
        if before.get(key) != after.get(key)
    )


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
