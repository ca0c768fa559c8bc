"""Intuit OAuth 2.0: authorization codes, bearer/refresh tokens with QBO's rotation rules.

Rules per quickbooks-online.md §1: access tokens live 3600 s; refresh tokens roll for 101 days under a
5-year hard cap; a refresh within 24 h of an RT value's issue returns the same value, later a new
one (the previous value keeps working for a configurable grace, 0 h or 24 h); reusing an
authorization code invalidates the tokens issued for it.
"""

from __future__ import annotations

import secrets
import string
import threading
from dataclasses import dataclass, field

ACCESS_TTL = 3600
REFRESH_TTL = 8_726_400  # 101 days, tokenResponse.json of oauth-jsclient
HARD_TTL = 5 * 365 * 86400
ROTATION_AFTER = 24 * 3600
CODE_TTL = 600  # not documented by Intuit (quickbooks-online.md §9); 10 minutes is a common choice

ACCOUNTING = "com.intuit.quickbooks.accounting"
PAYMENT = "com.intuit.quickbooks.payment"
OPENID_SCOPES = {"openid", "profile", "email", "phone", "address"}
KNOWN_SCOPES = (
    {ACCOUNTING, PAYMENT}
    | OPENID_SCOPES
    | {
        "com.intuit.quickbooks.payroll",
        "project-management.project",
        "app-foundations.custom-field-definitions",
        "app-foundations.custom-field-definitions.read",
        "indirect-tax.tax-calculation.quickbooks",
    }
)
_ALNUM = string.ascii_letters + string.digits


