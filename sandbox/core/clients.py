"""Registered OAuth clients per provider, with a default development client each."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Default development client per provider. Any loopback redirect URI is accepted for them.
DEFAULT_CLIENTS = {
    "exact-online": ("3f1d2a9c-5b7e-4c1a-9e2d-7a6b5c4d3e2f", "ledgerlink-exact-dev-secret"),
    "quickbooks": ("ABledgerlinkDevClient0000000000000000000000000000", "ledgerlink-qbo-dev-secret"),
    "bexio": ("ledgerlink-dev", "ledgerlink-bexio-dev-secret"),
}

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass(frozen=True)
class OAuthClient:
    """An OAuth client an emulator accepts."""

    provider: str
    client_id: str
    client_secret: str
    #: Exact redirect URIs allowed; None means any loopback http(s) URI.
    redirect_uris: tuple[str, ...] | None = None

    def allows_redirect(self, uri: str | None) -> bool:
        """Say whether ``uri`` is a registered redirect URI of this client."""
        if not uri:
            return False
        if self.redirect_uris is not None:
            return uri in self.redirect_uris
        parts = urlsplit(uri)
        return parts.scheme in ("http", "https") and (parts.hostname or "") in LOOPBACK_HOSTS

    def describe(self) -> dict:
        """Return the client as JSON-ready data (the secret included: this is a test control)."""
        return {
            "provider": self.provider,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": list(self.redirect_uris) if self.redirect_uris is not None else None,
        }


class ClientRegistry:
    """OAuth clients per provider."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], OAuthClient] = {}
        self.reset()

    def reset(self) -> None:
        """Keep only the default development clients."""
        with self._lock:
            self._clients = {(p, cid): OAuthClient(p, cid, secret) for p, (cid, secret) in DEFAULT_CLIENTS.items()}

    def register(self, client: OAuthClient) -> None:
        """Add or replace a client."""
        with self._lock:
            self._clients[(client.provider, client.client_id)] = client

    def get(self, provider: str, client_id: str | None) -> OAuthClient | None:
        """Return the client, or None when ``client_id`` is unknown to ``provider``."""
        if not client_id:
            return None
        with self._lock:
            return self._clients.get((provider, client_id))

    def authenticate(self, provider: str, client_id: str | None, secret: str | None) -> OAuthClient | None:
        """Return the client when id and secret match, else None."""
        client = self.get(provider, client_id)
        if client is None or secret is None or client.client_secret != secret:
            return None
        return client

    def list(self) -> list[dict]:
        """Return every client as JSON-ready data."""
        with self._lock:
            return [c.describe() for c in self._clients.values()]
