"""Every CSV file Ledgerlink writes or reads: one set of rules.

Written cells never start a spreadsheet formula (OWASP "CSV Injection": a text cell starting with
``= + - @ | %``, a tab or a line break gets a leading apostrophe, which spreadsheets show as text and
:func:`uncell` removes again on import); numbers stay numbers (``-25.80``, a negative amount is
no formula); dates are ``YYYY-MM-DD``, times ``YYYY-MM-DD HH:MM:SS`` in UTC; yes/no for flags.
Downloads stream row by row and are never cached (they hold customers' data). Imports are UTF-8
with or without a byte-order mark, comma, semicolon or tab separated (spreadsheets in NL, BE, DE,
CH save with ``;``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from flask import Response, current_app, stream_with_context
from sqlalchemy import Select
from sqlalchemy.orm import Session

#: First characters that make a spreadsheet evaluate a text cell.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")
LINE_END = "\r\n"


def cell(value: Any) -> str:
    """Return ``value`` as CSV text in the one format, a text cell never read as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value.value) if isinstance(value, Enum) else str(value)
    return "'" + text if _guarded(text) else text


def _guarded(text: str) -> bool:
    # Text that already starts with apostrophes before a formula character gets one more, so that
    # :func:`uncell` gives back exactly what was written.
    return text.lstrip("'").startswith(FORMULA_STARTS)


def uncell(text: str) -> str:
    """Return an imported cell as it was before :func:`cell` guarded it (``'=x`` → ``=x``)."""
    if text.startswith("'") and _guarded(text[1:]):
        return text[1:]
    return text


def rows_to_csv(header: Sequence[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """Yield the CSV text of ``header`` and ``rows``, one line at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=LINE_END)

    def line(cells: Iterable[Any]) -> str:
        writer.writerow([cell(c) for c in cells])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return text

    yield line(header)
    for row in rows:
        yield line(row)


def csv_text(header: Sequence[str], rows: Iterable[Iterable[Any]]) -> str:
    """Return the whole CSV text of ``header`` and ``rows``."""
    return "".join(rows_to_csv(header, rows))


def csv_response(
    filename: str, header: Sequence[str], rows: Iterable[Iterable[Any]] | Callable[[], Iterable[Iterable[Any]]]
) -> Response:
    """Return a streamed, never-cached CSV download.

    ``rows`` is a callable run while streaming inside the request's context, or an iterable that
    brings its own (:func:`query_rows`).
    """

    if callable(rows):
        make = rows

        def generate() -> Iterator[str]:
            yield from rows_to_csv(header, make())

        body: Iterator[str] = stream_with_context(generate())
    else:
        body = rows_to_csv(header, rows)
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def query_rows(
    stmt: Select, to_row: Callable[[Any], Sequence[Any]], *, scalars: bool = True
) -> Iterator[Sequence[Any]]:
    """Yield ``to_row(result)`` for each result of ``stmt``, read in batches by a session of its own.

    The download outlives the request's session (the body is sent after the view returns), so
    the rows are read in their own app context and session.
    """
    from .extensions import db

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    stmt = stmt.execution_options(yield_per=500)

    def generate() -> Iterator[Sequence[Any]]:
        with app.app_context(), Session(db.engine) as session:
            results = session.scalars(stmt) if scalars else session.execute(stmt)
            for result in results:
                yield to_row(result)

    return generate()


class CsvReadError(ValueError):
    """A file that cannot be read as CSV text at all; the message says why."""


def decode(raw: bytes) -> str:
    """Return an uploaded file's text (UTF-8, byte-order mark dropped).

    :raise CsvReadError: when it is not UTF-8.
    """
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvReadError(
            f"The file is not UTF-8 text (byte {exc.start + 1} cannot be read): save it as 'CSV UTF-8'."
        ) from None


def reader(text: str) -> Any:
    """Return a strict csv reader over ``text``, its separator read from the first line."""
    text = text.removeprefix("\ufeff")
    first = text.split("\n", 1)[0]
    counts = {sep: first.count(sep) for sep in (",", ";", "\t")}
    delimiter = max(counts, key=lambda sep: (counts[sep], sep == ","))
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter if counts[delimiter] else ",", strict=True)


def text_download(filename: str, text: str) -> Response:
    """Return CSV text made by :func:`csv_text` as a never-cached download."""
    response = Response(text, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response
