"""Tax by rate and the totals guard, per provider, against the sandboxes over real HTTP.

Every line is booked with the tax code of its own rate; a rate without one, a code at another
rate, or totals the ledger would compute differently hold the document before any ledger call;
a document the ledger booked differently is "differs from the SaaS", never pushed.
"""

from __future__ import annotations

import os
from datetime import date
from decimal import Decimal

import pytest

from tests.portal.connections.conftest import QBO_UK
from tests.portal.mappings.conftest import control
from tests.portal.sync.conftest import CONNECT, ledger_documents
from tests.portal.sync.rq_workers import sandbox_get


def today() -> str:
    """Today's date, read when a document is made (a run may cross midnight)."""
    return date.today().isoformat()


#: provider → (rate of the default code, another rate and its code to map, a 0 % code).
RATES = {
    "exact-online": ("21", "9", "1", "0"),
    "quickbooks": ("8", "6.5", "3", None),  # US: 0 % lines go as NON, nothing to map
    "bexio": ("8.1", "2.6", "UR26", "U00"),
}


def customer_id(app, org_unit) -> str:
    """Return the SaaS id of the organization's customer."""
    from portal.extensions import db
    from portal.models import Customer

    with app.app_context():
        return db.session.get(Customer, org_unit["customer_id"]).external_id


def ingest(api, org_unit, lines: list[tuple[str, str, str]], *, kind: str | None = None, currency="EUR") -> str:
    """PUT an invoice with lines of (quantity, unit price, rate) through the ingestion API; return its number."""
    customer = org_unit["customer"]
    number = f"TX-{os.urandom(3).hex().upper()}"
    body = {
        "business_unit": org_unit["unit_id"],
        "number": number,
        "customer": customer,
        "issue_date": today(),
        "due_date": today(),
        "currency": currency,
        "lines": [
            {
                "position": i,
                "description": f"Line {i}",
                "quantity": q,
                "unit_price": p,
                "tax_rate": r,
                **({"tax_kind": kind} if kind and Decimal(r) == 0 else {}),
            }
            for i, (q, p, r) in enumerate(lines, start=1)
        ],
    }
    api[0](f"invoices/inv-{number}", body)
    return number


def push(app, connection_id: int, number: str):
    """Push the invoice in this process and return a snapshot of its record."""
    from types import SimpleNamespace

    from portal.extensions import db
    from portal.models import Connection, Invoice
    from portal.sync import push as sync_push

    with app.app_context():
        invoice = db.session.scalar(db.select(Invoice).filter_by(number=number))
        record = sync_push.push_invoice(db.session.get(Connection, connection_id), invoice)
        db.session.refresh(record)
        return SimpleNamespace(
            **{c.key: getattr(record, c.key) for c in record.__table__.columns},
            differs=record.differs,
        )


def resync(app, record_id: int) -> None:
    from portal.extensions import db
    from portal.models import ExternalRecord
    from portal.sync import actions

    with app.app_context():
        actions.retry_failed([db.session.get(ExternalRecord, record_id)], None)
        db.session.commit()


def saas(api, number: str) -> dict:
    return api[1](f"invoices/inv-{number}").get_json()


def exact_lines(sandbox: str, invoice_id: str) -> list[dict]:
    data = sandbox_get(sandbox, "ledger/exact-online/3010001")
    rows = [r for r in data["tables"]["SalesInvoiceLines"] if r["InvoiceID"] == invoice_id]
    return sorted(rows, key=lambda r: r["LineNumber"])


def ledger_totals(sandbox: str, provider: str, number: str) -> tuple[Decimal, Decimal]:
    """Return (total, tax) of the one ledger invoice with our reference."""
    [doc] = ledger_documents(sandbox, provider, number)
    if provider == "exact-online":
        return Decimal(str(doc["AmountFC"])), Decimal(str(doc["VATAmountFC"]))
    if provider == "quickbooks":
        return Decimal(str(doc["TotalAmt"])), Decimal(str(doc["TxnTaxDetail"]["TotalTax"]))
    return Decimal(str(doc["total"])), Decimal(str(doc["total_taxes"]))


