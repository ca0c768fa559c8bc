"""A fixed-window request counter per client address in Redis, shared by every web process."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TypeVar

from flask import current_app, request

from ..extensions import queue

F = TypeVar("F", bound=Callable)


def hit(bucket: str) -> int:
    """Count a request of this client in the current window; return seconds to wait (0 = allowed)."""
    limit = int(current_app.config["LINK_RATE_LIMIT"])
    window = int(current_app.config["LINK_RATE_WINDOW_SECONDS"])
    now = int(time.time())
    start = now - now % window
    key = f"ledgerlink:rate:{bucket}:{request.remote_addr or '-'}:{start}"
    pipe = queue.connection.pipeline()
    pipe.incr(key)
    pipe.expire(key, window + 1, nx=True)
    count, _ = pipe.execute()
    return 0 if int(count) <= limit else max(start + window - now, 1)


def rate_limited(bucket: str) -> Callable[[F], F]:
    """Answer 429 with a clear page once a client exceeds LINK_RATE_LIMIT requests per window."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            wait = hit(bucket)
            if wait:
                from .views import too_many_requests

                return too_many_requests(wait)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
