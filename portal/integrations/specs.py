"""Provider facts as data: hosts per region, OAuth endpoints, token rules, quotas, capabilities.

Like Nango's ``providers.yaml`` (STYLE 16), nothing here is behaviour: adapters and the HTTP
layer read these records. Every value cites its provider document in ``docs/providers/``.

Production and sandbox differ only by a *host map*: ``{"https://start.exactonline.nl":
"http://127.0.0.1:5050/exact-online/nl", ...}``. Code always builds the real https URL and
passes it through :meth:`HostMap.resolve` at the last moment (``http.LedgerHttp`` does this).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from types import MappingProxyType
from urllib.parse import urlsplit, urlunsplit

from .totals import TaxArithmetic, TaxBasis

EXACT_ONLINE = "exact-online"
QUICKBOOKS = "quickbooks"
BEXIO = "bexio"


class UnknownProvider(LookupError):
    """A provider key that has no spec (and so no adapter)."""


class UnknownRegion(LookupError):
    """A region key the provider does not have."""


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Region:
    """One provider instance: tokens are bound to it (exact-online.md §1.1)."""

    key: str
    name: str
    authorize_url: str
    token_url: str
    #: None where the provider has no revocation endpoint (exact-online.md §1.5).
    revoke_url: str | None
    #: REST root; ``{company}`` is replaced by the external company id where the path needs it.
    api_base: str
    userinfo_url: str | None = None


@dataclass(frozen=True)
class TokenRules:
    """How long tokens live and how refreshing behaves."""

    #: Access-token lifetime the provider documents (always prefer the response's expires_in).
    access_ttl: timedelta
    #: Exact sends ``"expires_in": "600"`` as a JSON string (exact-online.md §1.4).
    expires_in_is_string: bool
    #: Earliest refresh after the access token was issued; earlier is refused (exact-online.md §1.5).
    refresh_not_before: timedelta | None
    #: "every_refresh" (old one dies at once) or "daily" (same value within ~24 h, quickbooks-online.md §1).
    refresh_rotation: str
    #: An unused refresh token dies after this long (None: unknown / not documented).
    refresh_idle_expiry: timedelta | None
    #: Hard cap on a refresh token's life regardless of use (quickbooks-online.md §1: 5 years).
    refresh_max_age: timedelta | None
    #: Where the client credentials go on the token endpoint: "body" or "basic".
    client_auth: str
    #: PKCE with S256 is supported and used.
    pkce: bool
    #: Token-endpoint calls allowed per app and user per day (exact-online.md §1.5: 200).
    token_calls_per_day: int | None = None


@dataclass(frozen=True)
class QuotaHeaders:
    """Names of one quota window's response headers and the unit of its reset value."""

    limit: str
    remaining: str
    reset: str
    #: "epoch_ms" (Exact: absolute, milliseconds) or "seconds" (bexio: seconds until reset).
    reset_unit: str


@dataclass(frozen=True)
class Quotas:
    """Request budgets and the headers that report them."""

    #: What one budget is counted per: "division", "realm" or "company".
    per: str
    per_minute: int
    per_day: int | None = None
    concurrent: int | None = None
    batch_per_minute: int | None = None
    minute_headers: QuotaHeaders | None = None
    day_headers: QuotaHeaders | None = None
    #: Wait after a 429 that carries no reset header (quickbooks-online.md §5: 60 s).
    default_retry_after: timedelta = timedelta(seconds=60)
    #: Routes counted in a minute budget of their own, with its limit: group name → calls per minute.
    route_limits: Mapping[str, int] = field(default_factory=dict)

    def route_group(self, url: str) -> str | None:
        """Return the budget group of a call to ``url`` when its route has a budget of its own, else None."""
        if not self.route_limits:
            return None
        path = urlsplit(url).path
        if path.endswith("/search") and not any(f"/2.0/{name}/" in path for name in ("accounts", "country")):
            group = "search"
        elif path.endswith("/pdf"):
            group = "pdf"
        elif "/2.0/article" in path:
            group = "article"
        else:
            return None
        return group if group in self.route_limits else None


