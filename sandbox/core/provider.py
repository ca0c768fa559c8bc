"""The contract each emulated provider implements, and the shared context it receives."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from .clients import ClientRegistry
from .clock import Clock
from .faults import Fault, FaultInjector
from .quotas import ConcurrencyGate, FixedWindows

if TYPE_CHECKING:
    from collections.abc import Callable


class ControlError(Exception):
    """A test-control request that cannot be carried out; answered as 400 with the message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class SandboxContext:
    """Everything the emulators share: one clock, quota counters, faults, OAuth clients."""

    clock: Clock = field(default_factory=Clock)
    windows: FixedWindows = field(default_factory=FixedWindows)
    concurrency: ConcurrencyGate = field(default_factory=ConcurrencyGate)
    faults: FaultInjector = field(default_factory=FaultInjector)
    clients: ClientRegistry = field(default_factory=ClientRegistry)
    #: False turns every quota off (benchmarks); each provider still emits its headers.
    quotas_enabled: bool = True
    #: Multiplier on every provider's limits (e.g. 0.01 makes a back-fill hit limits in seconds).
    quota_scale: float = 1.0
    providers: dict[str, ProviderEmulator] = field(default_factory=dict)
    #: Set by :meth:`reset` to end the answers held by "hang" faults (a new one is made each time).
    release_held: threading.Event = field(default_factory=threading.Event)
    #: Where the state is kept across restarts (:mod:`sandbox.core.persist`), when it is.
    state_file: Any = None

    def scaled(self, limit: int) -> int:
        """Return ``limit`` scaled by :attr:`quota_scale`, never below 1."""
        return max(1, int(limit * self.quota_scale))

    def reset(self) -> None:
        """Return every emulator, counter, fault, client and the clock to their start state.

        Answers still held by a "hang" fault are let go (as 504s), so they no longer take a
        provider's concurrency slots from what comes after the reset.
        """
        held, self.release_held = self.release_held, threading.Event()
        held.set()
        self.clock.reset()
        self.windows.reset()
        self.faults.clear()
        self.clients.reset()
        self.quotas_enabled = True
        self.quota_scale = 1.0
        self.windows.length_scale = 1.0
        for provider in self.providers.values():
            provider.reset()


class ProviderEmulator:
    """Base class of one emulated provider.

    Subclasses register their Flask blueprints under the real path prefixes, keep their
    per-company state, and answer the control hooks below. Every API request should pass
    through :meth:`inject_before` and, after a committed write, :meth:`inject_after_commit`.
    """

    #: Provider key used in /_control URLs and fault specs.
    name: str = ""

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx

    # -- wiring -----------------------------------------------------------------------------
    def register(self, app: Flask) -> None:
        """Register this provider's blueprints on ``app``."""
        raise NotImplementedError

    def reset(self) -> None:
        """Drop all state and load the default demo data."""
        raise NotImplementedError

    # -- control hooks (JSON in, JSON out) --------------------------------------------------
    def companies(self) -> list[dict]:
        """List the emulated companies/divisions with ids, names and users."""
        raise NotImplementedError

    def ledger(self, company_id: str) -> dict:
        """Return one company's whole ledger as JSON-ready data.

        :raise ControlError: (404) when the company is unknown.
        """
        raise NotImplementedError

    def consent(self, params: dict) -> dict:
        """Approve (or deny) an authorization request programmatically.

        Returns ``{"redirect_url": ...}``: the URL the browser would be sent back to.
        """
        raise NotImplementedError

    def control(self, action: str, body: dict) -> dict:
        """Carry out a provider-specific test action (revoke tokens, close a period, …).

        :raise ControlError: for an unknown action or bad arguments.
        """
        raise ControlError(f"unknown action {action!r} for {self.name}", 404)

    # -- fault helpers ----------------------------------------------------------------------
    def inject_before(
        self,
        company: str | None,
        render_error: Callable[[Fault], Response],
        render_rate_limited: Callable[[Fault], Response],
    ) -> Response | None:
        """Apply latency, 5xx and 429-storm faults to the current request.

        Returns the response to send instead of handling the request, or None to go on.
        """
        faults, now = self.ctx.faults, self.ctx.clock.time()
        args = {"provider": self.name, "company": company, "method": request.method, "path": request.path}
        latency = faults.pick("latency", now=now, **args)
        if latency is not None and latency.ms > 0:
            time.sleep(latency.ms / 1000)
        storm = faults.pick("rate_limit_storm", now=now, **args)
        if storm is not None:
            return render_rate_limited(storm)
        error = faults.pick("error_rate", now=now, **args)
        if error is not None:
            return render_error(error)
        hostile = faults.pick("hostile_reply", now=now, **args)
        if hostile is not None:
            return Response(hostile.body, status=hostile.status, content_type=hostile.content_type)
        return None

    def inject_after_commit(self, company: str | None, response: Response) -> Response:
        """Replace the response of a committed write with a timeout when a fault says so."""
        if request.method == "GET":
            return response
        fault = self.ctx.faults.pick(
            "timeout_after_commit",
            provider=self.name,
            company=company,
            method=request.method,
            path=request.path,
            now=self.ctx.clock.time(),
        )
        if fault is None:
            return response
        if fault.mode == "hang":
            self.ctx.release_held.wait(fault.hang_seconds)
        return Response(
            "<html><body><h1>504 Gateway Time-out</h1>The server didn't respond in time.</body></html>",
            status=504,
            mimetype="text/html",
        )
