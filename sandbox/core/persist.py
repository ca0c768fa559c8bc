"""Keep the emulators' state in a file, so a restarted sandbox still knows its consents, tokens and ledgers.

Off unless ``SANDBOX_STATE_FILE`` names a file (the demo, ``make run``, keeps it in the portal's
``instance/``). The state of every provider (companies, ledgers, users, OAuth codes, token chains)
and the registered OAuth clients are written after each request that may have changed them (any
method but GET, HEAD and OPTIONS), at most every :data:`SAVE_EVERY` seconds and when the process
ends, and read back when the app is built. The clock, quota windows and injected faults start
afresh. ``POST /_control/reset`` (``flask sandbox reset``) starts from the demo data again and
overwrites the file.

The file is a pickle written by this process for itself, never one received from elsewhere: it
lives next to the demo's database and is read only from there. A file an older version wrote
that no longer loads is set aside (``.unreadable``) and the sandbox starts from its demo data.
"""

from __future__ import annotations

import atexit
import io
import logging
import os
import pickle
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from .provider import SandboxContext

log = logging.getLogger(__name__)

#: Seconds between two writes of a changing state.
SAVE_EVERY = 1.0
_VERSION = 1
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


class _Pickler(pickle.Pickler):
    """Pickles provider state: the shared context by reference, locks and events as new ones."""

    def __init__(self, file: io.BytesIO, ctx: SandboxContext) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.shared = {id(ctx): "ctx", id(ctx.clock): "clock", id(ctx.faults): "faults", id(ctx.windows): "windows"}

    def persistent_id(self, obj: Any) -> str | None:
        return self.shared.get(id(obj))

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK_TYPES):
            return (threading.RLock if "RLock" in type(obj).__name__ else threading.Lock, ())
        if isinstance(obj, threading.Event):
            return (threading.Event, ())
        if isinstance(obj, threading.Condition):
            return (threading.Condition, ())
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, ctx: SandboxContext) -> None:
        super().__init__(file)
        self.shared = {"ctx": ctx, "clock": ctx.clock, "faults": ctx.faults, "windows": ctx.windows}

    def persistent_load(self, pid: str) -> Any:
        return self.shared[pid]


def _provider_locks(ctx: SandboxContext) -> list:
    locks = []
    for provider in ctx.providers.values():
        state = getattr(provider, "state", None)
        lock = getattr(state, "lock", None) or getattr(provider, "lock", None) or getattr(provider, "_lock", None)
        if lock is not None:
            locks.append(lock)
    return locks


def snapshot(ctx: SandboxContext) -> bytes:
    """Return the providers' state and the OAuth clients as bytes (each provider's lock held meanwhile)."""
    data = {
        "version": _VERSION,
        "clients": ctx.clients,
        "providers": {
            name: {attr: value for attr, value in vars(provider).items() if attr != "ctx"}
            for name, provider in ctx.providers.items()
        },
    }
    locks = _provider_locks(ctx)
    for lock in locks:
        lock.acquire()
    try:
        buffer = io.BytesIO()
        _Pickler(buffer, ctx).dump(data)
        return buffer.getvalue()
    finally:
        for lock in reversed(locks):
            lock.release()


def restore(ctx: SandboxContext, raw: bytes) -> None:
    """Put a :func:`snapshot` back into the running providers.

    :raise ValueError: when ``raw`` is not a snapshot of this version.
    """
    data = _Unpickler(io.BytesIO(raw), ctx).load()
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        raise ValueError("not a sandbox state of this version")
    ctx.clients = data["clients"]
    for name, attrs in data["providers"].items():
        provider = ctx.providers.get(name)
        if provider is None:
            continue
        for attr, value in attrs.items():
            setattr(provider, attr, value)


class StateFile:
    """Writes the sandbox's state to ``path`` after changes and at exit; reads it at start."""

    def __init__(self, ctx: SandboxContext, path: str | os.PathLike) -> None:
        self.ctx = ctx
        self.path = Path(path)
        self.dirty = threading.Event()
        self.saves = 0
        self._write_lock = threading.Lock()

    def load(self) -> bool:
        """Read the file into the sandbox; return whether there was a state to read."""
        if not self.path.exists():
            return False
        try:
            restore(self.ctx, self.path.read_bytes())
        except Exception:  # an old or damaged file: start from the demo data, keep the file aside
            log.warning("sandbox state %s could not be read; starting from the demo data", self.path, exc_info=True)
            self.path.replace(self.path.with_suffix(self.path.suffix + ".unreadable"))
            return False
        return True

    def save(self) -> None:
        """Write the current state (atomically: a reader never sees half a file)."""
        with self._write_lock:
            self.dirty.clear()
            raw = snapshot(self.ctx)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(self.path.suffix + ".partial")
            partial.write_bytes(raw)
            os.replace(partial, self.path)
            self.saves += 1

    def _saver(self) -> None:
        while True:
            self.dirty.wait()
            time.sleep(SAVE_EVERY)
            try:
                self.save()
            except Exception:
                log.exception("sandbox state not written to %s", self.path)

    def start(self, app: Flask) -> None:
        """Mark the state changed after every request that may change it; write it in a daemon thread and at exit."""
        from flask import request

        @app.after_request
        def _changed(response):
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                self.dirty.set()
            return response

        threading.Thread(target=self._saver, name="sandbox-state-writer", daemon=True).start()
        atexit.register(self._save_at_exit)

    def _save_at_exit(self) -> None:
        if self.dirty.is_set():
            try:
                self.save()
            except Exception:
                log.exception("sandbox state not written to %s at exit", self.path)
