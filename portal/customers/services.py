"""Customer links: the ledger customer cache, suggestions, confirming, linking, CSV import, conflicts.

Services flush; the view or the job commits (STYLE 6). Every link change writes an AuditEvent
(subject: the SaaS customer) saying who made it and how.

Customer mode (``Connection.settings["customer_mode"]``), read by the sync engine:

- ``"create"`` (default): an invoice for a customer without a link creates the customer in the
  ledger when first needed, and :func:`link_created_by_push` links it at once.
- ``"link_only"``: nothing is ever created; an invoice for an unlinked customer is held as
  needs-action "customer not linked", pointing at this blueprint's page to fix it. (The hold
  itself is carried out by the sync engine, which asks :func:`customer_link` first.)
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask_login import current_user
from sqlalchemy import delete, func, insert, or_, select

from .. import audit, csvfiles
from ..database import utcnow
from ..extensions import db
from ..integrations.base import LedgerCustomer
from ..models import Connection, Customer
from ..models.customer_link import CustomerLink, LedgerCustomerCache, LinkMethod, LinkSuggestion
from . import matching

#: Customer modes: key → words.
CUSTOMER_MODES = {
    "create": "Create the customer in the ledger when an invoice first needs it",
    "link_only": "Link only: hold invoices of unlinked customers as needs-action “customer not linked”",
}
DEFAULT_CUSTOMER_MODE = "create"


class LinkError(Exception):
    """A link change that cannot be made, with the reason in plain words."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class CsvImportError(Exception):
    """A CSV of links refused as a whole; ``errors`` names each bad row."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


# -- customer mode --------------------------------------------------------------------------------


def customer_mode(connection: Connection) -> str:
    """Return the connection's customer mode: "create" or "link_only"."""
    mode = (connection.settings or {}).get("customer_mode", DEFAULT_CUSTOMER_MODE)
    return mode if mode in CUSTOMER_MODES else DEFAULT_CUSTOMER_MODE


def set_customer_mode(connection: Connection, mode: str) -> bool:
    """Change the customer mode (audited); return whether it changed.

    :raise LinkError: for an unknown mode.
    """
    if mode not in CUSTOMER_MODES:
        raise LinkError(f"Unknown customer mode {mode!r}: choose {' or '.join(CUSTOMER_MODES)}.")
    before = customer_mode(connection)
    if before == mode:
        return False
    connection.settings = {**(connection.settings or {}), "customer_mode": mode}
    if mode == "create":
        # Invoices held because link-only mode created no customer: now the push may.
        release_holds(connection, None)
    audit.record(
        "connection.customer_mode_changed",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=connection.business_unit.organization_id,
        summary=f"Customer mode of {connection.company_label} set to {mode.replace('_', ' ')}",
        before={"customer_mode": before},
        after={"customer_mode": mode},
    )
    return True


# -- the sync engine's entry points ---------------------------------------------------------------


def customer_link(connection: Connection, customer: Customer) -> CustomerLink | None:
    """Return the customer's link on this connection, or None.

    With None the sync engine follows :func:`customer_mode`: create the customer in the ledger
    (then call :func:`link_created_by_push`), or in link-only mode hold the invoice as
    needs-action "customer not linked".
    """
    return db.session.scalar(
        select(CustomerLink).where(CustomerLink.connection_id == connection.id, CustomerLink.customer_id == customer.id)
    )


def link_created_by_push(
    connection: Connection, customer: Customer, external_id: str, method: LinkMethod = LinkMethod.push
) -> CustomerLink:
    """Link a customer the sync engine just created in the ledger, or found there before creating it (actor system).

    ``method`` is "push" for a created customer, ``push_vat`` / ``push_coc`` / ``push_email``
    for one the push found by that identifier.
    """
    existing = customer_link(connection, customer)
    if existing is not None and existing.external_id == str(external_id):
        return existing
    return _set_link(connection, customer, str(external_id), method, None, actor="system")


def release_holds(connection: Connection, customer_ids: Iterable[int] | None) -> int:
    """Send the records held for these customers (None: all customers) back to the push; return how many.

    The invoices and credit notes held as needs-action "customer not linked", and the customers'
    own held records, become pending: a person acted (linked the customer, chose to create it,
    changed the customer mode), so the next push takes them (flushed, not committed).
    """
    from ..models import CreditNote, ExternalRecord, Invoice, RecordKind, RecordState

    held = select(ExternalRecord).where(
        ExternalRecord.connection_id == connection.id,
        ExternalRecord.state == RecordState.needs_action,
        ExternalRecord.last_error_class == "customer_not_linked",
    )
    if customer_ids is not None:
        ids = list(customer_ids)
        of_customers = (
            (
                (ExternalRecord.kind == RecordKind.invoice)
                & ExternalRecord.local_id.in_(select(Invoice.id).where(Invoice.customer_id.in_(ids)))
            )
            | (
                (ExternalRecord.kind == RecordKind.credit_note)
                & ExternalRecord.local_id.in_(select(CreditNote.id).where(CreditNote.customer_id.in_(ids)))
            )
            | ((ExternalRecord.kind == RecordKind.customer) & ExternalRecord.local_id.in_(ids))
        )
        held = held.where(of_customers)
    released = 0
    for record in db.session.scalars(held):
        record.transition(RecordState.pending)
        released += 1
    db.session.flush()
    return released


