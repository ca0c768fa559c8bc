"""Provider errors → cause, plain words and the screen that fixes them."""

# ruff: noqa: E501 - the case table below is one row per case, wider than the line limit

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from portal.integrations.base import (
    AuthExpired,
    Forbidden,
    NeedsReauthorization,
    NotFound,
    NotSupported,
    RateLimited,
    Rejected,
    Unavailable,
)
from portal.integrations.errors_catalog import CATALOG, ErrorClass, Fix, explain, lookup

C = ErrorClass


FORM = "The form could not be saved due to the following errors:. "
QBO_610 = (
    "Object Not Found : Something you're trying to use has been made inactive. "
    "Check the fields with accounts, customers, items."
)
NOW = datetime.now(UTC)

#: (error type, provider, status, provider code, provider text, expected cause, expected fix)
# fmt: off
CASES = [
    # QuickBooks (quickbooks-online.md §4)
    (Rejected, "quickbooks", 400, "6240", "The name supplied already exists.", C.DUPLICATE, Fix.CUSTOMER_LINKS),
    (Rejected, "quickbooks", 400, "6140", "Duplicate Document Number Error", C.DUPLICATE, Fix.RECORD),
    (Rejected, "quickbooks", 400, "6210", "The account period has closed.", C.CLOSED_PERIOD, Fix.LEDGER_PERIODS),
    (Rejected, "quickbooks", 400, "6210", "Duplicate Document Number Error", C.DUPLICATE, Fix.RECORD),
    (NotFound, "quickbooks", 400, "610", QBO_610, C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "quickbooks", 400, "2500", "Categories cannot be used in transactions.", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "quickbooks", 400, "2500", "Invalid Reference Id : Customer deleted", C.CUSTOMER_NOT_LINKED, Fix.CUSTOMER_LINKS),
    (Rejected, "quickbooks", 400, "6000", "Make sure all your transactions have a VAT rate", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "quickbooks", 400, "6070", "Amount is not equal to UnitPrice * Qty.", C.VALIDATION, Fix.RECORD),
    (AuthExpired, "quickbooks", 401, "3200", "Token expired: ***", C.AUTH_LOST, Fix.RECONNECT),
    # Exact Online (exact-online.md §1.5, §2, §4.2)
    (NeedsReauthorization, "exact-online", 401, "unauthorized_client", "Old refresh token used.", C.AUTH_LOST, Fix.RECONNECT),
    (Forbidden, "exact-online", 403, "NoDivisionAccess", "Forbidden", C.AUTH_LOST, Fix.COMPANY),
    (Forbidden, "exact-online", 403, "LicenseExpired", "Forbidden", C.AUTH_LOST, Fix.RECONNECT),
    (Rejected, "exact-online", 500, None, "Periode is afgesloten: 2026 - 1", C.CLOSED_PERIOD, Fix.LEDGER_PERIODS),
    (Rejected, "exact-online", 500, None, "Period is closed: 2026 - 1", C.CLOSED_PERIOD, Fix.LEDGER_PERIODS),
    (Rejected, "exact-online", 500, None, "Ongeldige referentie: Besteld door", C.CUSTOMER_NOT_LINKED, Fix.CUSTOMER_LINKS),
    (Rejected, "exact-online", 500, None, "Ongeldige referentie: Journals", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "exact-online", 500, None, "Invalid: G/L account type", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "exact-online", 500, None, "Gegeven bestaat reeds.", C.DUPLICATE, Fix.CUSTOMER_LINKS),
    (Rejected, "exact-online", 500, None, "Mandatory: Ordered by", C.VALIDATION, Fix.RECORD),
    # bexio (bexio.md §4, §7)
    (Rejected, "bexio", 422, "422", FORM + "message must contain [Network Link]", C.VALIDATION, Fix.SETTINGS),
    (Rejected, "bexio", 422, "422", FORM + "positions[0][tax_id] [Invalid.]", C.MAPPING_MISSING, Fix.MAPPINGS),
    (Rejected, "bexio", 422, "422", FORM + "contact_id [Required.]", C.CUSTOMER_NOT_LINKED, Fix.CUSTOMER_LINKS),
    (Forbidden, "bexio", 403, "403", "Forbidden", C.AUTH_LOST, Fix.RECONNECT),
    (NotSupported, "bexio", None, None, "bexio has no credit-note API", C.NOT_SUPPORTED, Fix.RECORD),
    (NeedsReauthorization, "bexio", 400, "invalid_grant", "refresh token reuse exceeded", C.AUTH_LOST, Fix.RECONNECT),
    # Throttles and outages are what they are, whatever text came with them.
    (Unavailable, "exact-online", 503, None, "Service Unavailable", C.PROVIDER_DOWN, Fix.HEALTH),
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
