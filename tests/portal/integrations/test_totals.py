"""The totals guard's arithmetic: each ledger's rounding, and the tolerance it allows (Hypothesis)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from portal.integrations import specs
from portal.integrations.totals import (
    TaxArithmetic,
    TaxBasis,
    TaxedLine,
    Totals,
    cents,
    differences,
    ledger_totals,
    round_to,
)

CENT = Decimal("0.01")
EXACT = specs.EXACT_ONLINE_SPEC.arithmetic
QBO = specs.QUICKBOOKS_SPEC.arithmetic
BEXIO = specs.BEXIO_SPEC.arithmetic
PER_LINE = TaxArithmetic(line_net_rounded=True, tax_basis=TaxBasis.LINE)

quantities = st.decimals(min_value=0, max_value=1000, places=4)
prices = st.decimals(min_value=-500, max_value=5000, places=4)
rates = st.sampled_from([Decimal(r) for r in ("0", "2.6", "3.8", "5", "6", "7", "8.1", "9", "12", "19", "20", "21")])


@st.composite
def lines(draw, max_size: int = 12) -> list[TaxedLine]:
    """Lines as the SaaS sends them, each with the code of its rate."""
    found = []
    for _ in range(draw(st.integers(min_value=1, max_value=max_size))):
        rate = draw(rates)
        found.append(TaxedLine(draw(quantities), draw(prices), rate, code=f"code-{rate}"))
    return found


def saas(taxed: list[TaxedLine]) -> Totals:
    """The SaaS's totals: each line's net and tax rounded half-up to cents (portal/api/ingest.py)."""
    nets = [cents(line.quantity * line.unit_price) for line in taxed]
    taxes = [cents(net * line.rate / 100) for net, line in zip(nets, taxed, strict=True)]
    return Totals(sum(nets, Decimal(0)), sum(taxes, Decimal(0)), sum(nets, Decimal(0)) + sum(taxes, Decimal(0)))


@given(lines())
def test_a_ledger_that_rounds_like_the_saas_never_differs(taxed):
    computed = ledger_totals(PER_LINE, taxed, "EUR")
    assert computed == saas(taxed)
    assert differences(PER_LINE, "EUR", saas(taxed), computed) == []


@given(lines())
def test_one_line_per_code_rounds_as_the_saas_does(taxed):
    unique = [TaxedLine(line.quantity, line.unit_price, line.rate, code=f"line-{i}") for i, line in enumerate(taxed)]
    assert ledger_totals(EXACT, unique, "EUR") == saas(unique)
    assert ledger_totals(QBO, unique, "USD") == saas(unique)


@given(lines())
def test_rounding_per_code_is_at_most_half_a_cent_per_line_away_and_only_in_the_tax(taxed):
    computed, wanted = ledger_totals(EXACT, taxed, "EUR"), saas(taxed)
    assert computed.net == wanted.net
    assert abs(computed.tax - wanted.tax) <= Decimal("0.005") * len(taxed)
    found = differences(EXACT, "EUR", wanted, computed)
    assert {name for name, _l, _s in found} <= {"tax", "total"}
    assert bool(found) == (computed.tax != wanted.tax)


@given(lines(), st.decimals(min_value=-10000, max_value=10000, places=2))
def test_an_explicit_tax_is_booked_as_it_is(taxed, tax):
    computed = ledger_totals(QBO, taxed, "USD", tax_total=tax)
    assert computed.tax == tax and computed.gross == computed.net + tax


@given(st.decimals(min_value=-100000, max_value=100000, places=4), st.sampled_from(["0.05", "0.01", "0.1", "1"]))
def test_cash_rounding_lands_on_a_multiple_within_half_a_factor(value, factor):
    factor = Decimal(factor)
    rounded = round_to(value, factor)
    assert rounded % factor == 0
    assert abs(rounded - value) <= factor / 2
    assert round_to(-value, factor) == -rounded  # half away from zero: a credit note mirrors its invoice


@given(lines())
def test_bexio_rounds_chf_totals_to_five_rappen_and_keeps_tax_to_four_decimals(taxed):
    chf, eur = ledger_totals(BEXIO, taxed, "CHF"), ledger_totals(BEXIO, taxed, "EUR")
    assert chf.gross % Decimal("0.05") == 0 and abs(chf.gross - (chf.net + chf.tax)) <= Decimal("0.025")
    assert eur.gross == cents(eur.net + eur.tax)
    assert chf.tax == chf.tax.quantize(Decimal("0.0001"))


@given(lines())
@example([TaxedLine(Decimal("5"), Decimal("3.56"), Decimal("8.1"))])  # bexio's documented 19.15 → 19.15
def test_bexio_s_own_rounding_of_a_total_is_allowed_and_nothing_more(taxed):
    wanted = saas(taxed)
    computed = ledger_totals(BEXIO, taxed, "CHF")
    found = {name for name, _l, _s in differences(BEXIO, "CHF", wanted, computed)}
    assert ("net" in found) == (cents(computed.net) != wanted.net)
    assert ("tax" in found) == (cents(computed.tax) != wanted.tax)
    if not found & {"net", "tax"}:
        # Same net and tax to the cent: the totals only differ by where bexio rounds, within 0.05.
        assert abs(computed.gross - wanted.gross) <= Decimal("0.05")


@given(lines())
def test_credit_notes_mirror_invoices(taxed):
    negated = [TaxedLine(-line.quantity, line.unit_price, line.rate, line.code) for line in taxed]
    for arithmetic, currency in ((EXACT, "EUR"), (QBO, "USD"), (BEXIO, "CHF")):
        forward, backward = ledger_totals(arithmetic, taxed, currency), ledger_totals(arithmetic, negated, currency)
        assert backward == Totals(-forward.net, -forward.tax, -forward.gross)


@given(
    st.decimals(min_value=Decimal("0.01"), max_value=10000, places=2),
    st.lists(st.decimals(min_value=Decimal("0.001"), max_value=10, places=3), min_size=2, max_size=3),
)
def test_a_combined_code_rounds_each_of_its_rates(base, parts):
    rate = sum(parts, Decimal(0))
    line = TaxedLine(Decimal(1), base, rate, code="combined", components=tuple(parts))
    expected = sum((cents(base * p / 100) for p in parts), Decimal(0))
    assert ledger_totals(QBO, [line], "USD").tax == expected


@given(st.decimals(min_value=0, max_value=100, places=3))
def test_a_rate_fits_a_ledger_only_with_the_decimals_it_keeps(rate):
    assert EXACT.keeps(rate) == (rate == rate.quantize(CENT, rounding=ROUND_HALF_UP))
    assert QBO.keeps(rate)  # four decimals


# -- the emulators compute what the guard expects ---------------------------------------------------


@settings(max_examples=200)
@given(lines())
def test_the_exact_emulator_books_what_the_guard_expects(taxed):
    from sandbox.exact.ops import cents as exact_cents
    from sandbox.exact.ops import exact, invoice_vat

    rows = []
    for line in taxed:
        assume(abs(line.unit_price) < 10000)
        pct = float(line.rate / 100)
        amount = float(exact_cents(exact(float(line.quantity)) * exact(float(line.unit_price))))
        rows.append({"AmountFC": amount, "VATCode": line.code, "VATPercentage": pct})
    expected = ledger_totals(EXACT, taxed, "EUR")
    assert invoice_vat(rows) == expected.tax
    assert sum((exact(r["AmountFC"]) for r in rows), Decimal(0)) == expected.net


@settings(max_examples=200)
@given(lines(), st.sampled_from([(1, "CHF"), (2, "EUR")]))
def test_the_bexio_emulator_books_what_the_guard_expects(taxed, currency):
    from sandbox.bexio.store import Company

    currency_id, code = currency
    company = Company.__new__(Company)
    company.currencies = {1: {"round_factor": 0.05}, 2: {"round_factor": 0.01}}
    positions = [
        {
            "type": "KbPositionCustom",
            "amount": line.quantity,
            "unit_price": line.unit_price,
            "discount": Decimal(0),
            "is_optional": False,
            "tax_value": line.rate,
        }
        for line in taxed
    ]
    invoice = {"positions": positions, "mwst_type": 0, "mwst_is_net": True, "currency_id": currency_id}
    invoice.update(payments=[], status=7)
    company.compute_totals(invoice)
    totals = invoice["totals"]
    expected = ledger_totals(BEXIO, taxed, code)
    assert (totals["total_net"], totals["total_taxes"], totals["total"]) == (
        expected.net,
        expected.tax,
        expected.gross,
    )
