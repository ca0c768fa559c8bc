"""The audit trail of every change made on a customer's behalf."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..database import Base, UTCDateTime, utcnow
from .staff import StaffUser


class AuditEvent(Base):
    """Who changed what, when, for which organization, from what to what."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_org_created", "organization_id", "created_at"),
        Index("ix_audit_event_subject", "subject_type", "subject_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    #: The staff member who acted; None for the system or an API client.
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), index=True)
    #: Who acted, in words, kept even when the staff account goes ("api:acme", "system").
    actor_label: Mapped[str] = mapped_column(String(254))
    #: The organization on whose behalf the change was made.
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id", ondelete="SET NULL"))
    #: Dotted kind, e.g. "connection.connected", "mapping.changed", "staff.created".
    kind: Mapped[str] = mapped_column(String(64), index=True)
    #: What was changed: a model name and its id.
    subject_type: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[int | None]
    #: One line for lists.
    summary: Mapped[str] = mapped_column(String(500))
    #: Relevant fields before and after the change (secrets never included).
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    actor: Mapped[StaffUser | None] = relationship()
