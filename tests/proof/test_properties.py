"""Property tests of the parsers that take outside input: ingestion validators, CSV imports, redirects."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from urllib.parse import urlsplit

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from portal.api import ingest_schema as schema
from portal.security import is_safe_redirect
from tests.proof.conftest import scaled

RESOURCES = {
    "customer": schema.CUSTOMER_FIELDS,
    "product": schema.PRODUCT_FIELDS,
    "invoice": schema.INVOICE_FIELDS,
    "credit note": schema.CREDIT_NOTE_FIELDS,
    "payment": schema.PAYMENT_FIELDS,
}
EXAMPLES = scaled(60, 1000)


def valid_value(f: schema.Field) -> st.SearchStrategy:
    """Return a strategy of JSON values the field's definition allows."""
    if f.kind == "string":
        if f.pattern == "[A-Z]{2}":
            base = st.from_regex(r"\A[A-Z]{2}\Z")
        elif f.pattern == "[A-Z]{3}":
            base = st.from_regex(r"\A[A-Z]{3}\Z")
        elif f.pattern:
            base = st.from_regex(r"\A[a-z0-9.]{1,20}@[a-z0-9.]{1,20}\Z")
        else:
            # Any text but control characters, which the schema refuses (its pattern says so).
            printable = st.characters(blacklist_categories=("Cc", "Cs"))
            base = st.text(printable, min_size=1, max_size=min(f.max_length or 40, 40)).filter(str.strip)
    elif f.kind == "enum":
        base = st.sampled_from(f.choices)
    elif f.kind == "date":
        base = st.dates(min_value=schema.DATE_MIN, max_value=schema.DATE_MAX).map(date.isoformat)
    elif f.kind == "boolean":
        base = st.booleans()
    elif f.kind == "integer":
        base = st.integers(min_value=int(f.minimum or 0), max_value=10**9)
    elif f.kind == "number":
        low = f.minimum if f.minimum is not None else Decimal(-(10**8))
        high = f.maximum if f.maximum is not None else Decimal(10**8)
        number = st.decimals(min_value=low, max_value=high, places=f.places or 2, allow_nan=False)
        if f.exclusive_minimum:
            number = number.filter(lambda d: d > low)
        base = st.one_of(number.map(str), number.filter(lambda d: d == int(d)).map(int))
    elif f.kind == "pdf":
        base = st.just("JVBERi0xLjQK")  # "%PDF-1.4\n"
    elif f.kind == "array":
        base = st.lists(valid_object(f.items or {}), min_size=max(f.min_items, 1), max_size=3)
    else:  # pragma: no cover - every kind is listed above
        raise AssertionError(f.kind)
    return st.one_of(base, st.none()) if f.nullable else base


def valid_object(fields: dict[str, schema.Field]) -> st.SearchStrategy:
    required = {name: valid_value(f) for name, f in fields.items() if f.required}
    optional = {name: valid_value(f) for name, f in fields.items() if not f.required}
    return st.fixed_dictionaries(required, optional=optional)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=25,
)


@given(data=st.data(), resource=st.sampled_from(list(RESOURCES)))
@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
def test_everything_the_schema_allows_is_accepted(data, resource):
    fields = RESOURCES[resource]
    body = data.draw(valid_object(fields))
    problems: list[dict] = []
    cleaned = schema.clean_object(body, fields, "", problems)
    assert problems == []
    assert set(cleaned) == set(body)


@given(body=JSON, resource=st.sampled_from(list(RESOURCES)))
@settings(max_examples=EXAMPLES)
def test_any_json_is_cleaned_or_explained_never_raised(body, resource):
    fields = RESOURCES[resource]
    problems: list[dict] = []
    schema.clean_object(body, fields, "", problems)
    roots = {*fields, "(body)", *(body if isinstance(body, dict) else ())}
    for problem in problems:
        assert problem["message"].strip()
        path = problem["path"]
        assert any(path == r or path.startswith((f"{r}.", f"{r}[")) for r in roots), problem


