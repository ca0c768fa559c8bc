"""Flask-Limiter bound per app: each app keeps its own storage (one process may build several apps)."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, has_app_context
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

_KEY = "ledgerlink_throttle"


class AppLimiter(Limiter):
    """A Limiter whose storage and strategy belong to the app of the request, not to the last app built.

    Flask-Limiter keeps them on the extension object; the portal's worker processes, CLI and tests
    may build more than one app (with different Redis servers) in one process.
    """

    def init_app(self, app: Flask) -> None:
        """Bind to ``app`` and keep its storage and strategy with it."""
        super().init_app(app)
        app.extensions[_KEY] = (self._storage, self._limiter)

    def _bound(self) -> tuple[Any, Any] | None:
        return current_app.extensions.get(_KEY) if has_app_context() else None

    @property
    def storage(self):
        bound = self._bound()
        return bound[0] if bound else super().storage

    @property
    def limiter(self):
        bound = self._bound()
        if bound and not (self._storage_dead and self._in_memory_fallback_enabled):
            return bound[1]
        return super().limiter


def client_address() -> str:
    """Return the client's address (behind TRUSTED_PROXIES hops, the one the proxy saw)."""
    return get_remote_address()