def map_rates(flow, connection_id: int, **rows: str):
    """Save rows of the tax table through the mappings page, e.g. ``{"tax-9.000-standard": "1"}``."""
    return flow.post(f"/connections/{connection_id}/mappings/taxes", **rows)


def field(rate: str, kind: str = "standard") -> str:
    return f"tax-{Decimal(rate).quantize(Decimal('0.001'))}-{kind}"


@pytest.mark.parametrize("provider", list(CONNECT))
def test_an_unmapped_rate_is_held_before_any_call_then_each_line_is_booked_at_its_own_rate(
    app, db, sandbox, connect, flow, org_unit, api, provider
):
    default, other, other_code, _zero = RATES[provider]
    connection_id = connect(provider)
    if provider == "quickbooks":  # one sales tax rate per US invoice: the other rate on its own
        number = ingest(api, org_unit, [("1", "100.00", other)])
    else:
        number = ingest(api, org_unit, [("2", "100.00", default), ("3", "33.33", other)])
    customers_before = _ledger_customers(sandbox, provider)

    held = push(app, connection_id, number)

    assert held.state.value == "needs_action" and held.last_error_class == "mapping_missing"
    position = 1 if provider == "quickbooks" else 2
    label = f"{other} %"
    assert held.last_error_text.startswith(f"Line {position} of invoice {number} is at {label}; ")
    assert (
        f"map {label} to one of " in held.last_error_text
        and "in the tax table on the mappings page" in held.last_error_text
    )
    assert ledger_documents(sandbox, provider, number) == []
    assert _ledger_customers(sandbox, provider) == customers_before  # nothing written, not even the customer
    assert saas(api, number)["ledger"]["state"] == "needs_action"
    page = flow.client.get(f"/ops/connections/{connection_id}/records").get_data(as_text=True)
    assert f'href="/connections/{connection_id}/mappings#tax-table"' in page  # the fix, linked

    assert map_rates(flow, connection_id, **{field(other): other_code}).status_code == 302
    resync(app, held.id)
    pushed = push(app, connection_id, number)

    assert pushed.state.value == "pushed", pushed.last_error_text
    answer = saas(api, number)
    total, tax = ledger_totals(sandbox, provider, number)
    # bexio keeps tax to 4 decimals (18.7997): to the cent it is the SaaS's.
    assert (total, tax.quantize(Decimal("0.01"))) == (Decimal(answer["total"]), Decimal(answer["tax_total"]))
    [doc] = ledger_documents(sandbox, provider, number)
    if provider == "exact-online":
        assert [line["VATCode"].strip() for line in exact_lines(sandbox, doc["InvoiceID"])] == ["2", "1"]
    elif provider == "quickbooks":
        assert doc["TxnTaxDetail"]["TxnTaxCodeRef"]["value"] == "3"  # Arizona 6.5 %
        assert doc["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"]["value"] == "TAX"
    else:
        assert [p["tax_id"] for p in doc["positions"]] == [14, 15]  # UN81, UR26


def _ledger_customers(sandbox: str, provider: str) -> int:
    data = sandbox_get(sandbox, f"ledger/{provider}/{CONNECT[provider][1]}")
    if provider == "exact-online":
        return len(data["tables"]["Accounts"])
    if provider == "quickbooks":
        return len(data["entities"]["Customer"])
    return len(data["contacts"])


