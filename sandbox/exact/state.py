"""In-memory state of the Exact Online emulator: regions, users, divisions and their tables.

One :class:`ExactState` holds everything behind one re-entrant lock; handlers take the lock
for the whole read-modify-write so concurrent requests see consistent tables.
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field

from . import schema
from .odata import ms_to_wire

#: Namespace for the deterministic GUIDs of the demo data (stable across resets).
DEMO_NS = uuid.UUID("6f1c0e2a-4b7d-4e55-9a3e-0c1d2e3f4a5b")


@dataclass(frozen=True)
class Region:
    """One Exact Online site (start.exactonline.<tld>), exact-online.md §1.1."""

    key: str
    host: str
    country: str
    currency: str
    language: str
    legislation: int


REGIONS: dict[str, Region] = {
    r.key: r
    for r in (
        Region("nl", "start.exactonline.nl", "NL", "EUR", "nl", 1),
        Region("be", "start.exactonline.be", "BE", "EUR", "nl", 2),
        Region("de", "start.exactonline.de", "DE", "EUR", "en", 7),
        Region("uk", "start.exactonline.co.uk", "GB", "GBP", "en", 3),
        Region("us", "start.exactonline.com", "US", "USD", "en", 6),
        Region("es", "start.exactonline.es", "ES", "EUR", "en", 4),
        Region("fr", "start.exactonline.fr", "FR", "EUR", "en", 5),
    )
}


def demo_guid(*parts: object) -> str:
    """Return a stable lowercase GUID for a piece of demo data."""
    return str(uuid.uuid5(DEMO_NS, "/".join(str(p) for p in parts)))


#: Record ids are not secrets: a PRNG seeded once avoids uuid4()'s os.urandom() syscall, which
#: drops the GIL and costs a thread switch per id under waitress (bench/sandbox_throughput.py).
_ids = random.Random(int.from_bytes(os.urandom(16), "big"))


def new_guid() -> str:
    """Return a fresh lowercase (version 4) GUID."""
    return str(uuid.UUID(int=_ids.getrandbits(128), version=4))


@dataclass
class User:
    """An Exact Online user of one region."""

    id: str
    region: str
    username: str
    first_name: str
    last_name: str
    email: str
    language: str
    #: Divisions the user sees (in order); the first is the starting CurrentDivision.
    divisions: list[int]
    #: Divisions the user has rights in (may grant to an app and use through the API).
    rights: set[int]
    current_division: int = 0

    @property
    def full_name(self) -> str:
        """Return "First Last"."""
        return f"{self.first_name} {self.last_name}"

    def describe(self) -> dict:
        """Return the user as JSON-ready data for /_control."""
        return {
            "id": self.id,
            "username": self.username,
            "full_name": self.full_name,
            "email": self.email,
            "region": self.region,
            "language": self.language,
            "divisions": list(self.divisions),
            "divisions_with_rights": sorted(self.rights),
            "current_division": self.current_division,
        }


#: Child table -> the field holding its parent's key.
CHILD_KEYS = {
    "SalesInvoiceLines": "InvoiceID",
    "SalesEntryLines": "EntryID",
    "BankEntryLines": "EntryID",
    "BankAccounts": "Account",
}


@dataclass
class Division:
    """One Exact Online division (administratie) and its tables."""

    code: int
    region: str
    description: str
    country: str
    currency: str
    vat_number: str | None
    main: bool
    created_ms: int
    #: Table name -> key -> record (internal values: dates as epoch ms).
    tables: dict[str, dict[str, dict]] = field(default_factory=dict)
    #: Table name -> Code -> key, for the tables whose records are referenced by Code.
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    timestamp: int = 0
    #: Closed (year, period) pairs.
    closed: set[tuple[int, int]] = field(default_factory=set)
    #: Journal code -> last invoice sequence number.
    sequences: dict[str, int] = field(default_factory=dict)
    #: Entries of sync/Deleted.
    deleted: list[dict] = field(default_factory=list)
    #: E-mails "sent" by PrintedSalesInvoices.
    outbox: list[dict] = field(default_factory=list)
    #: Receivable id -> amount paid on it by matched bank entry lines (partial payments).
    paid: dict[str, float] = field(default_factory=dict)
    #: Attachment id -> bytes.
    blobs: dict[str, bytes] = field(default_factory=dict)
    #: Item id -> default sales price (Exact keeps these in SalesItemPrices).
    prices: dict[str, float] = field(default_factory=dict)
    #: (child table, parent key) -> child keys, so lines are found without scanning the table.
    children: dict[tuple[str, str], dict[str, None]] = field(default_factory=dict)
    #: sync/SalesInvoice/SalesInvoices: line id -> (its invoice's Timestamp when stamped, the row's Timestamp).
    line_stamps: dict[str, tuple[int, int]] = field(default_factory=dict)
    hid: int = 0
    #: Settings a test can change through /_control.
    invoice_number_at_entry: bool = False
    sales_entry_status: int = 20

    def table(self, name: str) -> dict[str, dict]:
        """Return one table, creating it empty."""
        return self.tables.setdefault(name, {})

    def next_timestamp(self) -> int:
        """Return the next row version of this division (monotonic, exact-online.md §3.12)."""
        self.timestamp += 1
        return self.timestamp

    def insert(self, entity: schema.Entity, record: dict, now_ms: int, *, code_field: str | None = None) -> dict:
        """Store a new record, stamping Created/Modified/Timestamp/Division."""
        record["Division"] = self.code
        if "Created" in record and record.get("Created") is None:
            record["Created"] = now_ms
        if "Modified" in record:
            record["Modified"] = now_ms
        if "Timestamp" in record:
            record["Timestamp"] = self.next_timestamp()
        self.table(entity.table)[record[entity.key]] = record
        parent_fk = CHILD_KEYS.get(entity.table)
        if parent_fk:
            self.children.setdefault((entity.table, record[parent_fk]), {})[record[entity.key]] = None
        if code_field:
            self.codes.setdefault(entity.table, {})[record[code_field]] = record[entity.key]
        return record

    def child_rows(self, table: str, parent_key: str) -> list[dict]:
        """Return the child records (e.g. invoice lines) of one parent, in LineNumber order."""
        rows = self.tables.get(table, {})
        found = [rows[k] for k in self.children.get((table, parent_key), {}) if k in rows]
        return sorted(found, key=lambda r: r.get("LineNumber", 0))

    def touch(self, record: dict, now_ms: int) -> None:
        """Mark a record modified."""
        if "Modified" in record:
            record["Modified"] = now_ms
        if "Timestamp" in record:
            record["Timestamp"] = self.next_timestamp()

    def by_code(self, table: str, code: str | None) -> dict | None:
        """Return the record of ``table`` with this Code, or None."""
        if code is None:
            return None
        key = self.codes.get(table, {}).get(code)
        return self.tables.get(table, {}).get(key) if key else None

    def remove(self, entity: schema.Entity, key: str, now_ms: int, *, code_field: str | None = None) -> None:
        """Delete a record and log it for sync/Deleted."""
        record = self.table(entity.table).pop(key)
        parent_fk = CHILD_KEYS.get(entity.table)
        if parent_fk:
            self.children.get((entity.table, record[parent_fk]), {}).pop(key, None)
        if code_field:
            self.codes.get(entity.table, {}).pop(record.get(code_field), None)
        if entity.table in schema.DELETED_TYPES:
            self.deleted.append(
                {
                    "Timestamp": self.next_timestamp(),
                    "DeletedBy": None,
                    "DeletedDate": now_ms,
                    "Division": self.code,
                    "EntityKey": key,
                    "EntityType": schema.DELETED_TYPES[entity.table],
                    "ID": new_guid(),
                }
            )

    def describe(self) -> dict:
        """Return the division's summary for /_control/companies."""
        return {
            "id": str(self.code),
            "division": self.code,
            "name": self.description,
            "region": self.region,
            "country": self.country,
            "currency": self.currency,
        }

    def ledger(self) -> dict:
        """Return every table and setting as JSON-ready data (dates in Exact's wire form)."""

        def wire(record: dict) -> dict:
            return {k: (ms_to_wire(v) if k in schema.DATE_FIELDS else v) for k, v in record.items()}

        return {
            "division": self.code,
            "region": self.region,
            "description": self.description,
            "closed_periods": sorted([y, p] for y, p in self.closed),
            "invoice_number_at_entry": self.invoice_number_at_entry,
            "sales_entry_status": self.sales_entry_status,
            "outbox": list(self.outbox),
            "receivable_payments": dict(self.paid),
            "deleted": [wire(d) for d in self.deleted],
            "tables": {name: [wire(r) for r in rows.values()] for name, rows in self.tables.items()},
        }


