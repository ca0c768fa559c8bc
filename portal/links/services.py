"""Create, open, use, revoke and resend authorization links; complete the approver's consent.

A link's token is 256 random bits, shown once (in the created page, the e-mail, the API
answer) and stored only as its SHA-256. The token is found by its hash (an index lookup on a
value an attacker cannot steer) and then compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from .. import audit, mail
from ..connections import services as connect
from ..connections.services import ConnectError
from ..database import utcnow
from ..extensions import db, queue
from ..models import (
    AuthorizationLink,
    AuthorizationLinkEvent,
    BusinessUnit,
    Connection,
    GrantOutcome,
    GrantPurpose,
    LinkEventKind,
    LinkStatus,
    OAuthGrant,
    StaffUser,
)

#: 32 bytes = 256 bits of randomness, URL-safe base64 (43 characters).
TOKEN_BYTES = 32
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NOTE_MAX = 1000


class LinkError(Exception):
    """A link that cannot be created or changed as asked; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 422) -> None:
        super().__init__(message)
        self.message, self.field, self.status = message, field, status


class LinkUnusable(Exception):
    """The token is unknown, tampered with, expired or revoked: one generic answer for all."""


class LinkUsed(Exception):
    """The link was already used to connect (single use)."""


@dataclass
class LinkRefused(Exception):
    """The approver's attempt was refused; nothing was connected.

    ``message`` is for the approver (translated); the event is written after the rollback.
    """

    link_id: int
    message: str
    detail: str
    kind: LinkEventKind = LinkEventKind.refused
    status: int = 400
    extra: dict[str, Any] = field(default_factory=dict)


def hash_token(token: str) -> str:
    """Return the stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def public_url(token: str) -> str:
    """Return the URL the approver opens."""
    return url_for("links.open_link", token=token, _external=True)


def provider_name(provider: str) -> str:
    """Return a provider's display name."""
    return connect.provider_name(provider)


def add_event(link: AuthorizationLink, kind: LinkEventKind, detail: str = "", *, actor: str | None = None) -> None:
    """Record a lifecycle event on the link and in the audit trail (same transaction)."""
    link.events.append(AuthorizationLinkEvent(kind=kind, detail=detail[:2000]))
    audit.record(
        f"link.{kind.value}",
        subject_type="AuthorizationLink",
        subject_id=link.id,
        organization_id=link.business_unit.organization_id,
        summary=f"Authorization link #{link.id} ({provider_name(link.provider)}): {kind.label}"
        + (f" — {detail}" if detail else ""),
        actor_label=actor,
    )


def approver_label(link: AuthorizationLink) -> str:
    """Return how the audit trail names the person using a link."""
    return f"approver via link #{link.id}"


