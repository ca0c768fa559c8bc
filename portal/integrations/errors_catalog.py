"""Provider errors in plain words, grouped by cause, with the screen that fixes them.

Ops pages group failed records by :class:`ErrorClass`; support sees the explanation, the
provider's own text, whether it clears by itself (``retryable`` / ``transient``) or needs a
person, and a link to the ``fix`` screen: a :class:`Fix` whose :class:`FixTarget` names the
Flask endpoint, its ``url_for`` arguments and the link text, as plain data (no ``url_for`` here).
Entries are data, matched in order: the first whose provider, code/status and text pattern all
fit wins, so specific entries come before general ones. Codes and texts come from the fact
sheets (sections cited) and the recorded provider responses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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
    Rejected,
    Unavailable,
)


class ErrorClass(StrEnum):
    """Causes that failed records are grouped by; values are stored on records (keep them stable)."""

    AUTH_LOST = "auth_lost"
    MAPPING_MISSING = "mapping_missing"
    CUSTOMER_NOT_LINKED = "customer_not_linked"
    CLOSED_PERIOD = "closed_period"
    DUPLICATE = "duplicate"
    VALIDATION = "validation"
    RATE_LIMIT = "rate_limit"
    PROVIDER_DOWN = "provider_down"
    NOT_SUPPORTED = "not_supported"
    #: Held before the write: the ledger would book other totals than the SaaS invoiced.
    TAX_HELD = "tax_held"
    #: Written, but the totals the ledger answered differ from the SaaS's ("differs from the SaaS").
    TOTALS_DIFFER = "totals_differ"

    @property
    def label(self) -> str:
        """Return the cause's heading in plain words."""
        return _CLASS_LABELS[self]


_CLASS_LABELS = {
    ErrorClass.AUTH_LOST: "Authorization lost",
    ErrorClass.MAPPING_MISSING: "Mapping missing",
    ErrorClass.CUSTOMER_NOT_LINKED: "Customer not linked",
    ErrorClass.CLOSED_PERIOD: "Closed period",
    ErrorClass.DUPLICATE: "Duplicate",
    ErrorClass.VALIDATION: "Refused by the ledger",
    ErrorClass.RATE_LIMIT: "Rate limit",
    ErrorClass.PROVIDER_DOWN: "Ledger unavailable",
    ErrorClass.NOT_SUPPORTED: "Not supported by the ledger",
    ErrorClass.TAX_HELD: "Held: the ledger would total differently",
    ErrorClass.TOTALS_DIFFER: "Differs from the SaaS",
}


@dataclass(frozen=True)
class FixTarget:
    """The portal screen that fixes a cause, as data: the views build the URL with ``url_for``.

    ``url_for(endpoint, **{name: ... for name in params})`` plus ``#anchor`` gives the link;
    a ``POST`` target is a button in a small form (CSRF token included), not a link.
    """

    #: Flask endpoint, e.g. "mappings.show_mappings".
    endpoint: str
    #: Text of the link or button, e.g. "Open the mappings".
    label: str
    #: Names of the ``url_for`` arguments the caller supplies (usually the connection id).
    params: tuple[str, ...] = ("connection_id",)
    #: "GET" for a link, "POST" for a button.
    method: str = "GET"
    #: Fragment of the page to jump to, if any.
    anchor: str | None = None
    #: True when the change itself is made in the ledger; the screen only shows the connection.
    in_ledger: bool = False


class Fix(StrEnum):
    """Screens that fix a cause: a stable symbolic value plus the :class:`FixTarget` it opens.

    ``fix.endpoint``, ``fix.label``, ``fix.params``, ``fix.method``, ``fix.anchor`` and
    ``fix.in_ledger`` read the target.
    """

    RECONNECT = "connection.reauthorize"
    COMPANY = "connection.company"
    SETTINGS = "connection.settings"
    MAPPINGS = "connection.mappings"
    TAX_TABLE = "connection.tax_table"
    CUSTOMER_LINKS = "connection.customer_links"
    RECORD = "records.detail"
    LEDGER_PERIODS = "ledger.periods"
    WAIT = "ops.rate_limits"
    HEALTH = "ops.health"

    @property
    def target(self) -> FixTarget:
        """Return the screen this fix opens."""
        return FIX_TARGETS[self]

    @property
    def endpoint(self) -> str:
        """Return the Flask endpoint of the screen."""
        return self.target.endpoint

    @property
    def label(self) -> str:
        """Return the link or button text."""
        return self.target.label

    @property
    def params(self) -> tuple[str, ...]:
        """Return the names of the ``url_for`` arguments."""
        return self.target.params

    @property
    def method(self) -> str:
        """Return "GET" (a link) or "POST" (a button)."""
        return self.target.method

    @property
    def anchor(self) -> str | None:
        """Return the fragment to jump to, if any."""
        return self.target.anchor

    @property
    def in_ledger(self) -> bool:
        """Say whether the change itself is made in the ledger."""
        return self.target.in_ledger