def _random(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def new_refresh_token() -> str:
    """Return a refresh-token value shaped like Intuit's (``AB11…``, about 50 characters)."""
    return "AB11" + _random(46)


def new_access_token() -> str:
    """Return an opaque access token shaped like Intuit's JWE strings."""
    return "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0.." + secrets.token_urlsafe(240)


@dataclass
class AuthCode:
    """One issued authorization code."""

    code: str
    client_id: str
    redirect_uri: str
    realm_id: str | None
    user_id: str
    scopes: tuple[str, ...]
    expires_at: float
    used: bool = False
    grant_id: str | None = None


@dataclass
class Grant:
    """The token family of one consent: its current RT value, superseded values, access tokens."""

    id: str
    client_id: str
    realm_id: str | None
    user_id: str
    scopes: tuple[str, ...]
    created_at: float
    hard_expires_at: float
    refresh_token: str
    rt_issued_at: float
    rt_expires_at: float
    #: Superseded RT values -> POSIX time until which they are still honoured (the grace).
    previous: dict[str, float] = field(default_factory=dict)
    access_tokens: set[str] = field(default_factory=set)
    revoked: bool = False

    def describe(self, now: float) -> dict:
        """Return the grant as JSON-ready data for the ledger/control views."""
        return {
            "grant_id": self.id,
            "client_id": self.client_id,
            "realm_id": self.realm_id,
            "user_id": self.user_id,
            "scopes": list(self.scopes),
            "refresh_token": self.refresh_token,
            "refresh_token_expires_in": int(self.rt_expires_at - now),
            "hard_expires_in": int(self.hard_expires_at - now),
            "previous_refresh_tokens": len(self.previous),
            "revoked": self.revoked,
        }


class OAuthError(Exception):
    """A token-endpoint error: ``error`` code, optional description, HTTP status."""

    def __init__(self, error: str, description: str | None = None, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict:
        """Return the JSON error body (quickbooks-online.md §1 "Error bodies")."""
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


@dataclass
class AccessInfo:
    """What an access token grants, as seen by the API gateway."""

    grant: Grant
    expires_at: float


class TokenStore:
    """Codes, grants and tokens of every client; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.grace_hours = 0.0
        self.reset()

    def reset(self) -> None:
        """Forget every code and token; restore the default grace (0 h)."""
        with self.lock:
            self.codes: dict[str, AuthCode] = {}
            self.grants: dict[str, Grant] = {}
            self.refresh: dict[str, str] = {}
            self.access: dict[str, tuple[str, float]] = {}
            self.grace_hours = 0.0

    # -- codes ----------------------------------------------------------------------------
    def issue_code(
        self, *, client_id: str, redirect_uri: str, realm_id: str | None, user_id: str, scopes, now: float
    ) -> str:
        """Issue a single-use authorization code."""
        code = "AB11" + _random(36)
        with self.lock:
            self.codes[code] = AuthCode(code, client_id, redirect_uri, realm_id, user_id, tuple(scopes), now + CODE_TTL)
        return code

    def exchange_code(self, code: str, *, client_id: str, redirect_uri: str | None, now: float) -> Grant:
        """Trade a code for a new grant.

        :raise OAuthError: invalid_grant for an unknown, expired, foreign or reused code; a reused
            code also revokes the grant issued for it (oauth-jsclient#173).
        """
        with self.lock:
            record = self.codes.get(code)
            if record is None or record.client_id != client_id:
                raise OAuthError("invalid_grant")
            if record.used:
                if record.grant_id and record.grant_id in self.grants:
                    self._revoke_grant(self.grants[record.grant_id])
                raise OAuthError("invalid_grant")
            record.used = True
            if record.expires_at <= now:
                raise OAuthError("invalid_grant")
            if redirect_uri != record.redirect_uri:
                raise OAuthError("invalid_grant")
            grant = Grant(
                id=_random(16),
                client_id=client_id,
                realm_id=record.realm_id,
                user_id=record.user_id,
                scopes=record.scopes,
                created_at=now,
                hard_expires_at=now + HARD_TTL,
                refresh_token=new_refresh_token(),
                rt_issued_at=now,
                rt_expires_at=now + REFRESH_TTL,
            )
            record.grant_id = grant.id
            self.grants[grant.id] = grant
            self.refresh[grant.refresh_token] = grant.id
            return grant

    # -- tokens ---------------------------------------------------------------------------
    def new_access(self, grant: Grant, now: float) -> str:
        """Issue an access token for ``grant``."""
        token = new_access_token()
        with self.lock:
            self.access[token] = (grant.id, now + ACCESS_TTL)
            grant.access_tokens.add(token)
        return token

    def use_refresh(self, token: str, *, client_id: str, now: float) -> Grant:
        """Apply one refresh with ``token``; rotate the RT value when it is a day old.

        :raise OAuthError: invalid_grant when the value is unknown, superseded past its grace,
            expired, revoked or issued to another client.
        """
        with self.lock:
            grant_id = self.refresh.get(token)
            grant = self.grants.get(grant_id) if grant_id else None
            if grant is None or grant.revoked or grant.client_id != client_id:
                raise OAuthError("invalid_grant", "Incorrect or invalid refresh token")
            if now >= grant.hard_expires_at:
                raise OAuthError("invalid_grant", "Token invalid")
            if token != grant.refresh_token:
                if grant.previous.get(token, 0) <= now:
                    raise OAuthError("invalid_grant", "Incorrect or invalid refresh token")
                return grant
            if now >= grant.rt_expires_at:
                raise OAuthError("invalid_grant", "Token invalid")
            if now - grant.rt_issued_at >= ROTATION_AFTER:
                grace = self.grace_hours * 3600
                if grace > 0:
                    grant.previous[token] = now + grace
                else:
                    self.refresh.pop(token, None)
                new = new_refresh_token()
                grant.refresh_token = new
                grant.rt_issued_at = now
                grant.rt_expires_at = min(now + REFRESH_TTL, grant.hard_expires_at)
                self.refresh[new] = grant.id
            return grant

    def check_access(self, token: str, now: float) -> tuple[str, Grant | None]:
        """Classify an access token: ("ok"|"expired"|"invalid", grant)."""
        with self.lock:
            entry = self.access.get(token)
            if entry is None:
                return "invalid", None
            grant = self.grants.get(entry[0])
            if grant is None or grant.revoked:
                return "invalid", grant
            if entry[1] <= now:
                return "expired", grant
            return "ok", grant

    def _revoke_grant(self, grant: Grant) -> None:
        grant.revoked = True
        self.refresh.pop(grant.refresh_token, None)
        for old in grant.previous:
            self.refresh.pop(old, None)
        for at in grant.access_tokens:
            self.access.pop(at, None)
        grant.access_tokens.clear()

    def revoke_token(self, token: str) -> bool:
        """Revoke the grant owning ``token`` (refresh or access); say whether one was found."""
        with self.lock:
            grant_id = self.refresh.get(token) or (self.access.get(token) or (None,))[0]
            grant = self.grants.get(grant_id) if grant_id else None
            if grant is None:
                return False
            self._revoke_grant(grant)
            return True

    def revoke_where(self, *, realm_id: str | None = None, client_id: str | None = None) -> int:
        """Revoke every grant matching the filters; return how many."""
        with self.lock:
            hit = [
                g
                for g in self.grants.values()
                if not g.revoked
                and (realm_id is None or g.realm_id == realm_id)
                and (client_id is None or g.client_id == client_id)
            ]
            for grant in hit:
                self._revoke_grant(grant)
            return len(hit)

    def age_refresh_tokens(self, *, seconds: float, realm_id: str | None = None) -> int:
        """Pretend every current RT value was issued ``seconds`` earlier (forces rotation)."""
        with self.lock:
            n = 0
            for grant in self.grants.values():
                if realm_id is None or grant.realm_id == realm_id:
                    grant.rt_issued_at -= seconds
                    n += 1
            return n

    def expire_refresh_tokens(self, *, now: float, realm_id: str | None = None) -> int:
        """Make every matching refresh token expired (as after 101 idle days)."""
        with self.lock:
            n = 0
            for grant in self.grants.values():
                if realm_id is None or grant.realm_id == realm_id:
                    grant.rt_expires_at = now
                    grant.previous.clear()
                    n += 1
            return n

    def expire_access_tokens(self, *, now: float, realm_id: str | None = None) -> int:
        """Make every matching access token expired."""
        with self.lock:
            n = 0
            for token, (grant_id, _exp) in list(self.access.items()):
                grant = self.grants.get(grant_id)
                if grant is not None and (realm_id is None or grant.realm_id == realm_id):
                    self.access[token] = (grant_id, now)
                    n += 1
            return n

    def describe(self, now: float, realm_id: str | None = None) -> list[dict]:
        """Return the grants (optionally of one realm) as JSON-ready data."""
        with self.lock:
            return [g.describe(now) for g in self.grants.values() if realm_id in (None, g.realm_id)]
