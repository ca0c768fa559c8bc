"""Payments between the SaaS and the ledger: pulled from the ledger, or pushed into it (per connection).

The connection setting ``payments_mode`` decides:

- ``pull`` (default): the ledger is where payments are booked (bank reconciliation there).
  Every ``payments_pull_minutes`` (default 120) the scheduler enqueues a pull: for each invoice
  this connection pushed and the SaaS does not count as paid yet, the ledger's open amount is
  read (``payment_statuses``, one page of ids per call) and the SaaS invoice becomes paid or
  partially paid — one transaction per page, each change with its audit event.
- ``push``: the SaaS is where payments are recorded; the push job records each one in the
  ledger exactly once (``push.push_payment``).
- ``off``: payments are not synced.

The time of the last pull is kept in the connection's settings (``payments_pulled_at``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from .. import audit
from ..connections import vault
from ..database import ZERO, utcnow
from ..extensions import db
from ..integrations.base import LedgerAdapter, PaymentStatus
from ..models import Connection, ExternalRecord, Invoice, RecordKind, RecordState
from ..models.billing import InvoiceStatus

PULL, PUSH, OFF = "pull", "push", "off"
MODES = (PULL, PUSH, OFF)
DEFAULT_MODE = PULL
DEFAULT_PULL_MINUTES = 120
#: Bounds of the pull interval (a quarter hour to a day).
MIN_PULL_MINUTES, MAX_PULL_MINUTES = 15, 1440
#: Invoices asked about per call (quota-friendly; the adapters filter by a page of ids).
PAGE_SIZE = 50
#: Settings key of the last pull's time (ISO 8601, UTC).
PULLED_AT = "payments_pulled_at"


def mode(connection: Connection) -> str:
    """Return the connection's payments mode: pull, push or off."""
    value = (connection.settings or {}).get("payments_mode") or DEFAULT_MODE
    return value if value in MODES else DEFAULT_MODE


def pull_interval(connection: Connection) -> timedelta:
    """Return how often payments are pulled (setting ``payments_pull_minutes``, clamped)."""
    raw = (connection.settings or {}).get("payments_pull_minutes")
    try:
        minutes = int(raw) if raw is not None else DEFAULT_PULL_MINUTES
    except (TypeError, ValueError):
        minutes = DEFAULT_PULL_MINUTES
    return timedelta(minutes=max(MIN_PULL_MINUTES, min(MAX_PULL_MINUTES, minutes)))


def last_pulled_at(connection: Connection) -> datetime | None:
    """Return when payments were last pulled, or None."""
    raw = (connection.settings or {}).get(PULLED_AT)
    try:
        return datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def mark_pulled(connection: Connection, at: datetime | None = None) -> None:
    """Remember the time of a pull on the connection (the caller commits)."""
    # A new dict: the JSON column notices reassignment, not in-place changes.
    connection.settings = {**(connection.settings or {}), PULLED_AT: (at or utcnow()).isoformat()}


def pull_due(connection: Connection, now: datetime) -> bool:
    """Say whether the connection pulls payments and its last pull is older than its interval.

    Before the first pull the connection's start counts as the last: nothing it pushed can be
    paid sooner than that.
    """
    if mode(connection) != PULL:
        return False
    last = last_pulled_at(connection) or connection.connected_at or connection.created_at
    return last is None or now - last >= pull_interval(connection)


@dataclass
class PullResult:
    """What one pull found."""

    checked: int = 0
    paid: int = 0
    partially_paid: int = 0
    unchanged: int = 0
    #: SaaS invoice ids whose status changed.
    changed: list[int] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Return the non-zero counts for the run's mirror."""
        data = {
            "checked": self.checked,
            "paid": self.paid,
            "partially_paid": self.partially_paid,
            "unchanged": self.unchanged,
        }
        return {key: value for key, value in data.items() if value}


def unpaid_pushed(connection: Connection, after_id: int = 0, limit: int = PAGE_SIZE) -> list[tuple[int, str]]:
    """Return (record id, external id) of pushed invoices the SaaS does not count as paid, by record id."""
    stmt = (
        select(ExternalRecord.id, ExternalRecord.external_id)
        .join(Invoice, Invoice.id == ExternalRecord.local_id)
        .where(
            ExternalRecord.connection_id == connection.id,
            ExternalRecord.kind == RecordKind.invoice,
            ExternalRecord.state == RecordState.pushed,
            ExternalRecord.external_id.is_not(None),
            ExternalRecord.id > after_id,
            Invoice.status != InvoiceStatus.paid,
        )
        .order_by(ExternalRecord.id)
        .limit(limit)
    )
    return [(row.id, row.external_id) for row in db.session.execute(stmt)]


def _apply(connection: Connection, invoice: Invoice, status: PaymentStatus) -> InvoiceStatus | None:
    """Set the SaaS invoice's payment state from the ledger's; return the new status when it changed."""
    if status.paid:
        target, amount_paid = InvoiceStatus.paid, invoice.total
    else:
        # The ledger's own total may differ from the SaaS's (tax the ledger adds or rounds):
        # what is paid is the ledger's total minus what the ledger still has open.
        total = status.amount_total if status.amount_total is not None else invoice.total
        paid = max(ZERO, min(invoice.total, Decimal(total) - Decimal(status.amount_open)))
        target = InvoiceStatus.partially_paid if paid > ZERO else InvoiceStatus.open
        amount_paid = paid
    # The SaaS may know of more payments than the ledger: never lower what it counts as paid.
    if amount_paid < invoice.amount_paid or (target, amount_paid) == (invoice.status, invoice.amount_paid):
        return None
    before: dict[str, Any] = {"status": invoice.status.value, "amount_paid": str(invoice.amount_paid)}
    invoice.status, invoice.amount_paid = target, amount_paid
    audit.record(
        "invoice.payment_pulled",
        subject_type="Invoice",
        subject_id=invoice.id,
        organization_id=invoice.organization_id,
        summary=f"Invoice {invoice.number} is {target.value.replace('_', ' ')} in {connection.company_label} "
        f"({status.amount_open} open)",
        before=before,
        after={"status": target.value, "amount_paid": str(amount_paid), "ledger_state": status.state},
        actor_label="system",
    )
    return target


def pull_payments(
    connection: Connection, adapter: LedgerAdapter | None = None, *, page_size: int = PAGE_SIZE
) -> PullResult:
    """Read the payment state of the connection's unpaid pushed invoices and apply it to the SaaS invoices.

    Commits once per page. Errors about the connection or the moment (rate limit, outage, lost
    grant) propagate; pages already applied stay applied.
    """
    adapter = adapter or vault.fresh_adapter(connection)
    result = PullResult()
    after_id = 0
    while True:
        page = unpaid_pushed(connection, after_id, page_size)
        if not page:
            return result
        after_id = page[-1][0]
        statuses = adapter.payment_statuses([external_id for _, external_id in page])
        records = db.session.scalars(select(ExternalRecord).where(ExternalRecord.id.in_([r for r, _ in page])))
        for record in records:
            if record.external_id is None:  # a pushed record has its ledger id
                continue
            status = statuses.get(record.external_id)
            if status is None:
                continue
            result.checked += 1
            invoice = db.session.get_one(Invoice, record.local_id)
            changed = _apply(connection, invoice, status)
            if changed is InvoiceStatus.paid:
                result.paid += 1
            elif changed is InvoiceStatus.partially_paid:
                result.partially_paid += 1
            else:
                result.unchanged += 1
            if changed is not None:
                result.changed.append(invoice.id)
        db.session.commit()
        if len(page) < page_size:
            return result
