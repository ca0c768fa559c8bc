"""Lanes: a push's ledger calls of one kind, run in order by a thread of their own beside the job's.

A push of many invoices makes, per invoice, the creation and the steps after it (PDF, finalize,
send), and a look-up by reference first for an invoice whose earlier attempt has an unknown
outcome. The creation needs the job's database session and stays in the job's thread; the
look-up of a chunk's invoices and the steps of those just created go to a lane each, so that
the job's own work (and the ledger's answer to one call) overlaps the other calls. A lane runs
what it is given one call after the other, in the order given: look-ups precede their
creations, and invoices are finalized (Exact numbers at print) in the order they were created.

A lane's calls go through an adapter of their own joined to the job's (one token set, see
:func:`portal.connections.vault.joined_adapter`), in the job's app, operation-log block and
context variables (the rate limiter's waits renew the job's lock). What a call returns or raises
comes back as a :class:`~concurrent.futures.Future`; the job's thread applies it to its records.

A lane made with ``threaded=False`` runs each call at once in the caller's thread: the same code
path, one call after the other.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from queue import SimpleQueue
from typing import Any

log = logging.getLogger(__name__)


class Lane:
    """Runs the calls given to it in order, in one thread of its own (or at once, unthreaded)."""

    #: Seconds :meth:`close` waits for the calls still queued.
    CLOSE_SECONDS = 300.0

    def __init__(
        self,
        name: str,
        *,
        threaded: bool = True,
        enter: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        """``enter`` makes the context every call of the lane runs in (entered once, in the lane's thread)."""
        self.name = name
        self._enter = enter or nullcontext
        self._queue: SimpleQueue[tuple[Future, Callable[..., Any], tuple] | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        if threaded:
            context = contextvars.copy_context()
            self._thread = threading.Thread(target=context.run, args=(self._run,), name=name, daemon=True)
            self._thread.start()

    @property
    def threaded(self) -> bool:
        """Say whether the lane runs its calls in a thread of its own."""
        return self._thread is not None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Queue ``fn(*args)`` after the calls given before; return its future."""
        future: Future = Future()
        if self._thread is None:
            _settle(future, fn, args)
        else:
            self._queue.put((future, fn, args))
        return future

    def close(self) -> None:
        """Let the calls queued run, then stop the thread (calls cancelled before they started do not run)."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(self.CLOSE_SECONDS)
        if self._thread.is_alive():
            log.warning("lane %s still busy after %.0f s; left to finish on its own", self.name, self.CLOSE_SECONDS)

    def __enter__(self) -> Lane:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self) -> None:
        with self._enter():
            while (item := self._queue.get()) is not None:
                future, fn, args = item
                if future.set_running_or_notify_cancel():
                    _settle(future, fn, args)


def _settle(future: Future, fn: Callable[..., Any], args: tuple) -> None:
    try:
        result = fn(*args)
    except BaseException as exc:  # handed to whoever waits for the future
        future.set_exception(exc)
    else:
        future.set_result(result)
