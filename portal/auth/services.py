"""Staff accounts: logging in (throttled per account), the password policy, and staff management."""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from typing import Any

from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash
from zxcvbn import zxcvbn

from .. import audit
from ..extensions import db, queue
from ..models import Role, StaffUser

#: Shortest password a staff account may have.
MIN_PASSWORD_LENGTH = 12
#: zxcvbn's score (0 to 4) a password must reach: 3 is "safely unguessable" for an online attack.
MIN_PASSWORD_SCORE = 3
#: zxcvbn reads this much of a password (its matching is quadratic in the length).
_ZXCVBN_MAX = 72
#: A hash to check unknown accounts' passwords against, so that an unknown e-mail costs the same time.
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))


class StaffError(ValueError):
    """A staff account change that cannot be made as asked; the message says why."""


def normalise_email(email: str | None) -> str:
    """Return the e-mail address as accounts are stored and throttled: NFKC, no blanks or controls, lower-case."""
    text = unicodedata.normalize("NFKC", email or "")
    return "".join(c for c in text if not c.isspace() and unicodedata.category(c)[0] != "C").lower()


class LoginThrottle:
    """Counts failed logins per account (normalised e-mail) in Redis, shared by all servers.

    After LOGIN_MAX_FAILURES failures the account is locked for LOGIN_LOCKOUT_SECONDS — except on
    a browser where the person has logged in before (``known_device``): it counts its own failures,
    so that nobody can lock a colleague out of their own browser by guessing at their address.
    Failures per client address are throttled separately (Flask-Limiter, on the login view).
    """

    def __init__(self, email: str, known_device: str | None = None) -> None:
        account = hashlib.sha256(normalise_email(email).encode()).hexdigest()
        self.key = (
            f"ledgerlink:login-fail:device:{known_device}:{account}"
            if known_device
            else f"ledgerlink:login-fail:account:{account}"
        )

    def locked_for(self) -> int:
        """Return the seconds left of a lock-out, or 0 when logging in is allowed."""
        count = queue.connection.get(self.key)
        if count is not None and int(count) >= current_app.config["LOGIN_MAX_FAILURES"]:
            return max(int(queue.connection.ttl(self.key)), 1)
        return 0

    def fail(self) -> None:
        """Record a failed attempt; the window restarts with the first failure."""
        pipe = queue.connection.pipeline()
        pipe.incr(self.key)
        pipe.expire(self.key, current_app.config["LOGIN_LOCKOUT_SECONDS"], nx=True)
        pipe.execute()

    def clear(self) -> None:
        """Forget the failures after a successful login."""
        queue.connection.delete(self.key)


def authenticate(email: str, password: str) -> StaffUser | None:
    """Return the active staff member with these credentials, or None.

    Unknown and deactivated accounts cost one password hash too: the answer's timing tells nothing.
    """
    user = db.session.scalar(db.select(StaffUser).filter_by(email=normalise_email(email)))
    matches = check_password_hash(user.password_hash if user is not None else _DUMMY_HASH, password)
    if user is None or not user.active or not matches:
        return None
    return user


