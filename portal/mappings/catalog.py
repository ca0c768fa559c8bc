"""What each ledger lets support map, and how its reference data becomes rows: provider facts as data.

A mapping stores the ledger's *code* of a thing, the value a person recognises and types into
a CSV: Exact's VAT code "2" and G/L account "8000", bexio's account number "3200" and tax code
"UN81". QuickBooks has no codes for most lists (items, tax codes, classes, terms are referenced
by Id, quickbooks-online.md §3), so there the Id is the code. Each row keeps the ledger's own id
in ``extra["id"]`` for the sync engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ..integrations import specs
from ..integrations.base import Company, ReferenceItem

Row = dict[str, Any]


@dataclass(frozen=True)
class Field:
    """One mappable field of a provider: what it points at and what counts as right."""

    key: str
    #: The ReferenceData kind its codes come from.
    kind: str
    label: str
    #: Can be set per product (else only as the connection default).
    override: bool = True
    #: An invoice cannot be pushed without a value.
    required: bool = False
    #: Which rows are of the right type; None when every listed row is.
    right_type: Callable[[Row], bool] | None = None
    #: The right type in words, e.g. "a sales journal".
    type_words: str = ""
    help: str = ""

    @property
    def lower_label(self) -> str:
        """Return the label for mid-sentence use; abbreviations stay ("VAT code", "sales tax")."""
        return self.label if self.label[:2].isupper() else self.label[:1].lower() + self.label[1:]


@dataclass(frozen=True)
class ProviderCatalog:
    """The reference kinds to fetch and the fields to map for one provider."""

    #: Stored kind → (adapter kind, label). Order is the fetch and display order.
    kinds: dict[str, tuple[str, str]]
    fields: tuple[Field, ...]

    def field(self, key: str) -> Field | None:
        """Return the field ``key``, or None when this provider has no such field."""
        return next((f for f in self.fields if f.key == key), None)

    @property
    def override_fields(self) -> tuple[Field, ...]:
        """Return the fields a product may override."""
        return tuple(f for f in self.fields if f.override)


def _type_in(*allowed: Any) -> Callable[[Row], bool]:
    wanted = {str(a) for a in allowed}
    return lambda row: str(row.get("type")) in wanted


EXACT = ProviderCatalog(
    kinds={
        "divisions": ("divisions", "Divisions"),
        "items": ("items", "Items"),
        "tax_codes": ("tax_codes", "VAT codes"),
        "gl_accounts": ("all_accounts", "G/L accounts"),
        "journals": ("all_journals", "Journals"),
        "payment_conditions": ("payment_conditions", "Payment conditions"),
    },
    fields=(
        Field("item", "items", "Item", required=True, help="Exact invoice lines need an item."),
        Field(
            "tax_code",
            "tax_codes",
            "VAT code",
            required=True,
            # VATTransactionType S (sales) or B (both), exact-online.md §3.3; P is purchase only.
            right_type=lambda row: row.get("type") in (None, "S", "B"),
            type_words="a sales VAT code",
            help="Without one, Exact's VAT code 2 is used when the division has it.",
        ),
        Field(
            "gl_account",
            "gl_accounts",
            "Revenue G/L account",
            right_type=_type_in(110),
            type_words="a revenue account (type 110)",
            help="Leave empty to book on the item's own revenue account.",
        ),
        Field(
            "journal",
            "journals",
            "Sales journal",
            override=False,
            required=True,
            right_type=_type_in(20),
            type_words="a sales journal (type 20)",
        ),
        Field(
            "payment_condition",
            "payment_conditions",
            "Payment condition",
            override=False,
            help="Exact otherwise takes the customer's own, which customers Ledgerlink creates lack.",
        ),
    ),
)

QUICKBOOKS = ProviderCatalog(
    kinds={
        "preferences": ("preferences", "Preferences"),
        "items": ("items", "Products and services"),
        "tax_codes": ("tax_codes", "Tax codes"),
        "tax_rates": ("tax_rates", "Tax rates"),
        "gl_accounts": ("all_accounts", "Accounts"),
        "classes": ("classes", "Classes"),
        "payment_conditions": ("payment_conditions", "Terms"),
    },
    fields=(
        Field(
            "item",
            "items",
            "Product/service",
            required=True,
            right_type=lambda row: row.get("type") != "Category",
            type_words="a product or service (categories cannot be used in transactions)",
        ),
        Field("tax_code", "tax_codes", "Tax code", help="Required outside the US: every line needs one."),
        Field(
            "gl_account",
            "gl_accounts",
            "Income account",
            right_type=_type_in("Income"),
            type_words="an income account",
            help="Used for products Ledgerlink creates in QuickBooks.",
        ),
        Field("class", "classes", "Class", help="Only when class tracking is on in QuickBooks."),
        Field("payment_condition", "payment_conditions", "Terms", override=False),
    ),
)

BEXIO = ProviderCatalog(
    kinds={
        "items": ("items", "Articles"),
        "tax_codes": ("all_taxes", "Taxes"),
        "gl_accounts": ("all_accounts", "Accounts"),
        "bank_accounts": ("bank_accounts", "Bank accounts"),
        "currencies": ("currencies", "Currencies"),
        "languages": ("languages", "Languages"),
        "payment_conditions": ("payment_conditions", "Payment types"),
    },
    fields=(
        Field("item", "items", "Article", help="Optional: positions are custom positions without one."),
        Field(
            "tax_code",
            "tax_codes",
            "Sales tax",
            required=True,
            right_type=_type_in("sales_tax"),
            type_words="a sales tax",
        ),
        Field(
            "gl_account",
            "gl_accounts",
            "Revenue account",
            required=True,
            right_type=_type_in(1),
            type_words="a revenue account (account type 1)",
        ),
        Field("bank_account", "bank_accounts", "Bank account", override=False, required=True),
        Field("payment_condition", "payment_conditions", "Payment type", override=False),
    ),
)

CATALOGS = {specs.EXACT_ONLINE: EXACT, specs.QUICKBOOKS: QUICKBOOKS, specs.BEXIO: BEXIO}

#: bexio account types (bexio.md §3.7) in words.
_BEXIO_ACCOUNT_TYPES = {1: "revenue", 2: "expense", 3: "asset", 4: "liability", 5: "closing"}
#: bexio kinds referenced by number in the API but known to people by name: the id is the code.
_BEXIO_ID_KINDS = {"bank_accounts", "payment_conditions", "languages"}


def catalog(provider: str) -> ProviderCatalog:
    """Return the provider's catalog.

    :raise KeyError: for a provider without one.
    """
    return CATALOGS[provider]


def _json_safe(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def row_from_item(provider: str, kind: str, item: ReferenceItem) -> Row:
    """Return one ReferenceData row for an adapter's ReferenceItem."""
    details = dict(item.details)
    if provider == specs.QUICKBOOKS or (provider == specs.BEXIO and kind in _BEXIO_ID_KINDS):
        code = item.id
    else:
        code = item.code.strip()
    raw_type = next(
        (
            details.get(k)
            for k in ("type", "Type", "AccountType", "account_type", "transaction_type")
            if details.get(k) is not None
        ),
        None,
    )
    extra = {"id": item.id, **{k: _json_safe(v) for k, v in details.items()}}
    if item.code != code:
        extra["ledger_code"] = item.code
    return {
        "code": code,
        "name": item.name,
        "active": bool(item.active),
        "type": raw_type if isinstance(raw_type, str | int) or raw_type is None else str(raw_type),
        "extra": extra,
    }


