"""Field definitions of the ingestion API: one source for the validator and the OpenAPI schemas.

Numbers arrive as JSON numbers or decimal strings and are parsed exactly (never through float).
Every problem of a body is collected (not only the first), each with a JSON-pointer-like path,
e.g. ``lines[2].quantity: must be a number ≥ 0``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, TypedDict

#: Largest integer the database keeps (INTEGER is 32-bit in PostgreSQL).
INT_MAX = 2**31 - 1
#: Control characters no text field may hold (PostgreSQL refuses NUL); tab and line breaks are fine.
_CONTROL_CLASS = r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]"
_CONTROL = re.compile(_CONTROL_CLASS)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
ANY_TEXT = r"[\s\S]*"
#: Largest PDF accepted (decoded bytes).
PDF_MAX_BYTES = 5 * 1024 * 1024
#: Length of the SaaS's ids (path segments and references).
ID_MAX = 64

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Dates a billing record may carry (the ledgers refuse, or misfile, anything outside).
DATE_MIN, DATE_MAX = date(1970, 1, 1), date(2099, 12, 31)
#: Most lines a document may have (the ledgers cap them lower or slow to a crawl above).
MAX_LINES = 1000


@dataclass(frozen=True)
class Field:
    """One JSON field: its type and constraints, the validator and the OpenAPI schema read both."""

    kind: str  # string, integer, number, date, boolean, enum, pdf, array
    description: str = ""
    required: bool = False
    nullable: bool = False
    max_length: int | None = None
    pattern: str | None = None
    pattern_words: str = ""
    minimum: Decimal | None = None
    exclusive_minimum: bool = False
    maximum: Decimal | None = None
    #: Decimal places a number may have (the column's scale).
    places: int | None = None
    choices: tuple[str, ...] = ()
    #: For arrays: the fields of each item (an object), and the least number of items.
    items: dict[str, Field] | None = None
    min_items: int = 0
    max_items: int | None = None
    not_empty: bool = False
    #: Words added to a number's bounds in its message (what a wrong value usually means).
    hint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    # -- OpenAPI --------------------------------------------------------------------------------
    def schema(self) -> dict[str, Any]:
        """Return the JSON Schema (OpenAPI 3.1) of the field."""
        s: dict[str, Any]
        if self.kind == "string" or self.kind == "pdf":
            s = {"type": "string"}
            if self.max_length:
                s["maxLength"] = self.max_length
            if self.not_empty:
                s["minLength"] = 1
            if self.kind == "string":
                # JSON Schema patterns match anywhere in the string; the validator matches the whole
                # value, and refuses control characters whatever the field's own pattern.
                own = self.pattern or ANY_TEXT
                s["pattern"] = f"^(?!{ANY_TEXT}{_CONTROL_CLASS})(?:{own})$"
            if self.kind == "pdf":
                s["contentEncoding"] = "base64"
                s["contentMediaType"] = "application/pdf"
        elif self.kind == "date":
            s = {"type": "string", "format": "date", "description": f"From {DATE_MIN} to {DATE_MAX}."}
        elif self.kind == "integer":
            s = {"type": "integer", "maximum": INT_MAX}
            if self.minimum is not None:
                s["minimum"] = int(self.minimum)
        elif self.kind == "number":
            number: dict[str, Any] = {"type": "number"}
            if self.minimum is not None:
                number["exclusiveMinimum" if self.exclusive_minimum else "minimum"] = float(self.minimum)
            if self.maximum is not None:
                number["maximum"] = float(self.maximum)
            s = {"anyOf": [number, {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}]}
        elif self.kind == "boolean":
            s = {"type": "boolean"}
        elif self.kind == "enum":
            s = {"type": "string", "enum": list(self.choices)}
        elif self.kind == "array":
            s = {"type": "array", "items": object_schema(self.items or {}), "minItems": self.min_items}
            if self.max_items is not None:
                s["maxItems"] = self.max_items
        else:  # pragma: no cover - a definition error
            raise ValueError(self.kind)
        if self.description:
            s["description"] = self.description
        if self.nullable:
            s = (
                {"anyOf": [s, {"type": "null"}]}
                if "anyOf" not in s
                else {**s, "anyOf": [*s["anyOf"], {"type": "null"}]}
            )
        return s

    # -- validation -----------------------------------------------------------------------------
    def number_words(self) -> str:
        """Say what number is wanted, e.g. 'a number ≥ 0'."""
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{'>' if self.exclusive_minimum else '≥'} {self.minimum}")
        if self.maximum is not None:
            bounds.append(f"≤ {self.maximum}")
        hint = f" ({self.hint})" if self.hint else ""
        return "a number" + (" " + " and ".join(bounds) if bounds else "") + hint

    def clean(self, value: Any, path: str, problems: list[dict[str, str]]) -> Any:
        """Return the value in Python form, or add a problem at ``path`` (and return None)."""

        def bad(message: str) -> None:
            problems.append({"path": path, "message": message})

        if value is None:
            if not self.nullable:
                bad("is required" if self.required else "must not be null")
            return None
        if self.kind in ("string", "pdf", "enum", "date") and not isinstance(value, str):
            wanted = {"string": "a string", "pdf": "a base64 string", "enum": "a string", "date": "a date"}
            return bad(f"must be {wanted[self.kind]}" + (" (YYYY-MM-DD)" if self.kind == "date" else ""))
        if self.kind == "string":
            if _CONTROL.search(value):
                return bad("must not contain control characters (such as NUL); remove them")
            if _SURROGATE.search(value):
                return bad("must be valid text (it holds a lone UTF-16 surrogate such as \\ud800)")
            if self.not_empty and not value.strip():
                return bad("must not be empty")
            if self.max_length and len(value) > self.max_length:
                return bad(f"must have at most {self.max_length} characters")
            if self.pattern and not re.fullmatch(self.pattern, value):
                return bad(f"must be {self.pattern_words}")
            return value
        if self.kind == "enum":
            if value not in self.choices:
                return bad(f"must be one of {', '.join(self.choices)}")
            return value
        if self.kind == "date":
            try:
                if not _DATE.match(value):
                    raise ValueError(value)
                day = date.fromisoformat(value)
            except ValueError:
                return bad("must be a date (YYYY-MM-DD)")
            if not DATE_MIN <= day <= DATE_MAX:
                return bad(f"must be a date from {DATE_MIN} to {DATE_MAX}")
            return day
        if self.kind == "pdf":
            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return bad("must be base64 (RFC 4648)")
            if len(data) > PDF_MAX_BYTES:
                return bad(f"must be at most {PDF_MAX_BYTES} bytes (decoded)")
            if not data.startswith(b"%PDF-"):
                return bad("must be a PDF (starting with %PDF-)")
            return data
        if self.kind == "boolean":
            if not isinstance(value, bool):
                return bad("must be true or false")
            return value
        if self.kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                return bad("must be an integer")
            if self.minimum is not None and value < self.minimum:
                return bad(f"must be an integer ≥ {self.minimum}")
            if value > INT_MAX:
                return bad(f"must be an integer ≤ {INT_MAX}")
            return value
        if self.kind == "number":
            return self._number(value, bad)
        if self.kind == "array":
            if not isinstance(value, list):
                return bad("must be an array")
            if len(value) < self.min_items:
                return bad(f"must have at least {self.min_items} item(s)")
            if self.max_items is not None and len(value) > self.max_items:
                return bad(f"must have at most {self.max_items} items")
            return [clean_object(item, self.items or {}, f"{path}[{i}]", problems) for i, item in enumerate(value)]
        raise ValueError(self.kind)  # pragma: no cover

    def _number(self, value: Any, bad) -> Decimal | None:
        words = self.number_words()
        if isinstance(value, bool):
            return bad(f"must be {words}")
        if isinstance(value, int | Decimal):
            number = Decimal(value)
        elif isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value.strip()):
            try:
                number = Decimal(value.strip())
            except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
                return bad(f"must be {words}")
        else:
            return bad(f"must be {words}")
        if not number.is_finite():
            return bad(f"must be {words}")
        if self.minimum is not None and (number <= self.minimum if self.exclusive_minimum else number < self.minimum):
            return bad(f"must be {words}")
        if self.maximum is not None and number > self.maximum:
            return bad(f"must be {words}")
        if abs(number) >= Decimal(10) ** 10:
            return bad("must be less than 10000000000 in size")
        if self.places is not None and number != number.quantize(
            Decimal(1).scaleb(-self.places), rounding="ROUND_DOWN"
        ):
            return bad(f"must have at most {self.places} decimals")
        return number.quantize(Decimal(1).scaleb(-(self.places or 4)))


def object_schema(fields: dict[str, Field]) -> dict[str, Any]:
    """Return the JSON Schema of an object with ``fields`` (no other properties)."""
    return {
        "type": "object",
        "properties": {name: f.schema() for name, f in fields.items()},
        "required": [name for name, f in fields.items() if f.required],
        "additionalProperties": False,
    }


def clean_object(data: Any, fields: dict[str, Field], path: str, problems: list[dict[str, str]]) -> dict[str, Any]:
    """Return ``data`` with each field cleaned; add a problem per unknown, missing or invalid field.

    Absent optional fields are absent from the result (callers tell "absent" from "null").
    """
    prefix = f"{path}." if path else ""
    if not isinstance(data, dict):
        problems.append({"path": path or "(body)", "message": "must be an object"})
        return {}
    out: dict[str, Any] = {}
    for name in data:
        if name not in fields:
            problems.append({"path": f"{prefix}{name}", "message": "is not a known field"})
    for name, f in fields.items():
        if name not in data:
            if f.required:
                problems.append({"path": f"{prefix}{name}", "message": "is required"})
            continue
        out[name] = f.clean(data[name], f"{prefix}{name}", problems)
    return out


# -- the resources ------------------------------------------------------------------------------


class _Pattern(TypedDict):
    """A string field's pattern and the words its message uses for it."""

    pattern: str
    pattern_words: str


