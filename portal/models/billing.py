"""Billing records of the SaaS: customers, products, invoices, credit notes, payments.

They arrive through the ingestion API (or the demo seed) keyed by the SaaS's own ids
(``external_id``, unique per organization) and are what Ledgerlink pushes to the ledgers.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, Enum, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..database import ZERO, Base, Money, Quantity, Rate, UTCDateTime, utcnow
from .organization import BusinessUnit, Organization


class Customer(Base):
    """A customer of an organization (the party an invoice is addressed to)."""

    __tablename__ = "customer"
    __table_args__ = (
        UniqueConstraint("organization_id", "external_id"),
        Index("ix_customer_org_name", "organization_id", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    #: The SaaS's id of the customer.
    external_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    #: VAT number as the SaaS user typed it (may carry spaces or lack the country prefix).
    vat_number: Mapped[str | None] = mapped_column(String(32))
    #: Chamber-of-commerce / company registration number (KvK, KBO, Companies House, SIREN…).
    coc_number: Mapped[str | None] = mapped_column(String(32))
    street: Mapped[str | None] = mapped_column(String(200))
    postcode: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(120))
    #: ISO 3166-1 alpha-2.
    country: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    organization: Mapped[Organization] = relationship(back_populates="customers")


class Product(Base):
    """Something an organization sells; invoice lines may refer to it."""

    __tablename__ = "product"
    __table_args__ = (UniqueConstraint("organization_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(64))
    #: The SaaS's article code (SKU).
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    unit_price: Mapped[Decimal] = mapped_column(Quantity)
    #: Default tax rate in percent.
    tax_rate: Mapped[Decimal] = mapped_column(Rate)
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TaxKind(enum.StrEnum):
    """What kind of tax treatment a line has; only 0 % lines tell several kinds apart."""

    #: Taxed at the line's (positive) rate.
    standard = "standard"
    #: Taxed at a reduced (positive) rate; looked up by its rate like ``standard``.
    reduced = "reduced"
    #: 0 %: zero-rated supply.
    zero = "zero"
    #: 0 %: exempt from VAT / sales tax.
    exempt = "exempt"
    #: 0 %: the customer accounts for the VAT (EU reverse charge, intra-community supply).
    reverse_charge = "reverse_charge"
    #: 0 %: outside the scope of VAT (export, services abroad).
    outside_scope = "outside_scope"

    @property
    def words(self) -> str:
        """Return the kind in plain words."""
        return _KIND_WORDS[self]


_KIND_WORDS = {
    TaxKind.standard: "standard",
    TaxKind.reduced: "reduced",
    TaxKind.zero: "zero-rated",
    TaxKind.exempt: "exempt",
    TaxKind.reverse_charge: "reverse charge",
    TaxKind.outside_scope: "outside scope / export",
}
#: The kinds of a line at 0 %; a positive rate is ``standard`` or ``reduced``.
ZERO_KINDS = (TaxKind.zero, TaxKind.exempt, TaxKind.reverse_charge, TaxKind.outside_scope)
RATED_KINDS = (TaxKind.standard, TaxKind.reduced)


def effective_tax_kind(rate: Decimal, kind: TaxKind | str | None) -> TaxKind:
    """Return a line's kind: the one it carries, else the one its rate implies (0 %: zero-rated)."""
    if kind:
        return TaxKind(kind)
    return TaxKind.standard if rate > 0 else TaxKind.zero


class InvoiceStatus(enum.StrEnum):
    """Payment state of an invoice in the SaaS."""

    open = "open"
    partially_paid = "partially_paid"
    paid = "paid"


