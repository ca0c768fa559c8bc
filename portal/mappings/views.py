"""Mappings of a connection: reference data, defaults, product overrides, the check, CSV, division."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import csvfiles
from ..connections import services as connection_services
from ..connections import vault
from ..connections.lookup import connection_or_404
from ..extensions import db
from ..fragments import wants_fragment
from ..integrations.base import LedgerError
from ..models import AuditEvent, Connection, Product, Role, SyncRunKind
from ..params import page_arg, page_size, text_arg
from ..runs import start_run
from ..security import require_role
from . import csvio, services, taxes
from .forms import DivisionForm, ImportForm

bp = Blueprint("mappings", __name__)

#: Audit kinds shown as the mapping history.
HISTORY_KINDS = ("mapping.changed", "mapping.settings_changed", "mapping.imported", "connection.division_changed")


def get_connection(connection_id: int) -> Connection:
    """Load a live connection (404 when it does not exist, 409 when it is disconnected)."""
    return connection_or_404(connection_id, live_to="map codes")


def get_product(connection: Connection, product_id: int) -> Product:
    """Load a product of the connection's organization.

    :raise: 404 when it does not exist or belongs to another organization.
    """
    product = db.session.get(Product, product_id)
    if product is None or product.organization_id != connection.business_unit.organization_id:
        abort(404, description=f"{connection.business_unit.organization.name} has no product with id {product_id}.")
    return product


def _ledger_failure(connection: Connection, exc: Exception) -> str:
    """Note a failed ledger call on the connection and return it in plain words."""
    return connection_services.note_failure(connection, exc)


def _history(connection: Connection) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            db.select(AuditEvent)
            .where(
                AuditEvent.subject_type == "Connection",
                AuditEvent.subject_id == connection.id,
                AuditEvent.kind.in_(HISTORY_KINDS),
            )
            .order_by(AuditEvent.id.desc())
            .limit(50)
        )
    )


def _page(connection: Connection, *, errors=None, submitted=None, status: int = 200):
    refs = services.reference_data(connection)
    q = text_arg("q")
    pagination = db.paginate(
        services.products_query(connection, q), page=page_arg(), per_page=page_size(), error_out=False
    )
    maps = services.mappings(connection)
    effective = {p.id: services.effective_mapping(connection, p, refs=refs, maps=maps) for p in pagination.items}
    defaults = {k[1]: m.value for k, m in maps.items() if k[0] is None}
    submitted = submitted or {}
    cat = services.catalog_of(connection)
    context = dict(
        connection=connection,
        name=services.provider_name(connection),
        catalog=cat,
        refs=refs,
        picks={
            f.key: services.picklist(connection, f, refs, submitted.get(f.key, defaults.get(f.key))) for f in cat.fields
        },
        settings=services.mapping_settings(connection),
        submitted=submitted,
        errors=errors or {},
        tax_modes=services.TAX_MODES,
        ledger_default=lambda f: services.ledger_default(connection, f, refs),
        pagination=pagination,
        effective=effective,
        q=q,
        recent=services.recent_products(connection),
        history=_history(connection),
        overrides=csvio.override_count(connection),
        tax_rows=taxes.table(connection, refs),
        ledger_taxes=[t for t in taxes.ledger_taxes(connection, refs) if t.usable and t.rate is not None],
        us_sales_tax=taxes.us_sales_tax(connection),
        tax_words=(tax_field.lower_label if (tax_field := cat.field("tax_code")) else "tax code"),
        row_kinds=taxes.ROW_KINDS,
    )
    if wants_fragment() and request.method == "GET":
        return render_template("mappings/_products.html", **context)
    return render_template("mappings/show.html", **context), status


# -- support: the mappings page ---------------------------------------------------------------
@bp.get("/connections/<int:connection_id>/mappings")
@require_role(Role.support)
def show_mappings(connection_id: int):
    return _page(get_connection(connection_id))


@bp.post("/connections/<int:connection_id>/mappings/defaults")
@require_role(Role.support)
def update_defaults(connection_id: int):
    connection = get_connection(connection_id)
    cat = services.catalog_of(connection)
    codes = {f.key: request.form.get(f.key, "") for f in cat.fields if f.key in request.form}
    settings = {k: request.form[k] for k in services.SETTING_KEYS if k in request.form}
    try:
        changed = services.save_defaults(connection, codes, settings, current_user.id)
    except services.MappingRefused as exc:
        db.session.rollback()
        flash("Nothing was saved: " + " ".join(exc.errors.values()), "error")
        return _page(get_connection(connection_id), errors=exc.errors, submitted=request.form, status=400)
    db.session.commit()
    flash("Defaults saved." if changed else "Nothing changed.", "success")
    return redirect(url_for("mappings.show_mappings", connection_id=connection.id, _anchor="defaults"))


@bp.post("/connections/<int:connection_id>/mappings/taxes")
@require_role(Role.support)
def update_tax_table(connection_id: int):
    connection = get_connection(connection_id)
    try:
        values = taxes.table_form(request.form)
        changed = taxes.set_tax_table(connection, values, staff_id=current_user.id)
    except services.MappingRefused as exc:
        db.session.rollback()
        flash("Nothing was saved: " + " ".join(exc.errors.values()), "error")
        return _page(get_connection(connection_id), errors=exc.errors, submitted=request.form, status=400)
    db.session.commit()
    flash(f"Tax table saved: {len(changed)} rate(s) changed." if changed else "Nothing changed.", "success")
    return redirect(url_for("mappings.show_mappings", connection_id=connection.id, _anchor="tax-table"))


@bp.get("/connections/<int:connection_id>/mappings/options/<field>")
@require_role(Role.support)
def list_options(connection_id: int, field: str):
    connection = get_connection(connection_id)
    f = services.catalog_of(connection).field(field)
    if f is None:
        abort(404, description=f"{services.provider_name(connection)} has no field {field!r} to map.")
    refs = services.reference_data(connection)
    pick = services.picklist(connection, f, refs, request.args.get(field), text_arg("q"))
    blank = "— use the default —" if request.args.get("blank") == "default" else "— not set —"
    return render_template("mappings/_options.html", pick=pick, blank=blank)


@bp.route("/connections/<int:connection_id>/mappings/products/<int:product_id>", methods=["GET", "POST"])
@require_role(Role.support)
def edit_product(connection_id: int, product_id: int):
    connection = get_connection(connection_id)
    product = get_product(connection, product_id)
    errors, status = {}, 200
    if request.method == "POST":
        cat = services.catalog_of(connection)
        values = {f.key: request.form.get(f.key, "") for f in cat.override_fields if f.key in request.form}
        try:
            changes = services.set_mappings(connection, values, product=product, staff_id=current_user.id)
        except services.MappingRefused as exc:
            db.session.rollback()
            connection, product = get_connection(connection_id), get_product(get_connection(connection_id), product_id)
            errors, status = exc.errors, 400
            flash("Nothing was saved: " + " ".join(exc.errors.values()), "error")
        else:
            db.session.commit()
            flash(f"Mapping of {product.code} saved." if changes else "Nothing changed.", "success")
            return redirect(url_for("mappings.edit_product", connection_id=connection.id, product_id=product.id))
    refs = services.reference_data(connection)
    current = services.overrides(connection, product)
    submitted = request.form if errors else {}
    cat = services.catalog_of(connection)
    picks = {
        f.key: services.picklist(connection, f, refs, submitted.get(f.key, current.get(f.key)))
        for f in cat.override_fields
    }
    return (
        render_template(
            "mappings/product.html",
            picks=picks,
            connection=connection,
            product=product,
            name=services.provider_name(connection),
            catalog=services.catalog_of(connection),
            refs=refs,
            errors=errors,
            effective=services.effective_mapping(connection, product, refs=refs),
        ),
        status,
    )


@bp.post("/connections/<int:connection_id>/mappings/reference")
@require_role(Role.support)
def refresh_reference(connection_id: int):
    connection = get_connection(connection_id)
    try:
        counts = services.refresh_reference(connection)
        connection_services.note_success(connection)
    except (LedgerError, vault.VaultError) as exc:
        db.session.rollback()
        connection = get_connection(connection_id)
        flash(f"The reference data could not be read: {_ledger_failure(connection, exc)}", "error")
    else:
        flash(f"Reference data read from {services.provider_name(connection)}: {sum(counts.values())} rows.", "success")
    db.session.commit()
    return redirect(url_for("mappings.show_mappings", connection_id=connection.id, _anchor="reference"))


@bp.post("/connections/<int:connection_id>/mappings/reference/job")
@require_role(Role.support)
def queue_reference_refresh(connection_id: int):
    connection = get_connection(connection_id)
    run = start_run(
        SyncRunKind.reference_refresh,
        "jobs.reference.refresh_reference_data",
        queue_name="default",
        parameters={"connection_id": connection.id},
        started_by=current_user._get_current_object(),
    )
    flash("Reference data refresh queued.", "success")
    return redirect(url_for("system.show_job", run_id=run.id))


@bp.post("/connections/<int:connection_id>/mappings/preflight")
@require_role(Role.support)
def run_preflight(connection_id: int):
    connection = get_connection(connection_id)
    try:
        report = services.preflight(connection)
        connection_services.note_success(connection)
    except (LedgerError, vault.VaultError) as exc:
        db.session.rollback()
        connection = get_connection(connection_id)
        report = services.PreflightReport(error=_ledger_failure(connection, exc))
    # The onboarding checklist's "Check mappings clean" step reads this outcome.
    connection.note_onboarding(
        "preflight", errors=len(report.errors), warnings=len(report.warnings), error=report.error
    )
    db.session.commit()
    context = dict(connection=connection, report=report, name=services.provider_name(connection))
    if wants_fragment():
        return render_template("mappings/_preflight.html", **context)
    return render_template("mappings/preflight.html", **context)


# -- support: CSV -----------------------------------------------------------------------------
@bp.get("/connections/<int:connection_id>/mappings/export.csv")
@require_role(Role.support)
def export_mappings(connection_id: int):
    connection = get_connection(connection_id)
    filename = f"ledgerlink-mappings-{connection.id}-{date.today().isoformat()}.csv"
    return csvfiles.text_download(filename, csvio.export_csv(connection))


@bp.route("/connections/<int:connection_id>/mappings/import", methods=["GET", "POST"])
@require_role(Role.support)
def import_mappings(connection_id: int):
    connection = get_connection(connection_id)
    form = ImportForm()
    result, status = None, 200
    if form.validate_on_submit():
        result = csvio.import_csv(connection, form.file.data.read(), staff_id=current_user.id)
        if result.errors:
            db.session.rollback()
            connection = get_connection(connection_id)
            status = 400
        else:
            db.session.commit()
            flash(
                f"Imported: {result.changed_fields} change(s) on {result.changed_products} product(s)."
                if result.changed_fields
                else "The file matches the current mappings: nothing changed.",
                "success",
            )
            return redirect(url_for("mappings.show_mappings", connection_id=connection.id, _anchor="products"))
    elif form.is_submitted():
        status = 400
    return (
        render_template(
            "mappings/import.html",
            connection=connection,
            form=form,
            result=result,
            name=services.provider_name(connection),
            fields=[f.key for f in services.catalog_of(connection).override_fields],
        ),
        status,
    )


# -- support: division ------------------------------------------------------------------------
@bp.route("/connections/<int:connection_id>/division", methods=["GET", "POST"])
@require_role(Role.support)
def change_division(connection_id: int):
    connection = get_connection(connection_id)
    form = DivisionForm()
    companies, error, status = [], None, 200
    try:
        companies = services.reachable_companies(connection)
    except (LedgerError, vault.VaultError) as exc:
        error = _ledger_failure(connection, exc)
        db.session.commit()
    form.number.choices = [
        (c.id, f"{c.name} ({c.id})" + ("" if c.accessible else f" — not usable: {c.reason}")) for c in companies
    ]
    counts = services.division_counts(connection)
    if request.method == "GET":
        form.number.data = connection.external_company_id
    if request.method == "POST" and error is None:
        if not form.validate_on_submit():
            abort(400, description="The form could not be read; reload the page and try again.")
        try:
            company = services.change_division(connection, form.number.data, companies, confirmed=form.confirm.data)
        except (services.DivisionRefused, services.ConfirmationNeeded) as exc:
            db.session.rollback()
            connection = get_connection(connection_id)
            error, status = str(exc), 409 if isinstance(exc, services.ConfirmationNeeded) else 400
        else:
            note = ""
            try:
                services.refresh_reference(connection)
            except (LedgerError, vault.VaultError) as exc:
                note = f" Its reference data could not be read yet ({exc}); refresh it on the mappings page."
            db.session.commit()
            flash(f"The connection now uses {company.name} ({company.id}).{note}", "success")
            return redirect(url_for("mappings.show_mappings", connection_id=connection.id))
    return (
        render_template(
            "mappings/division.html",
            connection=connection,
            form=form,
            companies=companies,
            error=error,
            pushed=services.needs_confirmation(counts),
            counts=counts,
            consequences=services.division_consequences(connection, counts),
            name=services.provider_name(connection),
        ),
        status,
    )
