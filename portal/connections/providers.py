"""Build adapters from the app's configuration: client credentials and hosts per provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app

from ..integrations import specs
from ..integrations.base import GrantLostHook, LedgerAdapter, Refresher, TokenSet, get_adapter_class
from ..integrations.http import LedgerHttp
from ..models import Connection
from ..oplog import capture as oplog

#: Providers in the order they are offered, with the config prefix of their OAuth client.
PROVIDERS = {
    specs.EXACT_ONLINE: "EXACT_ONLINE",
    specs.QUICKBOOKS: "QUICKBOOKS",
    specs.BEXIO: "BEXIO",
}

#: Providers whose customers live on one of several regional instances, chosen at connect.
REGIONAL = frozenset({specs.EXACT_ONLINE})

#: The sandboxes' development clients (sandbox/README.md); used only when SANDBOX_URL is set.
SANDBOX_CLIENTS = {
    specs.EXACT_ONLINE: ("3f1d2a9c-5b7e-4c1a-9e2d-7a6b5c4d3e2f", "ledgerlink-exact-dev-secret"),
    specs.QUICKBOOKS: ("ABledgerlinkDevClient0000000000000000000000000000", "ledgerlink-qbo-dev-secret"),
    specs.BEXIO: ("ledgerlink-dev", "ledgerlink-bexio-dev-secret"),
}


class ProviderNotConfigured(RuntimeError):
    """The app has no OAuth client for a provider; the message names the settings to set."""


def spec(provider: str) -> specs.ProviderSpec:
    """Return the provider's spec.

    :raise specs.UnknownProvider: for a provider Ledgerlink does not know.
    """
    return specs.get_spec(provider)


def client_credentials(provider: str) -> tuple[str, str]:
    """Return (client id, client secret) of our OAuth app at ``provider``.

    :raise ProviderNotConfigured: when production settings are missing.
    """
    prefix = PROVIDERS[provider]
    config = current_app.config
    client_id, secret = config.get(f"{prefix}_CLIENT_ID"), config.get(f"{prefix}_CLIENT_SECRET")
    if client_id and secret:
        return client_id, secret
    if config.get("SANDBOX_URL"):
        return SANDBOX_CLIENTS[provider]
    raise ProviderNotConfigured(
        f"{spec(provider).name} is not configured: set LEDGERLINK_{prefix}_CLIENT_ID and "
        f"LEDGERLINK_{prefix}_CLIENT_SECRET"
    )


def rate_limit_hooks() -> dict[str, Any]:
    """Return the LedgerHttp hooks: the shared rate limiter (unless ``RATE_LIMITER`` is off) and the metrics."""
    from ..extensions import queue
    from ..infra import metrics
    from ..sync import limiter

    observe = metrics.response_hook(queue.connection)
    shared = limiter.from_config(current_app.config, queue.connection)
    if shared is None:
        return {"on_response": observe}

    def on_response(info: Any) -> None:
        shared.on_response(info)
        observe(info)

    return {"before_request": shared.before_request, "on_response": on_response}


def build_adapter(
    provider: str,
    *,
    region: str | None = None,
    company_id: str | None = None,
    tokens: TokenSet | None = None,
    token_updater: Callable[[TokenSet], None] | None = None,
    refresher: Refresher | None = None,
    on_grant_lost: GrantLostHook | None = None,
) -> LedgerAdapter:
    """Return the provider's adapter talking to the configured hosts."""
    client_id, secret = client_credentials(provider)
    return get_adapter_class(provider)(
        http=LedgerHttp.from_config(provider, current_app.config, **rate_limit_hooks()),
        client_id=client_id,
        client_secret=secret,
        region=region,
        company_id=company_id,
        tokens=tokens,
        token_updater=token_updater,
        refresher=refresher,
        on_grant_lost=on_grant_lost,
    )


def adapter_for(
    connection: Connection,
    *,
    tokens: TokenSet | None = None,
    token_updater: Callable[[TokenSet], None] | None = None,
    refresher: Refresher | None = None,
    on_grant_lost: GrantLostHook | None = None,
) -> LedgerAdapter:
    """Return the adapter of an existing connection; its calls go to the connection's operation log."""
    adapter = build_adapter(
        connection.provider,
        region=connection.region,
        company_id=connection.external_company_id,
        tokens=tokens,
        token_updater=token_updater,
        refresher=refresher,
        on_grant_lost=on_grant_lost,
    )
    oplog.attach(adapter.http, connection.id, connection.provider)
    return adapter
