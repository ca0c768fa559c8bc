"""The LedgerAdapter contract, its value types, the typed errors and the adapter registry.

One adapter per provider (DESIGN.md "The adapter contract"); provider modules hold only what
differs. Every HTTP failure reaches callers as one of the errors below, raised in one place
(``http.map_error``), and retry decisions key on the type (STYLE 17):

=======================  ====================================================  ==========
error                    meaning                                               retry?
=======================  ====================================================  ==========
AuthExpired              access token refused; refresh once and repeat         yes, once
NeedsReauthorization     refresh token / grant is dead; a human must reconnect  no
RateLimited(retry_at)    over quota; reschedule at ``retry_at``                 later
Unavailable              network, timeout, 5xx; ``outcome_unknown`` on writes   yes
Rejected                 the provider refused the request (validation, rules)   no
NotSupported             the provider cannot do this at all                     no
=======================  ====================================================  ==========
"""

from __future__ import annotations

import abc
import base64
import hashlib
import importlib
import secrets
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from . import specs
from .totals import Totals

# -- errors ---------------------------------------------------------------------------------------


class LedgerError(Exception):
    """A failure talking to a ledger, carrying the provider's own code and text."""

    #: Whether repeating the same request later may succeed (jobs key retries on this).
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str = "",
        *,
        provider: str | None = None,
        status: int | None = None,
        provider_code: str | None = None,
        provider_text: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.provider = provider
        self.status = status
        self.provider_code = provider_code
        self.provider_text = provider_text
        #: The provider's trace id (QBO ``intuit_tid``) to quote to its support.
        self.request_id = request_id
        super().__init__(message or provider_text or type(self).__name__)

    def __str__(self) -> str:
        parts = [super().__str__()]
        facts = [
            f"{name}={value}"
            for name, value in (
                ("provider", self.provider),
                ("status", self.status),
                ("code", self.provider_code),
            )
            if value not in (None, "")
        ]
        if facts:
            parts.append(f"({', '.join(facts)})")
        return " ".join(parts)


class AuthExpired(LedgerError):
    """The access token was refused: refresh it and repeat the call once."""

    retryable = True


class NeedsReauthorization(LedgerError):
    """The grant is gone (refresh token dead, revoked, scopes changed): a human must reconnect."""

    def __init__(self, message: str = "", *, reason: str | None = None, **facts: Any) -> None:
        #: Short machine reason, e.g. "invalid_grant", "Old refresh token used.".
        self.reason = reason or facts.get("provider_code")
        super().__init__(message, **facts)


class RateLimited(LedgerError):
    """Over the provider's quota: reschedule at ``retry_at`` (a 429 never fails a record)."""

    retryable = True

    def __init__(self, message: str = "", *, retry_at: datetime, **facts: Any) -> None:
        self.retry_at = retry_at
        super().__init__(message, **facts)


class Unavailable(LedgerError):
    """The provider could not be reached or failed (network, timeout, 5xx)."""

    retryable = True
    #: True when the outage behind it was counted already (a document waiting on its customer's outage).
    counted = False

    def __init__(self, message: str = "", *, outcome_unknown: bool = False, **facts: Any) -> None:
        #: True when a write may have been carried out anyway: look it up by reference first.
        self.outcome_unknown = outcome_unknown
        super().__init__(message, **facts)


class Rejected(LedgerError):
    """The provider refused the request (validation, business rule, missing reference)."""


class NotFound(Rejected):
    """The provider says the addressed object or company does not exist."""


class Forbidden(Rejected):
    """The provider refuses access (no division access, missing scope or user right)."""


class NotSupported(LedgerError):
    """The provider has no way to do this (e.g. bexio credit notes, bexio.md §3.6)."""


class NotSent(LedgerError):
    """The ledger made the invoice final (numbered) but did not e-mail it; ``number`` is its number.

    Raised by :meth:`LedgerAdapter.finalize_invoice` and :meth:`LedgerAdapter.send_invoice`
    when the ledger's own answer says the e-mail was not sent (Exact's ``EmailCreationError``,
    a refused QuickBooks or bexio send), or when it cannot say whether it was: the invoice is
    final and keeps its number; it is never reported as sent.
    """

    def __init__(self, message: str = "", *, number: str | None = None, **facts: Any) -> None:
        #: The ledger's invoice number, assigned although the e-mail was not sent.
        self.number = number
        super().__init__(message, **facts)


# -- value types ----------------------------------------------------------------------------------


def _mask(secret: str | None) -> str:
    return "None" if secret is None else "'***'"


