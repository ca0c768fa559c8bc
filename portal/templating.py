"""Template helpers: formatting filters and the page-link builder."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Flask, get_flashed_messages, render_template, request, session, url_for
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup


def money(value: Decimal | None, currency: str = "") -> str:
    """Format an amount with two decimals and thousands separators."""
    if value is None:
        return ""
    return f"{currency} {value:,.2f}".strip()


def when(value: datetime | date | None) -> str:
    """Format a date or a UTC timestamp for tables."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


def url_with(**changes) -> str:
    """Return the current URL with some query arguments replaced (None removes one)."""
    if request.endpoint is None:
        raise RuntimeError("url_with needs a request that matched a route")
    args: dict[str, Any] = request.args.to_dict()
    for key, value in changes.items():
        if value is None or value == "":
            args.pop(key, None)
        else:
            args[key] = value
    return url_for(request.endpoint, **(request.view_args or {}), **args)


def csrf_field() -> Markup:
    """Return the hidden CSRF input every form that changes something carries."""
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(generate_csrf())


def init_app(app: Flask) -> None:
    """Register the filters, the globals, and out-of-band flashes for htmx fragments."""
    app.add_template_filter(money)
    app.add_template_filter(when)
    app.add_template_global(url_with)
    app.add_template_global(csrf_field)

    @app.after_request
    def flash_out_of_band(response):
        # A fragment swap does not re-render the layout, so pending flashes travel with it
        # as an out-of-band swap of #flashes. Only fragments answering a change carry them: a
        # background GET (a live search, a progress poll) must not take the message a redirect
        # is about to show.
        is_fragment = (
            request.headers.get("HX-Request") and not request.headers.get("HX-Boosted") and request.method != "GET"
        )
        if is_fragment and response.mimetype == "text/html" and "_flashes" in session and response.status_code < 300:
            flashes = get_flashed_messages(with_categories=True)
            response.set_data(response.get_data() + render_template("_flash_oob.html", flashes=flashes).encode())
        return response
