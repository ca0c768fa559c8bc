"""Bulk demo data for the ops console: ledger connections of the demo business units and their records.

Every business unit gets a live connection; units also get a disconnected earlier connection (history)
until the asked number of connections is reached. Records spread over the connections and over the
last ``days`` days: mostly pushed, some pending, some failed or held with the error classes and texts
the push stores (the catalogue's explanation with the provider's own words). Records point at the
unit's own invoices, credit notes, customers and payments first; a busy account's further documents get
local ids above :data:`SYNTHETIC_LOCAL_ID` (no local row). PostgreSQL is written with COPY, so a
million records take a few minutes; other databases get batched inserts.
"""

from __future__ import annotations

import io
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, func, insert, select

from ..database import utcnow
from ..extensions import db
from ..integrations import errors_catalog, specs
from ..models import (
    BusinessUnit,
    Connection,
    ConnectionStatus,
    CreditNote,
    Customer,
    ExternalRecord,
    Invoice,
    Organization,
    Payment,
    RecordKind,
    RecordState,
)

#: Local ids of records beyond a unit's own documents start here (no local row has such an id).
SYNTHETIC_LOCAL_ID = 1_000_000_000
#: Rows per COPY / insert batch.
BATCH = 20_000

#: Exact Online instance per country; other countries use QuickBooks (US, some UK) or bexio (CH).
EXACT_REGION = {"NL": "nl", "BE": "be", "DE": "de", "GB": "uk", "ES": "es", "FR": "fr"}

LIVE_STATUSES = (
    (ConnectionStatus.connected, 0.86),
    (ConnectionStatus.needs_reauthorization, 0.04),
    (ConnectionStatus.failing, 0.04),
    (ConnectionStatus.paused, 0.03),
    (ConnectionStatus.pending_authorization, 0.03),
)
STATUS_REASONS = {
    ConnectionStatus.needs_reauthorization: "The refresh token expired (unused for 30 days): reconnect the ledger.",
    ConnectionStatus.failing: "The last three pushes failed; the ledger did not answer in time.",
    ConnectionStatus.paused: "Paused by ops while the customer reorganises its ledger.",
    ConnectionStatus.disconnected: "Disconnected by support: the customer moved to another company.",
}
#: Record states on a healthy connection; failing ones fail more.
RECORD_STATES = (
    (RecordState.pushed, 0.90),
    (RecordState.pending, 0.025),
    (RecordState.failed, 0.045),
    (RecordState.needs_action, 0.015),
    (RecordState.skipped, 0.005),
    (RecordState.dismissed, 0.01),
)
TROUBLED_STATES = (
    (RecordState.pushed, 0.70),
    (RecordState.pending, 0.08),
    (RecordState.failed, 0.17),
    (RecordState.needs_action, 0.04),
    (RecordState.skipped, 0.005),
    (RecordState.dismissed, 0.005),
)
KINDS = (
    (RecordKind.invoice, 0.62),
    (RecordKind.customer, 0.18),
    (RecordKind.payment, 0.15),
    (RecordKind.credit_note, 0.05),
)
ITEM_CODES = ("CONSULT", "SUPPORT", "LIC-PRO", "HOSTING", "TRAINING", "SETUP", "TRAVEL", "HARDWARE")
VAT_CODES = ("21", "9", "0", "19", "7", "8.1", "2.6", "20")