def create_anyway(connection: Connection, customer: Customer) -> int:
    """Let the push create a held customer although the ledger has customers that might be it (audited).

    A person confirmed that none of the candidates is this customer. Returns how many held
    records go back to the push (flushed, not committed).

    :raise LinkError: when the customer is linked already, or the connection only links customers.
    """
    from ..models import ExternalRecord, RecordKind

    if customer_link(connection, customer) is not None:
        raise LinkError(f"{customer.name} is linked already: its invoices use that ledger customer.", 409)
    if customer_mode(connection) == "link_only":
        raise LinkError(
            f"This connection only links customers: link {customer.name} to a ledger customer, or change the "
            "customer mode to create customers.",
            409,
        )
    record = db.session.scalar(
        select(ExternalRecord).where(
            ExternalRecord.connection_id == connection.id,
            ExternalRecord.kind == RecordKind.customer,
            ExternalRecord.local_id == customer.id,
        )
    )
    if record is None:
        record = ExternalRecord(connection_id=connection.id, kind=RecordKind.customer, local_id=customer.id, attempts=0)
        db.session.add(record)
    record.create_confirmed = True
    db.session.execute(
        delete(LinkSuggestion).where(
            LinkSuggestion.connection_id == connection.id, LinkSuggestion.customer_id == customer.id
        )
    )
    audit.record(
        "customer_link.create_anyway",
        subject_type="Customer",
        subject_id=customer.id,
        organization_id=customer.organization_id,
        summary=f"{customer.name} will be created in {connection.company_label}: none of the ledger customers "
        "found is this customer",
        after={"connection_id": connection.id, "create_confirmed": True},
    )
    db.session.flush()
    return release_holds(connection, [customer.id])


#: The customer's columns a link remembers as synced (a change of any is pushed to the ledger customer).
SYNCED_FIELDS = ("name", "email", "vat_number", "coc_number", "street", "postcode", "city", "country")


def snapshot(customer: Customer) -> dict[str, Any]:
    """Return the customer's values a ledger customer is kept in step with."""
    return {name: getattr(customer, name) for name in SYNCED_FIELDS}


# -- the ledger customer cache --------------------------------------------------------------------


def store_ledger_customers(connection: Connection, customers: Iterable[LedgerCustomer]) -> dict[str, int]:
    """Upsert the fetched ledger customers; those no longer listed are marked deleted.

    Returns counts: fetched, new, archived, deleted.
    """
    now = utcnow()
    cached = {
        row.external_id: row
        for row in db.session.scalars(
            select(LedgerCustomerCache).where(LedgerCustomerCache.connection_id == connection.id)
        )
    }
    seen: set[str] = set()
    new = 0
    for found in customers:
        external_id = str(found.id)
        if external_id in seen:
            continue
        seen.add(external_id)
        values = {
            "name": (found.name or "")[:200] or f"#{external_id}",
            "code": (found.code or None) and str(found.code)[:64],
            "vat_number": (found.vat_number or None) and found.vat_number[:64],
            "coc_number": (found.coc_number or None) and found.coc_number[:64],
            "email": (found.email or None) and found.email[:254],
            "country": (found.country or None) and found.country[:8],
            "active": bool(found.active),
            "deleted_at": None,
            "fetched_at": now,
        }
        row = cached.get(external_id)
        if row is None:
            db.session.add(LedgerCustomerCache(connection_id=connection.id, external_id=external_id, **values))
            new += 1
        else:
            for key, value in values.items():
                setattr(row, key, value)
    deleted = 0
    for external_id, row in cached.items():
        if external_id not in seen and row.deleted_at is None:
            row.deleted_at = now
            deleted += 1
    db.session.flush()
    archived = sum(1 for row in cached.values() if row.external_id in seen and not row.active)
    return {"fetched": len(seen), "new": new, "archived": archived, "deleted": deleted}


def fetch_ledger_customers(connection: Connection, *, page_size: int | None = None) -> dict[str, int]:
    """Fetch every ledger customer page by page through the adapter and cache them."""
    from ..connections import vault  # the token vault; imported late to keep this module light

    adapter = vault.fresh_adapter(connection)
    return store_ledger_customers(connection, adapter.iter_customers(page_size=page_size))


#: fetched_at of ledger customers the cache learnt of without a full fetch (a push's look-up) before any fetch.
NOT_FETCHED = datetime(1970, 1, 1, tzinfo=UTC)


def last_fetched_at(connection: Connection) -> datetime | None:
    """Return when the ledger customers were last fetched, or None if never."""
    fetched = db.session.scalar(
        select(func.max(LedgerCustomerCache.fetched_at)).where(LedgerCustomerCache.connection_id == connection.id)
    )
    return fetched if fetched is not None and fetched > NOT_FETCHED else None