@dataclass(frozen=True)
class Timeouts:
    """Per-provider requests timeouts in seconds."""

    connect: float = 5.0
    read: float = 60.0

    def as_tuple(self) -> tuple[float, float]:
        """Return the (connect, read) pair requests expects."""
        return (self.connect, self.read)


@dataclass(frozen=True)
class Capabilities:
    """What the adapter can do with this provider; the UI and jobs branch on these, not on names."""

    credit_notes: bool
    #: Maximum operations per batch call, or None when the provider has no batch endpoint.
    batch_size: int | None
    #: Ledger calls a new invoice costs when the SaaS sends it (create and the steps after it; a batch
    #: call counted per invoice in it), as tests/portal/sync/test_calls_per_document.py measures.
    #: Backlog estimates use it until the operation log has measured a connection's own figure.
    calls_per_invoice: float
    pkce: bool
    send_invoice: bool
    pdf_attachment: bool
    #: Field that carries our own reference, used to find a pushed record again.
    reference_field: str
    #: Query parameter that makes a create idempotent, if the provider has one (quickbooks-online.md §2.4).
    idempotency_param: str | None
    revoke: bool


@dataclass(frozen=True)
class ProviderSpec:
    """Everything the code needs to know about one provider, as data."""

    key: str
    name: str
    fact_sheet: str
    regions: Mapping[str, Region]
    default_region: str
    #: OAuth scopes requested at consent (space-joined); empty when set on the app registration.
    scopes: tuple[str, ...]
    tokens: TokenRules
    quotas: Quotas
    page_size: int
    max_page_size: int
    bulk_page_size: int | None
    timeouts: Timeouts
    capabilities: Capabilities
    #: How the ledger rounds a document's net, tax and total (``totals.ledger_totals``).
    arithmetic: TaxArithmetic
    #: Query parameters sent on every API call (quickbooks-online.md §2.1: minorversion).
    api_params: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    #: Headers sent on every API call, whatever the caller passes (Exact answers Atom XML, not
    #: JSON, to a request without ``Accept: application/json``, exact-online.md §3.0).
    api_headers: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    #: Real origin → path prefix of that host in the sandbox (sandbox/README.md).
    sandbox_prefixes: Mapping[str, str] = field(default_factory=lambda: _frozen({}))

    def region(self, key: str | None = None) -> Region:
        """Return a region by key, the default one when ``key`` is None.

        :raise UnknownRegion: when the provider has no such region.
        """
        key = key or self.default_region
        try:
            return self.regions[key]
        except KeyError:
            raise UnknownRegion(f"{self.key} has no region {key!r} (known: {', '.join(self.regions)})") from None

    @property
    def scope(self) -> str:
        """Return the scopes as the space-joined ``scope`` parameter."""
        return " ".join(self.scopes)


# -- Exact Online (exact-online.md) ---------------------------------------------------------------

#: region key → (name, real host, sandbox prefix) (exact-online.md §1.1, sandbox/README.md).
_EXACT_SITES = {
    "nl": ("Netherlands", "start.exactonline.nl"),
    "be": ("Belgium", "start.exactonline.be"),
    "de": ("Germany", "start.exactonline.de"),
    "uk": ("United Kingdom", "start.exactonline.co.uk"),
    "us": ("United States", "start.exactonline.com"),
    "es": ("Spain", "start.exactonline.es"),
    "fr": ("France", "start.exactonline.fr"),
}


def _exact_region(key: str, name: str, host: str) -> Region:
    origin = f"https://{host}"
    return Region(
        key=key,
        name=name,
        # Same host serves OAuth and REST (exact-online.md §1.2); no revocation endpoint exists (§1.5).
        authorize_url=f"{origin}/api/oauth2/auth",
        token_url=f"{origin}/api/oauth2/token",
        revoke_url=None,
        api_base=f"{origin}/api/v1",
    )


