"""Customer linking: which ledger customer each SaaS customer is, per connection."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ..connections.lookup import connection_or_404
from ..extensions import db
from ..formfields import shown
from ..models import Connection, Role, SyncRun, SyncRunKind
from ..models.customer_link import LedgerCustomerCache, LinkSuggestion
from ..params import id_list, is_whole_number
from ..runs import start_run
from ..security import require_role
from . import services
from .forms import SCORE_RANGE, ConfirmForm, CreateAnywayForm, ImportForm, LinkForm, ModeForm, SuggestForm, UnlinkForm
from .services import CsvImportError, LinkError

bp = Blueprint("customers", __name__)

#: Suggestions and links shown per page.
PER_PAGE = 100


def get_connection(connection_id: int) -> Connection:
    """Load a connection (404 when it does not exist)."""
    return connection_or_404(connection_id)


def latest_run(connection: Connection) -> SyncRun | None:
    """Return the connection's most recent suggestion run, or None."""
    runs = db.session.scalars(
        select(SyncRun).where(SyncRun.kind == SyncRunKind.customer_match).order_by(SyncRun.id.desc()).limit(100)
    )
    return next((r for r in runs if (r.parameters or {}).get("connection_id") == connection.id), None)


def _int_arg(name: str, default: int, low: int = 0, high: int = 100_000) -> int:
    try:
        raw = str(request.args.get(name, default)).strip()
        return max(low, min(high, int(raw))) if is_whole_number(raw) else default
    except (TypeError, ValueError):
        return default


def _score_filter() -> tuple[int, str | None]:
    """Return the page's minimum score filter, and the error when the given one is not a valid score."""
    raw = (request.args.get("min_score") or "").strip()
    low, high = SCORE_RANGE
    if not raw:
        return low, None
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        return low, f"Show from score: give a whole number from {low} to {high}, not {shown(raw)}."
    return value, None


def _page(connection: Connection, status: int = 200, **forms):
    """Render the linking page (with any forms carrying errors).

    An invalid score filter is answered with 400 and its message; the page shows every suggestion then.
    """
    min_score, score_error = _score_filter()
    if score_error and status < 400:
        status = 400
    pagination = db.paginate(
        select(LinkSuggestion)
        .where(LinkSuggestion.connection_id == connection.id, LinkSuggestion.score >= min_score)
        .order_by(LinkSuggestion.ambiguous, LinkSuggestion.score.desc(), LinkSuggestion.customer_id, LinkSuggestion.id),
        page=_int_arg("page", 1, 1),
        per_page=PER_PAGE,
        error_out=False,
    )
    ledger = {
        row.external_id: row
        for row in db.session.scalars(
            select(LedgerCustomerCache).where(
                LedgerCustomerCache.connection_id == connection.id,
                LedgerCustomerCache.external_id.in_({s.external_id for s in pagination.items}),
            )
        )
    }
    q = request.args.get("q", "")
    uq = request.args.get("uq", "")[:100]
    unlinked, unlinked_total = services.unlinked_customers(connection, query=uq)
    # "Find in the ledger" on an unlinked customer opens the manual link with it chosen and searched for.
    chosen = services.customer_by_reference(connection, request.args.get("link_customer"))
    ledger_q = request.args.get("ledger_q") or (services.search_text_for(chosen) if chosen else "")
    return render_template(
        "customers/show.html",
        connection=connection,
        run=latest_run(connection),
        counts=services.link_counts(connection),
        suggestion_counts=services.suggestion_counts(connection, min_score),
        pagination=pagination,
        ledger=ledger,
        min_score=min_score,
        score_error=score_error,
        links=services.links(connection, limit=PER_PAGE, query=q),
        q=q,
        conflicts=services.conflicts(connection),
        fetched_at=services.last_fetched_at(connection),
        mode=services.customer_mode(connection),
        suggest_form=forms.get("suggest_form") or SuggestForm(),
        confirm_form=forms.get("confirm_form") or ConfirmForm(),
        # "Link this customer" on a held invoice opens the page with the customer filled in.
        link_form=forms.get("link_form") or LinkForm(data={"customer": request.args.get("link_customer", "")[:64]}),
        held=services.held_customers(connection),
        unlink_form=UnlinkForm(),
        import_form=forms.get("import_form") or ImportForm(),
        mode_form=forms.get("mode_form") or ModeForm(data={"customer_mode": services.customer_mode(connection)}),
        import_errors=forms.get("import_errors") or [],
        link_error=forms.get("link_error"),
        modes=services.CUSTOMER_MODES,
        unlinked=unlinked,
        unlinked_total=unlinked_total,
        uq=uq,
        chosen=chosen,
        ledger_q=ledger_q,
        found=services.search_ledger(connection, ledger_q) if ledger_q else [],
    ), status


def _back(connection: Connection):
    return redirect(url_for("customers.show_customer_links", connection_id=connection.id))


# -- support: the page and its fragments ----------------------------------------------------------
@bp.get("/connections/<int:connection_id>/customers")
@require_role(Role.support)
def show_customer_links(connection_id: int):
    return _page(get_connection(connection_id))


@bp.get("/connections/<int:connection_id>/customers/ledger")
@require_role(Role.support)
def search_ledger_customers(connection_id: int):
    connection = get_connection(connection_id)
    ledger_q = request.args.get("ledger_q", "")
    found = services.search_ledger(connection, ledger_q)
    chosen = services.customer_by_reference(connection, request.args.get("customer"))
    return render_template(
        "customers/_ledger_results.html",
        connection=connection,
        found=found,
        chosen=chosen,
        ledger_q=ledger_q,
        link_form=LinkForm(formdata=None),
    )