class _Bounds(TypedDict):
    """A number field's bounds and decimal places."""

    minimum: Decimal
    maximum: Decimal
    places: int


_COUNTRY: _Pattern = {"pattern": "[A-Z]{2}", "pattern_words": "an ISO 3166-1 alpha-2 country code (e.g. NL)"}
_CURRENCY: _Pattern = {"pattern": "[A-Z]{3}", "pattern_words": "an ISO 4217 currency code (e.g. EUR)"}
_ID = {"max_length": ID_MAX, "not_empty": True}
_ZERO = Decimal(0)
_RATE: _Bounds = {"minimum": _ZERO, "maximum": Decimal(100), "places": 3}
#: The tax kinds a line may name (portal.models.billing.TaxKind).
TAX_KINDS = ("standard", "reduced", "zero", "exempt", "reverse_charge", "outside_scope")
#: The kinds of a line at 0 %; a positive rate is standard or reduced.
ZERO_TAX_KINDS = ("zero", "exempt", "reverse_charge", "outside_scope")


def _s(max_length: int, description: str = "", **kw: Any) -> Field:
    return Field("string", description, max_length=max_length, **kw)


CUSTOMER_FIELDS: dict[str, Field] = {
    "name": _s(200, "Name of the customer.", required=True, not_empty=True),
    "email": _s(
        254, "Where invoices go.", nullable=True, pattern=r"[^@\s]+@[^@\s]+", pattern_words="an e-mail address"
    ),
    "vat_number": _s(32, "VAT number as typed.", nullable=True),
    "coc_number": _s(32, "Company registration number.", nullable=True),
    "street": _s(200, nullable=True),
    "postcode": _s(20, nullable=True),
    "city": _s(120, nullable=True),
    "country": Field("string", "ISO 3166-1 alpha-2.", required=True, **_COUNTRY),
}