# -- create, e-mail, revoke, resend ------------------------------------------------------------
def create_link(
    unit: BusinessUnit,
    *,
    provider: str,
    region: str | None = None,
    expected_company_id: str | None = None,
    expires_in_days: int | None = None,
    note: str = "",
    requested_for: str = "",
    notify_email: str | None = None,
    replace_existing: bool = False,
    created_by: StaffUser | None = None,
    created_via: str = "portal",
    actor: str | None = None,
) -> tuple[AuthorizationLink, str]:
    """Create a link for one business unit, provider and region; return it and its token.

    :raise LinkError: for an unknown provider/region, a bad validity, or a unit that is
        connected already while the link may not replace that connection.
    """
    try:
        provider, region = connect.validate_choice(provider, region)
    except ConnectError as exc:
        raise LinkError(exc.message, field="region" if "instance" in exc.message else "provider") from exc
    config = current_app.config
    days = config["LINK_DEFAULT_DAYS"] if expires_in_days is None else expires_in_days
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= config["LINK_MAX_DAYS"]:
        raise LinkError(
            f"The link must be valid for 1 to {config['LINK_MAX_DAYS']} days, not {expires_in_days!r}.",
            field="expires_in_days",
        )
    expected = (expected_company_id or "").strip() or None
    if expected and len(expected) > 64:
        raise LinkError("The expected company id is longer than 64 characters.", field="expected_company_id")
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise LinkError(f"The note is longer than {NOTE_MAX} characters.", field="note")
    requested_for = (requested_for or "").strip()
    if len(requested_for) > 254:
        raise LinkError("requested_for is longer than 254 characters.", field="requested_for")
    if notify_email and not _EMAIL.match(notify_email):
        raise LinkError(f"{notify_email!r} is not an e-mail address.", field="notify_email")
    existing = connect.live_connection(unit)
    if existing is not None and not replace_existing:
        raise LinkError(
            f"{unit.name} is connected to {provider_name(existing.provider)} ({existing.company_label}) already. "
            "Allow the link to replace that connection, or disconnect it first.",
            field="replace_existing",
            status=409,
        )
    renewed = _renewed_connection(unit, provider, region) if replace_existing else None
    if expected is None and renewed is not None:
        # Re-authorizing stays on the company the connection is pinned to, unless the sender named another.
        expected = renewed.external_company_id
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = AuthorizationLink(
        business_unit=unit,
        provider=provider,
        region=region,
        expected_company_id=expected,
        token_hash=hash_token(token),
        expires_at=utcnow() + timedelta(days=days),
        note=note,
        requested_for=requested_for,
        notify_email=notify_email or None,
        replace_existing=bool(replace_existing),
        created_by=created_by,
        created_via=created_via,
    )
    db.session.add(link)
    db.session.flush()
    where = f" {region.upper()}" if region else ""
    add_event(
        link,
        LinkEventKind.created,
        f"{provider_name(provider)}{where} for {unit.name}, valid {days} day(s)"
        + (f", expects {expected}" if expected else "")
        + (
            " (the connection's current company)"
            if renewed is not None and expected == renewed.external_company_id
            else ""
        )
        + (f", requested for {requested_for}" if requested_for else "")
        + f", via {created_via}",
        actor=actor,
    )
    return link, token


def _renewed_connection(unit: BusinessUnit, provider: str, region: str | None) -> Connection | None:
    """Return the unit's live connection a link to this ledger re-authorizes, when it has a pinned company."""
    live = connect.live_connection(unit)
    if live is None or not live.external_company_id or (live.provider, live.region) != (provider, region):
        return None
    return live


def expected_company(link: AuthorizationLink) -> tuple[str | None, Connection | None]:
    """Return the company a link's consent must reach, and the connection it re-authorizes (if any).

    A replacing link made without an expected company (before the default existed) still stays on
    the company of the connection it re-authorizes.
    """
    renewed = _renewed_connection(link.business_unit, link.provider, link.region) if link.replace_existing else None
    expected = link.expected_company_id or (renewed.external_company_id if renewed is not None else None)
    if renewed is not None and renewed.external_company_id != expected:
        renewed = None
    return expected, renewed


def email_link(link: AuthorizationLink, token: str, to: str, *, actor: str | None = None) -> str:
    """E-mail the link to the approver; return a sentence on how it went out.

    :raise LinkError: for a bad address or a mail server that refused it (the link stays valid).
    """
    to = (to or "").strip()
    if not _EMAIL.match(to):
        raise LinkError(f"{to!r} is not an e-mail address.", field="email_to")
    saas = current_app.config["SAAS_NAME"]
    unit = link.business_unit
    name = provider_name(link.provider)
    body = (
        f"Hello,\n\n{saas} asks you to approve access to {name}"
        + (f" ({link.region.upper()})" if link.region else "")
        + f" for {unit.organization.name}, so that its invoices are booked in the ledger automatically.\n\n"
        + (f"Message from the sender: {link.note}\n\n" if link.note else "")
        + f"Open this link to review and approve (no account needed):\n{public_url(token)}\n\n"
        f"The link works once and expires on {link.expires_at:%Y-%m-%d %H:%M} UTC.\n"
        "If you did not expect this message, ignore it.\n"
    )
    try:
        how = mail.send(to, f"{saas}: approve access to {name} for {unit.organization.name}", body)
    except mail.MailError as exc:
        raise LinkError(f"The e-mail to {to} could not be sent ({exc}); copy the link instead.", status=502) from exc
    where = "through SMTP" if how == "smtp" else "to the development outbox (no SMTP configured)"
    add_event(link, LinkEventKind.emailed, f"to {to} {where}", actor=actor)
    return f"E-mailed to {to} {where}."