WRONG = st.one_of(st.just([1]), st.just({"a": 1}), st.just(True), st.just("x" * 5000), st.just(-(10**30)))


@given(data=st.data(), resource=st.sampled_from(list(RESOURCES)), wrong=WRONG)
@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
def test_one_wrong_field_is_named_by_its_path(data, resource, wrong):
    fields = RESOURCES[resource]
    body = data.draw(valid_object(fields))
    name = data.draw(st.sampled_from(sorted(fields)))
    assume(not (fields[name].kind == "boolean" and isinstance(wrong, bool)))
    body[name] = wrong
    problems: list[dict] = []
    schema.clean_object(body, fields, "", problems)
    paths = {p["path"].split("[")[0] for p in problems}
    # A wrong value is refused at its own path, unless it happens to be acceptable (a long free text).
    if not problems:
        assert fields[name].kind == "string" and isinstance(wrong, str) and not fields[name].max_length
    else:
        assert paths == {name}, problems


#: Redirect targets: any text, and text made of the characters open redirects are built from.
TARGETS = st.one_of(st.text(max_size=40), st.text(alphabet="/\\\t\r\n:.e@%a", max_size=12))


@given(TARGETS)
@settings(max_examples=EXAMPLES * 3)
def test_a_safe_redirect_stays_on_the_site_as_a_browser_reads_it(target):
    if not is_safe_redirect(target):
        return
    as_browser = re.sub(r"[\t\r\n]", "", target).replace("\\", "/")
    parts = urlsplit(as_browser)
    assert as_browser.startswith("/") and not as_browser.startswith("//")
    assert not parts.scheme and not parts.netloc


def test_customer_link_csv_imports_are_all_or_nothing_for_any_bytes(app, connect):
    from portal.customers.services import CsvImportError, import_links_csv
    from portal.extensions import db
    from portal.models import Connection, CustomerLink

    cid = connect("quickbooks")

    def links_count() -> int:
        with app.app_context():
            return db.session.scalar(db.select(db.func.count(CustomerLink.id)))

    cells = st.sampled_from(["customer", "ledger_id", "", '"', ";", ",", "\n", "\r\n", "1", "cus-x", "\x00", "é"])

    @given(st.one_of(st.binary(max_size=200), st.lists(cells, max_size=30).map(lambda c: "".join(c).encode())))
    @settings(max_examples=scaled(25, 500), deadline=None, suppress_health_check=list(HealthCheck))
    def run(data):
        before = links_count()
        with app.app_context():
            errors: list[str] = []
            try:
                made = import_links_csv(db.session.get(Connection, cid), data)
            except CsvImportError as exc:
                errors, made = exc.errors, None
            db.session.rollback()
        refused = made is None
        # Refused as a whole with a message per problem, or imported: nothing else.
        assert (refused and errors and all(e.strip() for e in errors)) or (not refused and made >= 0)
        if refused:
            assert links_count() == before

    run()


PATTERNED = [(resource, name, f) for resource, fields in RESOURCES.items() for name, f in fields.items() if f.pattern]


@given(data=st.data(), case=st.sampled_from(PATTERNED))
@settings(max_examples=EXAMPLES)
def test_what_the_openapi_pattern_allows_the_validator_accepts(data, case):
    """JSON Schema patterns match anywhere in a string, so the published one must be anchored like the validator."""
    _resource, name, f = case
    published = f.schema()
    published = next((s for s in published.get("anyOf", [published]) if "pattern" in s), published)
    # Hypothesis reads the pattern as Python does, where "$" also matches before a final newline;
    # in the schema's own dialect (ECMA-262) it does not, so such strings are not schema-valid.
    strings = st.from_regex(published["pattern"]).filter(lambda v: not v.endswith("\n"))
    value = data.draw(strings.filter(lambda v: len(v) <= (f.max_length or 10**6)))
    problems: list[dict] = []
    f.clean(value, name, problems)
    assert problems == [], (value, problems)
