"""Which ledger customer a SaaS customer is, asked of the ledger before the push creates one.

A push in "create" mode never creates a customer the ledger already has. Before creating, it
looks the customer up in the ledger by VAT number, company number, e-mail and name (each where
the ledger can filter on it) and weighs what it finds with the matcher's normalisers:

- one ledger customer agreeing on the VAT number or the company number, or on the e-mail address
  and the name (an e-mail alone may be a bookkeeper's or a group's mailbox), contradicting on
  none, that no other SaaS customer is linked to: adopted and linked ("matched by VAT number at
  push");
- several such, or one that another SaaS customer is linked to, or one that is archived: the
  customer is **held** as needs-action with the candidates, which become suggestions on the
  customer links page, until a person links one, chooses "Create anyway", or dismisses it;
- ledger customers that only share the exact normalised name: held the same way — a name alone
  is never adopted (two companies may share one), and never ignored either;
- nothing: the customer is created, carrying our reference.

Ledger customers another SaaS customer is linked to are that customer's, not candidates,
unless they agree on an identifier (then the hold lets a person decide).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select

from ..database import utcnow
from ..extensions import db
from ..integrations import specs
from ..integrations.base import CustomerDraft, CustomerQuery, LedgerAdapter, LedgerCustomer, clean_name
from ..models import Connection, Customer
from ..models.customer_link import CustomerLink, LedgerCustomerCache, LinkMethod, LinkSuggestion
from . import matching

#: Evidence that says two records are one company, strongest first, with the link method it gives.
IDENTIFIERS = {"vat": LinkMethod.push_vat, "coc": LinkMethod.push_coc, "email": LinkMethod.push_email}
_WORDS = {"vat": "VAT number", "coc": "company number", "email": "e-mail", "name": "name"}
#: Scores of suggestions written for a held customer (as the matcher scores the evidence).
_SCORES = {"vat": 100, "coc": 96, "email": 90, "name": 85}


def customer_draft(customer: Customer) -> CustomerDraft:
    """Return the SaaS customer as the ledger gets it (created or updated); its name cleaned of stray spaces."""
    return CustomerDraft(
        reference=customer.external_id,
        name=clean_name(customer.name),
        email=(customer.email or "").strip() or None,
        vat_number=(customer.vat_number or "").strip() or None,
        country=customer.country,
        address_lines=(customer.street,) if customer.street else (),
        postcode=customer.postcode,
        city=customer.city,
        coc_number=(customer.coc_number or "").strip() or None,
    )


@dataclass(frozen=True)
class Candidate:
    """A ledger customer the look-up found, with what agrees and who has it already."""

    customer: LedgerCustomer
    #: Keys that agree: "vat", "coc", "email", "name".
    agrees: frozenset[str]
    #: The SaaS customer it is linked to on this connection already, if any ("Name (id)").
    taken_by: str | None = None

    @property
    def identified(self) -> bool:
        """Say whether an identifier (not only the name) agrees."""
        return bool(self.agrees & IDENTIFIERS.keys())

    @property
    def conclusive(self) -> bool:
        """Say whether what agrees is enough to adopt it: a VAT or company number, or the e-mail and the name.

        An e-mail address alone is not: a bookkeeper's or a group's mailbox serves several companies.
        """
        return bool(self.agrees & {"vat", "coc"}) or (
            "email" in self.agrees and bool(self.agrees & {"name", "similar"})
        )

    @property
    def method(self) -> LinkMethod:
        """Return the link method of the strongest agreeing identifier."""
        return next(IDENTIFIERS[key] for key in IDENTIFIERS if key in self.agrees)

    def describe(self) -> str:
        """Return the candidate as a person reads it in a hold."""
        ledger = self.customer
        label = f"{ledger.name} ({ledger.code or ledger.id})"
        said = ", ".join(f"same {_WORDS[key]}" for key in ("vat", "coc", "email", "name") if key in self.agrees)
        if "similar" in self.agrees:
            said += ", a similar name"
        extra = []
        if not ledger.active:
            extra.append("archived in the ledger")
        if self.taken_by:
            extra.append(f"linked to {self.taken_by} already")
        return f"{label}: {said}" + (f" ({'; '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class Lookup:
    """What the look-up decided: adopt one ledger customer, hold with candidates, or create."""

    adopt: Candidate | None = None
    held: tuple[Candidate, ...] = ()
    reason: str | None = None


def look_up(connection: Connection, customer: Customer, draft: CustomerDraft, adapter: LedgerAdapter) -> Lookup:
    """Ask the ledger for customers that may be ``customer`` and decide (see the module's rules).

    :raise LedgerError: when the ledger cannot be asked (errors about the connection included).
    """
    found = _ask(adapter, customer, draft)
    taken = _taken(connection, customer, found.keys())
    candidates = []
    for ledger in found.values():
        agrees, differs = _compare(customer, ledger)
        if differs or not agrees - {"similar"}:
            continue  # another company (a VAT or company number that differs), or nothing that says who it is
        candidates.append(Candidate(ledger, frozenset(agrees), taken.get(str(ledger.id))))
    identified = [c for c in candidates if c.identified]
    name = specs.get_spec(connection.provider).name
    if identified:
        free = [c for c in identified if c.taken_by is None and c.customer.active and c.conclusive]
        if len(identified) == 1 and len(free) == 1:
            return Lookup(adopt=free[0])
        return Lookup(
            held=tuple(identified),
            reason=f"{customer.name} was not created in {name}: it already has "
            + (
                "these customers, which may be this one: "
                if len(identified) > 1
                else "a customer that may be this one: "
            )
            + "; ".join(c.describe() for c in identified)
            + ". Link the right one on the customer links page, or choose “Create anyway” if none is.",
        )
    same_name = [c for c in candidates if c.taken_by is None]
    if same_name:
        return Lookup(
            held=tuple(same_name),
            reason=f"{customer.name} was not created in {name}: it already has "
            + ("customers" if len(same_name) > 1 else "a customer")
            + " with the same name and nothing else to tell them apart: "
            + "; ".join(c.describe() for c in same_name)
            + ". Link the customer if it is the same company, or choose “Create anyway” if it is not.",
        )
    return Lookup()


def _ask(adapter: LedgerAdapter, customer: Customer, draft: CustomerDraft) -> dict[str, LedgerCustomer]:
    """Return the ledger customers found by each key the customer has and the ledger can filter on, by id."""
    queries: list[CustomerQuery] = []
    vat = matching.normalise_vat(customer.vat_number, customer.country)
    for value in dict.fromkeys(v for v in (draft.vat_number, vat) if v):
        queries.append(CustomerQuery("vat", value))
    coc = matching.normalise_coc(customer.coc_number)
    for value in dict.fromkeys(v for v in (draft.coc_number, coc) if v):
        queries.append(CustomerQuery("coc", value))
    for address in matching.normalise_emails(customer.email)[:2]:
        queries.append(CustomerQuery("email", address))
    if draft.name:
        queries.append(CustomerQuery("name", draft.name))
    # Keys the ledger keeps no field for (bexio and QuickBooks: no VAT number) are left out.
    return {str(ledger.id): ledger for ledger in adapter.find_customers_matching(queries)}


def _compare(customer: Customer, ledger: LedgerCustomer) -> tuple[set[str], set[str]]:
    """Return the keys on which the two agree and those on which they contradict each other."""
    agrees: set[str] = set()
    differs: set[str] = set()
    ours, theirs = (
        matching.normalise_vat(customer.vat_number, customer.country),
        matching.normalise_vat(ledger.vat_number, (ledger.country or "").strip()[:2] or customer.country),
    )
    if ours and theirs:
        (agrees if ours == theirs else differs).add("vat")
    ours, theirs = matching.normalise_coc(customer.coc_number), matching.normalise_coc(ledger.coc_number)
    if ours and theirs:
        (agrees if ours == theirs else differs).add("coc")
    if set(matching.normalise_emails(customer.email)) & set(matching.normalise_emails(ledger.email)):
        agrees.add("email")
    name, theirs_name = matching.normalise_name(customer.name), matching.normalise_name(ledger.name)
    if name and name == theirs_name:
        agrees.add("name")
    elif matching.name_similarity(name, theirs_name) >= matching.NAME_THRESHOLD:
        agrees.add("similar")  # supports an e-mail, never a reason on its own
    return agrees, differs


def _taken(connection: Connection, customer: Customer, external_ids) -> dict[str, str]:
    """Return, of these ledger ids, those linked to another SaaS customer on the connection: id → "Name (id)"."""
    ids = [str(i) for i in external_ids]
    if not ids:
        return {}
    rows = db.session.execute(
        select(CustomerLink.external_id, Customer.name, Customer.external_id)
        .join(Customer, Customer.id == CustomerLink.customer_id)
        .where(
            CustomerLink.connection_id == connection.id,
            CustomerLink.external_id.in_(ids),
            CustomerLink.customer_id != customer.id,
        )
    )
    return {external_id: f"{name} ({saas_id})" for external_id, name, saas_id in rows}


def suggest_held(connection: Connection, customer: Customer, held: tuple[Candidate, ...]) -> None:
    """Offer a held customer's candidates as suggestions on the customer links page (flushed, not committed).

    The candidates are remembered in the ledger customer cache (without touching the others), so
    the page shows them and a link to them can be made at once.
    """
    remember(connection, [c.customer for c in held])
    db.session.execute(
        delete(LinkSuggestion).where(
            LinkSuggestion.connection_id == connection.id, LinkSuggestion.customer_id == customer.id
        )
    )
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for candidate in held:
        best = next((k for k in ("vat", "coc", "email", "name") if k in candidate.agrees), "name")
        rows.append(
            {
                "connection_id": connection.id,
                "customer_id": customer.id,
                "external_id": str(candidate.customer.id),
                "score": _SCORES[best],
                "method": best,
                "evidence": [
                    {
                        "kind": key,
                        "score": _SCORES[key],
                        "saas": _value(customer, key),
                        "ledger": _ledger(candidate, key),
                    }
                    for key in ("vat", "coc", "email", "name")
                    if key in candidate.agrees
                ]
                + ([{"kind": "held", "score": 0, "saas": "", "ledger": "found by the push"}]),
                # Held customers are never confirmed in bulk: a person picks one.
                "ambiguous": True,
                "created_at": now,
            }
        )
    if rows:
        db.session.execute(insert(LinkSuggestion), rows)
    db.session.flush()


def _value(customer: Customer, key: str) -> str:
    return {"vat": customer.vat_number, "coc": customer.coc_number, "email": customer.email, "name": customer.name}[
        key
    ] or ""


def _ledger(candidate: Candidate, key: str) -> str:
    ledger = candidate.customer
    return {"vat": ledger.vat_number, "coc": ledger.coc_number, "email": ledger.email, "name": ledger.name}[key] or ""


def remember(connection: Connection, found: list[LedgerCustomer]) -> None:
    """Add (or refresh) these ledger customers in the connection's cache, leaving the others as they are.

    Not a fetch: new rows carry the time of the last full fetch (or none), so the page's "fetched
    at" and the check for deleted ledger customers still speak of the last full fetch.
    """
    from .services import NOT_FETCHED, last_fetched_at

    fetched = last_fetched_at(connection) or NOT_FETCHED
    for ledger in found:
        row = db.session.scalar(
            select(LedgerCustomerCache).where(
                LedgerCustomerCache.connection_id == connection.id,
                LedgerCustomerCache.external_id == str(ledger.id),
            )
        )
        if row is None:
            row = LedgerCustomerCache(connection_id=connection.id, external_id=str(ledger.id))
            db.session.add(row)
        row.name = (ledger.name or "")[:200] or f"#{ledger.id}"
        row.code = (ledger.code or None) and str(ledger.code)[:64]
        row.vat_number = (ledger.vat_number or None) and ledger.vat_number[:64]
        row.coc_number = (ledger.coc_number or None) and ledger.coc_number[:64]
        row.email = (ledger.email or None) and ledger.email[:254]
        row.country = (ledger.country or None) and ledger.country[:8]
        row.active = bool(ledger.active)
        row.deleted_at = None
        row.fetched_at = row.fetched_at or fetched
    db.session.flush()