def test_quickbooks_us_books_a_zero_rate_line_as_non_and_the_tax_of_the_saas(app, sandbox, connect, org_unit, api):
    connection_id = connect("quickbooks")
    # 3 x 33.33 at 8 %: the SaaS rounds each line (2.67), QuickBooks the taxable sum (7.9992 → 8.00).
    number = ingest(api, org_unit, [("1", "33.33", "8"), ("1", "33.33", "8"), ("1", "33.33", "8"), ("2", "50", "0")])

    record = push(app, connection_id, number)

    assert record.state.value == "pushed", record.last_error_text
    [doc] = ledger_documents(sandbox, "quickbooks", number)
    codes = [
        line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in doc["Line"] if "SalesItemLineDetail" in line
    ]
    assert codes == ["TAX", "TAX", "TAX", "NON"]
    assert doc["TxnTaxDetail"]["TxnTaxCodeRef"] == {"value": "2"}
    answer = saas(api, number)
    assert answer["tax_total"] == "8.01"  # 2.67 x 3
    assert ledger_totals(sandbox, "quickbooks", number) == (Decimal("208.00"), Decimal("8.01"))


def test_quickbooks_us_holds_taxable_lines_at_two_rates(app, sandbox, connect, flow, org_unit, api):
    connection_id = connect("quickbooks")
    map_rates(flow, connection_id, **{field("6.5"): "3"})
    number = ingest(api, org_unit, [("1", "100", "8"), ("1", "100", "6.5")])

    record = push(app, connection_id, number)

    assert record.state.value == "needs_action" and record.last_error_class == "tax_held"
    assert "QuickBooks US takes one sales tax rate per document" in record.last_error_text
    assert "8 % and 6.5 %" in record.last_error_text or "6.5 % and 8 %" in record.last_error_text
    assert ledger_documents(sandbox, "quickbooks", number) == []


def test_quickbooks_outside_the_us_puts_each_line_s_own_code(app, sandbox, flow, org_unit, api):
    from portal.extensions import db
    from portal.mappings import services
    from portal.models import Connection

    connection_id = flow.connect(org_unit["unit_id"], "quickbooks", company=QBO_UK, user="u-ada", realm_id=QBO_UK)
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        services.refresh_reference(connection)
        services.set_mappings(connection, {"item": "1", "tax_code": "2", "gl_account": "1"})
        connection.sync_from = connection.sync_from.replace(hour=0, minute=0, second=0, microsecond=0)
        db.session.commit()
    map_rates(flow, connection_id, **{field("5"): "3", field("0", "zero"): "4", field("0", "exempt"): "5"})
    number = ingest(api, org_unit, [("1", "100", "20"), ("2", "10", "5"), ("1", "40", "0")], kind="exempt")

    record = push(app, connection_id, number)

    assert record.state.value == "pushed", record.last_error_text
    doc = next(
        d
        for d in sandbox_get(sandbox, f"ledger/quickbooks/{QBO_UK}")["entities"]["Invoice"]
        if d.get("DocNumber") == number
    )
    codes = [
        line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in doc["Line"] if "SalesItemLineDetail" in line
    ]
    assert codes == ["2", "3", "5"]  # 20.0% S, 5.0% R, Exempt
    assert Decimal(str(doc["TotalAmt"])) == Decimal(saas(api, number)["total"]) == Decimal("181.00")


def test_a_rate_with_more_decimals_than_the_ledger_keeps_is_held(app, sandbox, connect, org_unit, api):
    connection_id = connect("exact-online")
    number = ingest(api, org_unit, [("1", "100", "8.875")])

    record = push(app, connection_id, number)

    assert record.state.value == "needs_action"
    assert "is at 8.875 %, which has more decimals than Exact Online keeps (2)" in record.last_error_text
    assert "correct the rate in the SaaS" in record.last_error_text
    assert ledger_documents(sandbox, "exact-online", number) == []


