"""Fault injection: latency, 5xx, 429 storms and timeouts after a committed write.

A fault is a JSON object registered through ``POST /_control/faults``::

    {"provider": "quickbooks", "kind": "error_rate", "rate": 0.1}
    {"provider": "exact-online", "kind": "rate_limit_storm", "seconds": 30, "company": "1234567"}
    {"provider": "bexio", "kind": "timeout_after_commit", "count": 3, "mode": "504"}
    {"provider": "quickbooks", "kind": "latency", "ms": 250}
    {"provider": "bexio", "kind": "hostile_reply", "status": 200, "body": "<html>…", "content_type": "text/html"}

``hostile_reply`` answers with the given body as is (malformed JSON, HTML, wrong types, huge
fields), the way a broken proxy or a provider bug would.

Optional filters on every kind: ``company`` (external company id as the provider names it),
``methods`` (e.g. ``["POST"]``), ``path_contains``, ``path_pattern`` (a regular expression
searched in the path, e.g. ``"/kb_invoice$"`` for creations but not searches) and ``count``
(fire that many times, then retire). Each provider renders the failure in its own error format;
this module only decides.
"""

from __future__ import annotations

import itertools
import random
import re
import threading
from dataclasses import dataclass, field

KINDS = ("latency", "error_rate", "rate_limit_storm", "timeout_after_commit", "hostile_reply")


class FaultSpecError(ValueError):
    """A fault description that cannot be used; the message says which field is wrong."""


@dataclass
class Fault:
    """One registered fault."""

    id: int
    provider: str
    kind: str
    company: str | None = None
    methods: tuple[str, ...] | None = None
    path_contains: str | None = None
    #: A regular expression the request path must contain a match of.
    path_pattern: str | None = None
    #: Remaining number of times it fires; None means unlimited.
    count: int | None = None
    #: Probability of firing per matching request (error_rate, timeout_after_commit).
    rate: float = 1.0
    #: Latency to add, in milliseconds.
    ms: int = 0
    #: HTTP status for error_rate (500, 502, 503, 504).
    status: int = 503
    #: For rate_limit_storm: emulated POSIX time at which the storm ends (None = until cleared).
    until: float | None = None
    #: For timeout_after_commit: "504" (gateway timeout after commit) or "hang" (hold the socket).
    mode: str = "504"
    hang_seconds: float = 30.0
    #: For hostile_reply: the body sent as is, and its content type.
    body: str = ""
    content_type: str = "application/json"
    fired: int = 0
    extra: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """Return the fault as JSON-ready data."""
        return {
            "id": self.id,
            "provider": self.provider,
            "kind": self.kind,
            "company": self.company,
            "methods": list(self.methods) if self.methods else None,
            "path_contains": self.path_contains,
            "path_pattern": self.path_pattern,
            "count": self.count,
            "rate": self.rate,
            "ms": self.ms,
            "status": self.status,
            "until": self.until,
            "mode": self.mode,
            "hang_seconds": self.hang_seconds,
            "fired": self.fired,
        }


class FaultInjector:
    """The registry of active faults, consulted by every provider request."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._random = random.Random(seed)

    def add(self, spec: dict, *, now: float) -> Fault:
        """Register a fault from its JSON description.

        :raise FaultSpecError: when a field is missing or has the wrong type.
        """
        kind = spec.get("kind")
        if kind not in KINDS:
            raise FaultSpecError(f"kind must be one of {', '.join(KINDS)}")
        provider = spec.get("provider")
        if not isinstance(provider, str) or not provider:
            raise FaultSpecError("provider is required (exact-online, quickbooks or bexio)")
        try:
            methods = spec.get("methods")
            fault = Fault(
                id=0,
                provider=provider,
                kind=kind,
                company=str(spec["company"]) if spec.get("company") is not None else None,
                methods=tuple(m.upper() for m in methods) if methods else None,
                path_contains=spec.get("path_contains"),
                path_pattern=spec.get("path_pattern"),
                count=int(spec["count"]) if spec.get("count") is not None else None,
                rate=float(spec.get("rate", 1.0)),
                ms=int(spec.get("ms", 0)),
                status=int(spec.get("status", 503)),
                until=now + float(spec["seconds"]) if spec.get("seconds") is not None else None,
                mode=str(spec.get("mode", "504")),
                hang_seconds=float(spec.get("hang_seconds", 30.0)),
                body=str(spec.get("body", "")),
                content_type=str(spec.get("content_type", "application/json")),
            )
        except (TypeError, ValueError) as exc:
            raise FaultSpecError(f"invalid fault field: {exc}") from exc
        if not 0.0 <= fault.rate <= 1.0:
            raise FaultSpecError("rate must be between 0 and 1")
        if fault.mode not in ("504", "hang"):
            raise FaultSpecError('mode must be "504" or "hang"')
        if fault.path_pattern is not None:
            try:
                re.compile(fault.path_pattern)
            except (re.error, TypeError) as exc:
                raise FaultSpecError(f"path_pattern is not a regular expression: {exc}") from exc
        with self._lock:
            fault.id = next(self._ids)
            self._faults.append(fault)
        return fault

    def remove(self, fault_id: int) -> bool:
        """Retire one fault; return whether it existed."""
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def clear(self, provider: str | None = None) -> None:
        """Retire every fault (of one provider, when given)."""
        with self._lock:
            self._faults = [f for f in self._faults if provider and f.provider != provider]

    def list(self) -> list[dict]:
        """Return the active faults as JSON-ready data."""
        with self._lock:
            return [f.describe() for f in self._faults]

    def pick(
        self, kind: str, *, provider: str, company: str | None, method: str, path: str, now: float
    ) -> Fault | None:
        """Return the first fault of ``kind`` that fires for this request, consuming one use."""
        with self._lock:
            for fault in list(self._faults):
                if fault.kind != kind or fault.provider != provider:
                    continue
                if fault.until is not None and now >= fault.until:
                    self._faults.remove(fault)
                    continue
                if fault.company is not None and fault.company != (company or ""):
                    continue
                if fault.methods and method.upper() not in fault.methods:
                    continue
                if fault.path_contains and fault.path_contains not in path:
                    continue
                if fault.path_pattern and re.search(fault.path_pattern, path) is None:
                    continue
                if fault.rate < 1.0 and self._random.random() >= fault.rate:
                    continue
                fault.fired += 1
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                return fault
        return None
