"""Strict parsing of query-string arguments: a malformed value is a 400 that says what to fix."""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import TypeVar

from flask import abort, current_app, request

MAX_PAGE = 100_000
#: Largest id a database key holds (INTEGER: 32 bits on PostgreSQL).
MAX_ID = 2**31 - 1

E = TypeVar("E", bound=Enum)


def page_arg() -> int:
    """Return the 1-based ``page`` argument.

    :raise: 400 when it is not a whole number from 1 to 100,000.
    """
    raw = request.args.get("page", "1").strip() or "1"
    # str.isdigit() takes "²" and other digits int() refuses: only ASCII digits are a page number.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6 or not 1 <= int(raw) <= MAX_PAGE:
        abort(400, description=f"page must be a whole number from 1 to {MAX_PAGE:,}, not {raw!r}.")
    return int(raw)


def date_arg(name: str) -> date | None:
    """Return the ISO date argument ``name``, or None when absent.

    :raise: 400 when it is not a YYYY-MM-DD date.
    """
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        abort(400, description=f"{name} must be a date written as YYYY-MM-DD, not {raw!r}.")


def choice_arg(name: str, enum: type[E]) -> E | None:
    """Return the argument ``name`` as a member of ``enum``, or None when absent.

    :raise: 400 for a value that is not one of the choices.
    """
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return enum(raw)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        abort(400, description=f"{name} must be one of {allowed}, not {raw!r}.")


def int_arg(name: str) -> int | None:
    """Return the whole-number argument ``name``, or None when absent.

    :raise: 400 when it is not a whole number.
    """
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if not is_whole_number(raw, 12):
        abort(400, description=f"{name} must be a whole number, not {raw!r}.")
    return int(raw)


def is_whole_number(text: str, max_digits: int = 10) -> bool:
    """Say whether ``text`` is a whole number written in ASCII digits (``"²"`` is not)."""
    return bool(text) and text.isascii() and text.isdigit() and len(text) <= max_digits


def is_id(text: str) -> bool:
    """Say whether ``text`` can name a database row: ASCII digits, at most MAX_ID."""
    return is_whole_number(text) and int(text) <= MAX_ID


def id_list(values: list[str], name: str) -> list[int]:
    """Return form values as row ids.

    :raise: 400 when one is not a whole number a database key can hold.
    """
    bad = next((v for v in values if not is_id(v.strip())), None)
    if bad is not None:
        abort(400, description=f"{name} must be ids (whole numbers up to {MAX_ID:,}), not {bad[:20]!r}.")
    return [int(v) for v in values]


def text_arg(name: str, max_length: int = 100) -> str:
    """Return the free-text argument ``name`` stripped, or "" when absent.

    :raise: 400 when it is longer than ``max_length``.
    """
    raw = request.args.get(name, "").strip()
    if len(raw) > max_length:
        abort(400, description=f"{name} may have at most {max_length} characters.")
    return raw


def page_size() -> int:
    """Return the configured number of rows per page."""
    return int(current_app.config["PAGE_SIZE"])
