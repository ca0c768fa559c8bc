"""The mapping check: each provider pitfall, set up in the sandbox, is caught with a link to its fix."""

from __future__ import annotations

import html
import re

import requests

from portal.models import Connection

from .conftest import BEXIO_MAIN, GOOD_DEFAULTS, QBO_US, control

#: The words of the totals guard's findings over the last 12 months' documents. The unit these tests
#: connect to every ledger is the demo seed's first (Dutch, lines at 21, 9 and 0 %): QuickBooks US and
#: bexio have no code at those rates, so the guard finds them there. These tests are about the other
#: checks; the guard's findings are tested in tests/portal/mappings/test_taxes.py.
GUARD_WORDS = "of the last 12 months would be held"


def _problems(body: str, *, guard: bool = False) -> list[tuple[str, str, str]]:
    """Return (severity, text, link) of every problem in a preflight fragment (the guard's too when ``guard``)."""
    found = re.findall(r'data-severity="(\w+)">\s*<strong>\w+:</strong>(.*?)<a href="([^"]+)">', body, re.S)
    problems = [(sev, html.unescape(re.sub(r"<[^>]+>", "", text)).strip(), link) for sev, text, link in found]
    return [p for p in problems if guard or GUARD_WORDS not in p[1]]


def _clean(body: str) -> bool:
    """Say whether the check found nothing but the guard's findings on the demo unit's rates (see GUARD_WORDS)."""
    return 'data-outcome="clean"' in body or (bool(re.search("data-outcome=", body)) and not _problems(body))


def _ledger(sandbox: str, provider: str, company: str) -> dict:
    return requests.get(f"{sandbox}/_control/ledger/{provider}/{company}", timeout=10).json()


def test_good_defaults_pass_for_every_provider(connect):
    for provider, defaults in GOOD_DEFAULTS.items():
        mapper = connect(provider)
        assert mapper.save_defaults(**defaults).status_code == 302
        body = mapper.preflight()
        assert _clean(body), (provider, _problems(body))
        mapper.flow.post(f"/connections/{mapper.id}/disconnect", confirm="y")


def test_missing_defaults_are_reported_with_the_screen_that_sets_them(connect):
    mapper = connect("bexio")
    problems = _problems(mapper.preflight())
    texts = " | ".join(p[1] for p in problems)
    assert "No default sales tax is set" in texts and "No default revenue account is set" in texts
    assert "bexio refuses invoice lines without one" in texts
    link = next(p[2] for p in problems if "sales tax" in p[1])
    assert link == f"/connections/{mapper.id}/mappings#default-tax_code"


def test_exact_missing_default_payment_condition(connect):
    mapper = connect("exact-online")
    defaults = {k: v for k, v in GOOD_DEFAULTS["exact-online"].items() if k != "payment_condition"}
    mapper.save_defaults(**defaults)
    problems = _problems(mapper.preflight())
    assert [p[0] for p in problems] == ["error"]
    assert "No default payment condition is set" in problems[0][1]
    assert problems[0][2].endswith("#default-payment_condition")
    mapper.save_defaults(payment_condition="14")
    assert _clean(mapper.preflight())


def test_qbo_category_item_is_caught_after_it_became_one(connect, sandbox):
    mapper = connect("quickbooks")
    mapper.save_defaults(**{**GOOD_DEFAULTS["quickbooks"], "item": "2"})
    assert _clean(mapper.preflight())
    control(sandbox, "quickbooks/make_item_category", {"realm_id": QBO_US, "item_id": "2"})
    (problem,) = _problems(mapper.preflight())
    assert problem[0] == "error"
    assert "Default product/service: 2 Hours is a category, not a product or service" in problem[1]
    assert problem[2].endswith("#default-item")