#: What the ledgers said, per provider: (code, HTTP status, text); ``{}`` takes a varying code.
PROVIDER_FAILURES: dict[str, tuple[tuple[str | None, int, str], ...]] = {
    specs.EXACT_ONLINE: (
        (None, 400, "Ongeldige referentie: Artikel {item}"),
        (None, 400, "Verplicht: BTW-code {vat}"),
        (None, 400, "Invalid reference: Journal 7{n}"),
        (None, 400, "De periode is afgesloten: {period}"),
        (None, 400, "Het boekjaar bestaat niet: {year}"),
        (None, 400, "Ongeldige referentie: Factuur voor"),
        (None, 400, "Gegeven bestaat reeds: Code {n}"),
        (None, 401, "Refresh token expired"),
        (None, 403, "NoDivisionAccess"),
        (None, 400, "Mandatory: G/L account {n}00"),
    ),
    specs.QUICKBOOKS: (
        (
            "6140",
            400,
            "Duplicate Document Number Error: You must specify a different number. This number has "
            "already been used. DocNumber={n}",
        ),
        (
            "2500",
            400,
            "Invalid Reference Id: Something you're trying to use has been made inactive. Check the "
            "fields with accounts, customers, items, vendors or employees. Item {item}",
        ),
        ("2020", 400, "Required param missing, need to supply the required value for the API: CustomerRef"),
        (
            "6000",
            400,
            "A business validation error has occurred while processing your request: Make sure all "
            "your transactions have a GST/HST rate before you save. tax code {vat}",
        ),
        (
            "6210",
            400,
            "Account Period Closed, Cannot update: The account period has closed and the books are "
            "closed through {period}.",
        ),
        ("3200", 401, "message=AuthenticationFailed; errorCode=003200; statusCode=401"),
        ("3001", 429, "message=ThrottleExceeded; errorCode=003001; statusCode=429"),
        ("10000", 500, "An application error has occurred while processing your request"),
    ),
    specs.BEXIO: (
        (None, 422, "contact_id: contact not found ({n})"),
        (None, 422, "tax_id: The selected tax id is invalid ({vat})."),
        (None, 422, "article_id: The selected article id is invalid ({item})."),
        (None, 422, "bank_account_id: bank account not found"),
        (None, 403, "Forbidden: the token lacks the scope kb_invoice_edit"),
        (None, 422, "The invoice has no positions."),
    ),
}
NOT_SUPPORTED = "bexio keeps no credit notes through its API: book the credit note by hand in bexio."


class BulkSeedError(Exception):
    """Bulk data that cannot be created as asked; the message says why."""


@dataclass
class _Failure:
    error_class: str
    text: str


def _pick(rng: random.Random, weighted):
    roll, total = rng.random(), 0.0
    for value, weight in weighted:
        total += weight
        if roll < total:
            return value
    return weighted[0][0]


def _failure(rng: random.Random, provider: str) -> _Failure:
    """Return a stored failure as the push writes it: the catalogue's explanation, then the provider's text."""
    code, status, template = rng.choice(PROVIDER_FAILURES[provider])
    said = template.format(
        item=f"{rng.choice(ITEM_CODES)}-{rng.randint(1, 12):02d}",
        vat=rng.choice(VAT_CODES),
        n=rng.randint(1, 40),
        period=f"{rng.choice((2024, 2025))}-{rng.randint(1, 12):02d}",
        year=rng.choice((2023, 2024)),
    )
    entry = errors_catalog.lookup(provider, code, status, said)
    error_class = entry.error_class.value if entry else errors_catalog.ErrorClass.VALIDATION.value
    explanation = entry.explanation if entry else "The ledger refused the record."
    return _Failure(error_class, f"{explanation} ({specs.get_spec(provider).name}: {said})")


def seed_records(
    connections: int = 20_000,
    records: int = 1_000_000,
    seed: int = 1,
    days: int = 45,
    if_empty: bool = False,
    now: datetime | None = None,
    progress=None,
) -> dict[str, int] | None:
    """Create connections for the demo business units and ``records`` external records across them.

    Returns counts, or None when ``if_empty`` is set and connections or records exist already.

    :raise BulkSeedError: when there are no business units, or connections exist and ``if_empty`` is not set.
    """
    now = now or utcnow()
    has_connections = db.session.scalar(select(Connection.id).limit(1)) is not None
    has_records = db.session.scalar(select(ExternalRecord.id).limit(1)) is not None
    if if_empty and (has_connections or has_records):
        return None
    if has_connections:
        raise BulkSeedError("connections exist already; bulk records go into a database without connections")
    units = db.session.execute(
        select(BusinessUnit.id, BusinessUnit.country, BusinessUnit.name, BusinessUnit.organization_id).order_by(
            BusinessUnit.id
        )
    ).all()
    if not units:
        raise BulkSeedError("there are no business units: run `flask --app app seed demo` first")
    rng = random.Random(f"ledgerlink-bulk:{seed}")
    conns = _seed_connections(rng, units, connections, days, now)
    if progress:
        progress(f"{len(conns):,} connections")
    written = _seed_records(rng, conns, records, days, now, progress)
    if db.engine.dialect.name == "postgresql":
        db.session.execute(db.text("ANALYZE connection"))
        db.session.execute(db.text("ANALYZE external_record"))
    db.session.commit()
    return {"connections": len(conns), "external_records": written}