@dataclass
class AuthCode:
    """A single-use authorization code (exact-online.md §1.3)."""

    client_id: str
    redirect_uri: str
    user_id: str
    region: str
    divisions: set[int]
    expires_at: float
    used: bool = False


@dataclass
class Chain:
    """One consent's token chain: the current refresh token and the ones it replaced (exact-online.md §1.5)."""

    id: str
    client_id: str
    user_id: str
    region: str
    refresh_token: str
    refresh_expires_at: float
    #: When the last access token of the chain was issued (refresh allowed 570 s later).
    access_issued_at: float
    old_refresh_tokens: set[str] = field(default_factory=set)
    revoked: bool = False


@dataclass
class ErrorBlock:
    """A scope blocked for spending its hourly error budget (exact-online.md §4.2)."""

    until: float
    #: Blocks in a row (each one starting within a day of the previous one's end).
    strikes: int


@dataclass
class AccessToken:
    """An issued bearer token."""

    chain_id: str
    expires_at: float


class ExactState:
    """Everything the emulator knows, guarded by :attr:`lock`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        """Forget every user, division, grant and token; restore default settings."""
        self.users: dict[str, User] = {}
        self.divisions: dict[int, Division] = {}
        #: (client_id, user_id) -> divisions the user granted to that app.
        self.grants: dict[tuple[str, str], set[int]] = {}
        self.codes: dict[str, AuthCode] = {}
        self.chains: dict[str, Chain] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        #: Every refresh token ever issued -> chain id (old ones too, to say "Old refresh token used.").
        self.refresh_tokens: dict[str, str] = {}
        self.region_language: dict[str, str] = {k: r.language for k, r in REGIONS.items()}
        self.mandatory_filtering = True
        #: HTTP status of business-rule failures: 500 historically (exact-online.md §4.2), 400 configurable.
        self.business_status = 500
        self.minutely_limit = 60
        self.daily_limit = 5000
        self.token_daily_limit = 200
        #: Error budget: 10 errors per (app, user, division, endpoint) per hour (exact-online.md §4.2).
        self.error_budget_enabled = False
        self.error_budget = 10
        #: How long a spent error budget blocks its scope; repeated blocks last n times as long.
        self.error_block_seconds = 3600.0
        #: Status of the blocked response (the real one is undocumented, exact-online.md §4.2/§10).
        self.error_block_status = 429
        #: (client_id, user_id, division, endpoint) -> times of its recent 400/401/403/404s.
        self.error_log: dict[tuple, deque[float]] = {}
        #: Same scope -> the block it is (or was last) under.
        self.error_blocks: dict[tuple, ErrorBlock] = {}
        #: Page sizes of normal and bulk/sync endpoints (exact-online.md §3.0); tests may shrink them.
        self.page_size = 60
        self.bulk_page_size = 1000
        self.code_ttl = 180.0
        self.access_ttl = 600
        self.refresh_min_age = 570.0
        self.refresh_idle_days = 30

    def user(self, ref: str | None) -> User | None:
        """Return a user by id or username."""
        if ref is None:
            return None
        found = self.users.get(ref)
        if found is not None:
            return found
        return next((u for u in self.users.values() if u.username == ref), None)

    def language_of(self, user: User | None, region: str) -> str:
        """Return the message language for a user (falling back to the region's)."""
        if user is not None and user.language:
            return user.language
        return self.region_language.get(region, "en")
