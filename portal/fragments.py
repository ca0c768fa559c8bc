"""Pages and their htmx fragments: one rule for which to answer, and one for redirects after a swap.

An htmx request that swaps part of a page (not a boosted navigation, which wants the whole page)
is answered with the fragment; every other request with the page.
"""

from __future__ import annotations

from flask import redirect
from flask.typing import ResponseReturnValue

from .extensions import htmx


def wants_fragment() -> bool:
    """Say whether the request swaps part of a page (answer with the fragment, not the page)."""
    return bool(htmx) and not htmx.boosted


def redirect_to(url: str) -> ResponseReturnValue:
    """Send the browser to ``url``: a redirect, or for an htmx request HX-Redirect (a full navigation)."""
    if htmx:
        return "", 204, {"HX-Redirect": url}
    return redirect(url)
