"""CSV downloads of the ops lists: streamed row by row, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Response, stream_with_context

#: Cells starting with these are formulas to a spreadsheet (CSV injection); they get a leading quote.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """Return ``value`` as CSV text that a spreadsheet will not run as a formula."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    text = value.value if hasattr(value, "value") and not isinstance(value, (int, float)) else value
    text = str(text)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def rows_to_csv(header: list[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """Yield the CSV text of ``header`` and ``rows``, one line at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(cells: Iterable[Any]) -> str:
        writer.writerow([safe_cell(c) for c in cells])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return text

    yield line(header)
    for row in rows:
        yield line(row)


def csv_response(filename: str, header: list[str], rows: Callable[[], Iterable[Iterable[Any]]]) -> Response:
    """Return a streamed CSV download; ``rows`` is called while streaming, inside the request context."""

    def generate() -> Iterator[str]:
        yield from rows_to_csv(header, rows())

    response = Response(stream_with_context(generate()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response