def row_from_company(company: Company) -> Row:
    """Return one ``divisions`` row for a company the token can see."""
    return {
        "code": company.id,
        "name": company.name,
        "active": company.accessible,
        "type": None,
        "extra": {"reason": company.reason, "country": company.country, "currency": company.currency},
    }


def describe_type(provider: str, row: Mapping[str, Any]) -> str:
    """Return a row's type in words, e.g. "a Bank account", "a general journal (type 90)"."""
    extra = row.get("extra") or {}
    kind_type = row.get("type")
    if provider == specs.BEXIO and isinstance(kind_type, int):
        word = _BEXIO_ACCOUNT_TYPES.get(kind_type, "other")
        article = "an" if word[0] in "aeiou" else "a"
        return f"{article} {word} account (account type {kind_type})"
    if provider == specs.BEXIO and kind_type:
        return f"a {str(kind_type).replace('_', ' ')}"
    if provider == specs.QUICKBOOKS:
        if kind_type == "Category":
            return "a category"
        return f"a {kind_type} account" if extra.get("AccountType") else f"of type {kind_type}"
    words = extra.get("type_description")
    return f"of type {kind_type}" + (f" ({words})" if words else "")


def label(row: Mapping[str, Any] | None, code: str | None = None) -> str:
    """Return "code name" of a row (or the bare code when the row is unknown)."""
    if row is None:
        return f"“{code}”" if code else "—"
    name = row.get("name") or ""
    return f"{row['code']} {name}".strip() if name and name != row["code"] else str(row["code"])


def tax_rate_of(provider: str, row: Mapping[str, Any]) -> Decimal | None:
    """Return a tax code row's percentage as the ledger keeps it, or None when it gives none.

    Exact keeps fractions (``Percentage`` 0.21, exact-online.md §3.3), QuickBooks the sum of the
    code's sales TaxRates (read by the adapter as ``rate``), bexio the tax's ``value`` (8.1).
    """
    extra = row.get("extra") or {}
    raw = extra.get("value") if provider == specs.BEXIO else extra.get("rate")
    if raw in (None, ""):
        return None
    try:
        rate = Decimal(str(raw))
    except InvalidOperation:
        return None
    return (rate * 100 if provider == specs.EXACT_ONLINE else rate).normalize()
