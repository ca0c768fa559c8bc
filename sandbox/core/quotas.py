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
    Exact's "per clock minute" and "per UTC day" windows directly. :attr:`length_scale` shortens
    every window (a test control: 0.1 makes a minute last 6 s, so a quota resets within a test).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple, tuple[float, int]] = {}
        #: Requests within and over the limit per (key, window) since the last reset, for test assertions.
        self._totals: dict[tuple, list[int]] = {}
        #: Multiplier on every window's length; 1.0 is the providers' real windows.
        self.length_scale = 1.0

    def _length(self, window: float) -> float:
        return window * self.length_scale

    def hit(self, key: tuple, *, window: float, limit: int, now: float, cost: int = 1) -> WindowState:
        """Count ``cost`` requests for ``key`` and say whether they fit the window."""
        window = self._length(window)
        start = now - (now % window)
        with self._lock:
            cur_start, used = self._counts.get((key, window), (start, 0))
            if cur_start != start:
                used = 0
            totals = self._totals.setdefault((key, window), [0, 0])
            if used + cost > limit:
                self._counts[(key, window)] = (start, used)
                totals[1] += cost
                return WindowState(False, limit, max(limit - used, 0), start + window)
            used += cost
            totals[0] += cost
            self._counts[(key, window)] = (start, used)
            return WindowState(True, limit, limit - used, start + window)

    def peek(self, key: tuple, *, window: float, limit: int, now: float) -> WindowState:
        """Return the window's state without counting a request."""
        window = self._length(window)
        start = now - (now % window)
        with self._lock:
            cur_start, used = self._counts.get((key, window), (start, 0))
        if cur_start != start:
            used = 0
        return WindowState(used < limit, limit, max(limit - used, 0), start + window)

    def counters(self) -> list[dict]:
        """Return every window counted since the last reset: requests within and over its limit (JSON-ready).

        Requests over the limit were answered 429 while quotas were on (and served while they were off).
        """
        with self._lock:
            return [
                {
                    "key": [str(part) for part in key],
                    "window_seconds": window,
                    "within_limit": within,
                    "over_limit": over,
                }
                for (key, window), (within, over) in self._totals.items()
            ]

    def reset(self) -> None:
        """Forget every counter."""
        with self._lock:
            self._counts.clear()
            self._totals.clear()


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
