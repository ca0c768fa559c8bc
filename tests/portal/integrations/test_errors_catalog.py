"""Provider errors → cause, plain words and the screen that fixes them."""

# ruff: noqa: E501 - the case table below is one row per case, wider than the line limit

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.integrations.base import (
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
from portal.integrations.errors_catalog import CATALOG, FIX_TARGETS, ErrorClass, Fix, FixTarget, explain, lookup

C = ErrorClass


FORM = "The form could not be saved due to the following errors:. "
QBO_610 = (
    "Object Not Found : Something you're trying to use has been made inactive. "
    "Check the fields with accounts, customers, items."
)
NOW = datetime.now(UTC)

QBO_6140 = (
    "Duplicate Document Number Error : You must specify a different number. This number has already been used. "
    "DocNumber=18696 is assigned to TxnType=Invoice with TxnId=6575"
)
QBO_CLOSED = "The account period has closed. Closing date: 2026-03-31, transaction date: 2026-03-15"
QBO_6000 = "A business validation error has occurred while processing your request"

#: (error type, provider, status, provider code, provider text, expected cause, expected fix)
# fmt: off
CASES = [
    # QuickBooks (quickbooks-online.md §4; qbo_api spec/vcr/error; sandbox/quickbooks/faults.py)
    (Rejected, "quickbooks", 400, "6240", "The name supplied already exists. : null", C.DUPLICATE, Fix.CUSTOMER_LINKS),
    (Rejected, "quickbooks", 400, "6240", "The name supplied already exists.", C.DUPLICATE, Fix.CUSTOMER_LINKS),
    (Rejected, "quickbooks", 400, "6140", "Duplicate Document Number Error", C.DUPLICATE, Fix.RECORD),
    (Rejected, "quickbooks", 400, "6140", QBO_6140, C.DUPLICATE, Fix.RECORD),
    (Rejected, "quickbooks", 400, "6210", "The account period has closed.", C.CLOSED_PERIOD, Fix.LEDGER_PERIODS),
    (Rejected, "quickbooks", 400, "6210", QBO_CLOSED, C.CLOSED_PERIOD, Fix.LEDGER_PERIODS),
    (Rejected, "quickbooks", 400, "6210", "Duplicate Document Number Error", C.DUPLICATE, Fix.RECORD),
    (NotFound, "quickbooks", 400, "610", QBO_610, C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "quickbooks", 400, "2500", "Categories cannot be used in transactions.", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "quickbooks", 400, "2500", "Invalid Reference Id : Customer deleted", C.CUSTOMER_NOT_LINKED, Fix.CUSTOMER_LINKS),
    (Rejected, "quickbooks", 400, "2500", "Invalid Reference Id : Customer assigned to this transaction has been deleted or does not exist. Id=77", C.CUSTOMER_NOT_LINKED, Fix.CUSTOMER_LINKS),
    (Rejected, "quickbooks", 400, "2500", "Invalid Reference Id : Item 5 does not exist or has been made inactive", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "quickbooks", 400, "2500", "Invalid Reference Id : TaxCode 9 does not exist", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "quickbooks", 400, "2020", "Required parameter CustomerRef is missing in the request", C.CUSTOMER_NOT_LINKED, Fix.CUSTOMER_LINKS),
    (Rejected, "quickbooks", 400, "2020", "Required parameter ItemRef is missing in the request", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "quickbooks", 400, "2020", "Required parameter Line is missing in the request", C.VALIDATION, Fix.RECORD),
    (Rejected, "quickbooks", 400, "6000", "Make sure all your transactions have a VAT rate", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "quickbooks", 400, "6000", "Business Validation Error: Make sure all your transactions have a GST/HST rate before you save.", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "quickbooks", 400, "6000", "One or more transaction lines do not have a tax code associated with it", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "quickbooks", 400, "6000", "Business Validation Error: Unexpected Internal Error (-30000)", C.PROVIDER_DOWN, Fix.HEALTH),
    (Rejected, "quickbooks", 400, "6000", "Business Validation Error: Invalid email address: a@b", C.VALIDATION, Fix.RECORD),
    (Rejected, "quickbooks", 400, "6000", QBO_6000, C.VALIDATION, Fix.RECORD),
    (Rejected, "quickbooks", 400, "6070", "Amount is not equal to UnitPrice * Qty.", C.VALIDATION, Fix.RECORD),
    (Rejected, "quickbooks", 400, "4001", "QueryValidationError: invalid context declaration: Custmoer", C.VALIDATION, Fix.RECORD),
    (Rejected, "quickbooks", 400, "2010", "Property Name:Can not construct instance of ... specified is unsupported or invalid", C.VALIDATION, Fix.RECORD),
    (Rejected, "quickbooks", 400, "500", "Operation Could not find resource for relative : /v3/company/1/category is not supported.", C.VALIDATION, Fix.RECORD),
    (Rejected, "quickbooks", 400, "5010", "Stale Object Error : You and Ada were working on this at the same time.", C.VALIDATION, Fix.RECORD),
    (Rejected, "quickbooks", 400, "6190", "Invalid Company Status", C.AUTH_LOST, Fix.SETTINGS),
    (AuthExpired, "quickbooks", 401, "3200", "Token expired: ***", C.AUTH_LOST, Fix.RECONNECT),
    (AuthExpired, "quickbooks", 401, "120", "Authorization Failure", C.AUTH_LOST, Fix.RECONNECT),
    (AuthExpired, "quickbooks", 401, "130", "Accessing Wrong Cluster", C.AUTH_LOST, Fix.RECONNECT),
    (NeedsReauthorization, "quickbooks", 403, "3100", "ApplicationAuthorizationFailed", C.AUTH_LOST, Fix.RECONNECT),
    (NeedsReauthorization, "quickbooks", 400, "invalid_grant", "Incorrect or invalid refresh token", C.AUTH_LOST, Fix.RECONNECT),
    (Unavailable, "quickbooks", 500, "10000", "An application error has occurred while processing your request", C.PROVIDER_DOWN, Fix.HEALTH),
    (Rejected, "quickbooks", 500, "10000", "System Failure Error: An unexpected error occurred", C.PROVIDER_DOWN, Fix.HEALTH),
    # Exact Online (exact-online.md §1.5, §2, §4.2; sandbox/exact/messages.py)
    (NeedsReauthorization, "exact-online", 401, "unauthorized_client", "Old refresh token used.", C.AUTH_LOST, Fix.RECONNECT),
    (NeedsReauthorization, "exact-online", 400, "invalid_request", "The refresh token expired at 10/11/2022 9:18:20 PM and it is now 10/28/2022 4:15:50 PM.", C.AUTH_LOST, Fix.RECONNECT),
    (NeedsReauthorization, "exact-online", 400, "invalid_grant", "Token is not allowed, because of invalid or empty chainId", C.AUTH_LOST, Fix.RECONNECT),
    (Rejected, "exact-online", 401, None, "Access Token not expired", C.RATE_LIMIT, Fix.WAIT),
    (Forbidden, "exact-online", 403, "NoDivisionAccess", "Forbidden", C.AUTH_LOST, Fix.COMPANY),
    (Forbidden, "exact-online", 403, None, "Forbidden - WrongDivision", C.AUTH_LOST, Fix.COMPANY),
    (Forbidden, "exact-online", 403, "LicenseExpired", "Forbidden", C.AUTH_LOST, Fix.RECONNECT),
    (Forbidden, "exact-online", 403, "DivisionBlocked", "Forbidden", C.AUTH_LOST, Fix.RECONNECT),
    (Forbidden, "exact-online", 403, None, "Forbidden - Application Scope Violated. Cannot read", C.AUTH_LOST, Fix.RECONNECT),
    (Forbidden, "exact-online", 403, None, "Forbidden", C.AUTH_LOST, Fix.RECONNECT),
    (Rejected, "exact-online", 500, None, "Periode is afgesloten: 2026 - 1", C.CLOSED_PERIOD, Fix.LEDGER_PERIODS),
    (Rejected, "exact-online", 500, None, "Period is closed: 2026 - 1", C.CLOSED_PERIOD, Fix.LEDGER_PERIODS),
    (Rejected, "exact-online", 500, None, "Boekjaar bestaat niet: 2031", C.CLOSED_PERIOD, Fix.LEDGER_PERIODS),
    (Rejected, "exact-online", 500, None, "Financial year does not exist: 2031", C.CLOSED_PERIOD, Fix.LEDGER_PERIODS),
    (Rejected, "exact-online", 500, None, "Ongeldige referentie: Besteld door", C.CUSTOMER_NOT_LINKED, Fix.CUSTOMER_LINKS),
    (Rejected, "exact-online", 500, None, "Ongeldige referentie: Leveren aan\r\nOngeldige referentie: Besteld door\r\nOngeldige referentie: Factuur voor", C.CUSTOMER_NOT_LINKED, Fix.CUSTOMER_LINKS),
    (Rejected, "exact-online", 500, None, "Verplicht: Factuur voor\r\nVerplicht: Besteld door", C.CUSTOMER_NOT_LINKED, Fix.CUSTOMER_LINKS),
    (Rejected, "exact-online", 500, None, "Mandatory: Ordered by", C.CUSTOMER_NOT_LINKED, Fix.CUSTOMER_LINKS),
    (Rejected, "exact-online", 500, None, "Mandatory: Relationship\r\nInvalid reference: Cost unit\r\nMandatory: Diary", C.CUSTOMER_NOT_LINKED, Fix.CUSTOMER_LINKS),
    (Rejected, "exact-online", 500, None, "Ongeldige referentie: Journals", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "exact-online", 500, None, "Ongeldige referentie: Artikel", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "exact-online", 500, None, "Invalid reference: VAT code", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "exact-online", 500, None, "Verplicht: Btw-code", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "exact-online", 500, None, "Mandatory: VAT code", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "exact-online", 500, None, "Verplicht: Dagboek\r\nVerplicht: Bedrag", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "exact-online", 500, None, "Invalid: G/L account type", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "exact-online", 500, None, "Ongeldig: Grootboekrekeningtype", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "exact-online", 500, None, "Invalid journal. The journal must be a cash journal.", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "exact-online", 500, None, "Ongeldig dagboek. Het dagboek moet een verkoopboek zijn.", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "exact-online", 500, None, "Gegeven bestaat reeds.", C.DUPLICATE, Fix.CUSTOMER_LINKS),
    (Rejected, "exact-online", 500, None, "Record already exists.", C.DUPLICATE, Fix.CUSTOMER_LINKS),
    (Rejected, "exact-online", 500, None, "Reeds verwerkt", C.DUPLICATE, Fix.RECORD),
    (Rejected, "exact-online", 500, None, "E-mailadres ontbreekt bij de relatie.", C.VALIDATION, Fix.SETTINGS),
    (Rejected, "exact-online", 500, None, "Verplicht: Onderwerp\r\nVerplicht: Soort", C.VALIDATION, Fix.RECORD),
    (Rejected, "exact-online", 400, None, "Error processing request stream. The request should be a valid top-level resource object.", C.VALIDATION, Fix.RECORD),
    (Unavailable, "exact-online", 503, None, "Service Unavailable", C.PROVIDER_DOWN, Fix.HEALTH),
    # bexio (bexio.md §3.4, §4, §7; sandbox/bexio/store.py)
    (Rejected, "bexio", 422, "422", FORM + "message must contain [Network Link]", C.VALIDATION, Fix.SETTINGS),
    (Rejected, "bexio", 422, "422", FORM + "message [The message must contain the placeholder [Network Link].]", C.VALIDATION, Fix.SETTINGS),
    (Rejected, "bexio", 422, "422", FORM + "recipient_email [During the trial you can only send to your own address.]", C.VALIDATION, Fix.SETTINGS),
    (Rejected, "bexio", 422, "422", FORM + "recipient_email [Required.]", C.VALIDATION, Fix.SETTINGS),
    (Rejected, "bexio", 422, "422", FORM + "positions[0][tax_id] [Invalid.]", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "bexio", 422, "422", FORM + "tax_id [Required.]", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "bexio", 422, "422", FORM + "account_id [Invalid.]", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "bexio", 422, "422", FORM + "bank_account_id [Invalid.]", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "bexio", 422, "422", FORM + "currency_id [Invalid.]", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "bexio", 422, "422", FORM + "contact_id [Required.]", C.CUSTOMER_NOT_LINKED, Fix.CUSTOMER_LINKS),
    (Rejected, "bexio", 422, "422", FORM + "contact_id [Invalid.]", C.CUSTOMER_NOT_LINKED, Fix.CUSTOMER_LINKS),
    (Rejected, "bexio", 422, "422", FORM + "kb_invoice_id [Payments can only be added to issued invoices.]", C.VALIDATION, Fix.RECORD),
    (Rejected, "bexio", 422, "422", FORM + "kb_item_status_id [The invoice is cancelled.]", C.VALIDATION, Fix.RECORD),
    (Rejected, "bexio", 422, "422", FORM + "kb_item_status_id [The invoice is not a draft.]", C.VALIDATION, Fix.RECORD),
    (Rejected, "bexio", 422, "422", FORM + "positions [The invoice has no positions.]", C.VALIDATION, Fix.RECORD),
    (Rejected, "bexio", 422, "422", "Widget schema does not include positions", C.VALIDATION, Fix.RECORD),
    (Rejected, "bexio", 422, "422", "The form could not be saved due to the following errors:.", C.VALIDATION, Fix.RECORD),
    (Rejected, "bexio", 400, "400", "Parameters are invalid", C.VALIDATION, Fix.RECORD),
    (Rejected, "bexio", 415, "415", "Could not process data", C.VALIDATION, Fix.RECORD),
    (NotFound, "bexio", 404, "404", "Invoice not found", C.VALIDATION, Fix.RECORD),
    (NotFound, "bexio", 404, "404", "Contact not found", C.CUSTOMER_NOT_LINKED, Fix.CUSTOMER_LINKS),
    (NotFound, "bexio", 404, "404", "Bank account not found", C.MAPPING_MISSING, Fix.MAPPINGS),
    (NotFound, "bexio", 404, "404", "Article not found", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Forbidden, "bexio", 403, "403", "Forbidden", C.AUTH_LOST, Fix.RECONNECT),
    (AuthExpired, "bexio", 401, "401", "Invalid access token", C.AUTH_LOST, Fix.RECONNECT),
    (AuthExpired, "bexio", 401, "401", "Invalid token.", C.AUTH_LOST, Fix.RECONNECT),
    (NotSupported, "bexio", None, None, "bexio has no credit-note API", C.NOT_SUPPORTED, Fix.RECORD),
    (NeedsReauthorization, "bexio", 400, "invalid_grant", "refresh token reuse exceeded", C.AUTH_LOST, Fix.RECONNECT),
    (NeedsReauthorization, "bexio", 400, "invalid_grant", "Token is not active", C.AUTH_LOST, Fix.RECONNECT),
    (Unavailable, "bexio", 500, "500", "An unexpected error occurred", C.PROVIDER_DOWN, Fix.HEALTH),
    (Unavailable, "bexio", 503, "503", "Service Unavailable", C.PROVIDER_DOWN, Fix.HEALTH),
]
# fmt: on


@pytest.mark.parametrize(("kind", "provider", "status", "code", "text", "error_class", "fix"), CASES)
def test_explain_maps_provider_errors_to_causes(kind, provider, status, code, text, error_class, fix):
    error = kind(provider=provider, status=status, provider_code=code, provider_text=text)
    explanation = explain(error)
    assert (explanation.error_class, explanation.fix) == (error_class, fix)
    assert explanation.explanation
    assert explanation.provider_text == error.provider_text


def test_rate_limits_are_explained_as_such_whatever_the_code():
    error = RateLimited(provider="quickbooks", status=429, provider_code="3001", retry_at=NOW)
    assert (explain(error).error_class, explain(error).fix) == (C.RATE_LIMIT, Fix.WAIT)


def test_retryable_causes_are_marked():
    assert explain(RateLimited(provider="bexio", retry_at=datetime.now(UTC))).retryable
    assert explain(Unavailable(provider="bexio")).retryable
    assert explain(Rejected(provider="quickbooks", provider_code="5010", provider_text="Stale Object Error")).retryable
    assert not explain(Rejected(provider="quickbooks", provider_code="6240")).retryable


def test_unknown_errors_fall_back_to_validation_with_the_provider_text():
    explanation = explain(Rejected(provider="quickbooks", provider_code="9999", provider_text="Something new"))
    assert explanation.error_class is C.VALIDATION
    assert explanation.provider_text == "Something new"
    assert lookup("nobody", "1", 400, "nothing") is None


def test_every_entry_is_complete_and_cites_a_known_provider():
    for entry in CATALOG:
        assert entry.provider in ("exact-online", "quickbooks", "bexio")
        assert entry.explanation.endswith(".")
        assert isinstance(entry.fix, Fix)


# -- transient or a person, the provider's words, and the fix screen ------------------------------

#: Causes someone must act on before a retry can succeed, and causes that clear by themselves.
NEEDS_PERSON = {C.MAPPING_MISSING, C.CUSTOMER_NOT_LINKED, C.CLOSED_PERIOD, C.DUPLICATE, C.NOT_SUPPORTED}
TRANSIENT = {C.RATE_LIMIT, C.PROVIDER_DOWN}


@pytest.mark.parametrize(("kind", "provider", "status", "code", "text", "error_class", "fix"), CASES)
def test_each_explanation_says_whether_a_person_must_act_and_keeps_the_providers_words(
    kind, provider, status, code, text, error_class, fix
):
    error = kind(provider=provider, status=status, provider_code=code, provider_text=text)
    explanation = explain(error)
    if error_class in NEEDS_PERSON:
        assert explanation.needs_person and not explanation.transient
    if error_class in TRANSIENT:
        assert explanation.transient and not explanation.needs_person
    assert (explanation.provider_code, explanation.provider_text) == (code, text)
    assert (explanation.provider, explanation.status) == (provider, status)
    assert explanation.fix.endpoint and explanation.fix.label


def test_the_adapters_own_refusals_are_classified_by_their_message():
    network = explain(Rejected("The message must contain [Network Link]: add [Network Link]", provider="bexio"))
    assert (network.error_class, network.fix, network.provider_text) == (C.VALIDATION, Fix.SETTINGS, None)
    no_mail = explain(Rejected("contact 000001 'bexio AG' has no e-mail address", provider="bexio"))
    assert (no_mail.error_class, no_mail.fix) == (C.VALIDATION, Fix.SETTINGS)
    # A missing feature stays one whatever its words mention.
    note = explain(NotSupported("create credit note CN-1 by hand: cancel the invoice (contact_id 4)", provider="bexio"))
    assert note.error_class is C.NOT_SUPPORTED


@pytest.mark.parametrize(
    ("status", "error_class", "transient"),
    [(429, C.RATE_LIMIT, True), (401, C.AUTH_LOST, True), (403, C.AUTH_LOST, False), (502, C.PROVIDER_DOWN, True)],
)
def test_untyped_errors_fall_back_on_their_status(status, error_class, transient):
    explanation = explain(LedgerError(provider="somebody", status=status, provider_text="?"))
    assert (explanation.error_class, explanation.transient) == (error_class, transient)


def test_a_refusal_sent_as_500_stays_a_refusal():
    # Exact reports business rules as 500 with a message (exact-online.md §4.2).
    explanation = explain(Rejected(provider="exact-online", status=500, provider_text="Some new business rule"))
    assert (explanation.error_class, explanation.needs_person) == (C.VALIDATION, True)


@pytest.fixture(scope="module")
def url_map():
    """The portal's URL map (routes only: no database is touched)."""
    from portal import create_app

    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "EMBEDDED_WORKER": False,
            "SECRET_KEY": "test-secret-key-that-is-long-enough-for-production",
            "TOKEN_KEYS": "nKxGk3sSgq3I5YcdwHcXjzD0Q4oC8bVtPvyZ6J1mQ2E=",
            "SERVER_NAME": None,
        }
    )
    return app.url_map


