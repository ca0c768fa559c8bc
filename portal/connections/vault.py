"""The token vault: encrypted token sets, refreshed under a cross-worker lock.

Refresh rules (exact-online.md §1.5, quickbooks-online.md §1, bexio.md §1.3): a refresh is
done by one process at a time per connection (a Redis lock shared by every worker), the token
is re-read after the lock is taken (another process may have refreshed it already), and a
rotated refresh token is committed *before* the new access token is used, so a crash can never
lose the only valid refresh token.

This is the one refresh path: the adapters the vault builds refresh through :func:`refresh`
whether their token lapsed by the clock (mid-job, in a lane) or the ledger refused it (a 401),
and every ``NeedsReauthorization`` they raise is recorded on the connection at once by
:func:`record_lost_grant`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from ..extensions import db, queue
from ..integrations.base import LedgerAdapter, NeedsReauthorization, TokenSet
from ..integrations.tokens import TokenCipher
from ..models import AuditEvent, Connection, ConnectionStatus
from . import providers

log = logging.getLogger(__name__)

#: Refresh when the access token has less than this left.
REFRESH_LEEWAY = timedelta(seconds=60)
LOCK_TIMEOUT_SECONDS = 60
LOCK_WAIT_SECONDS = 45


class VaultError(RuntimeError):
    """The vault could not produce a usable token; the message says why in plain words."""


def cipher() -> TokenCipher:
    """Return the cipher built from TOKEN_KEYS."""
    return TokenCipher.from_config(current_app.config)


def store_tokens(connection: Connection, tokens: TokenSet) -> None:
    """Encrypt ``tokens`` onto ``connection`` with their (non-secret) expiry facts."""
    connection.token_ciphertext = cipher().encrypt(tokens)
    connection.access_expires_at = tokens.access_expires_at
    connection.refresh_expires_at = tokens.refresh_expires_at
    connection.token_refreshed_at = tokens.issued_at


def read_tokens(connection: Connection) -> TokenSet:
    """Decrypt the connection's tokens.

    :raise VaultError: when the connection holds none.
    """
    if not connection.token_ciphertext:
        raise VaultError(f"connection {connection.id} holds no tokens (it was disconnected or never authorized)")
    return cipher().decrypt(connection.token_ciphertext)


def purge_tokens(connection: Connection) -> None:
    """Forget the connection's tokens."""
    connection.token_ciphertext = None
    connection.access_expires_at = connection.refresh_expires_at = None


def _now() -> datetime:
    return datetime.now(UTC)


def _refresh_locked(connection_id: int, *, force: bool, seen: TokenSet | None, refused: bool = False) -> TokenSet:
    """Refresh while holding the lock; the rotated tokens are committed at once in a short transaction.

    The connection is read in a session of its own that ends before the ledger is called: no
    transaction stays open across the call (on SQLite, the one writer lock stays free).
    """
    with Session(db.engine, expire_on_commit=False) as session:
        connection = session.get(Connection, connection_id)
        if connection is None:
            raise VaultError(f"connection {connection_id} does not exist")
        tokens = read_tokens(connection)
        session.commit()  # ends the read transaction (nothing written); the objects keep their values
        refreshed_since = seen is not None and tokens.access_token != seen.access_token
        if refreshed_since and not tokens.access_expired(leeway=timedelta(0)):
            return tokens  # another process refreshed it after the caller read it
        if not (force or refused) and not tokens.access_expired(leeway=REFRESH_LEEWAY):
            return tokens  # another process refreshed it while we waited for the lock
        spec = providers.spec(connection.provider)
        earliest = spec.tokens.refresh_not_before
        young = earliest and _now() - tokens.issued_at < earliest and not tokens.access_expired(leeway=timedelta(0))
        if young and not refused:
            # Exact refuses a refresh in the first 570 s (exact-online.md §1.5); the current token still works. (A token
            # the ledger itself refused is refreshed all the same: by the ledger's clock it has lapsed.)
            return tokens
        persisted: list[TokenSet] = []

        def persist(new_tokens: TokenSet) -> None:
            # Committed before anyone uses the new access token: a single-use refresh token
            # that only lived in memory would be lost with the process.
            commit_tokens(connection_id, new_tokens)
            persisted.append(new_tokens)

        adapter = providers.adapter_for(connection, tokens=tokens, token_updater=persist)
        try:
            new_tokens = adapter.refresh()
        except NeedsReauthorization as exc:
            _record_lost_grant(session, connection, exc, what="Refresh refused")
            raise
        if not persisted or persisted[-1] is not new_tokens:
            persist(new_tokens)  # an adapter that did not call the updater still gets persisted
        return new_tokens


#: How long the commit of a rotated token set keeps trying while the database is busy.
COMMIT_RETRY_SECONDS = 120.0


def commit_tokens(connection_id: int, tokens: TokenSet, *, retry_seconds: float | None = None) -> None:
    """Store ``tokens`` on the connection in a short transaction of its own, retried while the database is busy.

    The ledger has already rotated the refresh token when this runs: giving up at the first
    "database is locked" would lose the only valid one. The write is retried with a growing pause
    for up to :data:`COMMIT_RETRY_SECONDS`; only then does the error reach the caller.
    """
    import time

    from sqlalchemy.exc import OperationalError

    deadline = time.monotonic() + (COMMIT_RETRY_SECONDS if retry_seconds is None else retry_seconds)
    pause = 0.05
    while True:
        try:
            with Session(db.engine) as session:
                connection = session.get(Connection, connection_id)
                if connection is None:  # deleted meanwhile: nothing to keep the tokens on
                    return
                store_tokens(connection, tokens)
                session.commit()
                return
        except OperationalError as exc:
            if not _busy(exc) or time.monotonic() + pause > deadline:
                log.error("rotated tokens of connection %s could not be stored: %s", connection_id, exc.orig)
                raise
            log.warning("database busy while storing rotated tokens of connection %s; retrying", connection_id)
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def _busy(exc: Exception) -> bool:
    """Say whether a database error means another writer holds the lock (worth retrying)."""
    text = str(getattr(exc, "orig", exc)).lower()
    return "locked" in text or "busy" in text


