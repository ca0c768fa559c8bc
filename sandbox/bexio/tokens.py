"""Keycloak-style tokens of the bexio realm: codes, sessions, access/refresh/ID tokens, PATs.

Access and ID tokens are RS256 JWTs whose key is published at the realm's ``certs`` endpoint;
refresh tokens rotate on every use (bexio.md §1.3). Callers hold the emulator lock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

#: Access-token lifetime: not documented, 3600 s in every example (bexio.md §1.3).
ACCESS_TTL = 3600
#: Offline sessions idle out after about a year without use [U: bexio.md §1.3].
OFFLINE_IDLE = 365 * 24 * 3600
#: Keycloak's default authorization-code lifespan.
CODE_TTL = 60
#: Personal access tokens: 60 days per BAN [U: bexio.md §1.4 lists 60 days vs six months].
PAT_TTL = 60 * 24 * 3600

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KID = "ledgerlink-sandbox-bexio-rs256"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def sign(claims: dict) -> str:
    """Return ``claims`` as an RS256-signed JWT."""
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": KID}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = _KEY.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{_b64(signature)}"


def jwks() -> dict:
    """Return the realm's public keys as a JWKS document."""
    numbers = _KEY.public_key().public_numbers()

    def enc(n: int) -> str:
        return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    return {
        "keys": [{"kid": KID, "kty": "RSA", "alg": "RS256", "use": "sig", "n": enc(numbers.n), "e": enc(numbers.e)}]
    }


def public_key_der_b64() -> str:
    """Return the signing key's public half as Keycloak publishes it: base64 of the DER SubjectPublicKeyInfo."""
    der = _KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def pkce_s256(verifier: str) -> str:
    """Return the S256 code challenge of ``verifier``."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass
class Session:
    """One consented login of a person into one company for one client."""

    sid: str
    sub: str
    company_id: str
    company_user_id: int
    client_id: str
    scope: str
    nonce: str | None = None
    auth_time: int = 0
    active: bool = True
    offline: bool = False
    #: The one refresh token currently valid (rotation, bexio.md §1.3).
    refresh_token: str | None = None
    access_tokens: set[str] = field(default_factory=set)


@dataclass
class Grant:
    """What an access token (or PAT) allows."""

    token: str
    sub: str
    company_id: str
    company_user_id: int
    scopes: frozenset[str]
    client_id: str | None
    expires_at: float
    session: Session | None = None
    revoked: bool = False


class TokenStore:
    """Codes, sessions and tokens of the bexio realm."""

    def __init__(self) -> None:
        self.codes: dict[str, dict] = {}
        #: Codes already redeemed → session they produced (reuse revokes it, RFC 6749 §4.1.2).
        self.used_codes: dict[str, str] = {}
        self.sessions: dict[str, Session] = {}
        self.access: dict[str, Grant] = {}
        #: refresh token → (session id, expiry, still current?)
        self.refresh: dict[str, list] = {}

    def issue_code(self, params: dict, *, now: float) -> str:
        """Store an authorization code for a consented request and return it."""
        code = f"{uuid.uuid4()}.{uuid.uuid4()}.{uuid.uuid4()}"
        self.codes[code] = {**params, "expires_at": now + CODE_TTL}
        return code

    def new_session(self, code: dict, *, now: float) -> Session:
        """Open a session for a redeemed code."""
        scopes = code["scope"].split()
        session = Session(
            sid=str(uuid.uuid4()),
            sub=code["sub"],
            company_id=code["company_id"],
            company_user_id=code["company_user_id"],
            client_id=code["client_id"],
            scope=code["scope"],
            nonce=code.get("nonce"),
            auth_time=int(now),
            offline="offline_access" in scopes,
        )
        self.sessions[session.sid] = session
        return session

    def tokens_for(self, session: Session, *, issuer: str, now: float, user: dict) -> dict:
        """Issue access (+ refresh, + ID) tokens for ``session`` in Keycloak's response shape."""
        iat = int(now)
        claims = {
            "exp": iat + ACCESS_TTL,
            "iat": iat,
            "auth_time": session.auth_time,
            "jti": str(uuid.uuid4()),
            "iss": issuer,
            "aud": "account",
            "sub": session.sub,
            "typ": "Bearer",
            "azp": session.client_id,
            "sid": session.sid,
            "scope": session.scope,
            "company_id": session.company_id,
            "company_user_id": session.company_user_id,
            "email": user["email"],
        }
        access = sign(claims)
        scopes = frozenset(session.scope.split())
        grant = Grant(
            access,
            session.sub,
            session.company_id,
            session.company_user_id,
            scopes,
            session.client_id,
            now + ACCESS_TTL,
            session,
        )
        self.access[access] = grant
        session.access_tokens.add(access)
        body: dict = {"access_token": access, "expires_in": ACCESS_TTL}
        # A refresh token only comes with offline_access (bexio.md §1.3).
        if session.offline:
            if session.refresh_token is not None:
                self.refresh[session.refresh_token][2] = False
            refresh = secrets.token_urlsafe(48)
            self.refresh[refresh] = [session.sid, now + OFFLINE_IDLE, True]
            session.refresh_token = refresh
            body["refresh_expires_in"] = OFFLINE_IDLE
            body["refresh_token"] = refresh
        else:
            body["refresh_expires_in"] = 0
        body["token_type"] = "Bearer"  # noqa: S105 - a token type, not a secret
        if "openid" in scopes:
            id_claims = {
                "exp": iat + ACCESS_TTL,
                "iat": iat,
                "auth_time": session.auth_time,
                "jti": str(uuid.uuid4()),
                "iss": issuer,
                "aud": session.client_id,
                "sub": session.sub,
                "typ": "ID",
                "azp": session.client_id,
                "sid": session.sid,
                "at_hash": _b64(hashlib.sha256(access.encode()).digest()[:16]),
                "email": user["email"],
                "given_name": user["given_name"],
                "family_name": user["family_name"],
                "company_id": session.company_id,
            }
            if session.nonce:
                id_claims["nonce"] = session.nonce
            body["id_token"] = sign(id_claims)
        body["not-before-policy"] = 0
        body["session_state"] = session.sid
        body["scope"] = session.scope
        return body

    def end_session(self, session: Session) -> None:
        """Log a session out: its access tokens and refresh token stop working."""
        session.active = False
        for token in session.access_tokens:
            grant = self.access.get(token)
            if grant is not None:
                grant.revoked = True
        if session.refresh_token is not None and session.refresh_token in self.refresh:
            self.refresh[session.refresh_token][2] = False

    def issue_pat(self, sub: str, company_id: str, company_user_id: int, scopes: frozenset[str], *, now: float) -> str:
        """Create a personal access token (bexio.md §1.4)."""
        token = sign(
            {
                "exp": int(now + PAT_TTL),
                "iat": int(now),
                "jti": str(uuid.uuid4()),
                "sub": sub,
                "typ": "PAT",
                "company_id": company_id,
                "company_user_id": company_user_id,
            }
        )
        self.access[token] = Grant(token, sub, company_id, company_user_id, scopes, None, now + PAT_TTL)
        return token
