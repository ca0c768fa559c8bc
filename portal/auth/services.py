"""Staff accounts and login throttling."""

from __future__ import annotations

from flask import current_app

from ..extensions import db, queue
from ..models import AuditEvent, Role, StaffUser


class StaffError(ValueError):
    """A staff account that cannot be created as asked; the message says why."""


class LoginThrottle:
    """Counts failed logins per e-mail and per client address in Redis (shared by all servers)."""

    def __init__(self, email: str, address: str | None) -> None:
        self.keys = [
            f"ledgerlink:login-fail:email:{email.lower()}",
            f"ledgerlink:login-fail:ip:{address or '-'}",
        ]

    @property
    def _limit(self) -> int:
        return current_app.config["LOGIN_MAX_FAILURES"]

    def locked_for(self) -> int:
        """Return the seconds left of a lock-out, or 0 when logging in is allowed."""
        conn = queue.connection
        for key in self.keys:
            count = conn.get(key)
            # The address counter allows more failures: several people may share an office NAT.
            limit = self._limit * (4 if ":ip:" in key else 1)
            if count is not None and int(count) >= limit:
                return max(int(conn.ttl(key)), 1)
        return 0

    def fail(self) -> None:
        """Record a failed attempt; the window restarts with the first failure."""
        window = current_app.config["LOGIN_LOCKOUT_SECONDS"]
        pipe = queue.connection.pipeline()
        for key in self.keys:
            pipe.incr(key)
            pipe.expire(key, window, nx=True)
        pipe.execute()

    def clear(self) -> None:
        """Forget the e-mail's failures after a successful login."""
        queue.connection.delete(self.keys[0])


def authenticate(email: str, password: str) -> StaffUser | None:
    """Return the active staff member with these credentials, or None."""
    user = db.session.scalar(db.select(StaffUser).filter_by(email=email.strip().lower()))
    if user is None or not user.active or not user.check_password(password):
        return None
    return user


def create_staff(email: str, role: str, password: str, name: str = "", actor: str = "cli") -> StaffUser:
    """Create a staff account and audit it; the caller commits.

    :raise StaffError: for a taken e-mail address, an unknown role or a short password.
    """
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise StaffError(f"{email!r} is not an e-mail address")
    try:
        role_value = Role(role)
    except ValueError:
        raise StaffError(f"role must be one of {', '.join(r.value for r in Role)}, not {role!r}") from None
    if len(password) < 12:
        raise StaffError("the password must have at least 12 characters")
    if db.session.scalar(db.select(StaffUser.id).filter_by(email=email)) is not None:
        raise StaffError(f"a staff account for {email} already exists")
    user = StaffUser(email=email, role=role_value, name=name)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    db.session.add(
        AuditEvent(
            actor_label=actor,
            kind="staff.created",
            subject_type="StaffUser",
            subject_id=user.id,
            summary=f"Staff account {email} created with role {role_value.value}",
            after={"email": email, "role": role_value.value},
        )
    )
    return user
