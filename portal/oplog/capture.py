"""Record each provider call of a connection in the operation log, without touching the caller.

:func:`attach` adds a response hook to an adapter's HTTP session. The hook redacts both bodies
with the HTTP layer's own helpers (``portal.integrations.http``: secret keys, token-like runs
and e-mail addresses masked), caps them at :data:`BODY_LIMIT` characters, and inserts one row
through a small engine of its own: the caller's session is never flushed or committed, a slow
or locked database gives up after a fraction of a second, and no failure reaches the adapter.

A write (POST, PUT, PATCH, DELETE) is logged **before it leaves**: its request line is committed
at once, in a short transaction of its own, with status 0 and "Sent; no answer recorded yet"
(:func:`_write_ahead`); the answer later completes that same row. A process killed while the
ledger handles the call (or before a buffered answer is written) leaves that line, so every
ledger write has its log line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from queue import SimpleQueue
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import requests
from flask import Flask, current_app
from sqlalchemy import Engine, Table, create_engine, event, insert, update
from sqlalchemy.exc import OperationalError

from ..database import utcnow
from ..extensions import db
from ..integrations.http import _SENSITIVE_FRAGMENTS, MASK, _sensitive_key, redact_url, scrub, scrub_runs
from ..models import OperationLog

log = logging.getLogger(__name__)

#: Characters kept of each body; longer ones are cut and marked truncated.
BODY_LIMIT = 8 * 1024
#: Entries kept in memory at most while the database refuses writes.
HELD_LIMIT = 2000
#: Inside :func:`buffered`, entries are written once this many are held ...
BUFFER_ROWS = 200
#: ... or once the oldest write is this many seconds ago.
BUFFER_SECONDS = 1.0
_ENGINE_KEY = "ledgerlink_oplog_engine"
_HELD_KEY = "ledgerlink_oplog_held"


def attach(http: Any, connection_id: int, provider: str) -> None:
    """Log every call ``http`` (a LedgerHttp) makes under ``connection_id``, answered or not."""
    session = getattr(http, "session", None)
    if not isinstance(session, requests.Session) or connection_id is None:
        return  # a stand-in adapter without a real HTTP session has nothing to log
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # current_app is a LocalProxy
    if not _state(app).get("listening"):
        init_app(app)

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        try:
            if getattr(_state(app)["local"], "writer", None) is not None:
                # A push: the body is read now, in the caller's thread (requests would read it
                # next), and the entry is redacted and written by the writer thread.
                response.content  # noqa: B018 - reads the body
                write(app, _Pending(response, connection_id, provider, utcnow()))
            else:
                write(app, entry(response, connection_id=connection_id, provider=provider))
        except Exception:  # the log is advisory: the ledger call goes on whatever happens here
            log.warning("operation log entry for connection %s not written", connection_id, exc_info=True)

    session.hooks.setdefault("response", []).append(hook)

    # Calls that end without an answer (refused connection, timeout) never reach a response
    # hook: the session's send is wrapped to log them with status 0, then re-raise unchanged.
    send = session.send

    def logged_send(request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if (request.method or "GET").upper() in WRITE_METHODS:
            _write_ahead(app, request, connection_id=connection_id, provider=provider)
        started = time.monotonic()
        try:
            return send(request, **kwargs)
        except requests.RequestException as exc:
            try:
                elapsed = time.monotonic() - started
                write(app, failed_entry(request, exc, elapsed, connection_id=connection_id, provider=provider))
            except Exception:
                log.warning("operation log entry for connection %s not written", connection_id, exc_info=True)
            raise

    session.send = logged_send  # type: ignore[method-assign]


#: Methods whose request line is written before the call leaves (:func:`_write_ahead`).
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The response body of a write whose answer is not recorded (yet, or ever: the process was killed).
NO_ANSWER_YET = "Sent; no answer recorded yet (the process may have stopped during the call)."
#: The attribute of a PreparedRequest carrying the id of its written-ahead row.
_AHEAD_ID = "_ledgerlink_oplog_id"


def _write_ahead(app: Flask, request: requests.PreparedRequest, *, connection_id: int, provider: str) -> None:
    """Commit the request line of a write before it is sent; its answer completes the row (see :func:`_insert`).

    Never raises: a database that refuses (locked, down) leaves the call to be logged when answered.
    """
    try:
        secrets = _secrets(request)
        request_body, request_cut = _cap(_request_text(request, secrets))
        row = {
            "connection_id": connection_id,
            "created_at": utcnow(),
            "provider": provider,
            "method": (request.method or "GET").upper()[:8],
            "path": shown_path(request.url or ""),
            "status": 0,
            "duration_ms": 0,
            "request_body": request_body,
            "request_truncated": request_cut,
            "response_body": NO_ANSWER_YET,
            "response_truncated": False,
            "request_id": None,
        }
        table = cast(Table, OperationLog.__table__)
        with engine(app).begin() as conn:
            ahead_id = conn.execute(insert(table).returning(table.c.id), [row]).scalar_one()
        setattr(request, _AHEAD_ID, ahead_id)
    except OperationalError as exc:  # SQLite's one writer is busy: the line is written with its answer
        log.info(
            "operation log line for a write of connection %s written with its answer (%s)", connection_id, exc.orig
        )
    except Exception:  # the log is advisory: the ledger call goes on whatever happens here
        log.warning("operation log line for a write of connection %s not written ahead", connection_id, exc_info=True)


def entry(response: requests.Response, *, connection_id: int, provider: str) -> dict[str, Any]:
    """Return the operation-log row of one response, bodies redacted and capped."""
    request = response.request
    secrets = _secrets(request)
    request_body, request_cut = _cap(_request_text(request, secrets))
    response_body, response_cut = _cap(_response_text(response, secrets))
    ahead = {"id": getattr(request, _AHEAD_ID)} if getattr(request, _AHEAD_ID, None) else {}
    return {
        **ahead,
        "connection_id": connection_id,
        "created_at": utcnow(),
        "provider": provider,
        "method": (request.method or "GET").upper()[:8],
        "path": shown_path(request.url or ""),
        "status": response.status_code,
        "duration_ms": int(response.elapsed.total_seconds() * 1000),
        "request_body": request_body,
        "request_truncated": request_cut,
        "response_body": response_body,
        "response_truncated": response_cut,
        "request_id": (response.headers.get("intuit_tid") or None),
    }


class _Pending:
    """A response whose log entry is made when it is written (:func:`entry`, at the time of the call)."""

    __slots__ = ("connection_id", "created_at", "provider", "response")

    def __init__(self, response: requests.Response, connection_id: int, provider: str, created_at) -> None:
        self.response = response
        self.connection_id = connection_id
        self.provider = provider
        self.created_at = created_at

    def row(self) -> dict[str, Any]:
        """Return the entry (bodies redacted and capped)."""
        row = entry(self.response, connection_id=self.connection_id, provider=self.provider)
        row["created_at"] = self.created_at
        return row


def failed_entry(
    request: requests.PreparedRequest, error: Exception, elapsed: float, *, connection_id: int, provider: str
) -> dict[str, Any]:
    """Return the operation-log row of a call that got no answer (status 0, the error's name as body)."""
    secrets = _secrets(request)
    request_body, request_cut = _cap(_request_text(request, secrets))
    ahead = {"id": getattr(request, _AHEAD_ID)} if getattr(request, _AHEAD_ID, None) else {}
    return {
        **ahead,
        "connection_id": connection_id,
        "created_at": utcnow(),
        "provider": provider,
        "method": (request.method or "GET").upper()[:8],
        "path": shown_path(request.url or ""),
        "status": 0,
        "duration_ms": int(elapsed * 1000),
        "request_body": request_body,
        "request_truncated": request_cut,
        "response_body": f"No answer: {type(error).__name__}",
        "response_truncated": False,
        "request_id": None,
    }


def shown_path(url: str) -> str:
    """Return host, path and query of ``url`` with secret query values masked."""
    parts = urlsplit(redact_url(url))
    shown = parts.netloc + parts.path + (f"?{parts.query}" if parts.query else "")
    return shown[:1000]


def _secrets(request: requests.PreparedRequest) -> list[str]:
    """Return the credentials the request carried, to mask wherever they are echoed."""
    found = []
    authorization = _text(request.headers.get("Authorization", ""))
    if " " in authorization:
        found.append(authorization.split(" ", 1)[1])
    if _is_form(_text(request.headers.get("Content-Type", ""))):
        body = _text(request.body)
        found.extend(v for k, v in parse_qsl(body, keep_blank_values=True) if v and _sensitive_key(k, form=True))
    return [s for s in found if len(s) >= 4]


def _is_form(content_type: str) -> bool:
    return "x-www-form-urlencoded" in content_type


def _text(body: Any) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes | bytearray):
        return body.decode("utf-8", "replace")
    return str(body)


