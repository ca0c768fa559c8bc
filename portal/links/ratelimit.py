"""The throttle of the public link pages: LINK_RATE_LIMIT requests per client address per window.

Flask-Limiter counts in Redis, shared by every web process, keyed on the real client address
(behind a proxy, ProxyFix reads it from TRUSTED_PROXIES hops of X-Forwarded-For). Every link page
and the OAuth callback of a link consent share one budget per address.
"""

from __future__ import annotations

from flask import current_app

from ..extensions import limiter


def _limit() -> str:
    config = current_app.config
    return f"{int(config['LINK_RATE_LIMIT'])} per {int(config['LINK_RATE_WINDOW_SECONDS'])} seconds"


#: Decorates a view of the link pages with the shared budget.
link_limit = limiter.shared_limit(_limit, scope="links")


def link_callback_limit(is_link_consent):
    """Return the shared budget for the OAuth callback, counted only when it completes a link consent."""
    return limiter.shared_limit(_limit, scope="links", exempt_when=lambda: not is_link_consent())
