"""API keys: creation (shown once, stored as SHA-256) and the ``api_key_required`` decorator."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import TypeVar

from flask import g, request
from sqlalchemy import select

from .. import audit
from ..database import utcnow
from ..extensions import db
from ..models import ApiClient

F = TypeVar("F", bound=Callable)

#: Scopes a key may carry; each API route declares the one it needs.
SCOPES = frozenset({"links", "ingest"})
KEY_PREFIX = "llk_"


class ApiClientError(ValueError):
    """A client that cannot be created as asked; the message says why."""


def hash_key(key: str) -> str:
    """Return the stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_client(name: str, scopes: list[str]) -> tuple[ApiClient, str]:
    """Create an API client; return it and its key (the only time the key is known).

    :raise ApiClientError: for a taken or empty name, or an unknown scope.
    """
    name = name.strip()
    if not name or len(name) > 80:
        raise ApiClientError("the name must have 1 to 80 characters")
    unknown = sorted(set(scopes) - SCOPES)
    if unknown or not scopes:
        raise ApiClientError(f"scopes must be among {', '.join(sorted(SCOPES))}; got {', '.join(scopes) or 'none'}")
    if db.session.scalar(select(ApiClient.id).filter_by(name=name)) is not None:
        raise ApiClientError(f"an API client named {name!r} exists already")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    client = ApiClient(name=name, key_hash=hash_key(key), key_prefix=key[:10], scopes=sorted(set(scopes)))
    db.session.add(client)
    db.session.flush()
    audit.record(
        "api_client.created",
        subject_type="ApiClient",
        subject_id=client.id,
        summary=f"API client {name} created with scopes {', '.join(client.scopes)}",
        after={"name": name, "scopes": client.scopes, "key_prefix": client.key_prefix},
        actor_label="cli",
    )
    return client, key


def _error(status: int, message: str):
    response = {"error": {"status": status, "message": message}}
    headers = {"WWW-Authenticate": 'Bearer realm="ledgerlink"'} if status == 401 else {}
    return response, status, headers


def api_key_required(scope: str) -> Callable[[F], F]:
    """Let only requests with an active key carrying ``scope`` reach the view (``g.api_client``).

    Answers 401 without a (valid) key, 403 for a revoked key or a missing scope.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            kind, _, key = header.partition(" ")
            if kind.lower() != "bearer" or not key.strip():
                return _error(401, "Send the API key as 'Authorization: Bearer <key>'.")
            digest = hash_key(key.strip())
            client = db.session.scalar(select(ApiClient).where(ApiClient.key_hash == digest))
            if client is None or not hmac.compare_digest(client.key_hash, digest):
                return _error(401, "This API key is not valid.")
            if client.revoked_at is not None:
                return _error(403, "This API key was revoked.")
            if not client.allows(scope):
                return _error(403, f"This API key lacks the {scope!r} scope this endpoint needs.")
            client.last_used_at = utcnow()
            g.api_client = client
            return view(*args, **kwargs)

        wrapper.required_scope = scope  # type: ignore[attr-defined]  # a function attribute, read by the route audit test
        return wrapper  # type: ignore[return-value]

    return decorate
