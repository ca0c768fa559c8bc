"""Clients of the JSON API and their keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from ..database import Base, UTCDateTime, utcnow


class ApiClient(Base):
    """A system (the SaaS, an ops script) calling /api/v1 with its own key and scopes."""

    __tablename__ = "api_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Shown in audit trails as "api:<name>".
    name: Mapped[str] = mapped_column(String(80), unique=True)
    #: SHA-256 (hex) of the key; the key is shown once at creation and never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The key's first characters, to tell keys apart in lists (reveals nothing usable).
    key_prefix: Mapped[str] = mapped_column(String(16))
    #: What the key may do, e.g. ["links"].
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: A revoked key is refused; the row stays for the audit trail.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def allows(self, scope: str) -> bool:
        """Say whether the key is active and carries ``scope``."""
        return self.revoked_at is None and scope in (self.scopes or [])