def _request_text(request: requests.PreparedRequest, secrets: list[str]) -> str:
    body = request.body
    if body is None or body in (b"", ""):
        return ""
    content_type = _text(request.headers.get("Content-Type", ""))
    if "multipart" in content_type or "octet-stream" in content_type or "pdf" in content_type:
        size = len(body) if isinstance(body, bytes | str) else "?"  # a streamed body has no length up front
        return f"<{size} bytes {content_type.split(';')[0]}>"
    text = _text(body)
    if _is_form(content_type):
        pairs = parse_qsl(text, keep_blank_values=True)
        masked = {k: MASK if _sensitive_key(k, form=True) else scrub(v, secrets) for k, v in pairs}
        return "&".join(f"{k}={v}" for k, v in masked.items())
    return _json_or_text(text, secrets)


def _response_text(response: requests.Response, secrets: list[str]) -> str:
    content_type = response.headers.get("Content-Type", "")
    if content_type and not any(t in content_type for t in ("json", "text", "xml", "form")):
        return f"<{len(response.content)} bytes {content_type.split(';')[0]}>"
    text = response.text or ""
    if _is_form(content_type):  # some token endpoints answer with a form
        pairs = parse_qsl(text, keep_blank_values=True)
        return "&".join(f"{k}={MASK if _sensitive_key(k, form=True) else scrub(v, secrets)}" for k, v in pairs)
    return _json_or_text(text, secrets)


