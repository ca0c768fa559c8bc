"""Connect, pin, test, configure, reconnect and disconnect ledger connections."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from authlib.common.security import generate_token
from flask import session, url_for
from sqlalchemy import select

from .. import audit
from ..extensions import db, queue
from ..integrations import specs
from ..integrations.base import Company, LedgerError, TokenSet
from ..models import (
    BusinessUnit,
    Connection,
    ConnectionStatus,
    GrantOutcome,
    GrantPurpose,
    OAuthGrant,
    SendingMethod,
)
from . import providers, vault

log = logging.getLogger(__name__)

#: How long a started consent may take before its state is forgotten.
PENDING_TTL_SECONDS = 15 * 60
#: How long a completed consent waits for support to pick a company.
GRANT_TTL = timedelta(minutes=30)
SESSION_KEY = "oauth_states"


class ConnectError(Exception):
    """A step of the connection flow that cannot go on; the message says why and what to do.

    ``audit_event`` (keyword arguments of :func:`portal.audit.record`) is written by the caller
    after rolling back, so that refused attempts are on the record too.
    """

    def __init__(self, message: str, *, status: int = 400, audit_event: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.audit_event = audit_event


def _now() -> datetime:
    return datetime.now(UTC)


def _state_key(state: str) -> str:
    return "ledgerlink:oauth-state:" + hashlib.sha256(state.encode()).hexdigest()


def callback_url() -> str:
    """Return the OAuth redirect URI registered at every provider."""
    return url_for("connections.oauth_callback", _external=True)


def provider_name(provider: str) -> str:
    """Return a provider's display name."""
    return providers.spec(provider).name


def live_connection(unit: BusinessUnit) -> Connection | None:
    """Return the business unit's connection that is not disconnected, if any."""
    return db.session.scalar(
        select(Connection).where(
            Connection.business_unit_id == unit.id, Connection.status != ConnectionStatus.disconnected
        )
    )


def validate_choice(provider: str, region: str | None) -> tuple[str, str | None]:
    """Check a provider and (for Exact) region choice.

    :raise ConnectError: for an unknown provider or region.
    """
    if provider not in providers.PROVIDERS:
        raise ConnectError(f"Unknown ledger {provider!r}; choose Exact Online, QuickBooks Online or bexio.")
    spec = providers.spec(provider)
    if provider not in providers.REGIONAL:
        return provider, None
    if not region:
        raise ConnectError(f"Choose the {spec.name} instance (country) where the customer's data lives.")
    try:
        return provider, spec.region(region).key
    except specs.UnknownRegion:
        known = ", ".join(spec.regions)
        raise ConnectError(f"{spec.name} has no instance {region!r}; choose one of {known}.") from None


def start_authorization(
    unit: BusinessUnit,
    provider: str,
    region: str | None,
    *,
    purpose: GrantPurpose = GrantPurpose.connect,
    connection: Connection | None = None,
    staff_id: int | None = None,
    link_id: int | None = None,
) -> str:
    """Remember a new consent request for this browser session and return the provider's URL.

    ``link_id`` names the AuthorizationLink an approver without an account is using
    (purpose ``link``); the callback then completes without a login.

    :raise ConnectError: for a bad choice or a provider without credentials.
    """
    provider, region = validate_choice(provider, region)
    try:
        adapter = providers.build_adapter(provider, region=region)
    except providers.ProviderNotConfigured as exc:
        raise ConnectError(str(exc)) from exc
    state = generate_token(48)
    verifier = generate_token(64) if adapter.capabilities.pkce else None
    pending = {
        "business_unit_id": unit.id,
        "provider": provider,
        "region": region,
        "purpose": purpose.value,
        "connection_id": connection.id if connection else None,
        "code_verifier": verifier,
        "staff_id": staff_id,
        "link_id": link_id,
    }
    # The verifier stays server-side; the browser's session only knows which states it started.
    queue.connection.set(_state_key(state), json.dumps(pending), ex=PENDING_TTL_SECONDS)
    states = [s for s in session.get(SESSION_KEY, []) if s][-4:]
    session[SESSION_KEY] = [*states, hashlib.sha256(state.encode()).hexdigest()]
    url = adapter.authorization_url(redirect_uri=callback_url(), state=state, code_verifier=verifier)
    # The browser goes there: send it to the configured host (the sandbox in development).
    return adapter.http.hosts.resolve(url)


