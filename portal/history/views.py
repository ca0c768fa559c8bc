"""Historical push pages: choose a range, preview it, start, watch, pause, resume, cancel, review."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_htmx import make_response
from flask_login import current_user

from ..connections import services as connection_services
from ..connections.lookup import connection_or_404
from ..extensions import db
from ..fragments import wants_fragment
from ..integrations.base import LedgerError
from ..integrations.specs import get_spec
from ..models import Backfill, Connection, ItemOutcome, Role
from ..models.history import BACKFILL_KINDS
from ..params import date_arg, page_arg
from ..security import require_role
from . import services
from .forms import BackfillForm

bp = Blueprint("history", __name__)

#: htmx stops polling on this status (https://htmx.org/docs/#polling).
STOP_POLLING = 286


def get_connection(connection_id: int) -> Connection:
    """Load a live connection (404 when it does not exist, 409 when it is disconnected)."""
    return connection_or_404(connection_id, live_to="back-fill")


def get_backfill(backfill_id: int) -> Backfill:
    """Load a back-fill.

    :raise: 404 when it does not exist.
    """
    backfill = db.session.get(Backfill, backfill_id)
    if backfill is None:
        abort(404, description=f"There is no back-fill with id {backfill_id}.")
    return backfill


def _page(connection: Connection, form: BackfillForm, *, preview=None, error: str | None = None, status: int = 200):
    return (
        render_template(
            "history/index.html",
            connection=connection,
            name=get_spec(connection.provider).name,
            form=form,
            preview=preview,
            error=error,
            backfills=services.backfills_of(connection),
        ),
        status,
    )


def _scope_from(connection: Connection, form: BackfillForm) -> services.Scope:
    """Return the form's scope.

    :raise services.HistoryError: with what to fix.
    """
    if not form.validate():
        raise services.HistoryError(" ".join(e for errors in form.errors.values() for e in errors))
    return services.parse_scope(connection, form.date_from.data, form.date_to.data, form.kinds.data)


# -- choosing and previewing a range (support) ----------------------------------------------------


@bp.get("/connections/<int:connection_id>/history")
@require_role(Role.support)
def show_history(connection_id: int):
    connection = get_connection(connection_id)
    form = BackfillForm(formdata=None)
    form.date_from.data = date_arg("date_from")
    form.date_to.data = date_arg("date_to") or connection.sync_from.date()
    return _page(connection, form)


@bp.post("/connections/<int:connection_id>/history/preview")
@require_role(Role.support)
def preview_history(connection_id: int):
    connection = get_connection(connection_id)
    form = BackfillForm()
    try:
        scope = _scope_from(connection, form)
        result = services.preview(connection, scope)
    except services.HistoryError as exc:
        return _preview_answer(connection, form, error=exc.message, status=422)
    except LedgerError as exc:
        connection = db.session.get_one(Connection, connection_id)
        said = connection_services.note_failure(connection, exc)
        db.session.commit()
        return _preview_answer(connection, form, error=said, status=502)
    connection = db.session.get_one(Connection, connection_id)
    return _preview_answer(connection, form, preview=result)


def _preview_answer(connection, form, *, preview=None, error=None, status=200):
    if wants_fragment():
        return (
            render_template(
                "history/_preview.html",
                connection=connection,
                form=form,
                preview=preview,
                error=error,
                name=get_spec(connection.provider).name,
            ),
            status,
        )
    return _page(connection, form, preview=preview, error=error, status=status)


@bp.post("/connections/<int:connection_id>/history")
@require_role(Role.ops)  # a back-fill writes into the customer's books
def start_history(connection_id: int):
    connection = get_connection(connection_id)
    form = BackfillForm()
    try:
        scope = _scope_from(connection, form)
        # Counting is enough to show progress; the full preview (ledger reads) is the Preview button's.
        backfill = services.start(
            connection, scope, started_by=current_user, preview_data=services.range_counts(connection, scope)
        )
    except services.HistoryError as exc:
        return _page(connection, form, error=exc.message, status=422)
    flash(f"Back-fill #{backfill.id} started.", "success")
    return redirect(url_for("history.show_backfill", backfill_id=backfill.id))


# -- one back-fill: progress, records, controls (support) -----------------------------------------


@bp.get("/history/<int:backfill_id>")
@require_role(Role.support)
def show_backfill(backfill_id: int):
    backfill = get_backfill(backfill_id)
    return render_template(
        "history/show.html",
        backfill=backfill,
        connection=backfill.connection,
        name=get_spec(backfill.connection.provider).name,
        rate=services.rate_per_minute(backfill),
        **_items_context(backfill),
    )


def _progress(backfill: Backfill):
    """Return the progress component; once finished, 286 stops the polling and the record list reloads."""
    html = render_template(
        "history/_progress.html",
        backfill=backfill,
        name=get_spec(backfill.connection.provider).name,
        rate=services.rate_per_minute(backfill),
    )
    if backfill.status.finished:
        return make_response(html, STOP_POLLING, trigger={"backfill-finished": backfill.id})
    return make_response(html)


@bp.get("/history/<int:backfill_id>/progress")
@require_role(Role.support)
def show_progress(backfill_id: int):
    return _progress(get_backfill(backfill_id))


def _items_context(backfill: Backfill) -> dict:
    outcome = request.args.get("outcome", "").strip()
    kind = request.args.get("kind", "").strip()
    if outcome and outcome not in ItemOutcome.__members__:
        abort(400, description=f"outcome must be one of {', '.join(ItemOutcome.__members__)}, not {outcome!r}.")
    if kind and kind not in BACKFILL_KINDS:
        abort(400, description=f"kind must be one of {', '.join(BACKFILL_KINDS)}, not {kind!r}.")
    pagination = db.paginate(
        services.items(backfill, outcome=outcome or None, kind=kind or None),
        page=page_arg(),
        per_page=50,
        error_out=False,
    )
    return {"pagination": pagination, "outcome": outcome, "kind": kind, "outcomes": list(ItemOutcome)}


@bp.get("/history/<int:backfill_id>/records")
@require_role(Role.support)
def list_records(backfill_id: int):
    backfill = get_backfill(backfill_id)
    context = _items_context(backfill)
    if wants_fragment():
        return render_template("history/_items.html", backfill=backfill, **context)
    args: dict[str, Any] = request.args.to_dict()
    return redirect(url_for("history.show_backfill", backfill_id=backfill_id, **args))


def _control(backfill_id: int, action):
    backfill = get_backfill(backfill_id)
    try:
        said = action(backfill)
    except services.HistoryError as exc:
        flash(exc.message, "error")
    else:
        flash(said, "success")
    backfill = get_backfill(backfill_id)
    if wants_fragment():
        return _progress(backfill)
    return redirect(url_for("history.show_backfill", backfill_id=backfill_id))


@bp.post("/history/<int:backfill_id>/pause")
@require_role(Role.ops)  # a back-fill writes into the customer's books
def pause_backfill(backfill_id: int):
    return _control(backfill_id, services.request_pause)


@bp.post("/history/<int:backfill_id>/resume")
@require_role(Role.ops)  # a back-fill writes into the customer's books
def resume_backfill(backfill_id: int):
    return _control(backfill_id, services.resume)


@bp.post("/history/<int:backfill_id>/cancel")
@require_role(Role.ops)  # a back-fill writes into the customer's books
def cancel_backfill(backfill_id: int):
    return _control(backfill_id, services.request_cancel)