@dataclass
class _Planned:
    id: int
    business_unit_id: int
    organization_id: int
    provider: str
    status: ConnectionStatus
    created_at: datetime


def _provider_for(rng: random.Random, country: str) -> tuple[str, str | None]:
    if country == "CH":
        return (specs.BEXIO, None) if rng.random() < 0.85 else (specs.EXACT_ONLINE, "de")
    if country == "US":
        return specs.QUICKBOOKS, None
    if country == "GB" and rng.random() < 0.45:
        return specs.QUICKBOOKS, None
    return specs.EXACT_ONLINE, EXACT_REGION.get(country, "nl")


def _company(rng: random.Random, provider: str, name: str, serial: int) -> tuple[str, str, str | None]:
    """Return (id, name, number) of the ledger company as the provider numbers it."""
    if provider == specs.EXACT_ONLINE:
        division = str(1_000_000 + serial)
        return division, name, str(rng.randint(1, 999))
    if provider == specs.QUICKBOOKS:
        return str(9_130_350_000_000_000 + serial * 7919), name, None
    return str(100_000 + serial), name, None


def _seed_connections(rng, units, target: int, days: int, now: datetime) -> list[_Planned]:
    """Insert a live connection per unit and disconnected history up to ``target``; return them with ids."""
    history = max(0, min(len(units), target - len(units)))
    live_units = units[: min(len(units), target)]
    history_units = set(rng.sample(range(len(live_units)), history)) if history else set()
    rows, plans = [], []
    serial = 0
    for index, (unit_id, country, name, org_id) in enumerate(live_units):
        if index in history_units:
            provider, region = _provider_for(rng, country)
            serial += 1
            company_id, company_name, number = _company(rng, provider, name, serial)
            created = now - timedelta(days=rng.randint(days + 30, days + 700))
            ended = created + timedelta(days=rng.randint(10, 25))
            rows.append(
                _connection_row(
                    unit_id,
                    provider,
                    region,
                    company_id,
                    company_name,
                    number,
                    country,
                    created,
                    ConnectionStatus.disconnected,
                    ended,
                )
            )
            plans.append((unit_id, org_id, provider, ConnectionStatus.disconnected, created))
        provider, region = _provider_for(rng, country)
        serial += 1
        company_id, company_name, number = _company(rng, provider, name, serial)
        created = now - timedelta(days=rng.randint(days, days + 400))
        status = _pick(rng, LIVE_STATUSES)
        rows.append(
            _connection_row(
                unit_id, provider, region, company_id, company_name, number, country, created, status, now, rng=rng
            )
        )
        plans.append((unit_id, org_id, provider, status, created))
    ids: list[int] = []
    for start in range(0, len(rows), BATCH):
        stmt = insert(Connection).returning(Connection.id, sort_by_parameter_order=True)
        ids += db.session.scalars(stmt, rows[start : start + BATCH]).all()
    db.session.commit()
    return [_Planned(i, *plan) for i, plan in zip(ids, plans, strict=True)]