def revoke(link: AuthorizationLink, *, reason: str = "Revoked by support", actor: str | None = None) -> None:
    """Make a usable link unusable at once.

    :raise LinkError: when the link is completed, expired or revoked already.
    """
    if expire_if_due(link) or not link.status.usable:
        raise LinkError(f"This link is {link.status.value} already; nothing to revoke.", status=409)
    link.transition(LinkStatus.revoked)
    _end_waiting_grant(link)
    add_event(link, LinkEventKind.revoked, reason, actor=actor)


def resend(
    link: AuthorizationLink,
    *,
    created_by: StaffUser | None,
    created_via: str,
    email_to: str | None = None,
    expires_in_days: int | None = None,
    actor: str | None = None,
) -> tuple[AuthorizationLink, str]:
    """Issue a new token for the same request and revoke the old one; return the new link and token.

    :raise LinkError: when the link was used already (a used link has nothing to resend).
    """
    if link.status is LinkStatus.completed:
        raise LinkError("This link was used to connect already; create a new link instead.", status=409)
    new, token = create_link(
        link.business_unit,
        provider=link.provider,
        region=link.region,
        expected_company_id=link.expected_company_id,
        expires_in_days=expires_in_days,
        note=link.note,
        requested_for=link.requested_for,
        notify_email=link.notify_email,
        replace_existing=link.replace_existing,
        created_by=created_by,
        created_via=created_via,
        actor=actor,
    )
    new.replaces_id = link.id
    expire_if_due(link)
    if link.status.usable:
        link.transition(LinkStatus.revoked)
        _end_waiting_grant(link)
        add_event(link, LinkEventKind.revoked, f"Replaced by link #{new.id} (resent)", actor=actor)
    if email_to:
        email_link(new, token, email_to, actor=actor)
    return new, token


def expire_if_due(link: AuthorizationLink) -> bool:
    """Move a usable link past its expiry to expired (with its event); say whether it is expired."""
    if link.status.usable and link.is_past_expiry():
        link.transition(LinkStatus.expired)
        _end_waiting_grant(link)
        add_event(link, LinkEventKind.expired, f"Expired at {link.expires_at:%Y-%m-%d %H:%M} UTC", actor="system")
    return link.status is LinkStatus.expired


def _end_waiting_grant(link: AuthorizationLink) -> None:
    """End the consent a link's approver had not picked a company for yet (revoked where the ledger can)."""
    if link.grant_id is not None:
        grant = db.session.get(OAuthGrant, link.grant_id)
        if grant is not None:
            connect.end_grant(grant, GrantOutcome.superseded)
    link.grant_id = None


def links_of_units(unit_ids: list[int], limit: int = 50) -> list[AuthorizationLink]:
    """Return the newest links of some business units with their events."""
    if not unit_ids:
        return []
    from sqlalchemy.orm import selectinload

    return list(
        db.session.scalars(
            select(AuthorizationLink)
            .where(AuthorizationLink.business_unit_id.in_(unit_ids))
            .options(selectinload(AuthorizationLink.events), selectinload(AuthorizationLink.business_unit))
            .order_by(AuthorizationLink.id.desc())
            .limit(limit)
        )
    )


# -- the approver ------------------------------------------------------------------------------
def find_by_token(token: str) -> AuthorizationLink | None:
    """Return the link a token belongs to, or None (malformed, unknown or tampered)."""
    if not token or not _TOKEN_SHAPE.match(token):
        return None
    digest = hash_token(token)
    link = db.session.scalar(select(AuthorizationLink).where(AuthorizationLink.token_hash == digest))
    if link is None or not hmac.compare_digest(link.token_hash, digest):
        return None
    return link