def test_every_cause_has_a_heading_and_every_fix_a_screen_of_the_app(url_map):
    assert {c.value for c in ErrorClass} == {
        "auth_lost",
        "mapping_missing",
        "customer_not_linked",
        "closed_period",
        "duplicate",
        "validation",
        "rate_limit",
        "provider_down",
        "not_supported",
        "tax_held",
        "totals_differ",
    }
    assert all(c.label for c in ErrorClass)
    assert set(FIX_TARGETS) == set(Fix)
    rules = {rule.endpoint: rule for rule in url_map.iter_rules()}
    for fix in Fix:
        target = fix.target
        assert isinstance(target, FixTarget) and target.label and target.method in ("GET", "POST")
        rule = rules.get(target.endpoint)
        assert rule is not None, f"{fix}: no endpoint {target.endpoint!r}"
        assert set(rule.arguments) == set(target.params), fix
        assert target.method in rule.methods, fix
    assert (Fix.MAPPINGS.endpoint, Fix.MAPPINGS.label) == ("mappings.show_mappings", "Open the mappings")
    assert (Fix.CUSTOMER_LINKS.endpoint, Fix.CUSTOMER_LINKS.label) == (
        "customers.show_customer_links",
        "Link the customer",
    )
    assert (Fix.RECONNECT.endpoint, Fix.RECONNECT.label, Fix.RECONNECT.method) == (
        "connections.reconnect",
        "Re-authorize",
        "POST",
    )
    assert (Fix.SETTINGS.endpoint, Fix.SETTINGS.label) == ("connections.show_connection", "Connection settings")
    assert Fix.MAPPINGS == "connection.mappings"  # the symbolic values stay stable