def test_qbo_sub_item_override_is_flagged(connect, recent_product):
    mapper = connect("quickbooks")
    mapper.save_defaults(**GOOD_DEFAULTS["quickbooks"])
    product_id, code = recent_product(mapper.id)
    assert mapper.save_override(product_id, item="4").status_code == 302
    body = mapper.preflight()
    (problem,) = _problems(body)
    assert problem[0] == "warning" and f"Product {code}" in problem[1]
    assert "4 Hardware:Cables, a sub-item" in problem[1]
    assert problem[2] == f"/connections/{mapper.id}/mappings/products/{product_id}"


def test_qbo_custom_transaction_numbers(connect, sandbox):
    mapper = connect("quickbooks")
    mapper.save_defaults(**GOOD_DEFAULTS["quickbooks"])
    control(sandbox, "quickbooks/set_preferences", {"realm_id": QBO_US, "custom_txn_numbers": False})
    (problem,) = _problems(mapper.preflight())
    assert "Custom transaction numbers are off in QuickBooks" in problem[1]
    assert "a retried push cannot find the invoice" in problem[1]
    control(sandbox, "quickbooks/set_preferences", {"realm_id": QBO_US, "custom_txn_numbers": True})
    assert _clean(mapper.preflight())


def test_qbo_class_with_class_tracking_off_and_uk_without_tax_code(connect, sandbox):
    mapper = connect("quickbooks")
    mapper.save_defaults(**GOOD_DEFAULTS["quickbooks"])
    control(sandbox, "quickbooks/set_preferences", {"realm_id": QBO_US, "class_tracking": False})
    (problem,) = _problems(mapper.preflight())
    assert "Default class: Class tracking is off in QuickBooks Online" in problem[1]
    # A non-US tax mode needs a tax code on every line.
    mapper.save_defaults(**{"class": "", "tax_code": "", "qbo_tax_mode": "non_us"})
    texts = [p[1] for p in _problems(mapper.preflight())]
    assert any(t.startswith("No default tax code is set") for t in texts)
    assert any("The tax mode is VAT / GST" in t and "expects US sales tax" in t for t in texts)


def test_bexio_tax_made_inactive_after_a_rate_change(connect, sandbox):
    mapper = connect("bexio")
    mapper.save_defaults(**GOOD_DEFAULTS["bexio"])
    assert _clean(mapper.preflight())
    control(sandbox, "bexio/deactivate_tax", {"company": BEXIO_MAIN, "tax_id": 14})  # UN81
    (problem,) = _problems(mapper.preflight())
    assert "Default sales tax: Sales tax UN81" in problem[1] and "is inactive in bexio" in problem[1]
    assert problem[2].endswith("#default-tax_code")


def test_product_overrides_with_bad_codes_link_to_the_product(app, db, connect, recent_product):
    from portal.extensions import db as _db
    from portal.models import Mapping

    mapper = connect("exact-online")
    mapper.save_defaults(**GOOD_DEFAULTS["exact-online"])
    product_id, code = recent_product(mapper.id)
    # A code that vanished from the ledger after it was mapped (set behind the screens' back).
    _db.session.add(Mapping(connection_id=mapper.id, product_id=product_id, field="tax_code", value="7"))
    _db.session.commit()
    (problem,) = _problems(mapper.preflight())
    assert problem[1].startswith(f"Product {code}") and "VAT code “7” does not exist" in problem[1]
    assert problem[2] == f"/connections/{mapper.id}/mappings/products/{product_id}"


def test_the_check_writes_nothing_to_the_ledger(connect, sandbox, db):
    mapper = connect("quickbooks")
    mapper.save_defaults(**GOOD_DEFAULTS["quickbooks"])
    before = _ledger(sandbox, "quickbooks", QBO_US)
    mapper.preflight()
    after = _ledger(sandbox, "quickbooks", QBO_US)
    for entity in ("Invoice", "Customer", "Item", "Payment"):
        assert before.get(entity) == after.get(entity), entity
    assert db.session.get(Connection, mapper.id).last_success_at is not None
