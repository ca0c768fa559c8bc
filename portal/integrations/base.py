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
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from . import specs

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


@dataclass(frozen=True)
class CustomerQuery:
    """Look up ledger customers by one key: "id", "code", "vat", "email" or "name"."""

    by: str
    value: str

    def __post_init__(self) -> None:
        if self.by not in ("id", "code", "vat", "email", "name"):
            raise ValueError(f"cannot look customers up by {self.by!r}")


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


@dataclass(frozen=True)
class CustomerDraft:
    """A customer to create in the ledger."""

    reference: str
    name: str
    email: str | None = None
    vat_number: str | None = None
    country: str | None = None
    address_lines: tuple[str, ...] = ()
    postcode: str | None = None
    city: str | None = None
    is_person: bool = False


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


@dataclass(frozen=True)
class PaymentStatus:
    """How much of an invoice is still open in the ledger."""

    external_id: str
    paid: bool
    amount_open: Decimal
    amount_total: Decimal | None = None
    state: str = ""


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


TokenUpdater = Callable[[TokenSet], None]


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
    ) -> None:
        self.http = http
        self.client_id = client_id
        self.client_secret = client_secret
        self.region = self.spec.region(region)
        self.company_id = company_id
        self.tokens = tokens
        # Rotated tokens are persisted the moment they arrive (STYLE 19).
        self.token_updater = token_updater

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
    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str | None = None) -> TokenSet:
        """Trade an authorization code for tokens."""

    @abc.abstractmethod
    def refresh(self) -> TokenSet:
        """Refresh the access token, hand the new set to the token updater, and return it."""

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

    @abc.abstractmethod
    def create_customer(self, draft: CustomerDraft) -> LedgerCustomer:
        """Create a customer in the ledger."""

    # Documents
    @abc.abstractmethod
    def push_invoice(self, draft: DocumentDraft) -> PushResult:
        """Create an invoice (lines, PDF) in the ledger."""

    @abc.abstractmethod
    def push_credit_note(self, draft: DocumentDraft) -> PushResult:
        """Create a credit note, or raise NotSupported where the provider has none."""

    @abc.abstractmethod
    def send_invoice(self, external_id: str, *, email: str | None = None) -> None:
        """Have the ledger e-mail the invoice to the customer."""

    @abc.abstractmethod
    def find_by_reference(self, kind: str, reference: str) -> PushResult | None:
        """Return the record pushed earlier with our reference, or None."""

    # Payments
    @abc.abstractmethod
    def payment_status(self, external_id: str) -> PaymentStatus:
        """Return how much of a pushed invoice is paid."""

    @abc.abstractmethod
    def push_payment(self, draft: PaymentDraft) -> PushResult:
        """Record a payment against a pushed invoice."""

    def batch(self, operations: Sequence[BatchOperation]) -> list[BatchItemResult]:
        """Run several operations in one call where the provider offers it (QBO: up to 30).

        :raise NotSupported: for providers without a batch endpoint (the default).
        """
        raise NotSupported(f"{self.spec.name} has no batch endpoint", provider=self.provider)


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
