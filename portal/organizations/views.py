"""Organizations: live search, and each organization's units and billing records."""

from __future__ import annotations

from flask import Blueprint, abort, render_template

from ..connections import services as connect
from ..extensions import db
from ..fragments import wants_fragment
from ..models import InvoiceStatus, Organization, PaymentMethod, Role
from ..params import choice_arg, date_arg, int_arg, page_arg, page_size, text_arg
from ..security import require_role
from . import services

bp = Blueprint("organizations", __name__, url_prefix="/organizations")

#: The record lists of an organization: title, query, and the filters each one offers.
SECTIONS = {
    "customers": ("Customers", services.customers_query, ("q", "country")),
    "products": ("Products", services.products_query, ("q",)),
    "invoices": ("Invoices", services.invoices_query, ("q", "status", "business_unit", "from", "to")),
    "credit-notes": ("Credit notes", services.credit_notes_query, ("q", "business_unit", "from", "to")),
    "payments": ("Payments", services.payments_query, ("q", "method", "from", "to")),
}


def get_organization(org_id: int) -> Organization:
    """Load an organization.

    :raise: 404 when it does not exist.
    """
    org = db.session.get(Organization, org_id)
    if org is None:
        abort(404, description=f"There is no organization with id {org_id}.")
    return org


def _filters() -> services.RecordFilters:
    date_from, date_to = date_arg("from"), date_arg("to")
    if date_from and date_to and date_from > date_to:
        abort(400, description="from must be on or before to.")
    country = text_arg("country", 2)
    if country and not country.isalpha():
        abort(400, description=f"country must be a two-letter code such as NL, not {country!r}.")
    return services.RecordFilters(
        q=text_arg("q"),
        status=choice_arg("status", InvoiceStatus),
        method=choice_arg("method", PaymentMethod),
        business_unit_id=int_arg("business_unit"),
        date_from=date_from,
        date_to=date_to,
        country=country,
    )


# -- staff ------------------------------------------------------------------------------------
@bp.get("/")
@require_role(Role.support)
def list_organizations():
    q = text_arg("q")
    pagination = services.search_organizations(q, page_arg(), page_size())
    template = "organizations/_results.html" if wants_fragment() else "organizations/index.html"
    return render_template(template, pagination=pagination, q=q)


@bp.get("/<int:org_id>")
@require_role(Role.support)
def show_organization(org_id: int):
    org = get_organization(org_id)
    return render_template(
        "organizations/show.html",
        org=org,
        units=services.business_units(org),
        connections=services.live_connections(org),
        summary=services.organization_summary(org),
        sections=SECTIONS,
        waiting=[g for unit in services.business_units(org) for g in connect.waiting_grants(unit)],
        provider_names={key: connect.provider_name(key) for key in connect.providers.PROVIDERS},
    )


@bp.get("/<int:org_id>/<any(customers, products, invoices, 'credit-notes', payments):section>")
@require_role(Role.support)
def list_records(org_id: int, section: str):
    org = get_organization(org_id)
    title, query, filter_names = SECTIONS[section]
    filters = _filters()
    pagination = db.paginate(query(org, filters), page=page_arg(), per_page=page_size(), error_out=False)
    template = f"organizations/_{section.replace('-', '_')}.html"
    context = dict(
        org=org,
        section=section,
        title=title,
        filters=filters,
        filter_names=filter_names,
        pagination=pagination,
        units=services.business_units(org),
        statuses=list(InvoiceStatus),
        methods=list(PaymentMethod),
        sections=SECTIONS,
    )
    if wants_fragment():
        return render_template(template, **context)
    return render_template("organizations/records.html", table_template=template, **context)