def usable_link(token: str) -> AuthorizationLink:
    """Return the usable link of a token.

    :raise LinkUsed: when it completed already.
    :raise LinkUnusable: when it is unknown, tampered, expired (recorded) or revoked.
    """
    link = find_by_token(token)
    if link is None:
        raise LinkUnusable
    if expire_if_due(link):
        db.session.commit()  # the expiry is part of the lifecycle, even though the page is an error
        raise LinkUnusable
    if link.status is LinkStatus.completed:
        raise LinkUsed
    if not link.status.usable:
        raise LinkUnusable
    return link


def mark_opened(link: AuthorizationLink) -> None:
    """Record the first opening of the link's page."""
    if link.status is LinkStatus.created:
        link.transition(LinkStatus.opened)
        add_event(link, LinkEventKind.opened, "The approver opened the link", actor=approver_label(link))


def start(link: AuthorizationLink) -> str:
    """Begin the provider's consent for the link in this browser session; return the provider's URL.

    :raise ConnectError: when the provider is not configured.
    """
    return connect.start_authorization(
        link.business_unit,
        link.provider,
        link.region,
        purpose=GrantPurpose.link,
        staff_id=link.created_by_id,
        link_id=link.id,
    )


def _live_link(link_id: int | None) -> AuthorizationLink:
    link = db.session.get(AuthorizationLink, link_id) if link_id else None
    if link is None:
        raise LinkUnusable
    if expire_if_due(link):
        db.session.commit()
        raise LinkUnusable
    if link.status is LinkStatus.completed:
        raise LinkUsed
    if not link.status.usable:
        raise LinkUnusable
    return link


def complete(args: dict[str, str], link_id: int) -> Connection | OAuthGrant:
    """Handle the provider's redirect for a link: connect, or hold a grant for the approver's pick.

    :raise LinkUnusable | LinkUsed: when the link can no longer be used.
    :raise LinkRefused: for denial, a forged/foreign state, a provider failure, a wrong
        division, or a conflict with the unit's connection. Nothing is created then.
    """
    link = _live_link(link_id)
    name = provider_name(link.provider)
    if args.get("error"):
        said = args.get("error_description") or args["error"]
        # Consume the state anyway, so the answer cannot be replayed.
        with contextlib.suppress(ConnectError):
            connect.complete_authorization(args)
        raise LinkRefused(
            link.id,
            _("Access was not granted at %(ledger)s, so nothing was connected.", ledger=name),
            f"{name} did not grant access ({said})",
        )
    try:
        outcome = connect.complete_authorization(args)
    except ConnectError as exc:
        raise LinkRefused(link.id, approver_words(exc, name), exc.message, status=exc.status) from exc
    assert isinstance(outcome, OAuthGrant)  # purpose link never reconnects
    grant = outcome
    try:
        return _complete_with(link, grant)
    except LinkRefused:
        # Nothing is kept of a refused consent; it is live at the ledger, so it is revoked there.
        connect.end_grant(grant, GrantOutcome.refused)
        raise


def _complete_with(link: AuthorizationLink, grant: OAuthGrant) -> Connection | OAuthGrant:
    name = provider_name(link.provider)
    reachable = [c for c in grant.companies if c.get("accessible", True)]
    offered = ", ".join(connect.company_label(c) for c in reachable) or _("no company at all")
    expected, renewed = expected_company(link)
    if expected:
        if not any(str(c["id"]) == expected for c in reachable):
            raise _wrong_company(link, offered, expected, renewed)
        return pin(link, grant, expected)
    if not reachable:
        raise LinkRefused(
            link.id,
            _(
                "Your consent at %(ledger)s reaches no company you may grant access to. Nothing was connected.",
                ledger=name,
            ),
            "Consent reached no usable company",
        )
    if len(reachable) == 1:
        return pin(link, grant, str(reachable[0]["id"]))
    link.grant_id = grant.id
    return grant


