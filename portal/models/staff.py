"""Staff accounts of the portal and their roles."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Enum, String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from ..database import Base, UTCDateTime, utcnow


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


class StaffUser(UserMixin, Base):
    """A member of the SaaS's support, ops or admin staff."""

    __tablename__ = "staff_user"
    # ``login_sid`` below is a plain attribute of the loaded object, not a column.
    __allow_unmapped__ = True

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
    #: Raised to end every session of the person at once (log out everywhere, deactivation,
    #: password reset, role change): a session or remember-me cookie of an older version is refused.
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")

    #: The login session this object was loaded for (set by the session store, never stored).
    login_sid: str | None = None

    def get_id(self) -> str:
        """Return the id flask-login keeps in the session and the remember-me cookie.

        It names the person, their session version and the login session, so that a cookie outlives
        neither a logout (the session is ended in the store) nor a raised version.
        """
        return f"{self.id}:{self.session_version}:{self.login_sid or ''}"

    def end_all_sessions(self) -> None:
        """Make every session and remember-me cookie of this person stop working."""
        self.session_version = (self.session_version or 1) + 1

    def set_password(self, password: str) -> None:
        """Store a hash of ``password`` (the caller checks it against the password policy)."""
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
