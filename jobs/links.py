"""After an authorization link completes: tell the requester (e-mail) and the SaaS (webhook).

Each job takes the link id; its outcome is mirrored as the link's events (notified,
webhook_delivered, webhook_failed), which the link's page shows. A failed delivery raises so
that RQ retries it on the schedule given at enqueue.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import requests
from flask import current_app, has_app_context

from portal import mail
from portal.extensions import db
from portal.links import services
from portal.models import AuthorizationLink, LinkEventKind

from .runtime import get_app

log = logging.getLogger("ledgerlink.jobs.links")

#: Seconds the SaaS's webhook receiver may take to answer.
WEBHOOK_TIMEOUT = 10


def in_app_context(fn: Callable[[AuthorizationLink], Any]) -> Callable[[int], Any]:
    """Run ``fn(link)`` for link ``link_id`` in the app's context."""

    @functools.wraps(fn)
    def wrapper(link_id: int) -> Any:
        if has_app_context():
            return _run(fn, link_id)
        with get_app().app_context():
            return _run(fn, link_id)

    return wrapper


def _run(fn: Callable[[AuthorizationLink], Any], link_id: int) -> Any:
    link = db.session.get(AuthorizationLink, link_id)
    if link is None:
        raise LookupError(f"AuthorizationLink {link_id} does not exist")
    return fn(link)


@in_app_context
def notify_requester(link: AuthorizationLink) -> str:
    """E-mail the requester that the link completed."""
    if not link.notify_email:
        raise LookupError(f"AuthorizationLink {link.id} has no e-mail address to notify")
    subject, body = services.completion_notice(link)
    try:
        how = mail.send(link.notify_email, subject, body)
    except mail.MailError as exc:
        db.session.rollback()
        log.warning("completion e-mail of link %s failed: %s", link.id, exc)
        raise
    services.add_event(link, LinkEventKind.notified, f"E-mailed {link.notify_email} ({how})", actor="system")
    db.session.commit()
    return how


@in_app_context
def deliver_webhook(link: AuthorizationLink) -> int:
    """POST the completion to LEDGERLINK_WEBHOOK_URL, signed with HMAC-SHA256 of the body."""
    config = current_app.config
    url, secret = config.get("WEBHOOK_URL"), config.get("WEBHOOK_SECRET") or ""
    if not url:
        return 0
    payload = services.webhook_payload(link)
    body = services.encode_payload(payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Ledgerlink-Webhook/1",
        "X-Ledgerlink-Event": payload["event"],
        "X-Ledgerlink-Delivery": payload["delivery_id"],
        "X-Ledgerlink-Signature": services.sign(body, secret),
    }
    try:
        response = requests.post(url, data=body, headers=headers, timeout=WEBHOOK_TIMEOUT)
        response.raise_for_status()
    except requests.RequestException as exc:
        db.session.rollback()
        services.add_event(link, LinkEventKind.webhook_failed, f"POST {url}: {exc}"[:500], actor="system")
        db.session.commit()
        raise
    services.add_event(
        link, LinkEventKind.webhook_delivered, f"POST {url} answered {response.status_code}", actor="system"
    )
    db.session.commit()
    return response.status_code
