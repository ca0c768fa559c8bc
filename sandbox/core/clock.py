"""A controllable clock, so tests can move time past token expiries and quota windows."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock time plus an offset; optionally frozen at one instant."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen: float | None = None

    def time(self) -> float:
        """Return the emulated POSIX timestamp in seconds."""
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return time.time() + self._offset

    def now(self) -> datetime:
        """Return the emulated time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), tz=UTC)

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, with a negative value)."""
        with self._lock:
            if self._frozen is not None:
                self._frozen += seconds
            else:
                self._offset += seconds

    def set(self, when: datetime, *, freeze: bool = False) -> None:
        """Jump to ``when``; keep ticking from there unless ``freeze``."""
        target = when.timestamp()
        with self._lock:
            if freeze:
                self._frozen = target
            else:
                self._frozen = None
                self._offset = target - time.time()

    def freeze(self) -> None:
        """Stop the clock at the current emulated instant."""
        self._frozen = self.time()

    def reset(self) -> None:
        """Return to real time."""
        with self._lock:
            self._offset = 0.0
            self._frozen = None

    def describe(self) -> dict:
        """Return the clock state as JSON-ready data."""
        return {
            "now": self.now().isoformat(),
            "offset_seconds": self._offset,
            "frozen": self._frozen is not None,
        }


def start_of_next_utc_day(ts: float) -> float:
    """Return the POSIX time of the next 00:00 UTC after ``ts``."""
    day = datetime.fromtimestamp(ts, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (day + timedelta(days=1)).timestamp()