def check_password(password: str, *, email: str = "", name: str = "") -> None:
    """Refuse a password that is short or guessable (zxcvbn: common words, names, patterns, the e-mail).

    :raise StaffError: saying what is wrong and what makes a good one.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 200:
        raise StaffError("the password may have at most 200 characters")
    hints = [part for part in (email, email.split("@")[0], name, "ledgerlink", "invoicr") if part]
    verdict = zxcvbn(password[:_ZXCVBN_MAX], user_inputs=hints)
    if verdict["score"] < MIN_PASSWORD_SCORE:
        advice = verdict["feedback"].get("warning") or "it is too easy to guess"
        raise StaffError(
            f"that password is too easy to guess ({advice.rstrip('.').lower()}); use four or more unrelated "
            "words, or a password manager's random password"
        )


def generate_password() -> str:
    """Return a random password that passes the policy (shown once to whoever set it)."""
    return secrets.token_urlsafe(15)


def _audit(user: StaffUser, kind: str, summary: str, *, actor: str | None, **facts: Any) -> None:
    audit.record(
        f"staff.{kind}",
        subject_type="StaffUser",
        subject_id=user.id,
        summary=summary,
        actor_label=actor,
        **facts,
    )


def create_staff(
    email: str, role: str, password: str | None = None, name: str = "", actor: str | None = None
) -> StaffUser:
    """Create a staff account and audit it; the caller commits.

    :raise StaffError: for a taken or malformed e-mail address, an unknown role or a weak password.
    """
    email = normalise_email(email)
    if "@" not in email or len(email) > 254 or email.startswith("@") or email.endswith("@"):
        raise StaffError(f"{email!r} is not an e-mail address")
    role_value = _role(role)
    name = (name or "").strip()
    if len(name) > 120:
        raise StaffError("the name may have at most 120 characters")
    if db.session.scalar(db.select(StaffUser.id).filter_by(email=email)) is not None:
        raise StaffError(f"a staff account for {email} already exists")
    check_password(password or "", email=email, name=name)
    user = StaffUser(email=email, role=role_value, name=name, session_version=1)
    user.set_password(password or "")
    db.session.add(user)
    db.session.flush()
    _audit(
        user,
        "created",
        f"Staff account {email} created with role {role_value.value}",
        actor=actor,
        after={"email": email, "role": role_value.value},
    )
    return user


def _role(role: str | Role) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise StaffError(f"role must be one of {', '.join(r.value for r in Role)}, not {role!r}") from None


def _active_admins() -> int:
    return db.session.scalar(
        db.select(db.func.count()).select_from(StaffUser).where(StaffUser.role == Role.admin, StaffUser.active)
    )


def _keep_an_admin(user: StaffUser, action: str) -> None:
    """Refuse to take the admin role from the last active admin.

    :raise StaffError: when ``user`` is the only active admin.
    """
    if user.role is Role.admin and user.active and _active_admins() <= 1:
        raise StaffError(f"{user.email} is the only active admin: make someone else admin before you {action}")


def find_staff(email: str) -> StaffUser:
    """Return the staff account of an e-mail address.

    :raise StaffError: when there is none.
    """
    user = db.session.scalar(db.select(StaffUser).filter_by(email=normalise_email(email)))
    if user is None:
        raise StaffError(f"there is no staff account for {normalise_email(email)!r}")
    return user


def set_active(user: StaffUser, active: bool, *, actor: str | None = None) -> bool:
    """Deactivate (ending every session) or reactivate an account; return whether anything changed.

    :raise StaffError: when deactivating the last active admin.
    """
    if user.active == active:
        return False
    if not active:
        _keep_an_admin(user, "deactivate this account")
        user.end_all_sessions()
    user.active = active
    _audit(
        user,
        "reactivated" if active else "deactivated",
        f"Staff account {user.email} {'reactivated' if active else 'deactivated'}",
        actor=actor,
        before={"active": not active},
        after={"active": active},
    )
    return True


def change_role(user: StaffUser, role: str | Role, *, actor: str | None = None) -> bool:
    """Give the account another role (ending its sessions); return whether anything changed.

    :raise StaffError: for an unknown role, or when the last active admin would lose the role.
    """
    new = _role(role)
    if user.role is new:
        return False
    if new is not Role.admin:
        _keep_an_admin(user, "change this role")
    before = user.role.value
    user.role = new
    user.end_all_sessions()
    _audit(
        user,
        "role_changed",
        f"Role of {user.email} changed from {before} to {new.value}",
        actor=actor,
        before={"role": before},
        after={"role": new.value},
    )
    return True


def reset_password(user: StaffUser, password: str | None = None, *, actor: str | None = None) -> str:
    """Set a new password (a random one when none is given), end every session; return the password.

    :raise StaffError: for a password the policy refuses.
    """
    password = password or generate_password()
    check_password(password, email=user.email, name=user.name)
    user.set_password(password)
    user.end_all_sessions()
    _audit(user, "password_reset", f"Password of {user.email} reset; every session ended", actor=actor)
    return password


def end_sessions(user: StaffUser, *, actor: str | None = None) -> None:
    """Log the person out on every browser."""
    user.end_all_sessions()
    _audit(user, "sessions_ended", f"Every session of {user.email} ended", actor=actor)
