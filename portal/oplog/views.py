"""The operation log of a connection: list with filters, one call's redacted bodies, CSV."""

from __future__ import annotations

from flask import Blueprint, abort, render_template

from ..connections.lookup import connection_or_404 as get_connection
from ..csvfiles import csv_response, query_rows
from ..extensions import db
from ..fragments import wants_fragment
from ..integrations import specs
from ..models import OperationLog, Role
from ..params import date_arg, page_arg, page_size, text_arg
from ..security import require_role
from . import capture, services

bp = Blueprint("oplog", __name__)


def _filters() -> services.Filters:
    """Read the list filters from the query string.

    :raise: 400 for a status class or method that is not one of the choices.
    """
    status_class = text_arg("status", 4)
    if status_class and status_class not in services.STATUS_CLASSES:
        abort(400, description=f"status must be one of {', '.join(services.STATUS_CLASSES)}, not {status_class!r}.")
    method = text_arg("method", 8).upper()
    if method and method not in services.METHODS:
        abort(400, description=f"method must be one of {', '.join(services.METHODS)}, not {method!r}.")
    day_from, day_to = date_arg("from"), date_arg("to")
    if day_from and day_to and day_from > day_to:
        abort(400, description="from must be on or before to.")
    return services.Filters(status_class, method, text_arg("path", 200), day_from, day_to)


# -- ops: the calls a connection made ----------------------------------------------------------
@bp.get("/connections/<int:connection_id>/operations")
@require_role(Role.ops)
def list_operations(connection_id: int):
    connection = get_connection(connection_id)
    filters = _filters()
    pagination = db.paginate(
        services.operations(connection.id, filters), page=page_arg(), per_page=page_size(), error_out=False
    )
    context = {
        "connection": connection,
        "name": specs.get_spec(connection.provider).name,
        "filters": filters,
        "pagination": pagination,
        "days": services.retention_days(),
        "status_classes": services.STATUS_CLASSES,
        "methods": services.METHODS,
    }
    if wants_fragment():
        return render_template("oplog/_rows.html", **context)
    return render_template("oplog/index.html", **context)


@bp.get("/connections/<int:connection_id>/operations.csv")
@require_role(Role.ops)
def export_operations(connection_id: int):
    connection = get_connection(connection_id)
    rows = query_rows(
        services.operations(connection.id, _filters()),
        lambda op: (op.created_at, op.method, op.path, op.status, op.duration_ms, op.request_id or ""),
    )
    header = ("time_utc", "method", "path", "status", "duration_ms", "provider_request_id")
    return csv_response(f"operations-connection-{connection.id}.csv", header, rows)


@bp.get("/connections/<int:connection_id>/operations/<int:operation_id>")
@require_role(Role.ops)
def show_operation(connection_id: int, operation_id: int):
    connection = get_connection(connection_id)
    operation = db.session.get(OperationLog, operation_id)
    if operation is None or operation.connection_id != connection.id:
        abort(404, description=f"Connection {connection.id} has no logged call with id {operation_id}.")
    return render_template(
        "oplog/show.html",
        connection=connection,
        name=specs.get_spec(connection.provider).name,
        operation=operation,
        request_body=capture.readable(operation.request_body),
        response_body=capture.readable(operation.response_body),
        filters=_filters(),
    )
