"""What a ledger totals a document to by its own rounding rules, and how far that may be from the SaaS's.

The SaaS computes each line's net (quantity x unit price) and tax (net x rate) and rounds both
half-up to cents; its totals are the sums. Ledgers round elsewhere (provider facts in
``specs.TaxArithmetic``):

- **Exact Online** rounds each line's net to cents and books, per VAT code, the VAT of the code's
  lines together, rounded once;
- **QuickBooks Online** rounds each line's amount to cents (it refuses an Amount other than
  Qty x UnitPrice rounded half-up) and computes each tax rate on the sum of the lines it taxes,
  rounded once; a US invoice takes an explicit ``TotalTax`` as it is;
- **bexio** keeps each position's total unrounded, computes each rate's tax on their sum
  unrounded, keeps the total tax to 4 decimals and rounds the invoice's total to the currency's
  rounding factor (CHF: 0.05).

:func:`ledger_totals` applies those rules; :func:`differences` says which of net, tax and total
differ by more than the ledger's own rounding allows. Money is :class:`~decimal.Decimal` only.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType

CENT = Decimal("0.01")
ZERO = Decimal(0)


def cents(value: Decimal) -> Decimal:
    """Return ``value`` rounded half-up (away from zero on ties) to cents."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def round_to(value: Decimal, factor: Decimal) -> Decimal:
    """Return ``value`` rounded half-up to a multiple of ``factor`` (cash rounding, e.g. CHF 0.05), in cents."""
    return cents((value / factor).quantize(Decimal(1), rounding=ROUND_HALF_UP) * factor)


class TaxBasis(enum.StrEnum):
    """Where a ledger rounds tax."""

    #: Each line's tax rounded to cents, then summed.
    LINE = "line"
    #: Per tax code: the tax of the code's lines together, rounded once to cents (per rate of the code).
    CODE = "code"
    #: Per rate: the tax of the rate's lines together, unrounded; the total tax kept to ``tax_places``.
    RATE_UNROUNDED = "rate_unrounded"


@dataclass(frozen=True)
class TaxArithmetic:
    """A ledger's rules for a document's totals (provider facts: ``specs.ProviderSpec.arithmetic``)."""

    #: Each line's net rounded to cents (Exact, QuickBooks) or kept as quantity x unit price (bexio).
    line_net_rounded: bool
    tax_basis: TaxBasis
    #: Decimals the total tax is kept to.
    tax_places: int = 2
    #: Currency → the factor the document's total is rounded to (bexio: CHF 0.05).
    cash_rounding: Mapping[str, Decimal] = field(default_factory=lambda: MappingProxyType({}))
    #: Decimals of a tax percentage the ledger keeps (a rate with more has no tax code there).
    rate_places: int = 2
    #: How the ledger computes, in words, for the message of a held document.
    words: str = ""

    def keeps(self, rate: Decimal) -> bool:
        """Say whether the ledger can hold a tax code with this percentage (its decimals)."""
        return rate == rate.quantize(Decimal(1).scaleb(-self.rate_places), rounding=ROUND_HALF_UP)

    def cash_factor(self, currency: str) -> Decimal | None:
        """Return the factor the ledger rounds a total in ``currency`` to, if it rounds beyond cents."""
        return self.cash_rounding.get(currency.upper())


@dataclass(frozen=True)
class Totals:
    """Net, tax and gross of a document."""

    net: Decimal
    tax: Decimal
    gross: Decimal

    def words(self, currency: str) -> str:
        """Return e.g. "121.00 EUR (net 100.00, tax 21.00)"."""
        return f"{_show(self.gross)} {currency} (net {_show(self.net)}, tax {_show(self.tax)})"

    def absolute(self) -> Totals:
        """Return the totals as positive amounts (credit notes are negative in some ledgers)."""
        sign = -1 if self.gross < 0 or (self.gross == 0 and self.net < 0) else 1
        return Totals(self.net * sign, self.tax * sign, self.gross * sign)


