"""Changes of a linked SaaS customer reach its ledger customer (name, address, e-mail, VAT, company number).

A link remembers the customer's values as the ledger customer last got them (``synced``: when
the push created it, or when the link was made). When the SaaS changes the customer (the
ingestion API moves its ``updated_at``), the push job updates the ledger customer with the
fields that changed — only those, so what the ledger keeps otherwise stays as it is — and then
remembers the new values. Setting a value twice is harmless, so the protocol is: call the
ledger, then commit the new snapshot; a crash between the two repeats the same update.

A ledger refusal is kept on the link (``update_error``, shown on the customer links page) and
the change waits for the customer's next change or a person's retry; an error about the
connection stops the run and the update stays due.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from ..database import utcnow
from ..extensions import db
from ..integrations import errors_catalog, specs
from ..integrations.base import LedgerAdapter, LedgerError, NotSupported
from ..models import Connection, Customer
from ..models.customer_link import CustomerLink
from .identity import customer_draft
from .services import SYNCED_FIELDS, snapshot

#: Customer column → the CustomerDraft field an update sends.
_DRAFT_FIELDS = {
    "name": "name",
    "email": "email",
    "vat_number": "vat_number",
    "coc_number": "coc_number",
    "street": "address_lines",
    "postcode": "postcode",
    "city": "city",
    "country": "country",
}


def _since():
    return func.coalesce(CustomerLink.synced_at, CustomerLink.created_at)


def due_links(connection: Connection) -> list[CustomerLink]:
    """Return the connection's links whose SaaS customer changed since the ledger customer last got its values."""
    stmt = (
        select(CustomerLink)
        .join(Customer, Customer.id == CustomerLink.customer_id)
        .where(CustomerLink.connection_id == connection.id, Customer.updated_at > _since())
        .order_by(CustomerLink.id)
    )
    return list(db.session.scalars(stmt))


def has_due(connection: Connection) -> bool:
    """Say whether a linked customer of the connection has a change to push (one cheap query)."""
    stmt = (
        select(CustomerLink.id)
        .join(Customer, Customer.id == CustomerLink.customer_id)
        .where(CustomerLink.connection_id == connection.id, Customer.updated_at > _since())
    )
    return db.session.scalar(stmt.limit(1)) is not None


def changed_fields(link: CustomerLink, customer: Customer) -> list[str]:
    """Return the CustomerDraft fields whose value changed since the ledger customer got them."""
    before: dict[str, Any] = link.synced or {}
    now = snapshot(customer)
    if not link.synced:
        return []  # nothing known about what the ledger has: nothing to compare with
    changed = [_DRAFT_FIELDS[name] for name in SYNCED_FIELDS if _norm(before.get(name)) != _norm(now[name])]
    return list(dict.fromkeys(changed))


def _norm(value: Any) -> str:
    return " ".join(str(value or "").split())


def push_update(connection: Connection, link: CustomerLink, adapter: LedgerAdapter) -> str:
    """Send a linked customer's changes to its ledger customer; commit; return "updated", "unchanged" or "failed".

    :raise LedgerError: an error about the connection (rate limit, outage, lost access): the
        change stays due.
    """
    from ..sync.push import CONNECTION_ERRORS  # the push's own classification of errors

    customer = db.session.get(Customer, link.customer_id)
    if customer is None:  # deleted meanwhile (its link goes with it)
        return "unchanged"
    fields = changed_fields(link, customer)
    outcome = "unchanged"
    if fields:
        try:
            adapter.update_customer(link.external_id, customer_draft(customer), fields)
        except NotSupported:
            outcome = "unchanged"
        except LedgerError as exc:
            if isinstance(exc, CONNECTION_ERRORS):
                db.session.rollback()
                raise
            explained = errors_catalog.explain(exc)
            said = f" ({specs.get_spec(connection.provider).name}: {exc.provider_text})" if exc.provider_text else ""
            link.update_error = f"The change of {', '.join(fields)} was not taken: {explained.explanation}{said}"
            link.synced_at = utcnow()
            db.session.commit()
            return "failed"
        else:
            outcome = "updated"
    link.synced, link.synced_at, link.update_error = snapshot(customer), utcnow(), None
    db.session.commit()
    return outcome