def _wrong_company(link: AuthorizationLink, offered: str, expected: str, renewed: Connection | None) -> LinkRefused:
    """Return the refusal of a consent that reached another company than the link's, saying what to choose."""
    name = provider_name(link.provider)
    if renewed is not None:
        message = _(
            "This link renews access for the connection to %(company)s. You granted access to "
            "%(offered)s instead, so nothing was changed. Open the link again and choose %(company)s "
            "at %(ledger)s. If the business should move to another company, ask the sender for a new link.",
            company=renewed.company_label,
            offered=offered,
            ledger=name,
        )
    else:
        message = _(
            "You granted access to %(offered)s, but this link asks for %(expected)s. "
            "Nothing was connected. Open the link again and choose %(expected)s at %(ledger)s, "
            "or ask the sender for a new link.",
            offered=offered,
            expected=expected,
            ledger=name,
        )
    return LinkRefused(
        link.id,
        message,
        f"Consent reached {offered}, not the expected {expected}"
        + (f" (the company of the connection it re-authorizes, {renewed.company_label})" if renewed else ""),
        kind=LinkEventKind.wrong_division_attempted,
        status=409,
    )


def grant_for_pick(handle: str, session_handles: list[str]) -> tuple[AuthorizationLink, OAuthGrant]:
    """Return the link and grant an approver picks a company for, in the browser session that consented.

    :raise LinkUnusable: when the grant is not this session's, not a link's, ended or expired.
    """
    if not handle or handle not in session_handles:
        raise LinkUnusable
    grant = connect.grant_by_handle(handle)
    if grant is None or grant.purpose is not GrantPurpose.link:
        raise LinkUnusable
    link = db.session.scalar(select(AuthorizationLink).where(AuthorizationLink.grant_id == grant.id))
    if link is None:
        raise LinkUnusable
    link = _live_link(link.id)
    try:
        grant = connect.usable_grant(grant)
    except ConnectError as exc:
        raise LinkUnusable from exc
    return link, grant


def pin(link: AuthorizationLink, grant: OAuthGrant, company_id: str) -> Connection:
    """Pin the company through the connect flow's own guards and complete the link.

    :raise LinkRefused: when the company cannot be pinned (not reachable, unit connected…).
    """
    reachable = {str(c["id"]) for c in grant.companies if c.get("accessible", True)}
    expected, renewed = expected_company(link)
    if expected and str(company_id) != expected:
        raise _wrong_company(link, str(company_id), expected, renewed)
    if str(company_id) not in reachable:
        raise LinkRefused(
            link.id,
            _("That company is not one your consent reaches. Nothing was connected."),
            f"Pick of {company_id!r} refused: not reachable",
        )
    renewing = renewed is not None and renewed.external_company_id == str(company_id)
    sharing = connect.organizations_sharing(
        link.provider, link.region, str(company_id), besides_organization=link.business_unit.organization_id
    )
    # A company that serves other organizations is connected through a link only when the sender
    # named it; the approver is not told who else uses it (that is the SaaS's business, not theirs).
    if sharing and not renewing and link.expected_company_id != str(company_id):
        raise LinkRefused(
            link.id,
            _("This company cannot be connected through this link. Nothing was changed; please contact the sender."),
            f"Pick of {company_id!r} refused: the company is already connected for {', '.join(sharing)}; "
            "a link must name it (expected company) to connect it again",
            status=409,
        )
    try:
        # The same company re-authorizes the connection in place; another company replaces it only
        # when the sender allowed it (ticked it, or said so in the API).
        connection = connect.pin_company(
            grant,
            str(company_id),
            replace_confirmed=link.replace_existing,
            shared_confirmed=bool(sharing),
            actor_label=approver_label(link),
        )
    except ConnectError as exc:
        raise LinkRefused(
            link.id,
            _(
                "This business is already connected to a ledger, and the link does not allow replacing "
                "that connection. Nothing was changed; please contact the sender."
            )
            if exc.status == 409
            else approver_words(exc, provider_name(link.provider)),
            exc.message,
            status=exc.status,
        ) from exc
    link.connection_id = connection.id
    link.grant_id = None
    link.transition(LinkStatus.completed)
    done = "Re-authorized the connection to" if renewing else "Connected to"
    add_event(link, LinkEventKind.completed, f"{done} {connection.company_label}", actor=approver_label(link))
    return connection


#: Longest piece of a ledger's own words shown to an approver (its first line, cut here).
PROVIDER_TEXT_SHOWN = 160