def ledger_customer(connection: Connection, external_id: str) -> LedgerCustomerCache | None:
    """Return one cached ledger customer (deleted ones included), or None."""
    return db.session.scalar(
        select(LedgerCustomerCache).where(
            LedgerCustomerCache.connection_id == connection.id, LedgerCustomerCache.external_id == str(external_id)
        )
    )


@dataclass(frozen=True)
class LedgerHit:
    """A cached ledger customer found by the manual-link search, and what it was found by."""

    row: LedgerCustomerCache
    #: "VAT number", "company number" or None (found by a word of its name, code, e-mail or id).
    matched_by: str | None = None


def _compacted(column):
    """Return ``column`` upper-cased without the blanks and punctuation people put in numbers (SQL)."""
    expr = func.upper(column)
    for noise in (" ", ".", "-", "/", "_", ",", ":"):
        expr = func.replace(expr, noise, "")
    return expr


def search_ledger(connection: Connection, query: str, limit: int = 20) -> list[LedgerHit]:
    """Return cached ledger customers matching ``query``, those agreeing on a VAT or company number first.

    A word matches the name, code, e-mail, VAT number or id anywhere. A VAT number is read as
    people write it (blanks, dots, dashes, case, the country prefix left out for the company's own
    country) and matches ledger customers whose VAT number is the same number however the ledger
    stores it; a company (chamber of commerce) number matches likewise without its punctuation.
    """
    text = (query or "").strip()[:100]
    if not text:
        return []
    columns = (
        LedgerCustomerCache.name,
        LedgerCustomerCache.code,
        LedgerCustomerCache.email,
        LedgerCustomerCache.vat_number,
        LedgerCustomerCache.coc_number,
        LedgerCustomerCache.external_id,
    )
    conditions = [c.icontains(text, autoescape=True) for c in columns]
    vat = matching.normalise_vat(text, connection.external_company_country)
    if vat:
        # The number without its country letters: a ledger may store it with or without them.
        core = vat.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ") or vat
        conditions.append(_compacted(LedgerCustomerCache.vat_number).like(f"%{core}%"))
    coc = matching.normalise_coc(text)
    if coc:
        conditions.append(_compacted(LedgerCustomerCache.coc_number).like(f"%{coc}%"))
    rows = db.session.scalars(
        select(LedgerCustomerCache)
        .where(
            LedgerCustomerCache.connection_id == connection.id,
            LedgerCustomerCache.deleted_at.is_(None),
            or_(*conditions),
        )
        .order_by(LedgerCustomerCache.name, LedgerCustomerCache.id)
        .limit(limit * 5)
    )
    hits = []
    for row in rows:
        matched_by = None
        if vat and matching.normalise_vat(row.vat_number, row.country or connection.external_company_country) == vat:
            matched_by = "VAT number"
        elif coc and matching.normalise_coc(row.coc_number) == coc:
            matched_by = "company number"
        elif vat or coc:
            # Found only through the loose number filter: keep it only if a word matched as well.
            words = (row.name, row.code, row.email, row.vat_number, row.coc_number, row.external_id)
            if not any(text.lower() in (w or "").lower() for w in words):
                continue
        hits.append(LedgerHit(row, matched_by))
    hits.sort(key=lambda h: h.matched_by is None)
    return hits[:limit]


def unlinked_customers(connection: Connection, *, query: str = "", limit: int = 100) -> tuple[list[Customer], int]:
    """Return the organization's customers without a link on this connection (by name), and how many there are."""
    linked = select(CustomerLink.customer_id).where(CustomerLink.connection_id == connection.id)
    stmt = _organization_customers(connection).where(Customer.id.not_in(linked))
    text = (query or "").strip()[:100]
    if text:
        stmt = stmt.where(
            or_(
                Customer.name.icontains(text, autoescape=True),
                Customer.external_id.icontains(text, autoescape=True),
                Customer.vat_number.icontains(text, autoescape=True),
                Customer.email.icontains(text, autoescape=True),
            )
        )
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    return list(db.session.scalars(stmt.order_by(Customer.name, Customer.id).limit(limit))), total or 0


def search_text_for(customer: Customer) -> str:
    """Return what to search the ledger by first for ``customer``: its VAT number, else company number, else name."""
    if customer.vat_number:
        return matching.normalise_vat(customer.vat_number, customer.country) or customer.vat_number
    return customer.coc_number or customer.name


def customer_by_reference(connection: Connection, reference: str | None) -> Customer | None:
    """Return the organization's customer with this SaaS id, or None."""
    text = (reference or "").strip()[:64]
    if not text:
        return None
    return db.session.scalar(_organization_customers(connection).where(Customer.external_id == text))


# -- suggestions ----------------------------------------------------------------------------------


def _organization_customers(connection: Connection):
    return select(Customer).where(Customer.organization_id == connection.business_unit.organization_id)