PRODUCT_FIELDS: dict[str, Field] = {
    "code": _s(64, "Article code (SKU).", required=True, not_empty=True),
    "name": _s(200, required=True, not_empty=True),
    "unit_price": Field("number", "Price before tax.", required=True, minimum=_ZERO, places=4),
    "tax_rate": Field(
        "number",
        "Default tax rate in percent, at most 3 decimals.",
        required=True,
        hint="a percentage, e.g. 21 or 8.875",
        **_RATE,
    ),
    "active": Field("boolean", "Default true."),
}


def _line_fields(*, credit: bool) -> dict[str, Field]:
    price = (
        Field("number", "Positive: the note as a whole credits.", required=True, minimum=_ZERO, places=4)
        if credit
        else Field("number", "May be negative (a discount line).", required=True, places=4)
    )
    return {
        "position": Field("integer", "1-based order; unique within the document.", required=True, minimum=Decimal(1)),
        "description": _s(500, required=True, not_empty=True),
        "quantity": Field("number", required=True, minimum=_ZERO, places=4),
        "unit_price": price,
        "tax_rate": Field(
            "number",
            "Percent, at most 3 decimals (8.875). A discount is a negative unit_price, never a negative rate.",
            required=True,
            hint="a percentage; a discount is a line with a negative unit_price, not a negative rate",
            **_RATE,
        ),
        "tax_kind": Field(
            "enum",
            "The line's tax treatment; absent or null: standard above 0 %, zero at 0 %. At 0 % ledgers book "
            "zero-rated, exempt, reverse-charge and outside-scope (export) lines with different tax codes.",
            nullable=True,
            choices=TAX_KINDS,
        ),
        "product": _s(ID_MAX, "External id of a product sent before.", nullable=True),
    }