@pytest.mark.parametrize("provider", list(CONNECT))
def test_a_rate_no_code_of_the_ledger_has_is_held_naming_the_line_and_both_fixes(
    app, sandbox, connect, flow, org_unit, api, provider
):
    default = RATES[provider][0]
    connection_id = connect(provider)
    number = ingest(
        api, org_unit, [("1", "100", "17")] if provider == "quickbooks" else [("1", "50", default), ("1", "100", "17")]
    )
    customers_before = _ledger_customers(sandbox, provider)

    record = push(app, connection_id, number)

    name, words = {
        "exact-online": ("Exact Online", "VAT code"),
        "quickbooks": ("QuickBooks Online", "tax code"),
        "bexio": ("bexio", "tax"),
    }[provider]
    position = 1 if provider == "quickbooks" else 2
    assert record.state.value == "needs_action" and record.last_error_class == "mapping_missing"
    assert record.last_error_text.startswith(f"Line {position} of invoice {number} is at 17 %, and none of {name}'s ")
    assert "is at 17 %: correct the rate in the SaaS if it is wrong; otherwise add a " in record.last_error_text
    assert f"in {name}, refresh the reference data on the mappings page and map 17 % to it" in record.last_error_text
    assert words in record.last_error_text
    assert ledger_documents(sandbox, provider, number) == []
    assert _ledger_customers(sandbox, provider) == customers_before  # nothing written, not even the customer
    page = flow.client.get(f"/ops/connections/{connection_id}/records").get_data(as_text=True)
    assert f'href="/connections/{connection_id}/mappings#tax-table"' in page


def test_a_product_override_at_another_rate_holds_the_line_with_the_product_s_page(
    app, db, sandbox, connect, org_unit, api
):
    from portal.models import Mapping, Product

    connection_id = connect("exact-online")
    product = db.session.get(Product, org_unit["product_id"])
    # Set behind the form's back (the form refuses it): the product at 21 %, its override the 9 % code.
    db.session.add(Mapping(connection_id=connection_id, product_id=product.id, field="tax_code", value="1"))
    db.session.commit()
    number = f"TX-{os.urandom(3).hex().upper()}"
    line = {"position": 1, "description": "Hours", "quantity": 1, "unit_price": 100, "tax_rate": 21}
    body = {
        "business_unit": org_unit["unit_id"],
        "number": number,
        "customer": org_unit["customer"],
        "issue_date": today(),
        "currency": "EUR",
        "due_date": today(),
        "lines": [{**line, "product": product.external_id}],
    }
    api[0](f"invoices/inv-{number}", body)

    record = push(app, connection_id, number)

    assert record.state.value == "needs_action"
    assert f"but product {product.code} {product.name} maps it to VAT code 1 9% btw laag (9 %), which is at 9 %" in (
        record.last_error_text
    )
    assert "or remove its override" in record.last_error_text
    from portal.ops import fixes

    advice = fixes.advise(record.last_error_class, "exact-online", record.last_error_text)
    assert advice.endpoint == "mappings.show_mappings"


