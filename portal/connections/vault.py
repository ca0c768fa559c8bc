"""The token vault: encrypted token sets, refreshed under a cross-worker lock.

Refresh rules (exact-online.md §1.5, quickbooks-online.md §1, bexio.md §1.3): a refresh is
done by one process at a time per connection (a Redis lock shared by every worker), the token
is re-read after the lock is taken (another process may have refreshed it already), and a
rotated refresh token is committed *before* the new access token is used, so a crash can never
lose the only valid refresh token.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from flask import current_app
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


def _refresh_locked(connection_id: int, *, force: bool) -> TokenSet:
    """Refresh while holding the lock, in a session of its own that commits at once."""
    with Session(db.engine, expire_on_commit=False) as session:
        connection = session.get(Connection, connection_id, with_for_update=False)
        if connection is None:
            raise VaultError(f"connection {connection_id} does not exist")
        tokens = read_tokens(connection)
        if not force and not tokens.access_expired(leeway=REFRESH_LEEWAY):
            return tokens  # another process refreshed it while we waited for the lock
        spec = providers.spec(connection.provider)
        earliest = spec.tokens.refresh_not_before
        if earliest and _now() - tokens.issued_at < earliest and not tokens.access_expired(leeway=timedelta(0)):
            # Exact refuses a refresh in the first 570 s (§1.5); the current token still works.
            return tokens

        def persist(new_tokens: TokenSet) -> None:
            # Committed before anyone uses the new access token: a single-use refresh token
            # that only lived in memory would be lost with the process.
            store_tokens(connection, new_tokens)
            session.commit()

        adapter = providers.adapter_for(connection, tokens=tokens, token_updater=persist)
        try:
            new_tokens = adapter.refresh()
        except NeedsReauthorization as exc:
            reason = exc.provider_text or str(exc)
            if connection.status is not ConnectionStatus.disconnected:
                before = connection.status.value
                connection.transition(ConnectionStatus.needs_reauthorization, f"Refresh refused: {reason}")
                connection.last_error, connection.last_error_at = f"Refresh refused: {reason}", _now()
                session.add(
                    AuditEvent(
                        actor_label="system",
                        organization_id=connection.business_unit.organization_id,
                        kind="connection.needs_reauthorization",
                        subject_type="Connection",
                        subject_id=connection.id,
                        summary=f"The ledger refused a token refresh: {reason}"[:500],
                        before={"status": before},
                        after={"status": connection.status.value, "reason": connection.status_reason},
                    )
                )
                session.commit()
            raise
        if connection.token_refreshed_at != new_tokens.issued_at:
            persist(new_tokens)  # an adapter that did not call the updater still gets persisted
        return new_tokens


def refresh(connection_id: int, *, force: bool = False) -> TokenSet:
    """Return a usable token set for the connection, refreshing it when due.

    :raise NeedsReauthorization: when the provider refuses the refresh for good (the connection
        is moved to needs_reauthorization with the provider's reason first).
    :raise VaultError: when the lock cannot be had in time or there are no tokens.
    """
    lock = queue.connection.lock(
        f"ledgerlink:token-refresh:{connection_id}",
        timeout=LOCK_TIMEOUT_SECONDS,
        blocking_timeout=LOCK_WAIT_SECONDS,
    )
    if not lock.acquire():
        raise VaultError(f"another process has been refreshing connection {connection_id} for too long")
    try:
        return _refresh_locked(connection_id, force=force)
    finally:
        try:
            lock.release()
        except Exception:  # the lock expired under us: the work is committed, nothing to undo
            log.warning("token refresh lock of connection %s expired before release", connection_id)


def fresh_adapter(connection: Connection) -> LedgerAdapter:
    """Return an adapter for ``connection`` whose access token is valid now."""
    tokens = read_tokens(connection)
    if tokens.access_expired(leeway=REFRESH_LEEWAY):
        tokens = refresh(connection.id)
        db.session.refresh(connection)
    # The id is read now: a long job may clear its session, detaching ``connection``, before a refresh.
    connection_id = connection.id
    return providers.adapter_for(
        connection, tokens=tokens, token_updater=lambda t: _persist_in_own_session(connection_id, t)
    )


def joined_adapter(connection: Connection, adapter: LedgerAdapter) -> LedgerAdapter:
    """Return another adapter of ``connection`` on ``adapter``'s grant (one token set, refreshed once).

    For a second thread of the same job: its own HTTP session, the same tokens (see
    :meth:`~portal.integrations.base.LedgerAdapter.share_state`).
    """
    connection_id = connection.id
    joined = providers.adapter_for(
        connection, tokens=adapter.tokens, token_updater=lambda t: _persist_in_own_session(connection_id, t)
    )
    joined.share_state(adapter)
    return joined


def _persist_in_own_session(connection_id: int, tokens: TokenSet) -> None:
    with Session(db.engine) as session:
        connection = session.get(Connection, connection_id)
        store_tokens(connection, tokens)
        session.commit()