def _connection_row(
    unit_id, provider, region, company_id, company_name, number, country, created, status, at, rng=None
) -> dict:
    live = status is not ConnectionStatus.disconnected
    rng = rng or random.Random(unit_id)
    connected = created + timedelta(minutes=rng.randint(2, 90))
    last_success = None
    if status in (ConnectionStatus.connected, ConnectionStatus.paused):
        last_success = at - timedelta(minutes=rng.randint(1, 60 * 24 * (3 if rng.random() < 0.9 else 40)))
    elif status in (ConnectionStatus.needs_reauthorization, ConnectionStatus.failing):
        last_success = at - timedelta(days=rng.randint(1, 35))
    refresh = None
    if live and status is not ConnectionStatus.pending_authorization:
        if provider == specs.EXACT_ONLINE:
            refresh = at + timedelta(days=rng.uniform(-3, 30))
        elif provider == specs.QUICKBOOKS:
            refresh = at + timedelta(days=rng.uniform(1, 100))
        else:
            refresh = at + timedelta(days=rng.uniform(5, 180))
    failing = status in (ConnectionStatus.failing, ConnectionStatus.needs_reauthorization)
    return {
        "business_unit_id": unit_id,
        "provider": provider,
        "region": region,
        "external_company_id": None if status is ConnectionStatus.pending_authorization else company_id,
        "external_company_name": None if status is ConnectionStatus.pending_authorization else company_name,
        "external_company_number": None if status is ConnectionStatus.pending_authorization else number,
        "external_company_country": country,
        "status": status,
        "status_reason": STATUS_REASONS.get(status),
        "status_changed_at": at,
        "refresh_expires_at": refresh,
        "access_expires_at": None,
        "token_refreshed_at": None,
        "sync_from": connected,
        "settings": {"sending_method": "saas", "auto_send": False},
        "last_success_at": last_success,
        "last_error_at": at - timedelta(hours=rng.randint(1, 48)) if failing else None,
        "last_error": STATUS_REASONS.get(status) if failing else None,
        "created_at": created,
        "connected_at": None if status is ConnectionStatus.pending_authorization else connected,
        "disconnected_at": at if not live else None,
        # Seeded connections have pushed for a while: they went live when they were connected.
        "live_since": None if status is ConnectionStatus.pending_authorization else connected,
    }


def _local_ids() -> dict[tuple[str, int], list[int]]:
    """Return the existing local ids per (kind, business unit) (customers by their organization)."""
    pools: dict[tuple[str, int], list[int]] = defaultdict(list)
    for model, kind, owner in (
        (Invoice, RecordKind.invoice, Invoice.business_unit_id),
        (Customer, RecordKind.customer, Customer.organization_id),
    ):
        for local_id, key in db.session.execute(select(model.id, owner).order_by(model.id)):
            pools[(kind.value, key)].append(local_id)
    for child, kind in ((CreditNote, RecordKind.credit_note), (Payment, RecordKind.payment)):
        rows = db.session.execute(
            select(child.id, Invoice.business_unit_id).join(Invoice, child.invoice_id == Invoice.id).order_by(child.id)
        )
        for local_id, unit_id in rows:
            pools[(kind.value, unit_id)].append(local_id)
    return pools


COLUMNS = (
    "connection_id",
    "kind",
    "local_id",
    "reference",
    "external_id",
    "external_number",
    "state",
    "attempts",
    "last_error_class",
    "last_error_text",
    "last_attempt_at",
    "pushed_at",
    "resolution",
    "created_at",
    "updated_at",
)