def unlinked_parties(connection: Connection) -> list[matching.Party]:
    """Return the connection's SaaS customers without a link, as matcher parties."""
    linked = select(CustomerLink.customer_id).where(CustomerLink.connection_id == connection.id)
    rows = db.session.execute(
        select(Customer.id, Customer.name, Customer.vat_number, Customer.coc_number, Customer.email, Customer.country)
        .where(Customer.organization_id == connection.business_unit.organization_id, Customer.id.not_in(linked))
        .order_by(Customer.id)
    )
    return [matching.Party(r.id, r.name, r.vat_number, r.coc_number, r.email, r.country) for r in rows]


def ledger_parties(connection: Connection) -> list[matching.Party]:
    """Return the cached ledger customers that still exist, as matcher parties."""
    rows = db.session.execute(
        select(
            LedgerCustomerCache.external_id,
            LedgerCustomerCache.name,
            LedgerCustomerCache.vat_number,
            LedgerCustomerCache.coc_number,
            LedgerCustomerCache.email,
            LedgerCustomerCache.country,
            LedgerCustomerCache.active,
        ).where(LedgerCustomerCache.connection_id == connection.id, LedgerCustomerCache.deleted_at.is_(None))
    )
    return [
        matching.Party(r.external_id, r.name, r.vat_number, r.coc_number, r.email, r.country, r.active) for r in rows
    ]