def _json_or_text(text: str, secrets: list[str]) -> str:
    if "\n" not in text and "\\u" not in text and not _names_a_sensitive_key(text):
        # On one line already, nothing spelled in escapes, no key in it one whose value is masked,
        # and nothing to mask in it (the common case): kept as it came, without re-encoding.
        scrubbed = _scrub(text, secrets)
        if scrubbed == text:
            return text
    try:
        data = json.loads(text)
    except ValueError:
        return _scrub(text, secrets)
    # Keys are names, never masked (a long key read as a token became "***"); secret and personal-data
    # keys have their values masked, every other string value is scrubbed (token-like runs, e-mail
    # addresses, the call's secrets) as ``redact_data`` of the HTTP layer does. Kept on one line (the
    # page lays it out, see :func:`readable`): more of a body fits the cap.
    return json.dumps(_mask_keys(data, secrets), ensure_ascii=False, default=str)


def readable(body: str | None) -> str:
    """Return a logged body laid out for reading: JSON indented, anything else (a cut body, a form) as kept."""
    if not body or body[0] not in "[{":
        return body or ""
    try:
        return json.dumps(json.loads(body), ensure_ascii=False, indent=1)
    except ValueError:
        return body


def _names_a_sensitive_key(text: str) -> bool:
    """Say whether any key in ``text`` could be a secret or personal-data one (any text that names such a key does)."""
    lowered = text.lower()
    return any(fragment in lowered for fragment in _SENSITIVE_FRAGMENTS)