def test_a_code_whose_rate_changed_in_the_ledger_holds_once_read_and_differs_when_not(
    app, db, sandbox, connect, flow, org_unit, api
):
    from portal.mappings import services
    from portal.models import Connection

    connection_id = connect("exact-online")
    map_rates(flow, connection_id, **{field("9"): "1"})
    control(sandbox, "exact-online/set_vat_percentage", {"division": 3010001, "code": "1", "percentage": 0.10})
    try:
        # Not read yet: the guard still believes 9 %; Exact books 10 % → in the ledger, "differs".
        number = ingest(api, org_unit, [("1", "100.00", "9")])
        record = push(app, connection_id, number)

        assert record.state.value == "failed" and record.differs and record.external_id
        assert record.last_error_class == "totals_differ"
        assert (
            "booked invoice" in record.last_error_text
            and "110.00 EUR (net 100.00, tax 10.00)" in record.last_error_text
        )
        assert "the SaaS invoiced 109.00 EUR (net 100.00, tax 9.00)" in record.last_error_text
        [doc] = ledger_documents(sandbox, "exact-online", number)
        assert doc["Status"] == 20  # not printed: the customer never receives a document that differs
        assert record.finalize_state is None and record.pdf_state is None
        answer = saas(api, number)["ledger"]
        assert answer["state"] == "differs" and "differs from the SaaS" in answer["error"]
        page = flow.client.get(f"/ops/connections/{connection_id}/records").get_data(as_text=True)
        assert "differs from the SaaS" in page
        failures = flow.client.get("/ops/failures").get_data(as_text=True)
        assert "Differs from the SaaS" in failures

        # A re-sync compares again and writes nothing twice.
        resync(app, record.id)
        again = push(app, connection_id, number)
        assert again.differs and again.external_id == record.external_id
        assert len(ledger_documents(sandbox, "exact-online", number)) == 1

        # Read now: the tax table row points at a 10 % code for 9 % lines; the next one is held.
        services.refresh_reference(db.session.get(Connection, connection_id))
        db.session.commit()
        second = ingest(api, org_unit, [("1", "100.00", "9")])
        held = push(app, connection_id, second)
        assert held.state.value == "needs_action"
        assert "is at 9 %, but the tax table maps it to VAT code 1 9% btw laag (10 %), which is at 10 %" in (
            held.last_error_text
        )
        assert ledger_documents(sandbox, "exact-online", second) == []
    finally:
        control(sandbox, "exact-online/set_vat_percentage", {"division": 3010001, "code": "1", "percentage": 0.09})


@pytest.mark.parametrize(
    ("provider", "lines", "reason"),
    [
        # Exact rounds VAT per code: 2 x 0.50 at 9 % is 0.09 there, 0.05 + 0.05 in the SaaS.
        ("exact-online", [("1", "0.50", "9"), ("1", "0.50", "9")], "Exact Online computes the VAT of each VAT code"),
        # bexio keeps 0.125 + 0.125 = 0.25 unrounded where the SaaS has 0.13 + 0.13.
        (
            "bexio",
            [("1", "0.125", "8.1"), ("1", "0.125", "8.1")],
            "bexio keeps each line's amount as quantity x unit price, unrounded",
        ),
    ],
)
def test_totals_the_ledger_would_compute_differently_are_held_with_both_figures(
    app, sandbox, connect, flow, org_unit, api, provider, lines, reason
):
    connection_id = connect(provider)
    map_rates(flow, connection_id, **{field("9"): "1"} if provider == "exact-online" else {})
    number = ingest(api, org_unit, lines)

    record = push(app, connection_id, number)

    assert record.state.value == "needs_action" and record.last_error_class == "tax_held", record.last_error_text
    assert reason in record.last_error_text and "but the SaaS invoiced" in record.last_error_text
    assert "Nothing was written to" in record.last_error_text
    assert ledger_documents(sandbox, provider, number) == []


def test_bexio_rounds_a_chf_total_to_five_rappen_and_that_is_the_saas_s_total(app, db, sandbox, connect, org_unit, api):
    from portal.models import BusinessUnit

    unit = db.session.get(BusinessUnit, org_unit["unit_id"])
    unit.currency = "CHF"
    db.session.commit()
    connection_id = connect("bexio")
    # 17.80 at 8.1 %: tax 1.4418 (bexio keeps 4 decimals) → 1.44; total 19.2418 → 19.25 in bexio.
    number = ingest(api, org_unit, [("5", "3.56", "8.1")], currency="CHF")

    record = push(app, connection_id, number)

    assert record.state.value == "pushed", record.last_error_text
    assert saas(api, number)["total"] == "19.24"
    [doc] = ledger_documents(sandbox, "bexio", number)
    assert ledger_totals(sandbox, "bexio", number) == (Decimal("19.25"), Decimal("1.4418"))
    assert doc["total_rounding_difference"] == 0.01


@pytest.fixture(autouse=True)
def _customer_of(app, org_unit):
    """Let the helpers read the customer's SaaS id from ``org_unit``."""
    org_unit["customer"] = customer_id(app, org_unit)