_TOTALS = {
    name: Field(
        "number",
        f"Optional check: refused when it differs from the {name} computed from the lines.",
        places=2,
        nullable=True,
    )
    for name in ("subtotal", "tax_total", "total")  # null or absent: no check
}

INVOICE_FIELDS: dict[str, Field] = {
    "business_unit": Field(
        "integer", "Id of the business unit (GET /organizations/{org}).", required=True, minimum=Decimal(1)
    ),
    "number": _s(64, "Invoice number as printed.", required=True, not_empty=True),
    "customer": _s(ID_MAX, "External id of a customer sent before.", required=True, not_empty=True),
    "issue_date": Field("date", required=True),
    "due_date": Field(
        "date",
        "On or after issue_date. Absent or null: the connection's due days apply, else the ledger's payment terms.",
        nullable=True,
    ),
    "currency": Field("string", "Must be the business unit's currency.", required=True, **_CURRENCY),
    "lines": Field("array", items=_line_fields(credit=False), min_items=1, max_items=MAX_LINES, required=True),
    **_TOTALS,
    "pdf": Field("pdf", f"The PDF, base64, at most {PDF_MAX_BYTES} bytes; absent keeps, null removes.", nullable=True),
}

CREDIT_NOTE_FIELDS: dict[str, Field] = {
    "invoice": _s(ID_MAX, "External id of the invoice credited.", required=True, not_empty=True),
    "number": _s(64, "Credit note number as printed.", required=True, not_empty=True),
    "issue_date": Field("date", required=True),
    "currency": Field("string", "Must be the invoice's currency.", required=True, **_CURRENCY),
    "reason": Field("string", nullable=True, max_length=2000),
    "lines": Field("array", items=_line_fields(credit=True), min_items=1, max_items=MAX_LINES, required=True),
    **_TOTALS,
}

PAYMENT_METHODS = ("bank_transfer", "card", "direct_debit")
PAYMENT_FIELDS: dict[str, Field] = {
    "invoice": _s(ID_MAX, "External id of the invoice paid.", required=True, not_empty=True),
    "paid_on": Field("date", required=True),
    "amount": Field("number", required=True, minimum=_ZERO, exclusive_minimum=True, places=2),
    "currency": Field("string", "Must be the invoice's currency.", required=True, **_CURRENCY),
    "method": Field("enum", required=True, choices=PAYMENT_METHODS),
    "reference": _s(120, "Bank reference or card transaction id.", nullable=True),
}
