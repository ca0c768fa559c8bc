"""The connection test's invoice, made from the mappings so that a green test proves what invoices will carry.

It has the mapped default item (and revenue account, class), a line per mapped tax rate (QuickBooks
US: one taxable rate and a NON line, one rate being all a US document takes), the journal and the
payment condition or terms; the totals guard checks it before the ledger is called, and the totals
the ledger answers are compared with the SaaS's after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from ..integrations import specs
from ..integrations.base import DocumentDraft, LineDraft, TestResult, test_label
from ..integrations.errors_catalog import ErrorClass
from ..integrations.totals import Totals, cents, differences
from ..mappings.taxes import QBO_NON, RateKey, TaxHold
from ..models import Connection
from . import guard
from .push import _Resolver, due_date_for

#: Each test line: one unit at this price (tax then shows on every rate, in cents).
TEST_PRICE = Decimal("10.00")


class NothingMapped(Exception):
    """The connection has no tax code at any rate yet: the test can only make the ledger's simplest invoice."""


@dataclass(frozen=True)
class TestInvoice:
    """The test invoice as the ledger gets it, and what the SaaS would total it to."""

    __test__ = False  # not a pytest test class despite the name

    draft: DocumentDraft
    saas: Totals
    #: The rates it carries, in words ("21 %", "0 % zero-rated").
    rates: list[str]


def rows_to_test(connection: Connection, resolver: _Resolver) -> list[RateKey]:
    """Return the tax table's mapped rows and the default tax code's rate, each once."""
    keys = set(resolver.taxes.table)
    default = resolver.taxes.default
    tax = resolver.taxes.by_code.get(default[0].strip()) if default else None
    if tax is not None and tax.usable and tax.rate is not None:
        keys.add(RateKey.of(tax.rate))
    if resolver.taxes.us:
        # One sales tax rate per US document: the default's (else the lowest mapped) and a NON line.
        preferred = RateKey.of(tax.rate) if tax is not None and tax.rate else None
        rated = sorted(k for k in keys if k.rate > 0)
        keys = {preferred or rated[0]} if preferred or rated else set()
        keys.add(RateKey.of(Decimal(0)))
    return sorted(keys, key=lambda k: (-k.rate, k.kind))


def build(connection: Connection, today: date | None = None) -> TestInvoice:
    """Return the test invoice of the connection's mappings, checked by the totals guard.

    :raise guard.DocumentHeld: when the mappings cannot make it (a rate without a code, totals the
        ledger would compute differently), with the fix.
    :raise NothingMapped: when no tax rate is mapped and the default tax code (if any) has no rate.
    """
    resolver = _Resolver(connection)
    today = today or date.today()
    keys = rows_to_test(connection, resolver)
    if not keys or (resolver.taxes.us and all(k.rate == 0 for k in keys)):
        raise NothingMapped(
            "No tax rate is mapped yet, so the test invoice is the simplest one the ledger takes (one line at 0): "
            "map the connection, then test again to check what its invoices will carry."
        )
    values = resolver.values(None)
    lines, taxed, nets, taxes = [], [], [], []
    for key in keys:
        try:
            tax = resolver.taxes.resolve(key)
        except TaxHold as hold:
            raise guard.DocumentHeld(
                ErrorClass.MAPPING_MISSING,
                f"The test line at {hold.problem}",
                reason=hold.reason,
                cause=hold.problem,
            ) from None
        lines.append(
            LineDraft(
                description=f"{test_label()} — {key.label}",
                quantity=Decimal(1),
                unit_price=TEST_PRICE,
                item=values.get("item"),
                tax_code=tax.value,
                gl_account=values.get("gl_account"),
                class_ref=values.get("class"),
                tax_rate=tax.rate,
            )
        )
        taxed.append(guard.taxed_line(Decimal(1), TEST_PRICE, tax))
        nets.append(TEST_PRICE)
        taxes.append(cents(TEST_PRICE * key.rate / 100))
    net, tax_total = sum(nets, Decimal(0)), sum(taxes, Decimal(0))
    saas = Totals(net, tax_total, net + tax_total)
    currency = connection.business_unit.currency
    draft = DocumentDraft(
        reference=f"ll-test-{today:%y%m%d}",
        number=f"LLTEST-{today:%y%m%d}",
        customer_id="",
        issue_date=today,
        due_date=due_date_for(connection, today, None) or today + timedelta(days=14),
        currency=currency,
        lines=tuple(lines),
        journal=values.get("journal"),
        payment_condition=values.get("payment_condition"),
    )
    document = _Figures(draft.number, currency, saas)
    draft = guard.checked(connection, document, draft, taxed, resolver.taxes)  # type: ignore[arg-type]
    return TestInvoice(draft, saas, [k.label if k.rate or not resolver.taxes.us else QBO_NON for k in keys])


@dataclass(frozen=True)
class _Figures:
    """What the guard reads of a document, for the test invoice (which is no SaaS document)."""

    number: str
    currency: str
    totals: Totals

    @property
    def subtotal(self) -> Decimal:
        return self.totals.net

    @property
    def tax_total(self) -> Decimal:
        return self.totals.tax

    @property
    def total(self) -> Decimal:
        return self.totals.gross


def compare(connection: Connection, test: TestInvoice, result: TestResult) -> str | None:
    """Return why the ledger's totals of the test invoice differ from the SaaS's, or None when they agree."""
    if result.totals is None:
        return None
    arithmetic = specs.get_spec(connection.provider).arithmetic
    ledger = result.totals.absolute()
    if not differences(arithmetic, test.draft.currency, test.saas, ledger):
        return None
    return (
        f"{specs.get_spec(connection.provider).name} booked the test invoice as {ledger.words(test.draft.currency)}, "
        f"but the SaaS would invoice {test.saas.words(test.draft.currency)}: check the tax table's codes."
    )
