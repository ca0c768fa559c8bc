"""Staff login sessions kept in Redis, so that a logout, an idle timeout or a raised version ends them.

Flask keeps the session in a signed cookie and flask-login's remember-me cookie can log a browser
in again on its own; neither can be taken back by the server. Each login therefore gets a random
session id, stored in Redis with the idle timeout as its time to live (renewed by every request),
and named in the id flask-login keeps (``StaffUser.get_id``: user, session version, session id).
A cookie whose session id is gone (logged out, idle too long) or whose version is older than the
person's (logged out everywhere, deactivated, password reset, role changed) logs nobody in.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from flask import current_app, g

from ..extensions import queue

PREFIX = "ledgerlink:staff-session:"


@dataclass(frozen=True)
class SessionId:
    """The parts of the id flask-login keeps for a logged-in person."""

    user_id: int
    version: int
    sid: str


def parse(value: str) -> SessionId | None:
    """Return the parts of a stored id, or None for anything malformed (an old or forged cookie)."""
    parts = value.split(":")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 12 for p in parts[:2]):
        return None
    if not 20 <= len(parts[2]) <= 64:
        return None
    return SessionId(int(parts[0]), int(parts[1]), parts[2])


def _key(sid: str) -> str:
    return PREFIX + hashlib.sha256(sid.encode()).hexdigest()


def _ttl() -> int:
    return int(current_app.config["IDLE_TIMEOUT_SECONDS"])


def start(user_id: int) -> str:
    """Open a login session for ``user_id``; return its id."""
    sid = secrets.token_urlsafe(24)
    queue.connection.set(_key(sid), str(user_id), ex=_ttl())
    return sid


def touch(parts: SessionId) -> bool:
    """Say whether the session is alive and belongs to its user, and renew its idle timeout."""
    key = _key(parts.sid)
    pipe = queue.connection.pipeline()
    pipe.get(key)
    pipe.expire(key, _ttl(), xx=True)
    owner, _renewed = pipe.execute()
    if owner is None:
        g.session_ended = True  # the unauthorized handler says why the person must log in again
        return False
    return (owner.decode() if isinstance(owner, bytes) else str(owner)) == str(parts.user_id)


def end(sid: str | None) -> None:
    """End one login session (a logout)."""
    if sid:
        queue.connection.delete(_key(sid))
