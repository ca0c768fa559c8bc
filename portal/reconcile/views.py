"""The reconciliation page of a connection: both sides of a period, the differences, a re-push."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from ..connections.lookup import connection_or_404 as get_connection
from ..csvfiles import csv_response
from ..extensions import db
from ..fragments import wants_fragment
from ..integrations import specs
from ..models import Role
from ..params import date_arg, id_list
from ..security import require_role
from . import services

bp = Blueprint("reconcile", __name__)


def _period_from(values) -> tuple[date | None, date | None]:
    """Read from/to of a form or query string.

    :raise: 400 when a date is not YYYY-MM-DD.
    """
    found = []
    for name in ("from", "to"):
        raw = (values.get(name) or "").strip()
        try:
            found.append(date.fromisoformat(raw) if raw else None)
        except ValueError:
            abort(400, description=f"{name} must be a date written as YYYY-MM-DD, not {raw!r}.")
    return found[0], found[1]


# -- ops: reconcile a connection -------------------------------------------------------------
@bp.get("/connections/<int:connection_id>/reconcile")
@require_role(Role.ops)
def show_reconciliation(connection_id: int):
    connection = get_connection(connection_id)
    date_from, date_to = date_arg("from"), date_arg("to")
    today = date.today()
    context = {
        "connection": connection,
        "name": specs.get_spec(connection.provider).name,
        "date_from": date_from or today.replace(day=1),
        "date_to": date_to or today,
        "max_days": services.MAX_DAYS,
        "report": None,
        "problem": "",
    }
    status = 200
    if date_from or date_to:
        try:
            date_from, date_to = services.check_range(date_from, date_to)
            context["report"] = services.build_report(connection, date_from, date_to)
        except services.ReconcileError as exc:
            context["problem"], status = str(exc), 400
    if wants_fragment():
        return render_template("reconcile/_report.html", **context), status
    return render_template("reconcile/show.html", **context), status


@bp.get("/connections/<int:connection_id>/reconcile.csv")
@require_role(Role.ops)
def export_reconciliation(connection_id: int):
    connection = get_connection(connection_id)
    try:
        date_from, date_to = services.check_range(date_arg("from"), date_arg("to"))
    except services.ReconcileError as exc:
        abort(400, description=str(exc))
    report = services.build_report(connection, date_from, date_to)
    if report.error:
        abort(502, description=report.error)
    rows = [
        (
            line.kind.value,
            line.status,
            line.number,
            line.local.issue_date if line.local else (line.ledger.issue_date if line.ledger else ""),
            line.local.total if line.local else "",
            line.ledger.external_id if line.ledger else (line.record.external_id if line.record else ""),
            line.ledger.number if line.ledger else "",
            line.ledger.total if line.ledger else "",
            line.difference if line.difference is not None else "",
        )
        for line in report.lines
    ]
    header = (
        "kind",
        "status",
        "number",
        "issue_date",
        "saas_total",
        "ledger_id",
        "ledger_number",
        "ledger_total",
        "difference",
    )
    return csv_response(f"reconcile-connection-{connection.id}-{date_from}-{date_to}.csv", header, rows)


@bp.post("/connections/<int:connection_id>/reconcile/repush")
@require_role(Role.ops)
def repush_missing(connection_id: int):
    connection = get_connection(connection_id)
    date_from, date_to = _period_from(request.form)
    period: dict[str, Any] = {"from": date_from, "to": date_to}
    back = url_for("reconcile.show_reconciliation", connection_id=connection.id, **period)
    chosen = [str(i) for i in id_list(request.form.getlist("invoice"), "invoice")]
    try:
        date_from, date_to = services.check_range(date_from, date_to)
        report = services.build_report(connection, date_from, date_to)
        if report.error:
            raise services.ReconcileError(report.error)
        numbers, run = services.repush(report, [int(v) for v in chosen] if chosen else None)
    except services.ReconcileError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(back)
    queued = f"push run #{run.id} queued" if run else "a push of this connection was already queued and takes them"
    flash(f"{len(numbers)} invoice(s) marked for a re-push ({', '.join(numbers)}); {queued}.", "success")
    return redirect(back)
