"""Queries behind the organization pages: search and filtered, paginated record lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import (
    BusinessUnit,
    Connection,
    ConnectionStatus,
    CreditNote,
    Customer,
    Invoice,
    InvoiceStatus,
    Organization,
    Payment,
    PaymentMethod,
    Product,
)


def search_organizations(q: str, page: int, per_page: int) -> Pagination:
    """Return organizations whose name, SaaS id or country matches ``q``, by name."""
    stmt = select(Organization).order_by(Organization.name, Organization.id)
    if q:
        stmt = stmt.where(
            or_(
                Organization.name.icontains(q, autoescape=True),
                Organization.external_id.icontains(q, autoescape=True),
                func.upper(Organization.country) == q.upper(),
            )
        )
    return db.paginate(stmt, page=page, per_page=per_page, error_out=False, count=True)


@dataclass(frozen=True)
class RecordFilters:
    """Filters a staff member can set on an organization's record lists."""

    q: str = ""
    status: InvoiceStatus | None = None
    method: PaymentMethod | None = None
    business_unit_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    country: str = ""


def _dated(stmt: Select, column, filters: RecordFilters) -> Select:
    if filters.date_from:
        stmt = stmt.where(column >= filters.date_from)
    if filters.date_to:
        stmt = stmt.where(column <= filters.date_to)
    return stmt


def customers_query(org: Organization, f: RecordFilters) -> Select:
    """Customers of ``org`` by name, filtered by text (name, e-mail, VAT, SaaS id) and country."""
    stmt = select(Customer).where(Customer.organization_id == org.id).order_by(Customer.name, Customer.id)
    if f.q:
        stmt = stmt.where(
            or_(
                Customer.name.icontains(f.q, autoescape=True),
                Customer.email.icontains(f.q, autoescape=True),
                Customer.vat_number.icontains(f.q, autoescape=True),
                Customer.external_id.icontains(f.q, autoescape=True),
            )
        )
    if f.country:
        stmt = stmt.where(Customer.country == f.country.upper())
    return stmt


def products_query(org: Organization, f: RecordFilters) -> Select:
    """Products of ``org`` by code, filtered by text (code, name)."""
    stmt = select(Product).where(Product.organization_id == org.id).order_by(Product.code, Product.id)
    if f.q:
        stmt = stmt.where(
            or_(Product.code.icontains(f.q, autoescape=True), Product.name.icontains(f.q, autoescape=True))
        )
    return stmt


def invoices_query(org: Organization, f: RecordFilters) -> Select:
    """Invoices of ``org``, newest first, filtered by number/customer, status, unit and dates."""
    stmt = (
        select(Invoice)
        .where(Invoice.organization_id == org.id)
        .options(joinedload(Invoice.customer), joinedload(Invoice.business_unit))
        .order_by(Invoice.issue_date.desc(), Invoice.id.desc())
    )
    if f.q:
        stmt = stmt.join(Invoice.customer).where(
            or_(Invoice.number.icontains(f.q, autoescape=True), Customer.name.icontains(f.q, autoescape=True))
        )
    if f.status:
        stmt = stmt.where(Invoice.status == f.status)
    if f.business_unit_id:
        stmt = stmt.where(Invoice.business_unit_id == f.business_unit_id)
    return _dated(stmt, Invoice.issue_date, f)


def credit_notes_query(org: Organization, f: RecordFilters) -> Select:
    """Credit notes of ``org``, newest first, filtered by number/customer and dates."""
    stmt = (
        select(CreditNote)
        .where(CreditNote.organization_id == org.id)
        .options(joinedload(CreditNote.customer), joinedload(CreditNote.invoice))
        .order_by(CreditNote.issue_date.desc(), CreditNote.id.desc())
    )
    if f.q:
        stmt = stmt.join(CreditNote.customer).where(
            or_(CreditNote.number.icontains(f.q, autoescape=True), Customer.name.icontains(f.q, autoescape=True))
        )
    if f.business_unit_id:
        stmt = stmt.where(CreditNote.business_unit_id == f.business_unit_id)
    return _dated(stmt, CreditNote.issue_date, f)


def payments_query(org: Organization, f: RecordFilters) -> Select:
    """Payments of ``org``, newest first, filtered by invoice number, method and dates."""
    stmt = (
        select(Payment)
        .where(Payment.organization_id == org.id)
        .options(joinedload(Payment.invoice))
        .order_by(Payment.paid_on.desc(), Payment.id.desc())
    )
    if f.q:
        stmt = stmt.join(Payment.invoice).where(Invoice.number.icontains(f.q, autoescape=True))
    if f.method:
        stmt = stmt.where(Payment.method == f.method)
    return _dated(stmt, Payment.paid_on, f)


def organization_summary(org: Organization) -> dict[str, int]:
    """Return how many records of each kind ``org`` has, in one query."""

    def count(model):
        return select(func.count(model.id)).where(model.organization_id == org.id).scalar_subquery()

    row = db.session.execute(
        select(
            count(Customer).label("customers"),
            count(Product).label("products"),
            count(Invoice).label("invoices"),
            count(CreditNote).label("credit_notes"),
            count(Payment).label("payments"),
        )
    ).one()
    return dict(row._mapping)


def live_connections(org: Organization) -> dict[int, Connection]:
    """Return each business unit's live (not disconnected) connection, by unit id, in one query."""
    rows = db.session.scalars(
        select(Connection)
        .join(BusinessUnit, Connection.business_unit_id == BusinessUnit.id)
        .where(BusinessUnit.organization_id == org.id, Connection.status != ConnectionStatus.disconnected)
    )
    return {c.business_unit_id: c for c in rows}


def business_units(org: Organization) -> list[BusinessUnit]:
    """Return the organization's business units in creation order."""
    return list(
        db.session.scalars(select(BusinessUnit).where(BusinessUnit.organization_id == org.id).order_by(BusinessUnit.id))
    )