#: Every fix's screen (endpoints as ``flask --app app routes`` lists them).
FIX_TARGETS: dict[Fix, FixTarget] = {
    Fix.RECONNECT: FixTarget("connections.reconnect", "Re-authorize", method="POST"),
    Fix.COMPANY: FixTarget("mappings.change_division", "Choose the company"),
    Fix.SETTINGS: FixTarget("connections.show_connection", "Connection settings", anchor="settings-box"),
    Fix.MAPPINGS: FixTarget("mappings.show_mappings", "Open the mappings"),
    Fix.TAX_TABLE: FixTarget("mappings.show_mappings", "Map the tax rate", anchor="tax-table"),
    Fix.CUSTOMER_LINKS: FixTarget("customers.show_customer_links", "Link the customer"),
    Fix.RECORD: FixTarget("organizations.list_records", "Open the record", params=("org_id", "section")),
    Fix.LEDGER_PERIODS: FixTarget("connections.show_connection", "Open the connection", in_ledger=True),
    Fix.WAIT: FixTarget("system.list_jobs", "See the jobs", params=()),
    Fix.HEALTH: FixTarget("connections.show_connection", "Connection status"),
}


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
    """What the portal shows for a failure: the cause, plain words, the fix, the provider's text."""

    error_class: ErrorClass
    explanation: str
    fix: Fix
    #: True: transient, retried with backoff without anyone acting. False: a person must act.
    retryable: bool
    provider_code: str | None = None
    #: The provider's own words, unchanged (shown next to the explanation, escaped).
    provider_text: str | None = None
    provider: str | None = None
    status: int | None = None

    @property
    def transient(self) -> bool:
        """Say whether the failure clears by itself (retry with backoff)."""
        return self.retryable

    @property
    def needs_person(self) -> bool:
        """Say whether someone must change something before a retry can succeed."""
        return not self.retryable


E, Q, B = specs.EXACT_ONLINE, specs.QUICKBOOKS, specs.BEXIO
C = ErrorClass