EXACT_ONLINE_SPEC = ProviderSpec(
    key=EXACT_ONLINE,
    name="Exact Online",
    fact_sheet="exact-online.md",
    regions=_frozen({key: _exact_region(key, name, host) for key, (name, host) in _EXACT_SITES.items()}),
    default_region="nl",
    # No scope parameter: scopes live on the app registration (exact-online.md §1.3).
    scopes=(),
    tokens=TokenRules(
        access_ttl=timedelta(seconds=600),
        expires_in_is_string=True,
        refresh_not_before=timedelta(seconds=570),
        refresh_rotation="every_refresh",
        refresh_idle_expiry=timedelta(days=30),
        refresh_max_age=None,
        client_auth="body",
        pkce=False,
        token_calls_per_day=200,
    ),
    quotas=Quotas(
        per="division",
        per_minute=60,
        per_day=5000,
        # Both resets are absolute epoch milliseconds (exact-online.md §5).
        minute_headers=QuotaHeaders(
            "X-RateLimit-Minutely-Limit",
            "X-RateLimit-Minutely-Remaining",
            "X-RateLimit-Minutely-Reset",
            "epoch_ms",
        ),
        day_headers=QuotaHeaders("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "epoch_ms"),
    ),
    page_size=60,
    max_page_size=60,
    bulk_page_size=1000,
    timeouts=Timeouts(connect=5.0, read=60.0),
    capabilities=Capabilities(
        credit_notes=True,
        batch_size=None,
        calls_per_invoice=4.0,
        pkce=False,
        send_invoice=True,
        pdf_attachment=True,
        reference_field="YourRef",
        idempotency_param=None,
        revoke=False,
    ),
    api_headers=_frozen({"Accept": "application/json"}),
    # Lines: AmountFC = Quantity x NetPrice in cents (exact-online.md §3.7); the invoice's VAT per VAT code is the
    # code's lines' VAT together, rounded once (Exact's "grouped" VAT sum, as integrators such as
    # QICS name it); Percentage is a fraction with 4 decimals, i.e. 2 in percent [U].
    arithmetic=TaxArithmetic(
        line_net_rounded=True,
        tax_basis=TaxBasis.CODE,
        rate_places=2,
        words="Exact Online computes the VAT of each VAT code on the total of its lines and rounds it once",
    ),
    sandbox_prefixes=_frozen({f"https://{host}": f"/exact-online/{key}" for key, (_, host) in _EXACT_SITES.items()}),
)

# -- QuickBooks Online (quickbooks-online.md) -----------------------------------------------------

_QBO_OAUTH = {
    # Same OAuth endpoints for Intuit's development and production companies (quickbooks-online.md §1).
    "authorize_url": "https://appcenter.intuit.com/connect/oauth2",
    "token_url": "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
    "revoke_url": "https://developer.api.intuit.com/v2/oauth2/tokens/revoke",
}

QUICKBOOKS_SPEC = ProviderSpec(
    key=QUICKBOOKS,
    name="QuickBooks Online",
    fact_sheet="quickbooks-online.md",
    regions=_frozen(
        {
            "production": Region(
                key="production",
                name="Production",
                api_base="https://quickbooks.api.intuit.com/v3/company/{company}",
                userinfo_url="https://accounts.platform.intuit.com/v1/openid_connect/userinfo",
                **_QBO_OAUTH,
            ),
            # Intuit's own development companies (Nango's "quickbooks-sandbox" alias, quickbooks-online.md §2.1).
            "development": Region(
                key="development",
                name="Intuit development company",
                api_base="https://sandbox-quickbooks.api.intuit.com/v3/company/{company}",
                userinfo_url="https://sandbox-accounts.platform.intuit.com/v1/openid_connect/userinfo",
                **_QBO_OAUTH,
            ),
        }
    ),
    default_region="production",
    scopes=("com.intuit.quickbooks.accounting",),
    tokens=TokenRules(
        access_ttl=timedelta(seconds=3600),
        expires_in_is_string=False,
        refresh_not_before=None,
        # The same RT value comes back for ~24 h, then a new one (quickbooks-online.md §1 "RT value rotation").
        refresh_rotation="daily",
        refresh_idle_expiry=timedelta(seconds=8_726_400),
        refresh_max_age=timedelta(days=5 * 365),
        client_auth="basic",
        pkce=False,
    ),
    quotas=Quotas(
        per="realm",
        per_minute=500,
        concurrent=10,
        batch_per_minute=40,
        # QBO sends no quota headers; a 429 means wait 60 s (quickbooks-online.md §5).
        default_retry_after=timedelta(seconds=60),
    ),
    page_size=1000,
    max_page_size=1000,
    bulk_page_size=None,
    # QBO cancels requests after 120 s (quickbooks-online.md §5); wait a little longer to see its answer.
    timeouts=Timeouts(connect=5.0, read=125.0),
    capabilities=Capabilities(
        credit_notes=True,
        batch_size=30,
        calls_per_invoice=1 / 30,
        pkce=False,
        send_invoice=True,
        pdf_attachment=True,
        reference_field="DocNumber",
        idempotency_param="requestid",
        revoke=True,
    ),
    # Line Amount = Qty x UnitPrice rounded half-up (quickbooks-online.md §3 Invoice, 6070); TxnTaxDetail has one
    # TaxLine per rate on the NetAmountTaxable of its lines (quickbooks-online.md §6); rates like 8.875 % exist.
    arithmetic=TaxArithmetic(
        line_net_rounded=True,
        tax_basis=TaxBasis.CODE,
        rate_places=4,
        words="QuickBooks computes each tax rate on the total of the lines it taxes and rounds it once",
    ),
    # Everything is served as 75 since 2025-08-01 (quickbooks-online.md §2.1); sending it keeps old gateways honest.
    api_params=_frozen({"minorversion": "75"}),
    sandbox_prefixes=_frozen(
        {
            "https://appcenter.intuit.com": "/quickbooks/appcenter",
            "https://oauth.platform.intuit.com": "/quickbooks/oauth",
            "https://developer.api.intuit.com": "/quickbooks/developer",
            "https://developer.intuit.com": "/quickbooks/developer",
            "https://quickbooks.api.intuit.com": "/quickbooks/api",
            "https://sandbox-quickbooks.api.intuit.com": "/quickbooks/api",
            "https://accounts.platform.intuit.com": "/quickbooks/oauth",
            "https://sandbox-accounts.platform.intuit.com": "/quickbooks/oauth",
        }
    ),
)

# -- bexio (bexio.md) -----------------------------------------------------------------------------

_BEXIO_OIDC = "https://auth.bexio.com/realms/bexio/protocol/openid-connect"

BEXIO_SPEC = ProviderSpec(
    key=BEXIO,
    name="bexio",
    fact_sheet="bexio.md",
    regions=_frozen(
        {
            "ch": Region(
                key="ch",
                name="Switzerland",
                authorize_url=f"{_BEXIO_OIDC}/auth",
                token_url=f"{_BEXIO_OIDC}/token",
                revoke_url=f"{_BEXIO_OIDC}/revoke",
                api_base="https://api.bexio.com",
                userinfo_url=f"{_BEXIO_OIDC}/userinfo",
            )
        }
    ),
    default_region="ch",
    # Minimal set for contacts, invoices, payments, reference data (bexio.md §1.2); offline_access
    # is what makes a refresh token appear at all (bexio.md §1.3).
    scopes=(
        "openid",
        "profile",
        "email",
        "offline_access",
        "contact_edit",
        "kb_invoice_edit",
        "article_show",
        "accounting",
        "bank_account_show",
    ),
    tokens=TokenRules(
        access_ttl=timedelta(seconds=3600),
        expires_in_is_string=False,
        refresh_not_before=None,
        refresh_rotation="every_refresh",
        refresh_idle_expiry=timedelta(days=365),
        refresh_max_age=None,
        client_auth="body",
        pkce=True,
    ),
    quotas=Quotas(
        per="company",
        per_minute=1000,
        # ratelimit-reset is seconds until the 60 s window ends (bexio.md §5).
        minute_headers=QuotaHeaders("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "seconds"),
        # The recorded ratelimit-limit headers differ per route: searches and PDFs 250, articles 400,
        # everything else 1000 (bexio.md §5), each its own window.
        route_limits=MappingProxyType({"search": 250, "pdf": 250, "article": 400}),
    ),
    page_size=500,
    max_page_size=2000,
    bulk_page_size=None,
    timeouts=Timeouts(connect=5.0, read=60.0),
    capabilities=Capabilities(
        # No public kb_credit_voucher API (bexio.md §3.6).
        credit_notes=False,
        batch_size=None,
        calls_per_invoice=2.0,
        pkce=True,
        send_invoice=True,
        pdf_attachment=False,
        reference_field="api_reference",
        idempotency_param=None,
        revoke=True,
    ),
    # position_total = amount x unit_price unrounded; taxes per rate unrounded, total_taxes to 4
    # decimals; total rounded to the currency's round_factor, CHF 0.05 (bexio.md §3.2 totals, §8).
    arithmetic=TaxArithmetic(
        line_net_rounded=False,
        tax_basis=TaxBasis.RATE_UNROUNDED,
        tax_places=4,
        cash_rounding=MappingProxyType({"CHF": Decimal("0.05")}),
        rate_places=2,
        words="bexio computes each rate's tax on the unrounded total of its positions and rounds the "
        "invoice's total to 0.05 CHF",
    ),
    sandbox_prefixes=_frozen({"https://auth.bexio.com": "/bexio/auth", "https://api.bexio.com": "/bexio/api"}),
)

PROVIDERS: Mapping[str, ProviderSpec] = _frozen(
    {spec.key: spec for spec in (EXACT_ONLINE_SPEC, QUICKBOOKS_SPEC, BEXIO_SPEC)}
)


def get_spec(provider: str) -> ProviderSpec:
    """Return the spec of ``provider``.

    :raise UnknownProvider: when there is none.
    """
    try:
        return PROVIDERS[provider]
    except KeyError:
        raise UnknownProvider(f"unknown provider {provider!r} (known: {', '.join(PROVIDERS)})") from None


# -- host maps ------------------------------------------------------------------------------------


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


@dataclass(frozen=True)
class HostMap:
    """Rewrites real provider origins to configured bases; empty means production (identity)."""

    bases: Mapping[str, str] = field(default_factory=lambda: _frozen({}))

    def __post_init__(self) -> None:
        normalised = {}
        for origin, base in self.bases.items():
            parts = urlsplit(origin)
            if parts.scheme != "https" or not parts.netloc or parts.path not in ("", "/"):
                raise ValueError(f"host map keys are bare https origins, got {origin!r}")
            normalised[_origin(origin)] = base.rstrip("/")
        object.__setattr__(self, "bases", _frozen(normalised))

    def resolve(self, url: str) -> str:
        """Return ``url`` with its origin replaced by the configured base (unchanged if unmapped)."""
        base = self.bases.get(_origin(url))
        if base is None:
            return url
        parts = urlsplit(url)
        target = urlsplit(base)
        return urlunsplit((target.scheme, target.netloc, target.path + parts.path, parts.query, parts.fragment))

    def to_real(self, url: str) -> str:
        """Return the real https URL behind a resolved ``url`` (inverse of :meth:`resolve`)."""
        # Longest base first, so "/quickbooks/api" never shadows a longer, more specific base.
        for origin, base in sorted(self.bases.items(), key=lambda item: -len(item[1])):
            if url == base or url.startswith(base + "/") or url.startswith(base + "?"):
                return origin + url[len(base) :]
        return url


def base_urls(host_map: Mapping[str, str] | None = None) -> HostMap:
    """Return a :class:`HostMap` over ``host_map`` (None or empty: the real providers)."""
    return HostMap(_frozen(host_map or {}))


def sandbox_host_map(sandbox_base_url: str) -> dict[str, str]:
    """Return the full host map that points every provider host at one sandbox base URL."""
    root = sandbox_base_url.rstrip("/")
    return {origin: root + prefix for spec in PROVIDERS.values() for origin, prefix in spec.sandbox_prefixes.items()}


def host_map_from_config(config: Mapping) -> HostMap:
    """Return the host map for an app config: ``SANDBOX_URL`` set means the sandbox, else real hosts."""
    sandbox_url = config.get("SANDBOX_URL") or ""
    return base_urls(sandbox_host_map(sandbox_url) if sandbox_url else None)


def resolve(url: str, host_map: HostMap | Mapping[str, str] | None = None) -> str:
    """Return ``url`` rewritten through ``host_map`` (a HostMap or a plain mapping)."""
    hosts = host_map if isinstance(host_map, HostMap) else base_urls(host_map)
    return hosts.resolve(url)