@dataclass(frozen=True, repr=False)
class TokenSet:
    """An OAuth token pair with expiry times; repr never shows the tokens."""

    access_token: str
    refresh_token: str | None
    #: When the access token stops working (UTC).
    access_expires_at: datetime
    #: When the refresh token dies if unused / at the latest (UTC); None when unknown.
    refresh_expires_at: datetime | None = None
    #: When the provider issued this access token (UTC); Exact's refresh timing counts from here.
    issued_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    scope: str = ""
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret

    def __repr__(self) -> str:
        return (
            f"TokenSet(access_token={_mask(self.access_token)}, refresh_token={_mask(self.refresh_token)}, "
            f"access_expires_at={self.access_expires_at.isoformat()}, "
            f"refresh_expires_at={self.refresh_expires_at.isoformat() if self.refresh_expires_at else None}, "
            f"scope={self.scope!r})"
        )

    __str__ = __repr__

    def access_expired(self, now: datetime | None = None, leeway: timedelta = timedelta(seconds=30)) -> bool:
        """Say whether the access token is expired or will be within ``leeway``."""
        return (now or datetime.now(UTC)) >= self.access_expires_at - leeway

    def to_dict(self) -> dict[str, Any]:
        """Return the token set as JSON-ready data (secrets included: encrypt before storing)."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "access_expires_at": self.access_expires_at.isoformat(),
            "refresh_expires_at": self.refresh_expires_at.isoformat() if self.refresh_expires_at else None,
            "issued_at": self.issued_at.isoformat(),
            "scope": self.scope,
            "token_type": self.token_type,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenSet:
        """Build a token set from :meth:`to_dict` output."""
        refresh_at = data.get("refresh_expires_at")
        return cls(
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token"),
            access_expires_at=datetime.fromisoformat(data["access_expires_at"]),
            refresh_expires_at=datetime.fromisoformat(refresh_at) if refresh_at else None,
            issued_at=datetime.fromisoformat(data["issued_at"]),
            scope=data.get("scope") or "",
            token_type=data.get("token_type") or "bearer",
        )

    @classmethod
    def from_response(
        cls, body: Mapping[str, Any], rules: specs.TokenRules, *, now: datetime | None = None
    ) -> TokenSet:
        """Build a token set from a token-endpoint JSON body, following the provider's rules.

        ``expires_in`` may be a string (Exact, exact-online.md §1.4). A refresh response
        without a refresh token keeps none here; the vault keeps the previous one (bexio.md §1.3).
        """
        now = now or datetime.now(UTC)
        expires_in = body.get("expires_in")
        ttl = timedelta(seconds=int(expires_in)) if expires_in not in (None, "") else rules.access_ttl
        refresh_in = body.get("x_refresh_token_expires_in") or body.get("refresh_expires_in")
        if refresh_in:
            refresh_at: datetime | None = now + timedelta(seconds=int(refresh_in))
        elif rules.refresh_idle_expiry:
            refresh_at = now + rules.refresh_idle_expiry
        else:
            refresh_at = None
        return cls(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token"),
            access_expires_at=now + ttl,
            refresh_expires_at=refresh_at,
            issued_at=now,
            scope=body.get("scope") or "",
            token_type=(body.get("token_type") or "bearer").lower(),
        )


@dataclass(frozen=True)
class Company:
    """A company / division / realm the token can reach."""

    id: str
    name: str
    #: Human-facing number (Exact division code, bexio company id), where different from id.
    number: str | None = None
    country: str | None = None
    #: False when it is listed but the app may not use it (Exact: no rights, not granted).
    accessible: bool = True
    #: Why it is not accessible, in the provider's words (e.g. "NoDivisionAccess").
    reason: str | None = None
    currency: str | None = None


#: Kinds of reference data a mapping can point at.
REFERENCE_KINDS = (
    "items",
    "tax_codes",
    "gl_accounts",
    "journals",
    "payment_conditions",
    "classes",
    "currencies",
    "bank_accounts",
)


@dataclass(frozen=True)
class ReferenceItem:
    """One row of ledger reference data (an item, tax code, GL account…)."""

    kind: str
    id: str
    code: str
    name: str
    active: bool = True
    #: Provider-specific facts the mapping screens show (rate, account type, …).
    details: Mapping[str, Any] = field(default_factory=dict)


#: Keys a ledger customer can be looked up by (:class:`CustomerQuery`).
CUSTOMER_KEYS = ("id", "code", "vat", "coc", "email", "name")


@dataclass(frozen=True)
class CustomerQuery:
    """Look up ledger customers by one key: "id", "code", "vat", "coc" (company number), "email" or "name"."""

    by: str
    value: str

    def __post_init__(self) -> None:
        if self.by not in CUSTOMER_KEYS:
            raise ValueError(f"cannot look customers up by {self.by!r}")


def clean_name(name: str | None) -> str:
    """Return a name as it is created in and looked up in a ledger: trimmed, inner spaces collapsed.

    Every adapter creates customers under this form and looks them up by it, so a name typed
    with stray spaces is found again after an interrupted create.
    """
    return " ".join((name or "").split())


#: Characters of a customer code the ledgers keep (Exact codes are at most 18 characters, exact-online.md §3.1).
CUSTOMER_CODE_MAX = 18


def customer_code(reference: str) -> str:
    """Return the customer code that carries our reference (the SaaS's customer id) in a ledger.

    The reference itself when it fits and is not only digits; ``LL`` + the digits for a numeric
    id (so it never meets the ledger's own numbering, which counts 1, 2, 3 …); ``LL`` + 16 hex
    characters of its SHA-256 when it is too long. Deterministic: the same customer always gets
    the same code, so a look-up by code finds what an interrupted create made.
    """
    text = (reference or "").strip()
    if text and len(text) <= CUSTOMER_CODE_MAX and not text.isdigit():
        return text
    if text.isdigit() and len(text) <= CUSTOMER_CODE_MAX - 2:
        return f"LL{text}"
    return "LL" + hashlib.sha256(text.encode()).hexdigest()[: CUSTOMER_CODE_MAX - 2].upper()


@dataclass(frozen=True)
class LedgerCustomer:
    """A customer as the ledger has it."""

    id: str
    name: str
    code: str | None = None
    email: str | None = None
    vat_number: str | None = None
    country: str | None = None
    active: bool = True
    #: Chamber-of-commerce / company registration number, where the ledger keeps one.
    coc_number: str | None = None


@dataclass(frozen=True)
class CustomerDraft:
    """A customer to create (or update) in the ledger; ``reference`` is the SaaS's customer id."""

    reference: str
    name: str
    email: str | None = None
    vat_number: str | None = None
    country: str | None = None
    address_lines: tuple[str, ...] = ()
    postcode: str | None = None
    city: str | None = None
    is_person: bool = False
    #: Chamber-of-commerce / company registration number.
    coc_number: str | None = None


#: Fields of a :class:`CustomerDraft` a customer update can change in the ledger.
CUSTOMER_UPDATE_FIELDS = ("name", "email", "vat_number", "coc_number", "address_lines", "postcode", "city", "country")


@dataclass(frozen=True)
class LineDraft:
    """One invoice or credit-note line, with mapped ledger codes."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    item: str | None = None
    tax_code: str | None = None
    gl_account: str | None = None
    class_ref: str | None = None
    #: The percentage of ``tax_code`` (the line's own rate, checked before the push).
    tax_rate: Decimal | None = None


@dataclass(frozen=True)
class DocumentDraft:
    """An invoice or credit note to push; ``reference`` is our idempotency key in the ledger."""

    reference: str
    number: str
    customer_id: str
    issue_date: date
    due_date: date | None
    currency: str
    lines: tuple[LineDraft, ...]
    #: For credit notes: the ledger id of the invoice it corrects.
    corrects_id: str | None = None
    journal: str | None = None
    payment_condition: str | None = None
    memo: str | None = None
    pdf: bytes | None = field(default=None, repr=False)
    #: The document's tax code where the ledger takes one per document (QuickBooks US TxnTaxCodeRef).
    sales_tax_code: str | None = None
    #: The SaaS's tax total, sent where the ledger takes it as stated (QuickBooks US TotalTax).
    tax_total: Decimal | None = None


@dataclass(frozen=True)
class PaymentDraft:
    """A payment against a pushed invoice."""

    reference: str
    invoice_id: str
    amount: Decimal
    paid_on: date
    bank_account: str | None = None


@dataclass(frozen=True)
class PushResult:
    """What the ledger made of a pushed record."""

    external_id: str
    external_number: str | None = None
    #: False when an existing record was found (by reference / idempotent replay), not created.
    created: bool = True
    #: A document's net, tax and total as the ledger answered them (None: not told).
    totals: Totals | None = None


@dataclass(frozen=True)
class PaymentStatus:
    """How much of an invoice is still open in the ledger."""

    external_id: str
    paid: bool
    amount_open: Decimal
    amount_total: Decimal | None = None
    state: str = ""


@dataclass(frozen=True)
class LedgerDocument:
    """An invoice or credit note as the ledger holds it, for reconciliation and back-fill previews."""

    external_id: str
    #: Our reference where the document carries one (Exact YourRef, QBO DocNumber, bexio api_reference).
    reference: str | None
    number: str | None
    issue_date: date
    #: Total including tax, in ``currency``.
    total: Decimal
    currency: str
    amount_open: Decimal | None = None
    customer_id: str | None = None


@dataclass(frozen=True)
class ClosedPeriod:
    """A span of dates the ledger takes no new sales documents in, and why."""

    start: date | None
    end: date
    reason: str


@dataclass(frozen=True)
class BatchOperation:
    """One operation of a batch call: kind ("customer", "invoice", …), action and payload."""

    id: str
    kind: str
    action: str
    payload: Any


@dataclass(frozen=True)
class BatchItemResult:
    """The outcome of one batch operation: a result or the typed error it would have raised."""

    id: str
    result: PushResult | None = None
    error: LedgerError | None = None


@dataclass(frozen=True)
class Check:
    """One preflight finding: what was checked, whether it passed, and why in plain words."""

    name: str
    ok: bool
    detail: str
    #: The provider's own text when the check failed on an error answer.
    provider_text: str | None = None


#: Name of every record the connection test creates, so a human recognises and deletes leftovers.
TEST_NAME = "Ledgerlink test \N{EM DASH} delete me"


@dataclass(frozen=True)
class TestResult:
    """What ``create_test_documents`` made in the ledger and what a human must remove by hand."""

    __test__ = False  # not a pytest test class despite the name

    #: (kind, external id, number or label) in creation order, e.g. ("invoice", "145", "1043").
    created: list[tuple[str, str, str | None]] = field(default_factory=list)
    #: Clean-up steps the provider does not allow through its API, as sentences.
    manual_cleanup: list[str] = field(default_factory=list)
    #: The test invoice's net, tax and total as the ledger answered them (None: not told).
    totals: Totals | None = None


def test_label() -> str:
    """Return a unique, clearly marked name for a test record (QBO names must be unique)."""
    return f"{TEST_NAME} ({secrets.token_hex(3)})"


def pkce_challenge(code_verifier: str) -> str:
    """Return the S256 PKCE code challenge of ``code_verifier`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


TokenUpdater = Callable[[TokenSet], None]
#: Refreshes the grant the way every process agrees on (the vault: a cross-process lock, the stored
#: token re-read, the rotated one committed first): given the token set the caller used and whether
#: the ledger refused it (a 401), returns the token set to use now.
Refresher = Callable[[TokenSet | None, bool], TokenSet]
#: Told of every ``NeedsReauthorization`` the adapter raises (the connection records it at once).
GrantLostHook = Callable[["NeedsReauthorization"], None]


# -- the contract ---------------------------------------------------------------------------------


class LedgerAdapter(abc.ABC):
    """What the portal asks of any ledger; one subclass per provider."""

    #: Provider key, set by :func:`register`.
    provider: ClassVar[str]
    spec: ClassVar[specs.ProviderSpec]

    def __init__(
        self,
        *,
        http: Any,
        client_id: str,
        client_secret: str,
        region: str | None = None,
        company_id: str | None = None,
        tokens: TokenSet | None = None,
        token_updater: TokenUpdater | None = None,
        refresher: Refresher | None = None,
        on_grant_lost: GrantLostHook | None = None,
    ) -> None:
        self.http = http
        self.client_id = client_id
        self.client_secret = client_secret
        self.region = self.spec.region(region)
        self.company_id = company_id
        self._tokens = _SharedTokens(tokens)
        # Rotated tokens are persisted the moment they arrive (STYLE 19).
        self.token_updater = token_updater
        #: The one refresh path of a stored connection; without one (a consent being completed, the
        #: vault's own refresh) the adapter refreshes by itself.
        self.refresher = refresher
        self.on_grant_lost = on_grant_lost

    @property
    def tokens(self) -> TokenSet | None:
        """The grant's current token set (shared with the adapters joined by :meth:`share_state`)."""
        return self._tokens.value

    @tokens.setter
    def tokens(self, value: TokenSet | None) -> None:
        self._tokens.value = value

    def share_state(self, other: LedgerAdapter) -> None:
        """Work on ``other``'s grant from now on: one token set, refreshed once for both.

        A job that calls the ledger from several threads gives each thread an adapter of its own
        (its own HTTP session) joined to the first one: a rotated refresh token reaches every one
        of them, and two of them never refresh with the same single-use token. Providers add
        what else their adapters learn as they go (e.g. numbers read at creation).
        """
        self._tokens = other._tokens

    def __repr__(self) -> str:
        return f"<{type(self).__name__} region={self.region.key} company={self.company_id}>"

    @property
    def capabilities(self) -> specs.Capabilities:
        """Return what this provider can do."""
        return self.spec.capabilities

    # OAuth
    @abc.abstractmethod
    def authorization_url(self, *, redirect_uri: str, state: str, code_verifier: str | None = None) -> str:
        """Return the provider's consent URL for this client."""

    @abc.abstractmethod
    def exchange_code(
        self,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str | None = None,
        callback_params: Mapping[str, str] | None = None,
    ) -> TokenSet:
        """Trade an authorization code for tokens; ``callback_params`` is the callback's query.

        Persist the tokens through the token updater. Providers that name the company in the
        callback (QBO ``realmId``) pin it as ``company_id``.
        """

    @abc.abstractmethod
    def refresh(self) -> TokenSet:
        """Refresh the access token, hand the new set to the token updater, and return it."""

    def revoke(self) -> bool:
        """Revoke the grant at the provider; return False when the provider has no revocation."""
        return False

    # Companies and reference data
    @abc.abstractmethod
    def list_companies(self) -> list[Company]:
        """Return every company / division the token can see, accessible or not."""

    @abc.abstractmethod
    def company_info(self) -> Company:
        """Return the pinned company's details."""

    @abc.abstractmethod
    def reference_data(self, kind: str) -> list[ReferenceItem]:
        """Return the ledger's reference data of one kind (see ``REFERENCE_KINDS``)."""

    # Customers
    @abc.abstractmethod
    def find_customers(self, query: CustomerQuery) -> list[LedgerCustomer]:
        """Return ledger customers matching the query."""

    def find_customers_matching(self, queries: Sequence[CustomerQuery]) -> list[LedgerCustomer]:
        """Return the ledger customers matching any of the queries, each once.

        The default asks once per query; keys the ledger cannot filter on (:class:`NotSupported`)
        are left out. Ledgers that can ``or`` filters ask once (Exact).
        """
        found: dict[str, LedgerCustomer] = {}
        unsupported: set[str] = set()
        for query in queries:
            if query.by in unsupported:
                continue
            try:
                for customer in self.find_customers(query):
                    found.setdefault(str(customer.id), customer)
            except NotSupported:
                unsupported.add(query.by)
        return list(found.values())

    @abc.abstractmethod
    def create_customer(self, draft: CustomerDraft) -> LedgerCustomer:
        """Create a customer in the ledger, carrying our reference (``draft.reference``) where the ledger keeps one.

        The name is created as :func:`clean_name` gives it.
        """

    def find_customer_by_reference(self, draft: CustomerDraft) -> LedgerCustomer | None:
        """Return the customer an earlier attempt to create ``draft`` made, found by our reference only.

        Used after an attempt whose outcome is unknown: a customer that merely has the same name
        is never returned. The default knows of no reference (None).
        """
        return None

    def update_customer(self, external_id: str, draft: CustomerDraft, fields: Collection[str]) -> None:
        """Change the ``fields`` (of :data:`CUSTOMER_UPDATE_FIELDS`) of a ledger customer to the draft's values.

        Only those fields are sent; the others stay as the ledger has them. Setting a value is
        harmless to repeat, so a retry after an unknown outcome is safe.

        :raise NotSupported: for providers whose customers cannot be updated (the default).
        """
        raise NotSupported(f"updating {self.spec.name} customers is not available", provider=self.provider)

    def iter_customers(self, page_size: int | None = None) -> Iterator[LedgerCustomer]:
        """Yield every ledger customer, archived / inactive ones included, fetching page by page.

        ``page_size`` overrides the provider's page size where the provider lets the client choose.

        :raise NotSupported: for providers that cannot list their customers (the default).
        """
        raise NotSupported(f"listing {self.spec.name} customers is not available", provider=self.provider)

    # Documents
    @abc.abstractmethod
    def push_invoice(self, draft: DocumentDraft, *, looked_up: bool = False) -> PushResult:
        """Create an invoice in the ledger, or return the one there with our reference already.

        ``looked_up``: the caller has just looked the reference up (:meth:`find_by_reference`)
        and found nothing, so the invoice is created without looking again.
        """

    @abc.abstractmethod
    def push_credit_note(self, draft: DocumentDraft) -> PushResult:
        """Create a credit note, or raise NotSupported where the provider has none."""

    @abc.abstractmethod
    def finalize_invoice(
        self, external_id: str, *, send: bool, email: str | None = None, message: str | None = None
    ) -> str | None:
        """Make a pushed invoice final in the ledger and, when ``send``, have the ledger e-mail it.

        Exact: PrintedSalesInvoices (processed; the number is assigned now when the division
        numbers at print), e-mailed when ``send``. QuickBooks: nothing to finalize; ``send`` posts
        ``invoice/{id}/send``. bexio: issue, then ``send`` with ``message`` (must hold
        ``[Network Link]``). ``email`` overrides the recipient where the ledger allows it.

        Idempotent: an invoice already final (or already sent) is not an error, so a retry after
        an unknown outcome is safe. Sent means the ledger's answer says so: an invoice the ledger
        made final without e-mailing it raises :class:`NotSent` with its number.

        :return: the ledger's invoice number when it is known now (None when unchanged/unknown).
        :raise NotSent: when ``send`` and the invoice is final but the ledger did not (or cannot
            say that it did) e-mail it.
        """

    def send_invoice(self, external_id: str, *, email: str | None = None, message: str | None = None) -> str | None:
        """E-mail a final invoice through the ledger once more ("Send again" after :class:`NotSent`).

        The default finalizes with ``send``: QuickBooks and bexio send an invoice the ledger
        shows as not sent yet.

        :return: the invoice's number.
        :raise NotSent: when the ledger still does not e-mail it.
        """
        return self.finalize_invoice(external_id, send=True, email=email, message=message)

    def final_without_call(self, external_id: str, *, send: bool) -> tuple[bool, str | None]:
        """Say whether finalizing needs no call to the ledger, and the invoice's number if so.

        (True, number) where the invoice is final already and this adapter knows its number
        (QuickBooks: created final, its DocNumber read at creation); :meth:`finalize_invoice`
        would return that number without a call. The default: (False, None).
        """
        return False, None

    def attach_pdf(self, external_id: str, *, filename: str, content: bytes) -> str | None:
        """Attach the SaaS's PDF to a pushed invoice; return the attachment's id.

        :raise NotSupported: where the ledger keeps no attachments on invoices (the default).
        """
        raise NotSupported(f"{self.spec.name} cannot attach a PDF to an invoice", provider=self.provider)

    @abc.abstractmethod
    def find_by_reference(self, kind: str, reference: str) -> PushResult | None:
        """Return the record pushed earlier with our reference, or None."""

    def find_by_references(self, kind: str, references: Sequence[str]) -> dict[str, PushResult]:
        """Return the documents pushed earlier with any of these references, keyed by reference.

        References the ledger has no document for are left out. The default asks once per
        reference; ledgers whose search takes several values ask once per page of them
        (QuickBooks ``DocNumber IN (…)``, bexio ``api_reference in […]``).
        """
        found: dict[str, PushResult] = {}
        for reference in dict.fromkeys(references):
            result = self.find_by_reference(kind, reference)
            if result is not None:
                found[reference] = result
        return found

    # Payments
    @abc.abstractmethod
    def payment_status(self, external_id: str) -> PaymentStatus:
        """Return how much of a pushed invoice is paid."""

    @abc.abstractmethod
    def push_payment(self, draft: PaymentDraft) -> PushResult:
        """Record a payment against a pushed invoice."""

    def find_payment(self, draft: PaymentDraft, *, exclude: Collection[str] = ()) -> PushResult | None:
        """Return the payment an earlier attempt of ``draft`` made in the ledger, or None.

        The default looks it up by our reference. Ledgers whose payments carry no reference of
        ours (bexio) match on invoice, date and amount instead, skipping the ids in ``exclude``
        (payments already recorded for other local payments of the invoice).
        """
        return self.find_by_reference("payment", draft.reference)

    def payment_statuses(self, external_ids: Sequence[str]) -> dict[str, PaymentStatus]:
        """Return the payment status of several pushed invoices, keyed by external id.

        Providers override this with one filtered query per page of ids (quota-friendly); the
        default asks once per invoice. Invoices the ledger no longer has are left out.
        """
        found: dict[str, PaymentStatus] = {}
        for external_id in external_ids:
            try:
                found[external_id] = self.payment_status(external_id)
            except NotFound:
                continue
        return found

    # Reconciliation and back-fill
    def iter_documents(self, kind: str, date_from: date, date_to: date) -> Iterator[LedgerDocument]:
        """Yield the ledger's invoices (``kind="invoice"``) or credit notes dated within the range, page by page.

        :raise NotSupported: for providers that cannot list them (the default).
        """
        raise NotSupported(f"listing {self.spec.name} {kind}s is not available", provider=self.provider)

    def closed_periods(self, date_from: date, date_to: date) -> list[ClosedPeriod]:
        """Return the spans within the range where the ledger refuses new sales documents.

        Exact: financial periods that are closed or missing; QuickBooks: the books' closing date.
        The default knows of none.
        """
        return []

    # Connection checks
    def preflight(self) -> list[Check]:
        """Check read-only that the pinned company can take our invoices (rights, defaults).

        :raise NotSupported: for providers without a preflight (the default).
        """
        raise NotSupported(f"a preflight for {self.spec.name} is not available yet", provider=self.provider)

    def create_test_documents(self, draft: DocumentDraft | None = None) -> TestResult:
        """Create a clearly marked test customer and invoice in the ledger.

        ``draft`` is the invoice to create on the test customer (made from the mappings: item, a
        line per mapped tax rate, journal, payment condition or terms, class); None: the
        simplest invoice the ledger takes. The result carries the totals the ledger answered.

        :raise NotSupported: for providers without a connection test (the default).
        """
        raise NotSupported(f"test documents for {self.spec.name} are not available yet", provider=self.provider)

    def cleanup_test_documents(self, result: TestResult) -> list[str]:
        """Delete what ``create_test_documents`` made, newest first; return the manual steps left."""
        manual = list(result.manual_cleanup)
        for kind, external_id, label in reversed(result.created):
            try:
                step = self._delete_test_document(kind, external_id, label)
            except NotFound:
                step = None  # already gone
            except Rejected as exc:
                step = self._manual_cleanup_step(kind, external_id, label, exc)
            if step:
                manual.append(step)
        return manual

    def _delete_test_document(self, kind: str, external_id: str, label: str | None) -> str | None:
        """Delete one test record; return a manual step when the API cannot remove it."""
        raise NotSupported(f"{self.spec.name} cannot delete a test {kind}", provider=self.provider)

    def _manual_cleanup_step(self, kind: str, external_id: str, label: str | None, error: LedgerError) -> str:
        """Say in words how to remove a test record the API refused to delete."""
        return (
            f"Delete the test {kind} {label or external_id!r} in {self.spec.name} by hand "
            f"({error.provider_text or error})."
        )

    def batch(self, operations: Sequence[BatchOperation], *, looked_up: bool = False) -> list[BatchItemResult]:
        """Run several operations in one call where the provider offers it (QBO: up to 30).

        ``looked_up``: the caller knows the documents to create are not in the ledger (looked up
        already, or never sent before), so they are created without looking for them first.

        :raise NotSupported: for providers without a batch endpoint (the default).
        """
        raise NotSupported(f"{self.spec.name} has no batch endpoint", provider=self.provider)

    # -- shared plumbing for the provider modules -------------------------------------------------

    def _check(self, name: str, probe: Callable[[], tuple[bool, str]]) -> Check:
        """Run one read-only preflight probe; a provider refusal becomes a failed check.

        Lost grants, quotas and outages are raised, not reported: they are not facts about
        the company but about the moment.
        """
        try:
            ok, detail = probe()
        except Rejected as exc:
            return Check(name, False, f"{self.spec.name} refused the check: {exc}", exc.provider_text)
        return Check(name, ok, detail)

    def _not_yet(self, what: str) -> NotSupported:
        """Return the error for a contract method this adapter does not implement yet."""
        return NotSupported(f"{what} is not available yet", provider=self.provider)

    def _token_call(self, form: Mapping[str, str]) -> TokenSet:
        """POST a grant to the token endpoint (client auth per spec), persist and return the tokens.

        A response without a refresh token keeps the previous one (bexio.md §1.3). The new set
        reaches the token updater before anyone can use it (STYLE 19; Exact and bexio rotate).
        """
        data = dict(form)
        auth = None
        if self.spec.tokens.client_auth == "basic":
            auth = (self.client_id, self.client_secret)
        else:
            data.update(client_id=self.client_id, client_secret=self.client_secret)
        response = self.http.post(self.region.token_url, data=data, auth=auth)
        tokens = TokenSet.from_response(response.json(), self.spec.tokens)
        if tokens.refresh_token is None and self.tokens is not None and data["grant_type"] == "refresh_token":
            tokens = _replace_refresh(tokens, self.tokens)
        self._store_tokens(tokens)
        return tokens

    def _refresh_grant(self) -> TokenSet:
        """Refresh with the stored refresh token (the common case of ``refresh``).

        :raise NeedsReauthorization: when there is no refresh token or the provider refuses it.
        """
        if self.tokens is None or not self.tokens.refresh_token:
            raise NeedsReauthorization(
                f"no {self.spec.name} refresh token stored: reconnect",
                reason="no_refresh_token",
                provider=self.provider,
            )
        return self._token_call({"grant_type": "refresh_token", "refresh_token": self.tokens.refresh_token})

    def _store_tokens(self, tokens: TokenSet) -> None:
        self.tokens = tokens
        if self.token_updater is not None:
            self.token_updater(tokens)

    def _access_token(self) -> str:
        """Return a usable access token, refreshing first when the stored one has expired.

        :raise NeedsReauthorization: when the adapter holds no tokens.
        """
        try:
            return self._usable_tokens().access_token
        except NeedsReauthorization as exc:
            self._grant_lost(exc)
            raise

    def _grant_lost(self, exc: NeedsReauthorization) -> None:
        if self.on_grant_lost is not None:
            self.on_grant_lost(exc)

    def _usable_tokens(self) -> TokenSet:
        """Return the token set to call with, refreshed first when its access token has expired.

        :raise NeedsReauthorization: when the adapter holds no tokens.
        """
        tokens = self.tokens
        if tokens is not None and tokens.access_expired() and tokens.refresh_token:
            self._refresh_once(tokens, force=False)
            tokens = self.tokens
        if tokens is None:
            raise NeedsReauthorization(f"not connected to {self.spec.name}", reason="no_tokens", provider=self.provider)
        return tokens

    def _refresh_once(self, seen: TokenSet | None, *, force: bool) -> None:
        """Refresh, unless an adapter sharing this grant already replaced the ``seen`` token set.

        ``force``: the ledger refused ``seen`` (a 401) although its clock says it is valid.
        With a refresher (a stored connection) the refresh goes through it, so that it is the one
        refresh path of every process; threads of one job sharing the grant wait for each other here.
        """
        with self._tokens.lock:
            if self.tokens is not seen:
                return
            if self.refresher is not None:
                self.tokens = self.refresher(seen, force)
            else:
                self.refresh()

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        """Call the API with the access token, refreshing once on ``AuthExpired``; return the JSON.

        Returns None for empty bodies (204, Exact PUT/DELETE). A ``NeedsReauthorization`` from any
        step (refresh or call) reaches ``on_grant_lost`` before it is raised.
        """
        try:
            response = self._send(method, url, **kwargs)
        except NeedsReauthorization as exc:
            self._grant_lost(exc)
            raise
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            # A 2xx that is not JSON (a proxy's HTML page, a cut-off body): the request may have been carried out.
            raise Unavailable(
                f"{self.spec.name} answered with a body that is not JSON "
                f"({response.headers.get('Content-Type') or 'no content type'}, {len(response.content)} bytes)",
                provider=self.provider,
                status=response.status_code,
                provider_text=response.text[:200],
                outcome_unknown=method.upper() != "GET",
            ) from None

    def _send(self, method: str, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("company", self.company_id)
        used = self._usable_tokens()
        try:
            return self.http.request(method, url, token=used.access_token, **kwargs)
        except AuthExpired:
            if self.tokens is None or not self.tokens.refresh_token:
                raise
            self._refresh_once(used, force=True)  # unless an adapter sharing the grant has refreshed it since
            return self.http.request(method, url, token=self.tokens.access_token, **kwargs)


class _SharedTokens:
    """The token set of one grant, held for every adapter that shares it (:meth:`LedgerAdapter.share_state`)."""

    __slots__ = ("lock", "value")

    def __init__(self, value: TokenSet | None) -> None:
        self.value = value
        self.lock = threading.Lock()


def _replace_refresh(tokens: TokenSet, previous: TokenSet) -> TokenSet:
    return replace(tokens, refresh_token=previous.refresh_token, refresh_expires_at=previous.refresh_expires_at)


# -- registry -------------------------------------------------------------------------------------

_REGISTRY: dict[str, type[LedgerAdapter]] = {}

#: Module (under portal.integrations) that defines each provider's adapter.
ADAPTER_MODULES = {
    specs.EXACT_ONLINE: "exact_online",
    specs.QUICKBOOKS: "quickbooks",
    specs.BEXIO: "bexio",
}


def register(provider: str) -> Callable[[type[LedgerAdapter]], type[LedgerAdapter]]:
    """Return a class decorator that registers an adapter for ``provider``.

    :raise UnknownProvider: when ``provider`` has no spec.
    """
    spec = specs.get_spec(provider)

    def decorate(cls: type[LedgerAdapter]) -> type[LedgerAdapter]:
        cls.provider = provider
        cls.spec = spec
        _REGISTRY[provider] = cls
        return cls

    return decorate


def get_adapter_class(provider: str) -> type[LedgerAdapter]:
    """Return the adapter class of ``provider``, importing its module on first use.

    :raise UnknownProvider: for a provider without a spec or without an adapter module yet.
    """
    specs.get_spec(provider)
    if provider not in _REGISTRY:
        module = f"{__package__}.{ADAPTER_MODULES[provider]}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            raise specs.UnknownProvider(f"no adapter for {provider!r} yet ({module} is missing)") from None
    try:
        return _REGISTRY[provider]
    except KeyError:
        raise specs.UnknownProvider(f"{provider!r} has a module but no registered adapter") from None
