"""Access control and HTTP hardening: declared roles on every view, headers, safe redirects."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeGuard, TypeVar
from urllib.parse import urlsplit

from flask import Flask, abort, request
from flask_login import current_user
from werkzeug.routing import IntegerConverter

from .models import Role

F = TypeVar("F", bound=Callable)

#: Content Security Policy: no inline script or style, nothing from other origins.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
)


def require_role(role: Role | str) -> Callable[[F], F]:
    """Let only logged-in staff with at least ``role`` reach the view.

    :raise: 401 (via the login manager) when nobody is logged in, 403 when the role is too low.
    """
    needed = Role(role)

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            from .extensions import login_manager

            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.has_role(needed):
                abort(403, description=f"This page needs the {needed.value} role.")
            return view(*args, **kwargs)

        wrapper.required_role = needed  # type: ignore[attr-defined]  # a function attribute, read by the route audit test
        return wrapper  # type: ignore[return-value]

    return decorate


def public(view: F) -> F:
    """Mark a view as reachable without logging in (login page, public link pages, health)."""
    view.public = True  # type: ignore[attr-defined]
    return view


def is_safe_redirect(target: str | None) -> TypeGuard[str]:
    """Say whether ``target`` is a path on this site (no scheme, no host, no //)."""
    if not target:
        return False
    # Browsers read "\\" as "/" and drop tabs and newlines, so "/\\evil.example" would leave the site.
    if "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//")


class IdConverter(IntegerConverter):
    """``<int:…>`` bounded to what a database integer key holds: a larger id is a 404, not a driver error."""

    def __init__(self, map, *args, **kwargs) -> None:
        kwargs.setdefault("max", 2**31 - 1)  # the keys are INTEGER (32-bit in PostgreSQL)
        super().__init__(map, *args, **kwargs)


def init_app(app: Flask) -> None:
    """Bound integer URL ids and add security headers to every response."""
    # Before any blueprint adds its rules, so every <int:…> argument uses it.
    app.url_map.converters["int"] = IdConverter

    @app.after_request
    def set_security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if app.config["ENV"] == "production":
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.headers.get("HX-Request"):
            response.headers.add("Vary", "HX-Request")
        if request.endpoint != "static":
            # Every page, fragment, export and API answer may hold customers' data: never kept by a
            # browser's or a proxy's cache (the back button on a shared computer shows nothing after logout).
            response.headers.setdefault("Cache-Control", "no-store")
        return response