class _Document:
    """Columns shared by invoices and credit notes."""

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The SaaS's id of the document.
    external_id: Mapped[str] = mapped_column(String(64))
    #: The SaaS's document number, as printed.
    number: Mapped[str] = mapped_column(String(64))
    issue_date: Mapped[date] = mapped_column(Date)
    #: ISO 4217.
    currency: Mapped[str] = mapped_column(String(3))
    #: Sum of the lines before tax.
    subtotal: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    tax_total: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    total: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Invoice(_Document, Base):
    """An invoice issued by a business unit to a customer."""

    __tablename__ = "invoice"
    __table_args__ = (
        UniqueConstraint("organization_id", "external_id"),
        Index("ix_invoice_org_issue_date", "organization_id", "issue_date"),
        Index("ix_invoice_business_unit_issue_date", "business_unit_id", "issue_date"),
    )

    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    business_unit_id: Mapped[int] = mapped_column(ForeignKey("business_unit.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    #: None: the push takes the connection's due days, else the ledger's payment terms decide.
    due_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[InvoiceStatus] = mapped_column(
        Enum(InvoiceStatus, name="invoice_status", native_enum=False, length=16), default=InvoiceStatus.open
    )
    #: Sum of the payments received.
    amount_paid: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    #: The invoice as the SaaS rendered it, when it sent one.
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)

    business_unit: Mapped[BusinessUnit] = relationship()
    customer: Mapped[Customer] = relationship()
    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.position", cascade="all, delete-orphan"
    )
    payments: Mapped[list[Payment]] = relationship(back_populates="invoice", order_by="Payment.paid_on")

    @property
    def balance(self) -> Decimal:
        """Return what is still to be paid."""
        return self.total - self.amount_paid


class _Line:
    """Columns shared by invoice and credit-note lines."""

    id: Mapped[int] = mapped_column(primary_key=True)
    #: 1-based order of the line on the document.
    position: Mapped[int]
    description: Mapped[str] = mapped_column(String(500))
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    unit_price: Mapped[Decimal] = mapped_column(Quantity)
    #: Tax rate in percent applied to this line.
    tax_rate: Mapped[Decimal] = mapped_column(Rate)
    #: The line's tax treatment as the SaaS sent it; None: the one its rate implies
    #: (:func:`effective_tax_kind`).
    tax_kind: Mapped[TaxKind | None] = mapped_column(Enum(TaxKind, name="tax_kind", native_enum=False, length=16))
    #: quantity times unit price, rounded to cents.
    net_amount: Mapped[Decimal] = mapped_column(Money)
    tax_amount: Mapped[Decimal] = mapped_column(Money)

    @property
    def kind(self) -> TaxKind:
        """Return the line's effective tax kind."""
        return effective_tax_kind(self.tax_rate, self.tax_kind)


class InvoiceLine(_Line, Base):
    """One line of an invoice."""

    __tablename__ = "invoice_line"

    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id"), index=True)

    invoice: Mapped[Invoice] = relationship(back_populates="lines")
    product: Mapped[Product | None] = relationship()


class CreditNote(_Document, Base):
    """A credit note correcting (part of) an invoice."""

    __tablename__ = "credit_note"
    __table_args__ = (
        UniqueConstraint("organization_id", "external_id"),
        Index("ix_credit_note_org_issue_date", "organization_id", "issue_date"),
    )

    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    business_unit_id: Mapped[int] = mapped_column(ForeignKey("business_unit.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    #: The invoice this note credits.
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"), index=True)
    reason: Mapped[str | None] = mapped_column(Text)

    customer: Mapped[Customer] = relationship()
    invoice: Mapped[Invoice] = relationship()
    lines: Mapped[list[CreditNoteLine]] = relationship(
        back_populates="credit_note", order_by="CreditNoteLine.position", cascade="all, delete-orphan"
    )


class CreditNoteLine(_Line, Base):
    """One line of a credit note (amounts positive: the note as a whole credits)."""

    __tablename__ = "credit_note_line"

    credit_note_id: Mapped[int] = mapped_column(ForeignKey("credit_note.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id"), index=True)

    credit_note: Mapped[CreditNote] = relationship(back_populates="lines")


class PaymentMethod(enum.StrEnum):
    """How a payment reached the organization."""

    bank_transfer = "bank_transfer"
    card = "card"
    direct_debit = "direct_debit"


class Payment(Base):
    """Money received against an invoice."""

    __tablename__ = "payment"
    __table_args__ = (
        UniqueConstraint("organization_id", "external_id"),
        Index("ix_payment_org_paid_on", "organization_id", "paid_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(64))
    paid_on: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[PaymentMethod] = mapped_column(
        Enum(PaymentMethod, name="payment_method", native_enum=False, length=16)
    )
    #: Bank reference or card transaction id.
    reference: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    invoice: Mapped[Invoice] = relationship(back_populates="payments")