#: Who finishes a consent the OAuth callback receives, by the purpose it was started for, where
#: that is not the staff's own connect flow (authorization links register theirs: links/views.py).
CALLBACK_COMPLETERS: dict[str, Callable[[dict[str, Any]], Any]] = {}


def completes_callbacks(purpose: str) -> Callable[[Callable[[dict[str, Any]], Any]], Callable[[dict[str, Any]], Any]]:
    """Register the decorated view function as the one that finishes consents started for ``purpose``."""

    def register(complete: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        CALLBACK_COMPLETERS[purpose] = complete
        return complete

    return register


def peek_pending(state: str | None) -> dict[str, Any] | None:
    """Return the pending request of ``state`` without using it up (None when unknown).

    The callback reads the purpose first: only link consents may complete without a login.
    """
    if not state:
        return None
    raw = queue.connection.get(_state_key(state))
    return json.loads(raw) if raw is not None else None


def _take_pending(state: str | None) -> dict[str, Any]:
    if not state:
        raise ConnectError(
            "The ledger's answer carries no state, so it cannot be matched to a request. Nothing was changed."
        )
    digest = hashlib.sha256(state.encode()).hexdigest()
    if digest not in session.get(SESSION_KEY, []):
        raise ConnectError(
            "This authorization answer does not belong to a request started in this browser session "
            "(it may have been forged or opened in another browser). Nothing was changed; start again "
            "from the business unit."
        )
    session[SESSION_KEY] = [s for s in session.get(SESSION_KEY, []) if s != digest]
    raw = queue.connection.getdel(_state_key(state))
    if raw is None:
        raise ConnectError(
            "This authorization request was already used or has expired (after 15 minutes). "
            "Nothing was changed; start the connection again."
        )
    return json.loads(raw)


def _company_dict(company: Company) -> dict[str, Any]:
    return {k: v for k, v in asdict(company).items() if v is not None or k in ("accessible",)}


def company_label(company: dict[str, Any]) -> str:
    """Return "Name (number)" of a company from a grant."""
    return f"{company.get('name') or 'Unnamed'} ({company.get('number') or company['id']})"


def complete_authorization(args: dict[str, str]) -> OAuthGrant | Connection:
    """Handle the provider's redirect: exchange the code and list what the consent reaches.

    Returns a grant waiting for a company to be picked, or — for a reconnect that landed on the
    pinned company — the updated connection.

    :raise ConnectError: for denial, a missing/forged/reused state, a refused code, a provider
        failure, or a reconnect that landed on another company. Nothing is created then.
    """
    pending = _take_pending(args.get("state"))
    provider, region = pending["provider"], pending["region"]
    name = provider_name(provider)
    if args.get("error"):
        detail = args.get("error_description") or args["error"]
        raise ConnectError(f"{name} did not grant access ({detail}). Nothing was changed.")
    if not args.get("code"):
        raise ConnectError(f"{name}'s answer carries no authorization code. Nothing was changed; try again.")
    adapter = providers.build_adapter(provider, region=region)
    tokens = None
    try:
        tokens = adapter.exchange_code(
            code=args["code"],
            redirect_uri=callback_url(),
            code_verifier=pending["code_verifier"],
            callback_params=dict(args),
        )
        companies = adapter.list_companies()
        # Listing the companies may have refreshed a short-lived access token: a ledger that rotates
        # refresh tokens (Exact, bexio) has then spent the exchanged one, so the newest set is the one kept.
        tokens = adapter.tokens or tokens
    except LedgerError as exc:
        tokens = adapter.tokens or tokens
        revoke_tokens(provider, region, tokens)  # a consent nobody can use is not left live at the ledger
        said = exc.provider_text or str(exc)
        raise ConnectError(
            f"{name} refused to complete the authorization: {said}. Nothing was changed; start the connection again."
        ) from exc
    unit = db.session.get(BusinessUnit, pending["business_unit_id"])
    if unit is None:
        revoke_tokens(provider, region, tokens)
        raise ConnectError("The business unit of this request no longer exists.", status=404)
    handle = secrets.token_urlsafe(32)
    grant = OAuthGrant(
        purpose=GrantPurpose(pending["purpose"]),
        business_unit_id=unit.id,
        connection_id=pending["connection_id"],
        provider=provider,
        region=region,
        token_ciphertext=vault.cipher().encrypt(tokens),
        companies=[_company_dict(c) for c in companies],
        created_by_id=pending["staff_id"],
        expires_at=_now() + GRANT_TTL,
        handle_hash=hash_handle(handle),
    )
    grant.handle = handle  # shown once, in the redirect to the pick page
    if grant.purpose is GrantPurpose.reconnect:
        return _finish_reconnect(grant, unit, tokens)
    db.session.add(grant)
    db.session.flush()
    return grant


def hash_handle(handle: str) -> str:
    """Return the stored form of a grant's handle."""
    return hashlib.sha256(handle.encode()).hexdigest()


def revoke_tokens(provider: str, region: str | None, tokens: TokenSet | None) -> bool:
    """Revoke a consent's tokens at the ledger where it can (QuickBooks, bexio); say whether it did.

    Never raises: a failed revocation is logged, and the caller forgets the tokens either way.
    """
    if tokens is None:
        return False
    try:
        return providers.build_adapter(provider, region=region, tokens=tokens).revoke()
    except (LedgerError, providers.ProviderNotConfigured) as exc:
        log.warning("revoking a %s consent failed: %s", provider, exc)
        return False


def end_grant(grant: OAuthGrant, outcome: GrantOutcome) -> None:
    """End a grant: revoke its tokens at the ledger (unless they became a connection's) and purge them."""
    if grant.ended_at is not None:
        return
    if outcome is not GrantOutcome.pinned and grant.token_ciphertext:
        try:
            tokens = vault.cipher().decrypt(grant.token_ciphertext)
        except Exception:
            tokens = None
        revoke_tokens(grant.provider, grant.region, tokens)
    grant.token_ciphertext = None
    grant.ended_at = _now()
    grant.outcome = outcome
    if outcome is GrantOutcome.pinned:
        grant.consumed_at = grant.ended_at


def expire_grants(now: datetime | None = None) -> int:
    """End every grant nobody picked a company for in time (revoked where the ledger can); return how many.

    Run by ``flask schedule tick`` every minute; the caller commits.
    """
    now = now or _now()
    due = db.session.scalars(
        select(OAuthGrant).where(OAuthGrant.ended_at.is_(None), OAuthGrant.expires_at <= now).order_by(OAuthGrant.id)
    ).all()
    for grant in due:
        end_grant(grant, GrantOutcome.expired)
        audit.record(
            "connection.consent_expired",
            subject_type="BusinessUnit",
            subject_id=grant.business_unit_id,
            organization_id=grant.business_unit.organization_id,
            summary=f"A {provider_name(grant.provider)} consent waited {GRANT_TTL.seconds // 60} minutes for a "
            "company to be picked; its access was revoked where the ledger allows and the tokens deleted",
            actor_label="system",
        )
    return len(due)


def waiting_grants(unit: BusinessUnit) -> list[OAuthGrant]:
    """Return the unit's consents that still wait for a company to be picked."""
    return list(
        db.session.scalars(
            select(OAuthGrant)
            .where(
                OAuthGrant.business_unit_id == unit.id, OAuthGrant.ended_at.is_(None), OAuthGrant.expires_at > _now()
            )
            .order_by(OAuthGrant.id.desc())
        )
    )


def discard_grant(grant: OAuthGrant) -> None:
    """Drop a waiting consent on support's request (revoked where the ledger can, tokens deleted), audited."""
    end_grant(grant, GrantOutcome.discarded)
    from ..models import AuthorizationLink

    for link in db.session.scalars(select(AuthorizationLink).where(AuthorizationLink.grant_id == grant.id)):
        link.grant_id = None
    audit.record(
        "connection.consent_discarded",
        subject_type="BusinessUnit",
        subject_id=grant.business_unit_id,
        organization_id=grant.business_unit.organization_id,
        summary=f"Discarded a waiting {provider_name(grant.provider)} consent; its access was revoked where the "
        "ledger allows and the tokens deleted",
    )


def _finish_reconnect(grant: OAuthGrant, unit: BusinessUnit, tokens: TokenSet) -> Connection:
    connection = db.session.get(Connection, grant.connection_id)
    if connection is None or not connection.is_live:
        revoke_tokens(grant.provider, grant.region, tokens)
        raise ConnectError("The connection to re-authorize was disconnected meanwhile; connect anew instead.")
    pinned = connection.external_company_id
    reachable = [c for c in grant.companies if c.get("accessible", True)]
    if not any(c["id"] == pinned for c in reachable):
        offered = ", ".join(company_label(c) for c in reachable) or "no company at all"
        message = (
            f"The new consent gives access to {offered}, but this connection is pinned to "
            f"{connection.company_label}. Ledgerlink refused it and kept the current authorization "
            f"untouched. Ask the approver to grant access to {connection.company_label}, or disconnect "
            "and connect the other company as a new connection."
        )
        # The refused consent is live at the ledger: revoke it there where the ledger can.
        revoke_tokens(grant.provider, grant.region, tokens)
        raise ConnectError(
            message,
            status=409,
            audit_event={
                "kind": "connection.reauthorization_refused",
                "subject_type": "Connection",
                "subject_id": connection.id,
                "organization_id": unit.organization_id,
                "summary": f"Re-authorization refused: consent reached {offered}, not {connection.company_label}",
                "after": {"offered": [c["id"] for c in reachable], "pinned": pinned},
            },
        )
    return reauthorize_in_place(connection, tokens)


def reauthorize_in_place(connection: Connection, tokens: TokenSet, *, actor_label: str | None = None) -> Connection:
    """Give a live connection a new consent's tokens; everything else stays.

    Same id, settings, mappings, customer links, records and ``sync_from``. The previous tokens are
    forgotten, not revoked: at a ledger that ties access to the company and the app (QuickBooks),
    revoking them could end the new consent too.
    """
    before = _status_facts(connection)
    vault.store_tokens(connection, tokens)
    if connection.status is not ConnectionStatus.paused:
        connection.transition(ConnectionStatus.connected, "Re-authorized")
    audit.record(
        "connection.reauthorized",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=connection.business_unit.organization_id,
        summary=f"Re-authorized {provider_name(connection.provider)} for {connection.company_label} "
        "(same connection, settings, mappings and records)",
        before=before,
        after=_status_facts(connection),
        actor_label=actor_label,
    )
    return connection


def _status_facts(connection: Connection) -> dict[str, Any]:
    return {
        "status": connection.status.value,
        "reason": connection.status_reason,
        "provider": connection.provider,
        "region": connection.region,
        "company": connection.external_company_id,
        "company_name": connection.external_company_name,
    }


def _usable(grant: OAuthGrant | None) -> OAuthGrant:
    if grant is None:
        raise ConnectError("There is no such pending authorization.", status=404)
    if grant.ended_at is not None:
        used = grant.consumed_at is not None
        raise ConnectError(
            "This authorization was already used to pin a company."
            if used
            else "This authorization was discarded or expired; its access was revoked. Connect again.",
            status=409,
        )
    if grant.expires_at <= _now():
        raise ConnectError(
            "This authorization waited too long (30 minutes) for a company to be picked; connect again.",
            status=410,
        )
    return grant


def open_grant(handle: str, *, staff_id: int | None) -> OAuthGrant:
    """Load the staff member's own grant by its handle.

    A grant opens only for the person who started its consent; an approver's (link) grant only
    through its link's pages. Every other case reads as unknown.

    :raise ConnectError: when it is unknown, not this person's, a link's, used or expired.
    """
    grant = grant_by_handle(handle)
    if grant is None or grant.purpose is GrantPurpose.link or grant.created_by_id != staff_id:
        raise ConnectError("There is no such pending authorization for you.", status=404)
    return _usable(grant)


def grant_by_handle(handle: str | None) -> OAuthGrant | None:
    """Return the grant a handle belongs to, or None."""
    if not handle or len(handle) > 100:
        return None
    return db.session.scalar(select(OAuthGrant).where(OAuthGrant.handle_hash == hash_handle(handle)))


def usable_grant(grant: OAuthGrant | None) -> OAuthGrant:
    """Return ``grant`` when it still waits for a pick.

    :raise ConnectError: when it is unknown, used, discarded or expired.
    """
    return _usable(grant)


def pin_company(
    grant: OAuthGrant,
    company_id: str,
    *,
    replace_confirmed: bool = False,
    shared_confirmed: bool = False,
    actor_label: str | None = None,
) -> Connection:
    """Create the connection pinned to ``company_id`` from a grant.

    :raise ConnectError: when the company is not reachable with this consent, when the business
        unit is connected already and the replacement was not confirmed, or when the company
        serves another organization already and that was not confirmed (409, naming them).
    """
    company = next((c for c in grant.companies if str(c["id"]) == str(company_id)), None)
    if company is None:
        offered = ", ".join(company_label(c) for c in grant.companies) or "none"
        raise ConnectError(
            f"{company_id!r} is not a company this consent reaches (it reaches: {offered}). Nothing was changed."
        )
    if not company.get("accessible", True):
        raise ConnectError(
            f"{company_label(company)} cannot be used with this consent: "
            f"{company.get('reason') or 'access was not granted'}. Pick another company, or ask the approver "
            "to include it when consenting."
        )
    unit = grant.business_unit
    existing = live_connection(unit)
    if not grant.token_ciphertext:
        raise ConnectError("This authorization holds no tokens any more; connect again.", status=409)
    tokens = vault.cipher().decrypt(grant.token_ciphertext)
    if existing is not None and _same_company(existing, grant, company):
        # The same company again: renew the existing connection's access, never replace it.
        end_grant(grant, GrantOutcome.pinned)
        db.session.flush()
        return reauthorize_in_place(existing, tokens, actor_label=actor_label)
    sharing = organizations_sharing(
        grant.provider, grant.region, str(company["id"]), besides_organization=unit.organization_id
    )
    if sharing and not shared_confirmed:
        raise ConnectError(sharing_warning(sharing, company_label(company)), status=409)
    if existing is not None and not replace_confirmed:
        raise ConnectError(
            f"{unit.name} is already connected to {provider_name(existing.provider)} "
            f"({existing.company_label}). Confirm the replacement to disconnect it and connect the new one.",
            status=409,
        )
    if existing is not None:
        disconnect(existing, reason=f"Replaced by a connection to {company_label(company)}")
        db.session.flush()
    connection = Connection(
        business_unit_id=unit.id,
        provider=grant.provider,
        region=grant.region,
        external_company_id=str(company["id"]),
        external_company_name=company.get("name"),
        external_company_number=company.get("number"),
        external_company_country=company.get("country"),
        created_by_id=grant.created_by_id,
        sync_from=_now(),
        status=ConnectionStatus.pending_authorization,
    )
    vault.store_tokens(connection, tokens)
    connection.transition(ConnectionStatus.connected, "Authorized")
    db.session.add(connection)
    end_grant(grant, GrantOutcome.pinned)
    db.session.flush()
    audit.record(
        "connection.connected",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=unit.organization_id,
        summary=f"Connected {unit.name} to {provider_name(connection.provider)} {connection.company_label}"
        + (f" (confirmed: also connected for {', '.join(sharing)})" if sharing else ""),
        after={
            **_status_facts(connection),
            "sync_from": connection.sync_from.isoformat(),
            **({"shared_with": sharing} if sharing else {}),
        },
        actor_label=actor_label,
    )
    return connection


def organizations_sharing(
    provider: str, region: str | None, company_id: str | None, *, besides_organization: int
) -> list[str]:
    """Return the names of other organizations with a live connection pinned to this ledger company."""
    if not company_id:
        return []
    from ..models import Organization

    rows = db.session.scalars(
        select(Organization.name)
        .join(BusinessUnit, BusinessUnit.organization_id == Organization.id)
        .join(Connection, Connection.business_unit_id == BusinessUnit.id)
        .where(
            Connection.provider == provider,
            Connection.region.is_(None) if region is None else Connection.region == region,
            Connection.external_company_id == str(company_id),
            Connection.status != ConnectionStatus.disconnected,
            Organization.id != besides_organization,
        )
        .distinct()
        .order_by(Organization.name)
    )
    return list(rows)


def sharing_warning(names: list[str], company: str) -> str:
    """Return the warning that a ledger company already serves other organizations."""
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return (
        f"{company} is already connected for {shown}. One ledger company serving unrelated organizations "
        "mixes their customers and invoices in one set of books; connect it only if these organizations "
        "really share that company, and confirm it."
    )


def _same_company(connection: Connection, grant: OAuthGrant, company: dict[str, Any]) -> bool:
    return (connection.provider, connection.region, connection.external_company_id) == (
        grant.provider,
        grant.region,
        str(company["id"]),
    )


def update_settings(
    connection: Connection,
    *,
    sending_method: str,
    auto_send: bool,
    sync_from: datetime,
    more: dict[str, Any] | None = None,
) -> bool:
    """Change the sending method, auto-send, connection date and ``more`` settings; return whether anything changed."""
    before = {**connection.settings, "sync_from": connection.sync_from.isoformat()}
    settings = {
        **connection.settings,
        **(more or {}),
        "sending_method": SendingMethod(sending_method).value,
        "auto_send": auto_send,
    }
    after = {**settings, "sync_from": sync_from.isoformat()}
    if before == after:
        return False
    connection.settings = settings
    connection.sync_from = sync_from
    audit.record(
        "connection.settings_changed",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=connection.business_unit.organization_id,
        summary=f"Settings of {connection.company_label} changed: {audit.describe_changes(before, after)}",
        before=before,
        after=after,
    )
    return True


def disconnect(connection: Connection, *, reason: str = "Disconnected by support") -> str:
    """Revoke at the provider where possible, purge the tokens and keep the history.

    Returns a sentence on what happened at the provider.
    """
    revoked_note = "The tokens were deleted."
    if connection.token_ciphertext:
        try:
            adapter = providers.adapter_for(connection, tokens=vault.read_tokens(connection))
            revoked = adapter.revoke()
        except (LedgerError, vault.VaultError) as exc:
            revoked_note = (
                f"Revoking at {provider_name(connection.provider)} failed ({exc}); the tokens were deleted here."
            )
        else:
            revoked_note = (
                f"Access was revoked at {provider_name(connection.provider)} and the tokens were deleted."
                if revoked
                else f"{provider_name(connection.provider)} offers no revocation; the tokens were deleted here "
                "(the customer can remove the app in the ledger's settings)."
            )
    before = _status_facts(connection)
    vault.purge_tokens(connection)
    for grant in db.session.scalars(
        select(OAuthGrant).where(OAuthGrant.connection_id == connection.id, OAuthGrant.ended_at.is_(None))
    ):
        end_grant(grant, GrantOutcome.discarded)
    connection.transition(ConnectionStatus.disconnected, reason)
    audit.record(
        "connection.disconnected",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=connection.business_unit.organization_id,
        summary=f"Disconnected {connection.company_label}: {reason}. {revoked_note}",
        before=before,
        after=_status_facts(connection),
    )
    return revoked_note


def note_success(connection: Connection) -> None:
    """Record a successful call to the ledger."""
    connection.last_success_at = _now()


def note_failure(connection: Connection, exc: Exception) -> str:
    """Record a failed call and return its message in plain words."""
    from ..integrations import errors_catalog

    text = getattr(exc, "provider_text", None) or str(exc)
    connection.last_error, connection.last_error_at = text, _now()
    explanation = errors_catalog.explain(exc) if isinstance(exc, LedgerError) else None
    return f"{explanation.explanation} ({text})" if explanation else text


def change_status(connection: Connection, target: ConnectionStatus, reason: str, *, by: str) -> None:
    """Move the connection to ``target`` and audit it as the system's doing (``by``: "Push", "Health probe")."""
    before = connection.status.value
    connection.transition(target, reason)
    audit.record(
        f"connection.{target.value}",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=connection.business_unit.organization_id,
        summary=f"{by}: {reason}",
        before={"status": before},
        after={"status": target.value, "reason": reason},
        actor_label="system",
    )