def summarise(text: str | None) -> str:
    """Return the first line of a provider's text, cut to PROVIDER_TEXT_SHOWN characters (escaped when shown)."""
    line = (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""
    return line if len(line) <= PROVIDER_TEXT_SHOWN else line[: PROVIDER_TEXT_SHOWN - 1].rstrip() + "…"


def approver_words(exc: ConnectError, ledger: str) -> str:
    """Say to an approver, in their language, why their consent could not be completed.

    Staff see the full story in the link's events; the approver gets what they can act on, with the
    ledger's own words summarised.
    """
    from ..integrations.base import LedgerError

    cause = exc.__cause__
    if isinstance(cause, LedgerError):
        said = summarise(cause.provider_text or str(cause))
        return _(
            "%(ledger)s did not complete the authorization (it said: %(said)s), so nothing was connected. "
            "Open the link you received again to retry.",
            ledger=ledger,
            said=said,
        )
    return _(
        "Your answer from %(ledger)s could not be matched to a request started in this browser, so nothing was "
        "connected. Open the link you received again, in one browser, to retry.",
        ledger=ledger,
    )


def record_refusal(refusal: LinkRefused) -> None:
    """Write a refused attempt's event (after the caller rolled the attempt back)."""
    link = db.session.get(AuthorizationLink, refusal.link_id)
    if link is not None:
        add_event(link, refusal.kind, refusal.detail, actor=approver_label(link))


# -- after completion ----------------------------------------------------------------------------
def enqueue_notifications(link: AuthorizationLink) -> None:
    """Queue the requester's e-mail and the SaaS webhook of a completed link (after the commit)."""
    from rq import Retry

    if link.notify_email:
        queue.enqueue(
            "jobs.links.notify_requester",
            link.id,
            job_id=f"link-notify-{link.id}",
            unique=True,
            retry=Retry(max=3, interval=[30, 120, 600]),
        )
    if current_app.config.get("WEBHOOK_URL"):
        queue.enqueue(
            "jobs.links.deliver_webhook",
            link.id,
            job_id=f"link-webhook-{link.id}",
            unique=True,
            retry=Retry(max=5, interval=[10, 60, 300, 1800, 3600]),
        )


def completion_notice(link: AuthorizationLink) -> tuple[str, str]:
    """Return (subject, body) of the requester's e-mail for a completed link."""
    unit, connection = link.business_unit, link.connection
    name = provider_name(link.provider)
    company = connection.company_label if connection else "the chosen company"
    subject = f"Ledger connected: {unit.organization.name} · {unit.name} → {name} {company}"
    body = (
        f"The authorization link #{link.id} was used: {unit.organization.name} ({unit.name}) is now connected "
        f"to {name}{f' {link.region.upper()}' if link.region else ''}, company {company}.\n\n"
        + (f"Requested for: {link.requested_for}\n" if link.requested_for else "")
        + "Next: check the mappings and run the test on the connection page.\n"
    )
    return subject, body


def webhook_payload(link: AuthorizationLink) -> dict[str, Any]:
    """Return the JSON the SaaS receives when a link completes (no secret in it)."""
    unit, connection = link.business_unit, link.connection
    return {
        "event": "authorization_link.completed",
        "delivery_id": secrets.token_hex(8),
        "sent_at": utcnow().isoformat(),
        "link": {
            "id": link.id,
            "requested_for": link.requested_for,
            "created_via": link.created_via,
            "provider": link.provider,
            "region": link.region,
            "completed_at": link.status_changed_at.isoformat(),
        },
        "organization": {"id": unit.organization.external_id, "name": unit.organization.name},
        "business_unit": {"id": unit.id, "name": unit.name},
        "connection": {
            "id": connection.id,
            "company_id": connection.external_company_id,
            "company_name": connection.external_company_name,
        }
        if connection
        else None,
    }


def sign(body: bytes, secret: str) -> str:
    """Return the signature header value of a webhook body: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode_payload(payload: dict[str, Any]) -> bytes:
    """Return the exact bytes that are signed and sent."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