ERROR_TYPES = st.sampled_from(
    [LedgerError, Rejected, NotFound, Forbidden, AuthExpired, NeedsReauthorization, Unavailable, NotSupported]
)
ANY_TEXT = st.one_of(st.none(), st.text(max_size=300), st.integers())


@pytest.mark.slow
@given(
    kind=st.one_of(ERROR_TYPES, st.just(RateLimited)),
    provider=st.one_of(st.none(), st.sampled_from(["exact-online", "quickbooks", "bexio"]), st.text(max_size=12)),
    status=st.one_of(st.none(), st.integers(min_value=-1, max_value=999)),
    code=ANY_TEXT,
    text=ANY_TEXT,
    message=st.text(max_size=200),
)
def test_explain_never_raises_and_always_names_a_cause(kind, provider, status, code, text, message):
    facts = {"provider": provider, "status": status, "provider_code": code, "provider_text": text}
    if kind is RateLimited:
        facts["retry_at"] = NOW
    explanation = explain(kind(message, **facts))
    assert isinstance(explanation.error_class, ErrorClass)
    assert isinstance(explanation.fix, Fix) and explanation.fix.target in FIX_TARGETS.values()
    assert explanation.explanation.endswith(".")
    assert explanation.provider_text == (None if text in (None, "") else str(text))
    assert explanation.transient is not explanation.needs_person
    if kind is RateLimited:
        assert explanation.error_class is C.RATE_LIMIT and explanation.transient
    if kind is Unavailable:
        assert explanation.error_class is C.PROVIDER_DOWN and explanation.transient
