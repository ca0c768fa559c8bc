"""The bad-input corpus: every entry point, the input that is wrong, and the words that must say so.

Each form case is posted by a logged-in ops member against a live QuickBooks connection; the runner
(tests/proof/test_bad_input.py) checks the status, that the answer names what to fix, that no input
comes back unescaped, and that no table gained or lost a row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Script that must never come back raw; free-text inputs carry it.
XSS = '<script>alert("ll-bad")</script>'
RAW = '<script>alert("ll-bad")'


@dataclass(frozen=True)
class FormCase:
    """One bad submission: where it goes, what it sends, and what the answer must say."""

    name: str
    path: str  # formatted with cid (connection), pid (product), unit (business unit)
    data: dict = field(default_factory=dict)
    #: Words of the answer that name what to fix (all must appear, case-insensitive).
    phrases: tuple[str, ...] = ()
    status: tuple[int, ...] = (400, 409, 422)
    #: (file name, bytes) uploaded as the form's ``file`` field.
    upload: tuple[str, bytes] | None = None


SETTINGS = "/connections/{cid}/settings"
DEFAULTS = "/connections/{cid}/mappings/defaults"
PRODUCT = "/connections/{cid}/mappings/products/{pid}"
DIVISION = "/connections/{cid}/division"
MAPPING_CSV = "/connections/{cid}/mappings/import"
LINKS_CSV = "/connections/{cid}/customers/import"
CUSTOMER_LINK = "/connections/{cid}/customers/links"
CUSTOMER_MODE = "/connections/{cid}/customers/mode"
HISTORY = "/connections/{cid}/history/preview"
NEW_LINK = "/business-units/{unit}/authorization-links/new"
CONNECT = "/business-units/{unit}/connect"

GOOD_SETTINGS = {
    "sending_method": "saas",
    "sync_from": "2024-01-01T00:00",
    "sync_delay_minutes": "0",
    "payments_mode": "pull",
}

FORM_CASES: list[FormCase] = [
    # Connection settings: dates, amounts of minutes, free text.
    FormCase("settings: impossible date", SETTINGS, {**GOOD_SETTINGS, "sync_from": "2024-02-31T25:00"}, ("date",)),
    FormCase("settings: date as words", SETTINGS, {**GOOD_SETTINGS, "sync_from": XSS}, ("date",)),
    FormCase("settings: delay out of range", SETTINGS, {**GOOD_SETTINGS, "sync_delay_minutes": "999"}, ("0 to 60",)),
    FormCase("settings: delay not a number", SETTINGS, {**GOOD_SETTINGS, "sync_delay_minutes": "ten"}, ("0 to 60",)),
    FormCase(
        "settings: e-mail text too long",
        SETTINGS,
        {**GOOD_SETTINGS, "sending_method": "ledger", "email_message": XSS * 80},
        ("2000 characters",),
    ),
    FormCase("settings: unknown sending method", SETTINGS, {**GOOD_SETTINGS, "sending_method": XSS}, ("sending",)),
    # Mapping codes that the ledger does not have.
    FormCase("defaults: unknown item", DEFAULTS, {"item": "99999"}, ("99999",)),
    FormCase("defaults: script as a code", DEFAULTS, {"tax_code": XSS}, ("tax",)),
    FormCase("product override: unknown item", PRODUCT, {"item": "88888"}, ("88888",)),
    # Division numbers.
    FormCase("division: not one the token reaches", DIVISION, {"number": "4242", "confirm": "y"}, ("4242",)),
    FormCase("division: script", DIVISION, {"number": XSS, "confirm": "y"}, ("division",)),
    # CSV imports of mappings.
    FormCase("mapping csv: not UTF-8", MAPPING_CSV, {}, ("UTF-8",), upload=("m.csv", b"\xff\xfe\x00bad")),
    FormCase("mapping csv: empty", MAPPING_CSV, {}, ("empty",), upload=("m.csv", b"")),
    FormCase("mapping csv: no header", MAPPING_CSV, {}, ("column",), upload=("m.csv", b"foo,bar\n1,2\n")),
    FormCase(
        "mapping csv: unknown product and code",
        MAPPING_CSV,
        {},
        ("row 2",),
        upload=("m.csv", f"product_id,item\n{XSS},77777\n".encode()),
    ),
    # CSV imports of customer links.
    FormCase("links csv: not UTF-8", LINKS_CSV, {}, ("UTF-8",), upload=("l.csv", b"\xff\xfe\x00bad")),
    FormCase("links csv: empty", LINKS_CSV, {}, ("empty",), upload=("l.csv", b"")),
    FormCase("links csv: wrong header", LINKS_CSV, {}, ("customer", "ledger_id"), upload=("l.csv", b"a,b\n1,2\n")),
    FormCase(
        "links csv: unknown customer",
        LINKS_CSV,
        {},
        ("row 2",),
        upload=("l.csv", f"customer,ledger_id\n{XSS},1\n".encode()),
    ),
    FormCase(
        "links csv: unbalanced quote",
        LINKS_CSV,
        {},
        ("row",),
        upload=("l.csv", b'customer,ledger_id\n"abc,1\n'),
    ),
    # Customer links and modes.
    FormCase("customer link: unknown customer", CUSTOMER_LINK, {"customer": XSS, "external_id": "1"}, ("customer",)),
    FormCase(
        "customer link: empty ledger id", CUSTOMER_LINK, {"customer": "x", "external_id": ""}, ("ledger customer",)
    ),
    FormCase(
        "customer mode: unknown", CUSTOMER_MODE, {"customer_mode": XSS}, ("customer", "choose one of the options")
    ),
    # Historical push dates.
    FormCase(
        "history: impossible date",
        HISTORY,
        {"date_from": "2024-13-45", "date_to": "2024-12-31", "kinds": "invoice"},
        ("date",),
    ),
    FormCase(
        "history: range backwards",
        HISTORY,
        {"date_from": "2024-12-31", "date_to": "2024-01-01", "kinds": "invoice"},
        ("swap the dates",),
    ),
    # Authorization links and connecting.
    FormCase(
        "new link: zero days",
        NEW_LINK,
        {"provider": "quickbooks", "expires_in_days": "0", "requested_for": "Ada"},
        ("days",),
    ),
    FormCase(
        "new link: bad e-mail",
        NEW_LINK,
        {"provider": "quickbooks", "expires_in_days": "7", "requested_for": "Ada", "email_to": XSS},
        ("e-mail",),
    ),
    FormCase("connect: unknown ledger", CONNECT, {"provider": XSS, "confirm_replace": "y"}, ("provider",)),
    FormCase(
        "connect: Exact without instance",
        CONNECT,
        {"provider": "exact-online", "region": "", "confirm_replace": "y"},
        ("instance",),
    ),
    FormCase("connect: replacing unconfirmed", CONNECT, {"provider": "bexio"}, ("tick the box to replace",)),
]

#: Ingestion payloads: (resource, body or raw bytes, path that must be named, words of the message).
INVOICE_PATHS = ["business_unit", "customer", "issue_date", "due_date", "currency", "lines"]


@dataclass(frozen=True)
class ApiCase:
    """One bad ingestion request: resource and id, the body (an object, or raw bytes), the problem expected."""

    name: str
    resource: str
    body: object
    #: Path of the problem the answer must list (e.g. "lines[1].position"), and words of its message.
    path: str
    words: str = ""
    external_id: str = "x-1"
    status: int = 422


def _customer(**changes):
    return {"name": "Acme", "country": "NL", **changes}


def _product(**changes):
    return {"code": "SKU", "name": "Thing", "unit_price": "10", "tax_rate": 21, **changes}


def _line(**changes):
    return {"position": 1, "description": "Work", "quantity": 1, "unit_price": "10", "tax_rate": 21, **changes}


API_CASES: list[ApiCase] = [
    ApiCase("not JSON", "customers", b"name=Acme", "(body)", "not valid JSON at line 1, column 1", status=400),
    ApiCase("an array", "customers", b"[1, 2]", "(body)", "object"),
    ApiCase(
        "NaN",
        "customers",
        b'{"name": NaN, "country": "NL"}',
        "(body)",
        "NaN is not a JSON number at line 1, column 10",
        status=400,
    ),
    ApiCase(
        "Infinity",
        "customers",
        b'{"name": "A",\n "x": -Infinity}',
        "(body)",
        "-Infinity is not a JSON number at line 2, column 7",
        status=400,
    ),
    ApiCase("cut off", "customers", b'{"name": "Acme", "country": ', "(body)", "at line 1, column 29", status=400),
    ApiCase("nested a million deep", "customers", b"[" * 100_000, "(body)", "JSON", status=400),
    ApiCase("lone surrogate", "customers", b'{"name": "Acme \\ud800", "country": "NL"}', "name", "surrogate"),
    ApiCase(
        "a key with a surrogate",
        "customers",
        b'{"name": "Acme", "\\udfff": 1}',
        "(body)",
        "key holds a lone UTF-16 surrogate",
    ),
    ApiCase("empty name", "customers", _customer(name="  "), "name", "empty"),
    ApiCase("country in words", "customers", _customer(country="Netherlands"), "country", "ISO 3166"),
    ApiCase("enormous name", "customers", _customer(name="A" * 100_000), "name", "at most 200"),
    ApiCase("script e-mail", "customers", _customer(email=XSS), "email", "e-mail"),
    ApiCase("unknown field", "customers", _customer(admin=True), "admin", "not a known field"),
    ApiCase("id too long", "customers", _customer(), "(url) id", "64", external_id="x" * 65),
    ApiCase("price as float words", "products", _product(unit_price="1e5"), "unit_price", "number"),
    ApiCase("tax rate over 100", "products", _product(tax_rate=101), "tax_rate", "≤ 100"),
    ApiCase("too many decimals", "products", _product(unit_price="0.00001"), "unit_price", "4 decimals"),
    ApiCase("boolean price", "products", _product(unit_price=True), "unit_price", "number"),
    ApiCase("huge price", "products", _product(unit_price="1" * 400), "unit_price", "less than"),
    ApiCase("no lines", "invoices", {"lines": []}, "lines", "at least 1"),
    ApiCase("line of wrong type", "invoices", {"lines": ["one"]}, "lines[0]", "object"),
    ApiCase("impossible date", "invoices", {"issue_date": "2024-02-30"}, "issue_date", "YYYY-MM-DD"),
    ApiCase("business unit as text", "invoices", {"business_unit": "1"}, "business_unit", "integer"),
    ApiCase("not base64", "invoices", {"pdf": "%%%"}, "pdf", "base64"),
    ApiCase("not a PDF", "invoices", {"pdf": "aGVsbG8="}, "pdf", "PDF"),
    ApiCase("negative quantity", "invoices", {"lines": [_line(quantity=-1)]}, "lines[0].quantity", "≥ 0"),
    ApiCase(
        "negative tax rate", "invoices", {"lines": [_line(tax_rate=-9)]}, "lines[0].tax_rate", "not a negative rate"
    ),
    ApiCase(
        "rate with 4 decimals", "invoices", {"lines": [_line(tax_rate="8.8751")]}, "lines[0].tax_rate", "3 decimals"
    ),
    ApiCase("unknown tax kind", "invoices", {"lines": [_line(tax_kind="mostly")]}, "lines[0].tax_kind", "one of"),
    ApiCase(
        "exempt line at 21 %",
        "invoices",
        {"lines": [_line(tax_kind="exempt")]},
        "lines[0].tax_kind",
        "send tax_rate 0 for an exempt line",
    ),
    ApiCase("payment of zero", "payments", {"amount": 0}, "amount", "> 0"),
    ApiCase("unknown method", "payments", {"method": "cash"}, "method", "one of"),
    ApiCase("reason as a number", "credit-notes", {"reason": 5}, "reason", "string"),
]
