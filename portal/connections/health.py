"""Cheap health checks of every live connection, and token-key rotation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Select, select

from ..extensions import db
from ..integrations.base import LedgerError, NeedsReauthorization
from ..models import Connection, ConnectionStatus, OAuthGrant
from . import services, vault

#: Statuses a probe looks at: paused connections are left alone, disconnected ones are history.
PROBED = (ConnectionStatus.connected, ConnectionStatus.failing, ConnectionStatus.needs_reauthorization)


@dataclass(frozen=True)
class ProbeResult:
    """What one probe found."""

    connection_id: int
    label: str
    status: ConnectionStatus
    ok: bool
    detail: str
    #: Re-authorization will be needed within the warning window.
    expiring: bool


def probe_all(*, warn_within: timedelta = timedelta(days=14)) -> list[ProbeResult]:
    """Call each live connection's ledger once (company info) and update its status.

    A success clears a failing status; a refused refresh moves it to needs_reauthorization;
    any other ledger error marks it failing with the provider's words. Commits per connection.
    """
    ids = db.session.scalars(select(Connection.id).where(Connection.status.in_(PROBED)).order_by(Connection.id)).all()
    results = []
    now = datetime.now(UTC)
    for connection_id in ids:
        connection = db.session.get_one(Connection, connection_id)
        label = f"{connection.provider} {connection.company_label}"
        try:
            vault.fresh_adapter(connection).company_info()
        except NeedsReauthorization as exc:
            db.session.rollback()
            connection = db.session.get_one(Connection, connection_id)
            ok, detail = False, f"needs re-authorization: {exc.provider_text or exc}"
        except (LedgerError, vault.VaultError) as exc:
            db.session.rollback()
            connection = db.session.get_one(Connection, connection_id)
            detail = services.note_failure(connection, exc)
            if connection.status is ConnectionStatus.connected:
                services.change_status(connection, ConnectionStatus.failing, detail, by="Health probe")
            ok = False
        else:
            services.note_success(connection)
            if connection.status in (ConnectionStatus.failing, ConnectionStatus.needs_reauthorization):
                services.change_status(
                    connection, ConnectionStatus.connected, "Health probe succeeded", by="Health probe"
                )
            ok, detail = True, "reachable"
        expiring = bool(connection.refresh_expires_at and connection.refresh_expires_at - now < warn_within)
        if expiring:
            detail += f"; re-authorization due by {connection.refresh_expires_at:%Y-%m-%d}"
        db.session.commit()
        results.append(ProbeResult(connection_id, label, connection.status, ok, detail, expiring))
    return results


def rotate_token_keys() -> int:
    """Re-encrypt every stored token set (connections and waiting consents) with the newest of TOKEN_KEYS.

    Returns how many ciphertexts were re-encrypted.
    """
    cipher = vault.cipher()
    count = 0
    models: tuple[type[Connection | OAuthGrant], ...] = (Connection, OAuthGrant)
    for model in models:
        # A select of either model reads, to mypy, as one of their common base.
        stmt = cast("Select[Connection | OAuthGrant]", select(model).where(model.token_ciphertext.is_not(None)))
        for row in db.session.scalars(stmt):
            if row.token_ciphertext is None:  # excluded by the query
                continue
            row.token_ciphertext = cipher.rotate(row.token_ciphertext)
            count += 1
    return count