CATALOG: tuple[Entry, ...] = (
    # -- Exact Online (exact-online.md §1.5, §2, §4.2; sandbox/exact/messages.py) --
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
        pattern=r"\bNoDivisionAccess\b|WrongDivision",
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
        C.AUTH_LOST,
        "The connected Exact user lacks the rights for this (e.g. creating sales invoices). "
        "Give the user the rights in Exact or reconnect with a user who has them.",
        Fix.RECONNECT,
        E,
        status=403,
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
        C.CLOSED_PERIOD,
        "Exact has no financial year for the invoice date. Create the financial year in Exact, then retry.",
        Fix.LEDGER_PERIODS,
        E,
        pattern=r"boekjaar bestaat niet|financial year does not exist",
    ),
    Entry(
        C.DUPLICATE,
        "A record with this code already exists in Exact. Link the existing one instead of creating it.",
        Fix.CUSTOMER_LINKS,
        E,
        pattern=r"gegeven bestaat reeds|record already exists",
    ),
    Entry(
        C.DUPLICATE,
        "Exact says this document was already processed.",
        Fix.RECORD,
        E,
        pattern=r"reeds verwerkt|already processed",
    ),
    Entry(
        C.CUSTOMER_NOT_LINKED,
        "The Exact customer this record points at does not exist (or is a "
        "contact, not an account). Link the customer again.",
        Fix.CUSTOMER_LINKS,
        E,
        pattern=r"(ongeldige referentie|invalid reference|verplicht|mandatory): (besteld door|factuur voor|"
        r"leveren aan|ordered by|invoice to|deliver to|klant|customer|relatie|relationship|account)\b",
    ),
    Entry(
        C.MAPPING_MISSING,
        "A code used for this record (item, journal, VAT code, G/L account, payment condition) is "
        "missing or does not exist in Exact. Fix the mapping.",
        Fix.MAPPINGS,
        E,
        pattern=r"ongeldige referentie|invalid reference|grootboekrekeningtype|g/l account type|"
        r"invalid journal|ongeldig dagboek|(verplicht|mandatory): (dagboek|journal|diary|artikel|item|"
        r"btw-code|vat code|grootboekrekening|g/l account|betalingsconditie|payment condition)",
    ),
    Entry(
        C.VALIDATION,
        "The Exact customer has no e-mail address, so Exact cannot e-mail the invoice. Add one in "
        "Exact or turn off sending by e-mail.",
        Fix.SETTINGS,
        E,
        pattern=r"e-mailadres ontbreekt|has no e-mail address",
    ),
    Entry(
        C.VALIDATION,
        "Exact needs a field this record does not have.",
        Fix.RECORD,
        E,
        pattern=r"verplicht|mandatory",
    ),
    # -- QuickBooks Online (quickbooks-online.md §4, §6; qbo_api spec/vcr/error) --
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
        "QuickBooks refused access for this company (authorization failure). Reconnect.",
        Fix.RECONNECT,
        Q,
        code="120",
    ),
    Entry(
        C.AUTH_LOST,
        "QuickBooks answered from the wrong data centre for this company (wrong cluster). Reconnect.",
        Fix.RECONNECT,
        Q,
        code="130",
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
        pattern=r"closing date|period closed|period has closed|books are closed",
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
        C.CUSTOMER_NOT_LINKED,
        "The record reached QuickBooks without a customer. Link the customer.",
        Fix.CUSTOMER_LINKS,
        Q,
        code="2020",
        pattern=r"CustomerRef",
    ),
    Entry(
        C.MAPPING_MISSING,
        "The record reached QuickBooks without an item, account, class or tax code. Fix the mapping.",
        Fix.MAPPINGS,
        Q,
        code="2020",
        pattern=r"ItemRef|TaxCodeRef|AccountRef|ClassRef|DepositToAccountRef",
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
        C.PROVIDER_DOWN,
        "QuickBooks had an internal error while saving; it will be retried.",
        Fix.HEALTH,
        Q,
        code="6000",
        pattern=r"unexpected internal error",
        retryable=True,
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
    # -- bexio (bexio.md §3.4, §4, §7; sandbox/bexio/store.py) --
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
        C.VALIDATION,
        "This bexio company is in its trial, which sends invoice e-mails only to the connected user's own "
        "address. Turn off sending by bexio e-mail until the subscription starts.",
        Fix.SETTINGS,
        B,
        pattern=r"during the trial",
    ),
    Entry(
        C.VALIDATION,
        "The invoice's recipient e-mail is missing or invalid. Add an e-mail to the contact in bexio or "
        "set the recipient in the sending settings.",
        Fix.SETTINGS,
        B,
        pattern=r"recipient_email|no e-mail address",
    ),
    Entry(
        C.MAPPING_MISSING,
        "The tax used is not an active bexio sales tax. Map a current tax.",
        Fix.MAPPINGS,
        B,
        pattern=r"\btax_(income_)?id\b",
    ),
    Entry(
        C.MAPPING_MISSING,
        "The revenue account, article or unit used is not valid in bexio. Fix the mapping.",
        Fix.MAPPINGS,
        B,
        pattern=r"\b(account_id|article_id|unit_id)\b",
    ),
    Entry(
        C.MAPPING_MISSING,
        "A default of the connection (bank account, currency, language or payment type) is not valid in "
        "bexio. Fix the mapping.",
        Fix.MAPPINGS,
        B,
        pattern=r"\b(bank_account_id|currency_id|language_id|payment_type_id)\b|bank account not found",
    ),
    Entry(
        C.CUSTOMER_NOT_LINKED,
        "The bexio contact of this record is missing. Link the customer again.",
        Fix.CUSTOMER_LINKS,
        B,
        pattern=r"\bcontact_(sub_)?id\b|contact not found",
    ),
    Entry(
        C.VALIDATION,
        "bexio takes payments only on issued invoices. Finalize the invoice first, then retry the payment.",
        Fix.RECORD,
        B,
        pattern=r"only be added to issued invoices",
    ),
    Entry(
        C.VALIDATION,
        "The invoice is cancelled in bexio, so it cannot be changed, sent or paid. Handle it in bexio.",
        Fix.RECORD,
        B,
        pattern=r"invoice is cancelled|is cancelled",
    ),
    Entry(
        C.VALIDATION,
        "The invoice is already issued in bexio and can no longer be changed there.",
        Fix.RECORD,
        B,
        pattern=r"not a draft|only drafts can",
    ),
    Entry(
        C.VALIDATION,
        "The invoice has no lines bexio can book. Check the record's lines.",
        Fix.RECORD,
        B,
        pattern=r"has no positions",
    ),
    Entry(
        C.VALIDATION,
        "The invoice no longer exists in bexio (deleted there). Push the record again.",
        Fix.RECORD,
        B,
        status=404,
        pattern=r"invoice not found",
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

#: Fallback by HTTP status for errors of no more specific type (never for refusals).
_BY_STATUS: tuple[tuple[Callable[[int], bool], ErrorClass, str, Fix, bool], ...] = (
    (
        lambda s: s == 429,
        C.RATE_LIMIT,
        "The ledger's request quota is used up; work resumes when it resets.",
        Fix.WAIT,
        True,
    ),
    (
        lambda s: s == 401,
        C.AUTH_LOST,
        "The ledger refused the access token; it is refreshed automatically.",
        Fix.RECONNECT,
        True,
    ),
    (lambda s: s == 403, C.AUTH_LOST, "The ledger refused access for this connection.", Fix.RECONNECT, False),
    (
        lambda s: s == 408 or s >= 500,
        C.PROVIDER_DOWN,
        "The ledger could not be reached or failed; it will be retried.",
        Fix.HEALTH,
        True,
    ),
)


def lookup(provider: str | None, code: str | None = None, status: int | None = None, text: str = "") -> Entry | None:
    """Return the first catalogue entry for this provider error, or None."""
    for entry in CATALOG:
        if entry.matches(provider, code, status, text or ""):
            return entry
    return None


def _text(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def explain(error: LedgerError) -> Explanation:
    """Return the cause, plain words, fix screen and the provider's own text for a ledger error.

    Never raises: an error nothing recognises is a validation refusal that needs a person.
    """
    provider = _text(getattr(error, "provider", None))
    code = _text(getattr(error, "provider_code", None))
    provider_text = _text(getattr(error, "provider_text", None))
    status = getattr(error, "status", None)
    status = status if isinstance(status, int) and not isinstance(status, bool) else None

    def said(error_class: ErrorClass, explanation: str, fix: Fix, retryable: bool) -> Explanation:
        return Explanation(error_class, explanation, fix, retryable, code, provider_text, provider, status)

    # A throttle, an outage or a missing feature is what it is, whatever text came with it.
    if not isinstance(error, RateLimited | Unavailable | NotSupported):
        # Errors the adapters raise themselves carry their words as the message, not provider text.
        message = provider_text or (_text(error.args[0]) if error.args else None)
        entry = lookup(provider, code, status, " ".join(filter(None, [message, code])))
        if entry is not None:
            return said(entry.error_class, entry.explanation, entry.fix, entry.retryable)
    for kind, error_class, explanation, fix, retryable in _BY_TYPE:
        if isinstance(error, kind):
            return said(error_class, explanation, fix, retryable)
    # A refusal stays a refusal whatever its status: Exact sends business rules as 500 (exact-online.md §4.2).
    if status is not None and not isinstance(error, Rejected):
        for applies, error_class, explanation, fix, retryable in _BY_STATUS:
            if applies(status):
                return said(error_class, explanation, fix, retryable)
    return said(C.VALIDATION, "The ledger refused the record.", Fix.RECORD, bool(getattr(error, "retryable", False)))