# -- support: actions -----------------------------------------------------------------------------
@bp.post("/connections/<int:connection_id>/customers/suggest")
@require_role(Role.support)
def start_suggestions(connection_id: int):
    connection = get_connection(connection_id)
    form = SuggestForm()
    if not form.validate_on_submit():
        return _page(connection, 400, suggest_form=form)
    if not connection.is_live:
        flash("This connection is disconnected: connect it again to fetch its customers.", "error")
        return _page(connection, 409)
    run = latest_run(connection)
    if run is not None and not run.status.finished:
        flash("A suggestion run is under way already.", "info")
        return _back(connection)
    start_run(
        SyncRunKind.customer_match,
        "jobs.customers.suggest_links",
        parameters={"connection_id": connection.id},
        started_by=current_user,
        timeout=1800,
    )
    flash("Fetching the ledger's customers and suggesting links…", "info")
    return _back(connection)


@bp.post("/connections/<int:connection_id>/customers/confirm")
@require_role(Role.support)
def confirm_suggestions(connection_id: int):
    connection = get_connection(connection_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        return _page(connection, 400, confirm_form=form)
    selected = request.form.getlist("suggestion")
    try:
        if request.form.get("action") == "selected":
            if not selected:
                raise LinkError("Select the suggestions to confirm.")
            result = services.confirm_suggestions(connection, suggestion_ids=id_list(selected, "suggestion"))
        else:
            if form.min_score.data is None:
                raise LinkError("Give the minimum score to confirm.")
            result = services.confirm_suggestions(connection, min_score=form.min_score.data)
    except (LinkError, ValueError) as exc:
        db.session.rollback()
        flash(getattr(exc, "message", "The selection is not valid."), "error")
        return _page(connection, getattr(exc, "status", 400))
    db.session.commit()
    flash(f"Linked {result.linked} customer(s).", "success")
    for reason in result.skipped[:20]:
        flash(f"Skipped {reason}.", "warning")
    return _back(connection)


@bp.post("/connections/<int:connection_id>/customers/links")
@require_role(Role.support)
def create_customer_link(connection_id: int):
    connection = get_connection(connection_id)
    form = LinkForm()
    if not form.validate_on_submit() or form.customer.data is None or form.external_id.data is None:
        return _page(connection, 400, link_form=form)
    try:
        link = services.link_manually(connection, form.customer.data, form.external_id.data)
    except LinkError as exc:
        db.session.rollback()
        form.external_id.errors = [exc.message]
        return _page(connection, exc.status, link_form=form, link_error=exc.message)
    cached = services.ledger_customer(connection, link.external_id)
    db.session.commit()
    ledger_words = f"{cached.name} ({link.external_id})" if cached else link.external_id
    flash(f"{link.customer.name} is linked to {ledger_words} in {connection.company_label}.", "success")
    return _back(connection)


@bp.post("/connections/<int:connection_id>/customers/<int:customer_id>/unlink")
@require_role(Role.support)
def delete_customer_link(connection_id: int, customer_id: int):
    connection = get_connection(connection_id)
    form = UnlinkForm()
    if not form.validate_on_submit():
        return _page(connection, 400)
    try:
        link = services.unlink(connection, customer_id)
    except LinkError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _page(connection, exc.status)
    db.session.commit()
    flash(f"{link.customer.name} is no longer linked to {link.external_id}.", "success")
    return _back(connection)


@bp.post("/connections/<int:connection_id>/customers/import")
@require_role(Role.support)
def import_customer_links(connection_id: int):
    connection = get_connection(connection_id)
    form = ImportForm()
    if not form.validate_on_submit():
        return _page(connection, 400, import_form=form)
    try:
        count = services.import_links_csv(connection, form.file.data.read())
    except CsvImportError as exc:
        db.session.rollback()
        return _page(connection, 422, import_form=form, import_errors=exc.errors)
    db.session.commit()
    flash(f"Imported {count} link(s).", "success")
    return _back(connection)


@bp.post("/connections/<int:connection_id>/customers/mode")
@require_role(Role.support)
def update_customer_mode(connection_id: int):
    connection = get_connection(connection_id)
    form = ModeForm()
    if not form.validate_on_submit():
        return _page(connection, 400, mode_form=form)
    changed = services.set_customer_mode(connection, form.customer_mode.data)
    connection.note_onboarding("customer_mode", mode=form.customer_mode.data)  # chosen, even if unchanged
    db.session.commit()
    flash("Customer mode saved." if changed else "Customer mode unchanged.", "success")
    return _back(connection)


@bp.post("/connections/<int:connection_id>/customers/<int:customer_id>/create-anyway")
@require_role(Role.support)
def create_anyway(connection_id: int, customer_id: int):
    connection = get_connection(connection_id)
    if not CreateAnywayForm().validate_on_submit():
        return _page(connection, 400)
    try:
        customer = services.own_customer(connection, customer_id)
        released = services.create_anyway(connection, customer)
    except LinkError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _back_to(connection)
    db.session.commit()
    from ..sync import schedule  # enqueues (and commits) the connection's push

    if schedule.pushes_automatically(connection):
        schedule.enqueue_push(connection, reason=f"{customer.name} is to be created anyway.")
    flash(
        f"{customer.name} will be created in {connection.company_label} by the next push; "
        f"{released} held record(s) go to the push.",
        "success",
    )
    return _back_to(connection)


def _back_to(connection: Connection):
    """Return to the page the form was on (a safe ``next``), else the customer links page."""
    from ..security import is_safe_redirect

    target = request.form.get("next") or ""
    if target and is_safe_redirect(target):
        return redirect(target)
    return _back(connection)