def run_suggestions(
    connection: Connection,
    *,
    run_id: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Replace the connection's suggestions with fresh ones for every unlinked customer.

    ``progress(done, total)`` is called every 500 customers. Returns counts for the run.
    """
    customers = unlinked_parties(connection)
    index = matching.LedgerIndex(ledger_parties(connection))
    taken = db.session.scalars(select(CustomerLink.external_id).where(CustomerLink.connection_id == connection.id))
    total = len(customers)
    if progress:
        progress(0, total)
    found = matching.suggest(
        customers, index, taken=taken, progress=(lambda done: progress(done, total)) if progress else None
    )
    db.session.execute(delete(LinkSuggestion).where(LinkSuggestion.connection_id == connection.id))
    now = utcnow()
    rows = [
        {
            "connection_id": connection.id,
            "customer_id": s.customer_id,
            "external_id": str(c.external_id),
            "score": c.score,
            "method": c.method,
            "evidence": c.evidence,
            "ambiguous": s.ambiguous,
            "run_id": run_id,
            "created_at": now,
        }
        for s in found
        for c in s.candidates
    ]
    if rows:
        db.session.execute(insert(LinkSuggestion), rows)
    by_method = Counter(s.best.method for s in found if not s.ambiguous)
    return {
        "customers": total,
        "ledger_customers": len(index),
        "suggested": sum(1 for s in found if not s.ambiguous),
        "ambiguous": sum(1 for s in found if s.ambiguous),
        "by_method": dict(by_method),
    }


def suggestions(connection: Connection, *, min_score: int = 0, limit: int = 200, offset: int = 0):
    """Return suggestions with their SaaS and ledger customer, best first, ambiguous ones grouped."""
    return db.session.execute(
        select(LinkSuggestion, Customer, LedgerCustomerCache)
        .join(Customer, Customer.id == LinkSuggestion.customer_id)
        .outerjoin(
            LedgerCustomerCache,
            (LedgerCustomerCache.connection_id == LinkSuggestion.connection_id)
            & (LedgerCustomerCache.external_id == LinkSuggestion.external_id),
        )
        .where(LinkSuggestion.connection_id == connection.id, LinkSuggestion.score >= min_score)
        .order_by(LinkSuggestion.ambiguous, LinkSuggestion.score.desc(), Customer.name, LinkSuggestion.id)
        .limit(limit)
        .offset(offset)
    ).all()


def suggestion_counts(connection: Connection, min_score: int = 0) -> dict[str, int]:
    """Return how many customers have a clear suggestion at ``min_score`` or above, and how many are ambiguous."""
    rows = db.session.execute(
        select(LinkSuggestion.ambiguous, func.count(func.distinct(LinkSuggestion.customer_id)))
        .where(LinkSuggestion.connection_id == connection.id, LinkSuggestion.score >= min_score)
        .group_by(LinkSuggestion.ambiguous)
    ).all()
    counts = {bool(a): n for a, n in rows}
    return {"clear": counts.get(False, 0), "ambiguous": counts.get(True, 0)}


# -- making and removing links --------------------------------------------------------------------


def _actor_id() -> int | None:
    return current_user.id if current_user and getattr(current_user, "is_authenticated", False) else None


def _set_link(
    connection: Connection,
    customer: Customer,
    external_id: str,
    method: LinkMethod,
    score: int | None,
    *,
    actor: str | None = None,
) -> CustomerLink:
    """Create or replace the customer's link, drop its suggestions, audit it; return the link."""
    link = customer_link(connection, customer)
    before = {"external_id": link.external_id, "method": link.method.value} if link else None
    if link is None:
        link = CustomerLink(connection_id=connection.id, customer_id=customer.id)
        db.session.add(link)
    link.external_id, link.method, link.score = external_id, method, score
    link.created_by_id = None if actor == "system" else _actor_id()
    link.created_at = utcnow()
    # What the ledger customer has from now on, as far as Ledgerlink knows: later changes are pushed.
    link.synced, link.synced_at, link.update_error = snapshot(customer), link.created_at, None
    db.session.execute(
        delete(LinkSuggestion).where(
            LinkSuggestion.connection_id == connection.id, LinkSuggestion.customer_id == customer.id
        )
    )
    cached = ledger_customer(connection, external_id)
    label = f"{cached.name} ({external_id})" if cached else external_id
    audit.record(
        "customer_link.replaced" if before else "customer_link.created",
        subject_type="Customer",
        subject_id=customer.id,
        organization_id=customer.organization_id,
        summary=f"{customer.name} linked to {label} in {connection.company_label}, {method.label}"
        + (f" (score {score})" if score is not None else ""),
        before=before,
        after={"connection_id": connection.id, "external_id": external_id, "method": method.value, "score": score},
        actor_label=actor,
    )
    if actor != "system":
        release_holds(connection, [customer.id])
    return link


def _linkable(connection: Connection, external_id: str) -> LedgerCustomerCache:
    """Return the cached ledger customer to link to.

    :raise LinkError: when the id is unknown to the cache or the customer was deleted.
    """
    external_id = (external_id or "").strip()
    if not external_id:
        raise LinkError("Give the ledger customer to link to.")
    cached = ledger_customer(connection, external_id)
    if cached is None:
        fetched = last_fetched_at(connection)
        when = f"fetched {fetched:%Y-%m-%d %H:%M} UTC" if fetched else "never fetched"
        raise LinkError(
            f"There is no ledger customer {external_id!r} in {connection.company_label} "
            f"(ledger customers {when}; fetch them again if it is new)."
        )
    if cached.deleted_at is not None:
        raise LinkError(f"Ledger customer {external_id!r} ({cached.name}) was deleted in the ledger.")
    return cached


def own_customer(connection: Connection, customer_id: int) -> Customer:
    """Return the connection's organization's customer with this id.

    :raise LinkError: 404 when there is none.
    """
    customer = db.session.get(Customer, customer_id)
    if customer is None or customer.organization_id != connection.business_unit.organization_id:
        raise LinkError(f"There is no customer {customer_id} in {connection.business_unit.organization.name}.", 404)
    return customer


def link_manually(connection: Connection, customer_ref: str, external_id: str) -> CustomerLink:
    """Link a customer (the SaaS's customer id) to a ledger customer chosen by hand.

    :raise LinkError: for an unknown customer, an unknown or deleted ledger customer.
    """
    reference = (customer_ref or "").strip()
    customer = db.session.scalar(_organization_customers(connection).where(Customer.external_id == reference))
    if customer is None:
        org = connection.business_unit.organization
        raise LinkError(f"There is no customer {reference!r} in {org.name}.")
    cached = _linkable(connection, external_id)
    return _set_link(connection, customer, cached.external_id, LinkMethod.manual, None)


def unlink(connection: Connection, customer_id: int) -> CustomerLink:
    """Remove a customer's link (audited); return the removed link.

    :raise LinkError: when the customer has no link here.
    """
    customer = own_customer(connection, customer_id)
    link = customer_link(connection, customer)
    if link is None:
        raise LinkError(f"{customer.name} is not linked in {connection.company_label}.", 404)
    db.session.delete(link)
    audit.record(
        "customer_link.removed",
        subject_type="Customer",
        subject_id=customer.id,
        organization_id=customer.organization_id,
        summary=f"{customer.name} unlinked from {link.external_id} in {connection.company_label}",
        before={"connection_id": connection.id, "external_id": link.external_id, "method": link.method.value},
    )
    db.session.flush()
    return link


@dataclass
class ConfirmResult:
    """What a bulk confirmation did."""

    linked: int = 0
    skipped: list[str] = field(default_factory=list)


def confirm_suggestions(
    connection: Connection, *, min_score: int | None = None, suggestion_ids: Sequence[int] = ()
) -> ConfirmResult:
    """Link suggestions in bulk: every clear one at ``min_score`` or above, or the chosen ids.

    Ambiguous suggestions are confirmed only when chosen one by one; choosing two candidates
    for one customer, or one ledger customer for two customers, is refused for the later one.

    :raise LinkError: when neither a score nor a selection is given.
    """
    query = select(LinkSuggestion).where(LinkSuggestion.connection_id == connection.id)
    if suggestion_ids:
        query = query.where(LinkSuggestion.id.in_([int(i) for i in suggestion_ids]))
    elif min_score is not None:
        query = query.where(LinkSuggestion.score >= min_score, LinkSuggestion.ambiguous.is_(False))
    else:
        raise LinkError("Choose a minimum score or select suggestions to confirm.")
    chosen = list(db.session.scalars(query.order_by(LinkSuggestion.score.desc(), LinkSuggestion.id)))
    if suggestion_ids and len(chosen) != len(set(suggestion_ids)):
        raise LinkError("Some selected suggestions no longer exist: reload the page and choose again.", 409)
    result = ConfirmResult()
    customers = {
        c.id: c for c in db.session.scalars(select(Customer).where(Customer.id.in_({s.customer_id for s in chosen})))
    }
    cache = {
        row.external_id: row
        for row in db.session.scalars(
            select(LedgerCustomerCache).where(
                LedgerCustomerCache.connection_id == connection.id,
                LedgerCustomerCache.external_id.in_({s.external_id for s in chosen}),
            )
        )
    }
    taken = set(db.session.scalars(select(CustomerLink.external_id).where(CustomerLink.connection_id == connection.id)))
    done_customers: set[int] = set()
    for suggestion in chosen:
        customer = customers[suggestion.customer_id]
        cached = cache.get(suggestion.external_id)
        if suggestion.customer_id in done_customers:
            result.skipped.append(f"{customer.name}: another candidate was chosen for it already")
            continue
        if cached is None or cached.deleted_at is not None:
            result.skipped.append(f"{customer.name}: ledger customer {suggestion.external_id} no longer exists")
            continue
        if suggestion.external_id in taken:
            result.skipped.append(f"{customer.name}: {cached.name} is linked to another customer already")
            continue
        _set_link(connection, customer, suggestion.external_id, LinkMethod(suggestion.method), suggestion.score)
        taken.add(suggestion.external_id)
        done_customers.add(suggestion.customer_id)
        result.linked += 1
    db.session.flush()
    return result


# -- CSV import -----------------------------------------------------------------------------------

#: Accepted header names for the two columns (first one found wins).
CSV_CUSTOMER_COLUMNS = ("customer", "customer_id", "customer_external_id")
CSV_LEDGER_COLUMNS = ("ledger_id", "ledger_customer_id", "external_id")
CSV_MAX_ROWS = 50_000


def import_links_csv(connection: Connection, data: bytes | str) -> int:
    """Link every row of a CSV (customer = the SaaS's customer id, ledger_id), all or nothing.

    Returns how many links were made or replaced.

    :raise CsvImportError: naming every bad row; nothing is changed then.
    """
    if isinstance(data, bytes):
        try:
            text = csvfiles.decode(data)
        except csvfiles.CsvReadError as exc:
            raise CsvImportError([str(exc)]) from exc
    else:
        text = data.lstrip("\ufeff")
    if not text.strip():
        raise CsvImportError(["The file is empty: give a header row (customer,ledger_id) and one row per link."])
    reader = csvfiles.reader(text)
    errors: list[str] = []
    try:
        header = [h.strip().lower() for h in next(reader)]
    except csv.Error as exc:
        raise CsvImportError([f"Row 1: malformed CSV ({exc})."]) from exc
    customer_col = next((header.index(c) for c in CSV_CUSTOMER_COLUMNS if c in header), None)
    ledger_col = next((header.index(c) for c in CSV_LEDGER_COLUMNS if c in header), None)
    if customer_col is None or ledger_col is None:
        raise CsvImportError(
            [
                "Row 1: the header must name the columns customer and ledger_id; "
                f"found: {', '.join(header) or 'nothing'}."
            ]
        )
    wanted: list[tuple[int, str, str]] = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(f"Row {reader.line_num}: malformed CSV ({exc}).")
            break
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            errors.append(f"Row {line}: expected {len(header)} values as in the header, found {len(row)}.")
            continue
        customer_ref = csvfiles.uncell(row[customer_col].strip())
        external_id = csvfiles.uncell(row[ledger_col].strip())
        if not customer_ref:
            errors.append(f"Row {line}: the customer is empty.")
        if not external_id:
            errors.append(f"Row {line}: the ledger_id is empty.")
        if customer_ref and external_id:
            wanted.append((line, customer_ref, external_id))
        if len(wanted) > CSV_MAX_ROWS:
            raise CsvImportError([f"The file has more than {CSV_MAX_ROWS} rows: split it."])
    if not wanted and not errors:
        raise CsvImportError(["The file has a header but no rows."])

    org = connection.business_unit.organization
    customers = {
        c.external_id: c
        for c in db.session.scalars(
            _organization_customers(connection).where(Customer.external_id.in_({w[1] for w in wanted}))
        )
    }
    cache = {
        row.external_id: row
        for row in db.session.scalars(
            select(LedgerCustomerCache).where(
                LedgerCustomerCache.connection_id == connection.id,
                LedgerCustomerCache.external_id.in_({w[2] for w in wanted}),
            )
        )
    }
    fetched = last_fetched_at(connection)
    first_customer: dict[str, int] = {}
    first_ledger: dict[str, tuple[int, str]] = {}
    for line, customer_ref, external_id in wanted:
        if customer_ref in first_customer:
            errors.append(
                f"Row {line}: customer {customer_ref!r} appears again (first on row {first_customer[customer_ref]})."
            )
            continue
        first_customer[customer_ref] = line
        if customer_ref not in customers:
            errors.append(f"Row {line}: there is no customer {customer_ref!r} in {org.name}.")
        cached = cache.get(external_id)
        if cached is None:
            when = f"fetched {fetched:%Y-%m-%d %H:%M} UTC" if fetched else "never fetched"
            errors.append(
                f"Row {line}: there is no ledger customer {external_id!r} in {connection.company_label} "
                f"(ledger customers {when})."
            )
        elif cached.deleted_at is not None:
            errors.append(f"Row {line}: ledger customer {external_id!r} ({cached.name}) was deleted in the ledger.")
        if external_id in first_ledger:
            other_line, other_customer = first_ledger[external_id]
            errors.append(
                f"Row {line}: ledger customer {external_id!r} is given to customer {other_customer!r} "
                f"on row {other_line} already."
            )
        else:
            first_ledger[external_id] = (line, customer_ref)
    if errors:
        raise CsvImportError(errors)
    for _line, customer_ref, external_id in wanted:
        _set_link(connection, customers[customer_ref], external_id, LinkMethod.csv, None)
    db.session.flush()
    return len(wanted)


# -- reading links and conflicts ------------------------------------------------------------------


@dataclass(frozen=True)
class HeldInvoice:
    """An invoice the sync engine holds because its customer is not linked (link-only mode)."""

    invoice_number: str
    issue_date: Any
    customer_external_id: str
    customer_name: str
    since: datetime | None


def held_invoices(connection: Connection, *, limit: int = 50) -> list[HeldInvoice]:
    """Return invoices held as needs-action "customer not linked" on this connection, oldest first."""
    from ..models import ExternalRecord, Invoice, RecordKind, RecordState

    rows = db.session.execute(
        select(Invoice.number, Invoice.issue_date, Customer.external_id, Customer.name, ExternalRecord.last_attempt_at)
        .join(Invoice, Invoice.id == ExternalRecord.local_id)
        .join(Customer, Customer.id == Invoice.customer_id)
        .where(
            ExternalRecord.connection_id == connection.id,
            ExternalRecord.kind == RecordKind.invoice,
            ExternalRecord.state == RecordState.needs_action,
            ExternalRecord.last_error_class == "customer_not_linked",
        )
        .order_by(Invoice.issue_date, Invoice.id)
        .limit(limit)
    )
    return [HeldInvoice(*row) for row in rows]


@dataclass
class HeldCustomer:
    """A SaaS customer whose invoices the push holds, why, and the ledger customers that may be it."""

    customer: Customer
    invoices: list[HeldInvoice] = field(default_factory=list)
    #: Why the push did not create the customer (its own record's words), None in link-only mode.
    reason: str | None = None
    #: (suggestion, cached ledger customer or None) the push found, best first.
    candidates: list[tuple[LinkSuggestion, LedgerCustomerCache | None]] = field(default_factory=list)


def held_customers(connection: Connection, *, limit: int = 50) -> list[HeldCustomer]:
    """Return the customers whose invoices are held as "customer not linked", each with its candidates."""
    from ..models import ExternalRecord, RecordKind, RecordState

    invoices = held_invoices(connection, limit=500)
    refs = list(dict.fromkeys(h.customer_external_id for h in invoices))[:limit]
    if not refs:
        return []
    found = {
        c.external_id: c
        for c in db.session.scalars(_organization_customers(connection).where(Customer.external_id.in_(refs)))
    }
    held = {ref: HeldCustomer(found[ref]) for ref in refs if ref in found}
    for invoice in invoices:
        if invoice.customer_external_id in held:
            held[invoice.customer_external_id].invoices.append(invoice)
    by_id = {h.customer.id: h for h in held.values()}
    for record in db.session.scalars(
        select(ExternalRecord).where(
            ExternalRecord.connection_id == connection.id,
            ExternalRecord.kind == RecordKind.customer,
            ExternalRecord.local_id.in_(list(by_id)),
            ExternalRecord.state == RecordState.needs_action,
        )
    ):
        by_id[record.local_id].reason = record.last_error_text
    rows = db.session.execute(
        select(LinkSuggestion, LedgerCustomerCache)
        .outerjoin(
            LedgerCustomerCache,
            (LedgerCustomerCache.connection_id == LinkSuggestion.connection_id)
            & (LedgerCustomerCache.external_id == LinkSuggestion.external_id),
        )
        .where(LinkSuggestion.connection_id == connection.id, LinkSuggestion.customer_id.in_(list(by_id)))
        .order_by(LinkSuggestion.score.desc(), LinkSuggestion.id)
    )
    for suggestion, cached in rows:
        by_id[suggestion.customer_id].candidates.append((suggestion, cached))
    return list(held.values())


def links(connection: Connection, *, limit: int = 200, offset: int = 0, query: str = ""):
    """Return (link, customer, cached ledger customer or None) rows, newest first."""
    stmt = (
        select(CustomerLink, Customer, LedgerCustomerCache)
        .join(Customer, Customer.id == CustomerLink.customer_id)
        .outerjoin(
            LedgerCustomerCache,
            (LedgerCustomerCache.connection_id == CustomerLink.connection_id)
            & (LedgerCustomerCache.external_id == CustomerLink.external_id),
        )
        .where(CustomerLink.connection_id == connection.id)
    )
    if query.strip():
        text = query.strip()
        stmt = stmt.where(
            or_(
                Customer.name.icontains(text, autoescape=True),
                CustomerLink.external_id.icontains(text, autoescape=True),
            )
        )
    return db.session.execute(stmt.order_by(CustomerLink.id.desc()).limit(limit).offset(offset)).all()


def link_counts(connection: Connection) -> dict[str, int]:
    """Return how many of the organization's customers are linked and how many are not."""
    total = db.session.scalar(
        select(func.count(Customer.id)).where(Customer.organization_id == connection.business_unit.organization_id)
    )
    linked = db.session.scalar(select(func.count(CustomerLink.id)).where(CustomerLink.connection_id == connection.id))
    cached = db.session.scalar(
        select(func.count(LedgerCustomerCache.id)).where(
            LedgerCustomerCache.connection_id == connection.id, LedgerCustomerCache.deleted_at.is_(None)
        )
    )
    return {
        "customers": total or 0,
        "linked": linked or 0,
        "unlinked": (total or 0) - (linked or 0),
        "ledger": cached or 0,
    }


@dataclass(frozen=True)
class Conflict:
    """A link that needs a human: ``kind`` is linked_twice, deleted or archived."""

    kind: str
    external_id: str
    customers: tuple[tuple[int, str], ...]
    message: str


def conflicts(connection: Connection) -> list[Conflict]:
    """Return links sharing one ledger customer, and links whose ledger customer was deleted or archived."""
    found: list[Conflict] = []
    twice = (
        db.session.execute(
            select(CustomerLink.external_id)
            .where(CustomerLink.connection_id == connection.id)
            .group_by(CustomerLink.external_id)
            .having(func.count(CustomerLink.id) > 1)
        )
        .scalars()
        .all()
    )
    if twice:
        rows = db.session.execute(
            select(CustomerLink.external_id, Customer.id, Customer.name, LedgerCustomerCache.name)
            .join(Customer, Customer.id == CustomerLink.customer_id)
            .outerjoin(
                LedgerCustomerCache,
                (LedgerCustomerCache.connection_id == CustomerLink.connection_id)
                & (LedgerCustomerCache.external_id == CustomerLink.external_id),
            )
            .where(CustomerLink.connection_id == connection.id, CustomerLink.external_id.in_(twice))
            .order_by(CustomerLink.external_id, Customer.name)
        ).all()
        grouped: dict[str, list] = {}
        for external_id, cid, cname, lname in rows:
            grouped.setdefault(external_id, []).append((cid, cname, lname))
        for external_id, members in grouped.items():
            names = " and ".join(m[1] for m in members)
            ledger_name = members[0][2] or external_id
            found.append(
                Conflict(
                    "linked_twice",
                    external_id,
                    tuple((m[0], m[1]) for m in members),
                    f"Ledger customer {ledger_name} ({external_id}) is linked to {names}: "
                    "their invoices would land on one ledger customer.",
                )
            )
    fetched = last_fetched_at(connection)
    if fetched is not None:
        unfound = db.session.execute(
            select(CustomerLink, Customer, LedgerCustomerCache)
            .join(Customer, Customer.id == CustomerLink.customer_id)
            .outerjoin(
                LedgerCustomerCache,
                (LedgerCustomerCache.connection_id == CustomerLink.connection_id)
                & (LedgerCustomerCache.external_id == CustomerLink.external_id),
            )
            .where(
                CustomerLink.connection_id == connection.id,
                or_(
                    LedgerCustomerCache.id.is_(None),
                    LedgerCustomerCache.deleted_at.is_not(None),
                    LedgerCustomerCache.active.is_(False),
                ),
            )
        ).all()
        for link, customer, cached in unfound:
            if cached is None and link.created_at >= fetched:
                continue  # made (e.g. by a push) after the last fetch: not known to be gone
            if cached is None or cached.deleted_at is not None:
                name = cached.name if cached else link.external_id
                found.append(
                    Conflict(
                        "deleted",
                        link.external_id,
                        ((customer.id, customer.name),),
                        f"{customer.name} is linked to {name} ({link.external_id}), "
                        "which was deleted in the ledger: link it again.",
                    )
                )
            else:
                found.append(
                    Conflict(
                        "archived",
                        link.external_id,
                        ((customer.id, customer.name),),
                        f"{customer.name} is linked to {cached.name} ({link.external_id}), "
                        "which is archived in the ledger: invoices may be refused.",
                    )
                )
    return found