def _scrub(text: str, secrets: list[str]) -> str:
    """``scrub`` of the HTTP layer, without its e-mail search where no "@" can start one (most bodies)."""
    if "@" in text:
        return scrub(text, secrets)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    return scrub_runs(text)


def _mask_keys(value: Any, secrets: list[str]) -> Any:
    """Return JSON data with secret and personal-data values masked and every other string scrubbed; keys kept."""
    if isinstance(value, dict):
        return {k: (MASK if _sensitive_key(str(k), form=False) else _mask_keys(v, secrets)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_keys(v, secrets) for v in value]
    if isinstance(value, str):
        return _scrub(value, secrets)
    return value


def _cap(text: str) -> tuple[str, bool]:
    if len(text) <= BODY_LIMIT:
        return text, False
    return text[:BODY_LIMIT], True


def write(app: Flask, row: dict[str, Any] | _Pending) -> None:
    """Insert ``row`` (and any held back) in a short transaction of the log's own engine.

    Never the caller's session. Where the database is locked by the caller's own open write
    (SQLite allows one writer), the row is held in memory and written after the caller's
    commit or rollback (see :func:`init_app`), so the call is neither slowed nor lost.

    Inside :func:`buffered` (a push job) the row is only held: held rows are written in one
    multi-row insert after the caller's next commit or rollback, once :data:`BUFFER_ROWS` are
    held or :data:`BUFFER_SECONDS` have passed, and when the block ends; by the block's writer
    thread, which also redacts them, while the job waits for the ledger's next answer.
    """
    state = _state(app)
    with state["lock"]:
        state["held"].append(row)
        if getattr(state["local"], "depth", 0) and not _buffer_full(state):
            return
        rows = list(state["held"])
        state["held"].clear()
        state["since"] = time.monotonic()
    writer = getattr(state["local"], "writer", None)
    if writer is not None:
        writer.put(rows)
        return
    _insert(app, rows, busy=OperationalError)


def _insert(app: Flask, items: list, *, busy: type[Exception] | tuple[type[Exception], ...]) -> None:
    """Make the entries of ``items`` and insert them in one statement; hold them again on ``busy`` errors."""
    rows = []
    for item in items:
        if isinstance(item, _Pending):
            try:
                item = item.row()
            except Exception:  # one entry that cannot be made must not cost the others theirs
                log.warning("operation log entry for connection %s not written", item.connection_id, exc_info=True)
                continue
        rows.append(item)
    if not rows:
        return
    table = cast(Table, OperationLog.__table__)
    new = [row for row in rows if "id" not in row]
    answers = [{**row, "ahead_id": row["id"]} for row in rows if "id" in row]
    try:
        with engine(app).begin() as conn:
            if new:
                conn.execute(insert(table), new)
            for answer in answers:  # the answers of writes complete the lines written ahead
                values = {k: v for k, v in answer.items() if k not in ("id", "ahead_id")}
                conn.execute(update(table).where(table.c.id == answer["ahead_id"]).values(**values))
    except busy:
        state = _state(app)
        with state["lock"]:
            state["held"].extendleft(reversed(rows))
        log.debug("operation log busy; %d entries held until the next commit", len(rows))


def _buffer_full(state: dict[str, Any]) -> bool:
    return len(state["held"]) >= BUFFER_ROWS or time.monotonic() - state["since"] >= BUFFER_SECONDS


class _Writer(threading.Thread):
    """Makes and writes a buffered block's entries in the background, in the order they were held."""

    #: Seconds the end of a block waits for the writer to finish what it was given.
    JOIN_SECONDS = 10.0

    def __init__(self, app: Flask) -> None:
        super().__init__(name="ledgerlink-oplog-writer", daemon=True)
        self.app = app
        self.queue: SimpleQueue[list | None] = SimpleQueue()

    def put(self, rows: list) -> None:
        """Write these held entries soon."""
        self.queue.put(rows)

    def run(self) -> None:
        while (rows := self.queue.get()) is not None:
            try:
                _insert(self.app, rows, busy=Exception)
            except Exception:  # the log must never disturb the job
                log.warning("operation log entries not written", exc_info=True)

    def close(self) -> None:
        """Write what was given, then stop."""
        self.queue.put(None)
        self.join(self.JOIN_SECONDS)


@contextmanager
def buffered(app: Flask) -> Iterator[None]:
    """Hold this thread's log entries in memory and write them in bulk (see :func:`write`).

    Every entry held is written when the block ends, however it ends. Unless the app's
    ``OPERATION_LOG_WRITER`` is off, the outermost block makes and writes them in a thread of
    its own, so that the calls of the block do not wait for their entries.
    """
    local = _state(app)["local"]
    local.depth = getattr(local, "depth", 0) + 1
    writer = None
    if local.depth == 1 and app.config.get("OPERATION_LOG_WRITER", True):
        writer = local.writer = _Writer(app)
        writer.start()
    try:
        yield
    finally:
        local.depth -= 1
        if writer is not None:
            local.writer = None
            writer.close()
        flush_held(app)


def share_buffer(app: Flask) -> Callable[[], AbstractContextManager[None]]:
    """Return how another thread joins this thread's :func:`buffered` block.

    Inside the returned context, that thread's entries are held and written with this thread's
    (by its writer). Only for threads that finish before the block ends.
    """
    local = _state(app)["local"]
    depth, writer = getattr(local, "depth", 0), getattr(local, "writer", None)

    @contextmanager
    def join() -> Iterator[None]:
        joined = _state(app)["local"]
        joined.depth, joined.writer = depth, writer
        try:
            yield
        finally:
            joined.depth, joined.writer = 0, None

    return join


def flush_held(app: Flask) -> None:
    """Write the entries held back while the database was locked; keep them if it still is."""
    state = _state(app)
    with state["lock"]:
        rows = list(state["held"])
        state["held"].clear()
        state["since"] = time.monotonic()
    if not rows:
        return
    writer = getattr(state["local"], "writer", None)
    if writer is not None:
        writer.put(rows)
        return
    _insert(app, rows, busy=Exception)


def _state(app: Flask) -> dict[str, Any]:
    state = app.extensions.get(_HELD_KEY)
    if state is None:
        state = app.extensions.setdefault(
            _HELD_KEY,
            {
                "lock": threading.Lock(),
                "held": deque(maxlen=HELD_LIMIT),
                "local": threading.local(),
                "since": time.monotonic(),
            },
        )
    return state


def init_app(app: Flask) -> None:
    """Write held entries whenever a session of the app ends a transaction (the lock is gone then)."""
    _state(app)["listening"] = True

    def after_transaction(session) -> None:
        if _state(app)["held"]:
            try:
                flush_held(app)
            except Exception:  # the log must never disturb the caller's commit
                log.warning("operation log entries not written", exc_info=True)

    event.listen(db.session, "after_commit", after_transaction)
    event.listen(db.session, "after_rollback", after_transaction)


def engine(app: Flask) -> Engine:
    """Return this process's engine for log writes: small pool, short lock and statement timeouts."""
    current = app.extensions.get(_ENGINE_KEY)
    if current is not None and current[0] == os.getpid():
        return current[1]
    with app.app_context():
        url = db.engine.url
    if url.get_backend_name() == "sqlite":
        options: dict[str, Any] = {"connect_args": {"timeout": 0.05}}
    else:
        options = {
            "pool_size": 2,
            "max_overflow": 2,
            "pool_timeout": 0.5,
            "pool_pre_ping": True,
            "connect_args": {"connect_timeout": 2, "options": "-c lock_timeout=500 -c statement_timeout=2000"},
        }
    new = create_engine(url, **options)
    # After a fork the parent's pooled connections belong to the parent: start a fresh pool.
    app.extensions[_ENGINE_KEY] = (os.getpid(), new)
    return new