def _seed_records(rng, conns: list[_Planned], total: int, days: int, now: datetime, progress) -> int:
    """Write ``total`` records spread over the connections (live ones carry the recent volume)."""
    if not conns or total <= 0:
        return 0
    pools = _local_ids()
    # Weights: live connections are busy (a long tail of very busy ones); history carries a little.
    weights = []
    for c in conns:
        if c.status is ConnectionStatus.pending_authorization:
            weights.append(0.0)
        elif c.status is ConnectionStatus.disconnected:
            weights.append(0.2)
        else:
            weights.append(rng.paretovariate(1.6))
    scale = total / sum(weights)
    counts = [int(w * scale) for w in weights]
    short = total - sum(counts)
    order = sorted(range(len(conns)), key=lambda i: -weights[i])
    for i in range(short):
        counts[order[i % len(order)]] += 1
    synthetic = SYNTHETIC_LOCAL_ID
    failures = {p: [_failure(rng, p) for _ in range(120)] for p in PROVIDER_FAILURES}
    span = days * 86400
    batch: list[tuple] = []
    written = 0
    attempted: datetime | None
    for c, n in zip(conns, counts, strict=True):
        if n == 0:
            continue
        troubled = c.status in (ConnectionStatus.failing, ConnectionStatus.needs_reauthorization)
        states = TROUBLED_STATES if troubled else RECORD_STATES
        # A connection's failures share a few causes (a missing mapping, a closed period), as in a real ledger.
        causes = rng.sample(failures[c.provider], rng.randint(1, 3))
        used: dict[str, int] = defaultdict(int)
        for _ in range(n):
            kind = _pick(rng, KINDS).value
            pool = pools.get((kind, c.organization_id if kind == "customer" else c.business_unit_id), ())
            k = used[kind]
            used[kind] += 1
            if k < len(pool):
                local_id = pool[k]
            else:
                synthetic += 1
                local_id = synthetic
            state = _pick(rng, states)
            if c.status is ConnectionStatus.disconnected and state is RecordState.pending:
                state = RecordState.pushed
            if kind == "credit_note" and c.provider == specs.BEXIO and state is not RecordState.dismissed:
                state = RecordState.skipped
            created = now - timedelta(seconds=rng.randint(0, span))
            attempted = created + timedelta(seconds=rng.randint(60, 3600))
            if attempted > now:
                attempted = now
            reference = f"LL-{c.id}-{kind[:3].upper()}-{local_id}"
            error_class = text = pushed_at = external_id = number = resolution = None
            attempts = 1
            if state is RecordState.pushed:
                pushed_at = attempted
                external_id = str(rng.randint(10_000, 99_999_999))
                number = f"{attempted.year}{rng.randint(1, 99_999):05d}" if kind in ("invoice", "credit_note") else None
            elif state is RecordState.pending:
                attempts = rng.choice((0, 0, 1, 2))
                if attempts:
                    error_class = errors_catalog.ErrorClass.RATE_LIMIT.value if rng.random() < 0.5 else None
                    text = "The ledger asked to slow down; retried shortly." if error_class else None
                else:
                    attempted = None
            elif state is RecordState.needs_action:
                error_class = errors_catalog.ErrorClass.CUSTOMER_NOT_LINKED.value
                text = (
                    f"Customer {rng.randint(1, 40)} is not linked to a {specs.get_spec(c.provider).name} customer, "
                    "and this connection only links customers (it creates none). Link the customer, then retry."
                )
            elif state is RecordState.skipped:
                error_class, text = errors_catalog.ErrorClass.NOT_SUPPORTED.value, NOT_SUPPORTED
            else:  # failed, dismissed
                failure = rng.choice(causes) if rng.random() < 0.9 else rng.choice(failures[c.provider])
                error_class, text = failure.error_class, failure.text
                attempts = rng.randint(1, 4)
                if state is RecordState.dismissed:
                    resolution = "resolved_manually" if rng.random() < 0.7 else "ignored"
            batch.append(
                (
                    c.id,
                    kind,
                    local_id,
                    reference,
                    external_id,
                    number,
                    state.value,
                    attempts,
                    error_class,
                    text,
                    attempted,
                    pushed_at,
                    resolution,
                    created,
                    attempted or created,
                )
            )
            if len(batch) >= BATCH:
                written += _write(batch)
                batch = []
                if progress and written % (BATCH * 10) == 0:
                    progress(f"{written:,} records")
    written += _write(batch)
    return written


def _write(rows: list[tuple]) -> int:
    """Write record rows: COPY on PostgreSQL, batched inserts elsewhere; commit."""
    if not rows:
        return 0
    if db.engine.dialect.name == "postgresql":
        raw = db.session.connection().connection.driver_connection
        if raw is None:
            raise RuntimeError("the database connection is closed")
        buffer = io.StringIO()
        for row in rows:
            buffer.write("\t".join(_copy_value(v) for v in row))
            buffer.write("\n")
        with raw.cursor() as cursor, cursor.copy(f"COPY external_record ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            copy.write(buffer.getvalue())
    else:
        db.session.execute(
            insert(cast(Table, ExternalRecord.__table__)), [dict(zip(COLUMNS, row, strict=True)) for row in rows]
        )
    db.session.commit()
    return len(rows)


def _copy_value(value) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def organization_count() -> int:
    """Return how many organizations exist (the bulk data hangs below them)."""
    return db.session.scalar(select(func.count(Organization.id))) or 0
