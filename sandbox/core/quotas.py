"""Fixed-window request counters shared by the emulators' rate limits."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowState:
    """The outcome of counting one request against one window."""

    allowed: bool
    limit: int
    remaining: int
    #: POSIX seconds at which the current window ends.
    reset_at: float


class FixedWindows:
    """Counters per (key, window length) that reset at window boundaries.

    Boundaries are aligned to multiples of the window length from the epoch, which gives
    Exact's "per clock minute" and "per UTC day" windows directly.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple, tuple[float, int]] = {}

    def hit(self, key: tuple, *, window: float, limit: int, now: float, cost: int = 1) -> WindowState:
        """Count ``cost`` requests for ``key`` and say whether they fit the window."""
        start = now - (now % window)
        with self._lock:
            cur_start, used = self._counts.get((key, window), (start, 0))
            if cur_start != start:
                used = 0
            if used + cost > limit:
                self._counts[(key, window)] = (start, used)
                return WindowState(False, limit, max(limit - used, 0), start + window)
            used += cost
            self._counts[(key, window)] = (start, used)
            return WindowState(True, limit, limit - used, start + window)

    def peek(self, key: tuple, *, window: float, limit: int, now: float) -> WindowState:
        """Return the window's state without counting a request."""
        start = now - (now % window)
        with self._lock:
            cur_start, used = self._counts.get((key, window), (start, 0))
        if cur_start != start:
            used = 0
        return WindowState(used < limit, limit, max(limit - used, 0), start + window)

    def reset(self) -> None:
        """Forget every counter."""
        with self._lock:
            self._counts.clear()


class ConcurrencyGate:
    """Counts requests in flight per key (QBO allows 10 concurrent requests per realm)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inflight: dict[tuple, int] = {}

    def enter(self, key: tuple, limit: int) -> bool:
        """Take a slot for ``key``; return False when all ``limit`` slots are taken."""
        with self._lock:
            n = self._inflight.get(key, 0)
            if n >= limit:
                return False
            self._inflight[key] = n + 1
            return True

    def leave(self, key: tuple) -> None:
        """Give back a slot taken by :meth:`enter`."""
        with self._lock:
            n = self._inflight.get(key, 0) - 1
            if n <= 0:
                self._inflight.pop(key, None)
            else:
                self._inflight[key] = n
