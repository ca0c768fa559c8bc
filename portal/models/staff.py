"""Staff accounts of the portal and their roles."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Enum, String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from ..database import UTCDateTime, utcnow
from ..extensions import db


class Role(enum.StrEnum):
    """What a staff member may do; each role includes everything of the roles before it."""

    support = "support"
    ops = "ops"
    admin = "admin"

    @property
    def rank(self) -> int:
        """Return the role's position in support < ops < admin."""
        return list(Role).index(self)

    def includes(self, other: Role | str) -> bool:
        """Say whether this role may do what ``other`` may do."""
        return self.rank >= Role(other).rank


class StaffUser(UserMixin, db.Model):
    """A member of the SaaS's support, ops or admin staff."""

    __tablename__ = "staff_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Login name; stored lower-case.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    #: Display name shown in audit trails.
    name: Mapped[str] = mapped_column(String(120), default="")
    #: Werkzeug password hash (scrypt).
    password_hash: Mapped[str] = mapped_column(String(255))
    #: What the person may do.
    role: Mapped[Role] = mapped_column(Enum(Role, name="staff_role", native_enum=False, length=16))
    #: Deactivated staff cannot log in; their history stays.
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def set_password(self, password: str) -> None:
        """Store a hash of ``password``."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Say whether ``password`` matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    @property
    def is_active(self) -> bool:  # flask-login reads this
        return self.active

    @property
    def label(self) -> str:
        """Return the name to show, falling back to the e-mail address."""
        return self.name or self.email

    def has_role(self, role: Role | str) -> bool:
        """Say whether this person may act with ``role``."""
        return self.role.includes(role)
