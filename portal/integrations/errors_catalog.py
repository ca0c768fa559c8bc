"""Provider errors in plain words, grouped by cause, with the screen that fixes them.

Ops pages group failed records by :class:`ErrorClass`; support sees the explanation and a
link to the ``fix`` screen (a symbolic name the views map to a URL). Entries are data, matched
in order: the first whose provider, code/status and text pattern all fit wins, so specific
entries come before general ones. Codes and texts come from the fact sheets (sections cited).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from . import specs
from .base import (
    AuthExpired,
    Forbidden,
    LedgerError,
    NeedsReauthorization,
    NotFound,
    NotSupported,
    RateLimited,
    Unavailable,
)


class ErrorClass(StrEnum):
    """Causes that failed records are grouped by."""

    AUTH_LOST = "auth_lost"
    MAPPING_MISSING = "mapping_missing"
    CUSTOMER_NOT_LINKED = "customer_not_linked"
    CLOSED_PERIOD = "closed_period"
    DUPLICATE = "duplicate"
    VALIDATION = "validation"
    RATE_LIMIT = "rate_limit"
    PROVIDER_DOWN = "provider_down"
    NOT_SUPPORTED = "not_supported"


class Fix(StrEnum):
    """Screens that fix a cause (symbolic; the views map them to URLs)."""

    RECONNECT = "connection.reauthorize"
    COMPANY = "connection.company"
    SETTINGS = "connection.settings"
    MAPPINGS = "connection.mappings"
    CUSTOMER_LINKS = "connection.customer_links"
    RECORD = "records.detail"
    LEDGER_PERIODS = "ledger.periods"
    WAIT = "ops.rate_limits"
    HEALTH = "ops.health"


@dataclass(frozen=True)
class Entry:
    """One catalogue line: what to match and what to say."""

    error_class: ErrorClass
    explanation: str
    fix: Fix
    provider: str | None = None
    code: str | None = None
    status: int | None = None
    pattern: str | None = None
    #: Whether re-running the same record later can succeed without anyone changing anything.
    retryable: bool = False

    def matches(self, provider: str | None, code: str | None, status: int | None, text: str) -> bool:
        """Say whether this entry describes the given error."""
        if self.provider is not None and self.provider != provider:
            return False
        if self.code is not None and self.code != (code or ""):
            return False
        if self.status is not None and self.status != status:
            return False
        return self.pattern is None or re.search(self.pattern, text, re.I) is not None


@dataclass(frozen=True)
class Explanation:
    """What the portal shows for a failure."""

    error_class: ErrorClass
    explanation: str
    fix: Fix
    retryable: bool
    provider_code: str | None = None
    provider_text: str | None = None


E, Q, B = specs.EXACT_ONLINE, specs.QUICKBOOKS, specs.BEXIO
C = ErrorClass

CATALOG: tuple[Entry, ...] = (
    # -- Exact Online (exact-online.md §1.5, §2, §4.2) --
    Entry(
        C.AUTH_LOST,
        "Exact refused an old refresh token: another process refreshed first, or the stored "
        "token was lost. Reconnect the ledger.",
        Fix.RECONNECT,
        E,
        pattern=r"old refresh token used",
    ),
    Entry(
        C.AUTH_LOST,
        "The Exact refresh token expired (unused for 30 days). Someone with access must reconnect the ledger.",
        Fix.RECONNECT,
        E,
        pattern=r"refresh token expired",
    ),
    Entry(
        C.AUTH_LOST,
        "Exact no longer recognises this connection's token chain. Reconnect the ledger.",
        Fix.RECONNECT,
        E,
        pattern=r"chainid",
    ),
    Entry(
        C.RATE_LIMIT,
        "Exact only allows a token refresh 9.5 minutes after the last one; it will be retried.",
        Fix.WAIT,
        E,
        pattern=r"access token not expired",
        retryable=True,
    ),
    Entry(
        C.AUTH_LOST,
        "The connected Exact user has no access to this division (any more). Reconnect "
        "with a user who has, or pick another division.",
        Fix.COMPANY,
        E,
        code="NoDivisionAccess",
    ),
    Entry(
        C.AUTH_LOST,
        "Exact blocks this division, user or licence. The customer must resolve it with Exact, then reconnect.",
        Fix.RECONNECT,
        E,
        pattern=r"\b(BlockedUser|InactiveUser|BlockedCustomer|LicenseExpired|DivisionBlocked)\b",
    ),
    Entry(
        C.AUTH_LOST,
        "The Exact app lacks the scope for this call. The app registration must allow it.",
        Fix.RECONNECT,
        E,
        pattern=r"application scope violated",
    ),
    Entry(
        C.CLOSED_PERIOD,
        "The invoice date falls in a period closed in Exact. Reopen the period in "
        "Exact or change the date, then retry.",
        Fix.LEDGER_PERIODS,
        E,
        pattern=r"periode is afgesloten|period is closed",
    ),
    Entry(
        C.DUPLICATE,
        "A record with this code already exists in Exact. Link the existing one instead of creating it.",
        Fix.CUSTOMER_LINKS,
        E,
        pattern=r"gegeven bestaat reeds|record already exists",
    ),
    Entry(
        C.CUSTOMER_NOT_LINKED,
        "The Exact customer this record points at does not exist (or is a "
        "contact, not an account). Link the customer again.",
        Fix.CUSTOMER_LINKS,
        E,
        pattern=r"(ongeldige referentie|invalid reference): (besteld door|factuur voor|leveren aan|"
        r"ordered by|invoice to|deliver to|klant|customer|relatie|account)",
    ),
    Entry(
        C.MAPPING_MISSING,
        "A code used for this record (item, journal, VAT code, G/L account) does not exist in Exact. Fix the mapping.",
        Fix.MAPPINGS,
        E,
        pattern=r"ongeldige referentie|invalid reference|grootboekrekeningtype|g/l account type|"
        r"invalid journal|ongeldig dagboek",
    ),
    Entry(
        C.VALIDATION,
        "Exact needs a field this record does not have.",
        Fix.RECORD,
        E,
        pattern=r"verplicht|mandatory",
    ),
    Entry(
        C.DUPLICATE,
        "Exact says this document was already processed.",
        Fix.RECORD,
        E,
        pattern=r"reeds verwerkt|already processed",
    ),
    # -- QuickBooks Online (quickbooks-online.md §4, §6) --
    Entry(
        C.AUTH_LOST,
        "QuickBooks refused the access token; it is refreshed automatically. If this repeats, reconnect.",
        Fix.RECONNECT,
        Q,
        code="3200",
        retryable=True,
    ),
    Entry(
        C.AUTH_LOST,
        "The QuickBooks token does not fit this company or lacks the accounting scope. Reconnect.",
        Fix.RECONNECT,
        Q,
        code="3100",
    ),
    Entry(
        C.AUTH_LOST,
        "QuickBooks no longer accepts this connection's refresh token. Reconnect.",
        Fix.RECONNECT,
        Q,
        code="invalid_grant",
    ),
    Entry(C.AUTH_LOST, "The QuickBooks company's subscription is not active.", Fix.SETTINGS, Q, code="6190"),
    Entry(
        C.RATE_LIMIT,
        "QuickBooks throttled the requests; they resume in a minute.",
        Fix.WAIT,
        Q,
        code="3001",
        retryable=True,
    ),
    Entry(
        C.DUPLICATE,
        "A customer, vendor or employee with this name already exists in QuickBooks. Link the existing customer.",
        Fix.CUSTOMER_LINKS,
        Q,
        code="6240",
    ),
    Entry(
        C.DUPLICATE,
        "This document number is already used in QuickBooks. Link the existing document "
        "or check the numbering settings.",
        Fix.RECORD,
        Q,
        code="6140",
    ),
    Entry(
        C.DUPLICATE,
        "This document number is already used in QuickBooks.",
        Fix.RECORD,
        Q,
        code="6210",
        pattern=r"duplicate",
    ),
    Entry(
        C.CLOSED_PERIOD,
        "The books are closed for this date in QuickBooks (closing date). Change the "
        "closing date in QuickBooks or the document date.",
        Fix.LEDGER_PERIODS,
        Q,
        code="6210",
    ),
    Entry(
        C.CLOSED_PERIOD,
        "The books are closed for this date in QuickBooks (closing date).",
        Fix.LEDGER_PERIODS,
        Q,
        pattern=r"closing date|period closed|books are closed",
    ),
    Entry(
        C.MAPPING_MISSING,
        "An item, account, class or tax code used here is missing or inactive in QuickBooks. Fix the mapping.",
        Fix.MAPPINGS,
        Q,
        code="610",
    ),
    Entry(
        C.MAPPING_MISSING,
        "A mapped item is a QuickBooks category, which cannot be used on documents. Map a product or service instead.",
        Fix.MAPPINGS,
        Q,
        code="2500",
        pattern=r"categor",
    ),
    Entry(
        C.CUSTOMER_NOT_LINKED,
        "The QuickBooks customer of this record is missing or inactive. Link the customer again.",
        Fix.CUSTOMER_LINKS,
        Q,
        code="2500",
        pattern=r"customer",
    ),
    Entry(
        C.MAPPING_MISSING,
        "A reference used here does not exist in QuickBooks. Fix the mapping.",
        Fix.MAPPINGS,
        Q,
        code="2500",
    ),
    Entry(
        C.MAPPING_MISSING,
        "QuickBooks needs a tax code on every line for this company. Map a tax code.",
        Fix.MAPPINGS,
        Q,
        code="6000",
        pattern=r"vat rate|gst|tax code|tax rate",
    ),
    Entry(
        C.VALIDATION,
        "Someone changed this record in QuickBooks at the same time; it will be re-read and retried.",
        Fix.RECORD,
        Q,
        code="5010",
        retryable=True,
    ),
    Entry(C.PROVIDER_DOWN, "QuickBooks had an internal error.", Fix.HEALTH, Q, code="10000", retryable=True),
    # -- bexio (bexio.md §4, §7) --
    Entry(
        C.AUTH_LOST,
        "bexio no longer accepts this connection's refresh token. Reconnect.",
        Fix.RECONNECT,
        B,
        code="invalid_grant",
    ),
    Entry(
        C.AUTH_LOST,
        "The bexio user or app lacks the right for this (scope or user permission). Reconnect with a user who has it.",
        Fix.RECONNECT,
        B,
        status=403,
    ),
    Entry(
        C.VALIDATION,
        "bexio sends invoice e-mails only with the [Network Link] placeholder in the message. Fix the e-mail template.",
        Fix.SETTINGS,
        B,
        pattern=r"network link",
    ),
    Entry(
        C.MAPPING_MISSING,
        "The tax used is not an active bexio sales tax. Map a current tax.",
        Fix.MAPPINGS,
        B,
        pattern=r"tax",
    ),
    Entry(
        C.MAPPING_MISSING,
        "The revenue account or article used is not valid in bexio. Fix the mapping.",
        Fix.MAPPINGS,
        B,
        pattern=r"account_id|article_id|unit_id|bank_account_id",
    ),
    Entry(
        C.CUSTOMER_NOT_LINKED,
        "The bexio contact of this record is missing. Link the customer again.",
        Fix.CUSTOMER_LINKS,
        B,
        pattern=r"contact",
    ),
    Entry(C.VALIDATION, "bexio refused the record.", Fix.RECORD, B, status=422),
)

#: Fallback per error type when no entry matches.
_BY_TYPE: tuple[tuple[type[LedgerError], ErrorClass, str, Fix, bool], ...] = (
    (
        NeedsReauthorization,
        C.AUTH_LOST,
        "The ledger connection must be authorised again.",
        Fix.RECONNECT,
        False,
    ),
    (
        AuthExpired,
        C.AUTH_LOST,
        "The ledger refused the access token; it is refreshed automatically.",
        Fix.RECONNECT,
        True,
    ),
    (
        RateLimited,
        C.RATE_LIMIT,
        "The ledger's request quota is used up; work resumes when it resets.",
        Fix.WAIT,
        True,
    ),
    (
        Unavailable,
        C.PROVIDER_DOWN,
        "The ledger could not be reached or failed; it will be retried.",
        Fix.HEALTH,
        True,
    ),
    (
        NotSupported,
        C.NOT_SUPPORTED,
        "The ledger cannot do this; handle it in the ledger by hand.",
        Fix.RECORD,
        False,
    ),
    (Forbidden, C.AUTH_LOST, "The ledger refused access for this connection.", Fix.RECONNECT, False),
    (
        NotFound,
        C.MAPPING_MISSING,
        "Something this record refers to does not exist in the ledger.",
        Fix.MAPPINGS,
        False,
    ),
)


def lookup(provider: str | None, code: str | None = None, status: int | None = None, text: str = "") -> Entry | None:
    """Return the first catalogue entry for this provider error, or None."""
    for entry in CATALOG:
        if entry.matches(provider, code, status, text or ""):
            return entry
    return None


def explain(error: LedgerError) -> Explanation:
    """Return the plain-words explanation and fix screen for a typed ledger error."""
    # A throttle or outage is what it is, whatever text came with it.
    if not isinstance(error, RateLimited | Unavailable):
        text = " ".join(filter(None, [error.provider_text, error.provider_code]))
        entry = lookup(error.provider, error.provider_code, error.status, text)
        if entry is not None:
            return Explanation(
                entry.error_class,
                entry.explanation,
                entry.fix,
                entry.retryable,
                error.provider_code,
                error.provider_text,
            )
    for kind, error_class, explanation, fix, retryable in _BY_TYPE:
        if isinstance(error, kind):
            return Explanation(error_class, explanation, fix, retryable, error.provider_code, error.provider_text)
    return Explanation(
        C.VALIDATION,
        "The ledger refused the record.",
        Fix.RECORD,
        error.retryable,
        error.provider_code,
        error.provider_text,
    )