def record_lost_grant(connection_id: int, exc: NeedsReauthorization, *, what: str = "Access refused") -> None:
    """Move the connection to needs re-authorization at once and audit it (idempotent; own session).

    The one place that records a lost grant, whichever path met it: a refresh, a call refused
    with a 401 or a 403 that needs a new consent, mid-job or in a lane, a check or the health probe.
    """
    with Session(db.engine, expire_on_commit=False) as session:
        connection = session.get(Connection, connection_id)
        if connection is not None:
            _record_lost_grant(session, connection, exc, what=what)


def _record_lost_grant(session: Session, connection: Connection, exc: NeedsReauthorization, *, what: str) -> None:
    if connection.status in (ConnectionStatus.disconnected, ConnectionStatus.needs_reauthorization):
        return
    reason = exc.provider_text or str(exc)
    before = connection.status.value
    words = f"{what}: {reason}"
    connection.transition(ConnectionStatus.needs_reauthorization, words[:1000])
    connection.last_error, connection.last_error_at = words, _now()
    session.add(
        AuditEvent(
            actor_label="system",
            organization_id=connection.business_unit.organization_id,
            kind="connection.needs_reauthorization",
            subject_type="Connection",
            subject_id=connection.id,
            summary=words[:500],
            before={"status": before},
            after={"status": connection.status.value, "reason": connection.status_reason},
        )
    )
    session.commit()


def refresh(
    connection_id: int, *, force: bool = False, seen: TokenSet | None = None, refused: bool = False
) -> TokenSet:
    """Return a usable token set for the connection, refreshing it when due.

    ``seen``: the token set the caller used; when another process has replaced it since, the
    stored one is returned without a refresh. ``force``: refresh even when the clock says the
    stored token is valid (still not within Exact's first 570 s). ``refused``: the ledger refused
    ``seen`` (a 401): refresh whatever our clock says.

    :raise NeedsReauthorization: when the provider refuses the refresh for good (the connection
        is moved to needs_reauthorization with the provider's reason first).
    :raise VaultError: when the lock cannot be had in time or there are no tokens.
    """
    _end_own_write()
    lock = queue.connection.lock(
        f"ledgerlink:token-refresh:{connection_id}",
        timeout=LOCK_TIMEOUT_SECONDS,
        blocking_timeout=LOCK_WAIT_SECONDS,
    )
    if not lock.acquire():
        raise VaultError(f"another process has been refreshing connection {connection_id} for too long")
    try:
        return _refresh_locked(connection_id, force=force, seen=seen, refused=refused)
    finally:
        try:
            lock.release()
        except Exception:  # the lock expired under us: the work is committed, nothing to undo
            log.warning("token refresh lock of connection %s expired before release", connection_id)


def _end_own_write() -> None:
    """Commit the calling thread's session when it has written in its open transaction, before a refresh.

    The rotated tokens are committed by a session of their own: were the caller's session holding
    an uncommitted write (SQLite: the database's one write lock; PostgreSQL: the connection's row),
    that commit would wait for its own caller, and fail after the ledger had already rotated the
    refresh token.
    """
    session = db.session()
    if session.in_transaction() and session.info.get(_WROTE):
        log.info("committing the caller's open write before a token refresh")
        session.commit()


_WROTE = "ledgerlink_wrote"


@event.listens_for(Session, "after_flush")
def _wrote(session, flush_context) -> None:
    session.info[_WROTE] = True


@event.listens_for(Session, "after_transaction_end")
def _ended(session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(_WROTE, None)


def fresh_adapter(connection: Connection) -> LedgerAdapter:
    """Return an adapter for ``connection`` whose access token is valid now.

    Its every refresh goes through :func:`refresh` and its every lost grant through
    :func:`record_lost_grant`.

    :raise NeedsReauthorization: when the ledger refuses the refresh (recorded on the connection).
    """
    with db.session.no_autoflush:  # reading the tokens starts no write of the caller's changes
        tokens = read_tokens(connection)
    if tokens.access_expired(leeway=REFRESH_LEEWAY):
        tokens = refresh(connection.id, seen=tokens)
        db.session.refresh(connection)
    return _bound_adapter(connection, tokens)


def _bound_adapter(connection: Connection, tokens: TokenSet | None) -> LedgerAdapter:
    # The id is read now: a long job may clear its session, detaching ``connection``, before a refresh.
    connection_id = connection.id
    return providers.adapter_for(
        connection,
        tokens=tokens,
        token_updater=lambda t: _persist_in_own_session(connection_id, t),
        refresher=lambda seen, refused: refresh(connection_id, seen=seen, refused=refused),
        on_grant_lost=lambda exc: record_lost_grant(connection_id, exc),
    )


def joined_adapter(connection: Connection, adapter: LedgerAdapter) -> LedgerAdapter:
    """Return another adapter of ``connection`` on ``adapter``'s grant (one token set, refreshed once).

    For a second thread of the same job: its own HTTP session, the same tokens (see
    :meth:`~portal.integrations.base.LedgerAdapter.share_state`).
    """
    joined = _bound_adapter(connection, adapter.tokens)
    joined.share_state(adapter)
    return joined


def _persist_in_own_session(connection_id: int, tokens: TokenSet) -> None:
    commit_tokens(connection_id, tokens)
