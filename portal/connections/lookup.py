"""Load the connection a page or an action is about: one loader for every room, with its 404 and 409."""

from __future__ import annotations

from flask import abort

from ..extensions import db
from ..models import Connection


def connection_or_404(connection_id: int, *, live_to: str | None = None) -> Connection:
    """Load a connection.

    With ``live_to`` (what the page does, e.g. "map codes") a disconnected connection is refused
    with a 409 that says so.

    :raise: 404 when it does not exist, 409 as above.
    """
    connection = db.get_or_404(
        Connection, connection_id, description=f"There is no connection with id {connection_id}."
    )
    if live_to is not None and not connection.is_live:
        abort(409, description=f"This connection is disconnected; connect the business unit anew to {live_to}.")
    return connection
