"""Streamed CSV downloads that spreadsheets cannot mistake for formulas."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any

from flask import Response, current_app
from sqlalchemy import Select
from sqlalchemy.orm import Session

from ..extensions import db

#: First characters that make a spreadsheet evaluate a cell (OWASP "CSV Injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


def cell(value: Any) -> str:
    """Return ``value`` as CSV text, quoting a leading formula character with an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) or type(value).__name__ == "Decimal":
        return str(value)  # numbers stay numbers (a negative amount is not a formula)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    """Stream ``rows`` under ``header`` as a CSV download named ``filename``."""

    def generate():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        for row in rows:
            writer.writerow([cell(v) for v in row])
            if buffer.tell() > 16_384:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    response = Response(generate(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def query_rows(
    stmt: Select, to_row: Callable[[Any], Sequence[Any]], *, scalars: bool = True
) -> Iterator[Sequence[Any]]:
    """Yield ``to_row(result)`` for each result of ``stmt``, read in batches by a session of its own.

    The download outlives the request's session (the body is sent after the view returns), so
    the rows are read in their own app context and session.
    """
    app = current_app._get_current_object()
    stmt = stmt.execution_options(yield_per=500)

    def generate():
        with app.app_context(), Session(db.engine) as session:
            results = session.scalars(stmt) if scalars else session.execute(stmt)
            for result in results:
                yield to_row(result)

    return generate()