def _show(amount: Decimal) -> str:
    """Return an amount with two decimals, or with its own when it has more (bexio keeps tax to 4)."""
    exponent = amount.as_tuple().exponent
    return (
        str(amount) if isinstance(exponent, int) and exponent < -2 and amount != cents(amount) else str(cents(amount))
    )


@dataclass(frozen=True)
class TaxedLine:
    """One line as the ledger will book it: quantity, unit price and the percentage of its tax code."""

    quantity: Decimal
    unit_price: Decimal
    #: The tax code's percentage (0 for an untaxed line).
    rate: Decimal
    #: The ledger's tax code (lines are grouped by it where the ledger rounds per code).
    code: str = ""
    #: The rates the code is made of (a combined code, e.g. state + county), when more than one.
    components: tuple[Decimal, ...] = ()


def ledger_totals(
    arithmetic: TaxArithmetic, lines: Iterable[TaxedLine], currency: str, *, tax_total: Decimal | None = None
) -> Totals:
    """Return what the ledger will total the lines to by its rules.

    ``tax_total``: the tax the document states explicitly and the ledger takes as it is
    (QuickBooks US ``TxnTaxDetail.TotalTax``).
    """
    lines = list(lines)
    nets = [
        cents(line.quantity * line.unit_price) if arithmetic.line_net_rounded else line.quantity * line.unit_price
        for line in lines
    ]
    net = sum(nets, ZERO)
    if tax_total is not None:
        tax = tax_total
    elif arithmetic.tax_basis is TaxBasis.LINE:
        tax = sum((cents(n * line.rate / 100) for n, line in zip(nets, lines, strict=True)), ZERO)
    elif arithmetic.tax_basis is TaxBasis.CODE:
        bases: dict[tuple[str, Decimal, tuple[Decimal, ...]], Decimal] = {}
        for n, line in zip(nets, lines, strict=True):
            key = (line.code, line.rate, line.components)
            bases[key] = bases.get(key, ZERO) + n
        tax = ZERO
        for (_code, rate, components), base in bases.items():
            tax += sum((cents(base * part / 100) for part in components or (rate,)), ZERO)
    else:
        by_rate: dict[Decimal, Decimal] = {}
        for n, line in zip(nets, lines, strict=True):
            by_rate[line.rate] = by_rate.get(line.rate, ZERO) + n
        unrounded = sum((base * rate / 100 for rate, base in by_rate.items()), ZERO)
        tax = unrounded.quantize(Decimal(1).scaleb(-arithmetic.tax_places), rounding=ROUND_HALF_UP)
    # A total is in cents at least (bexio rounds every total to its currency's factor, 0.01 or more).
    return Totals(net, tax, round_to(net + tax, arithmetic.cash_factor(currency) or CENT))


#: A figure of the totals that differs: (name, the ledger's, the SaaS's).
Difference = tuple[str, Decimal, Decimal]


def differences(arithmetic: TaxArithmetic, currency: str, saas: Totals, ledger: Totals) -> list[Difference]:
    """Return the figures of ``ledger`` that differ from ``saas`` by more than the ledger's rounding allows.

    Net and tax must be equal to the cent (the ledger's figure rounded half-up to cents); the
    total too, except where the ledger rounds totals beyond cents (bexio's CHF 0.05): there it
    must be the SaaS's total rounded the same way.
    """
    found: list[Difference] = []
    if cents(ledger.net) != saas.net:
        found.append(("net", ledger.net, saas.net))
    if cents(ledger.tax) != saas.tax:
        found.append(("tax", ledger.tax, saas.tax))
    factor = arithmetic.cash_factor(currency)
    wanted = round_to(saas.gross, factor) if factor else saas.gross
    if cents(ledger.gross) != wanted:
        found.append(("total", ledger.gross, saas.gross))
    return found
