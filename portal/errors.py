"""Error pages: a clear sentence and the right status, as a page or an htmx fragment."""

from __future__ import annotations

import logging
import time

from flask import Flask, render_template, request
from flask_htmx import make_response
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException, InternalServerError

from .extensions import db, limiter
from .fragments import wants_fragment

log = logging.getLogger(__name__)

TITLES = {
    400: "Bad request",
    401: "Please log in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    413: "Too large",
    415: "Not JSON",
    422: "Not valid",
    429: "Too many requests",
    500: "Something went wrong",
}

CSRF_MESSAGE = (
    "This form's security token is missing or expired, so nothing was changed. Reload the page and try again."
)


def _approver_page() -> bool:
    """Say whether the request is one of the public pages an approver without an account sees."""
    return request.path.startswith("/authorize") or request.endpoint == "connections.oauth_callback"


def render_error(status: int, message: str):
    """Render ``message`` with ``status``: an out-of-band flash for htmx, else a page.

    Approvers (the public link pages) get the public layout in their language instead, never the
    staff's wording.
    """
    if _approver_page() and not current_user_is_staff():
        from .links.views import render_public

        return render_public("links/error.html", status, error_status=status)
    if wants_fragment():
        body = render_template("_flash_oob.html", flashes=[("error", message)])
        return make_response(body, status, reswap="none")
    if request.path.startswith("/api/"):
        return {"error": {"status": status, "message": message}}, status
    return render_template(
        "errors/error.html", status=status, title=TITLES.get(status, "Error"), message=message
    ), status


def current_user_is_staff() -> bool:
    """Say whether a staff member is logged in (staff completing their own consent see staff pages)."""
    from flask_login import current_user

    return bool(getattr(current_user, "is_authenticated", False))


def reject_unstorable_input():
    """Answer 400 for a query or form value no text column can hold (a NUL), before any view reads it."""
    sources = [("query", request.args)]
    if request.mimetype == "application/x-www-form-urlencoded":
        sources.append(("form", request.form))
    for source, values in sources:
        for name, value in values.items(multi=True):
            if "\x00" in name or "\x00" in value:
                shown = name.replace("\x00", "\\0")[:40]
                return render_error(
                    400, f"The {source} value {shown!r} holds a NUL character; remove it and try again."
                )
    return None


def init_app(app: Flask) -> None:
    """Register the handlers; every one rolls back what the request had not committed."""
    app.before_request(reject_unstorable_input)

    @app.errorhandler(DataError)
    def data_error(exc: DataError):
        # A value the database refuses (out of range, not text): the request's fault, said as such.
        db.session.rollback()
        log.warning("database refused a request value: %s", str(exc.orig).splitlines()[0] if exc.orig else exc)
        return render_error(400, "A value in the request is out of range or not valid text; nothing was changed.")

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        db.session.rollback()
        return render_error(400, CSRF_MESSAGE)

    @app.errorhandler(RateLimitExceeded)
    def throttled(exc: RateLimitExceeded):
        db.session.rollback()
        current = limiter.current_limit
        wait = max(1, int(current.reset_at - time.time())) if current else 60
        if request.endpoint == "auth.login":
            from .auth.views import locked_page

            return locked_page(wait, from_address=True)
        if request.blueprint == "links" or request.endpoint == "connections.oauth_callback":
            from .links.views import too_many_requests

            return too_many_requests(wait)
        response = render_error(429, f"Too many requests from your address; try again in {wait} second(s).")
        response = app.make_response(response)
        response.headers["Retry-After"] = str(wait)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        db.session.rollback()
        if exc.code is None or exc.code < 400:
            return exc
        if exc.code == 413:
            limit = app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024)
            return render_error(413, f"The request body is larger than {limit} MB; send less at once.")
        return render_error(exc.code, exc.description or TITLES.get(exc.code, "Error"))

    @app.errorhandler(InternalServerError)
    def server_error(exc: InternalServerError):
        db.session.rollback()
        return render_error(500, "Something went wrong on our side. It has been logged; try again in a minute.")
