"""The API's one way of reading a request body: JSON only, exact numbers, every defect named with its place.

A body must be sent as ``application/json`` (anything else is a 415 that says so), be JSON (a
syntax error names its line and column), hold no NaN or Infinity (not JSON, though Python's parser
takes them), and no string, key or value, may hold a lone UTF-16 surrogate (``"\\ud800"``: valid
JSON, but no valid text; the database cannot store it) or a NUL. Bodies are capped for the whole
app by ``MAX_CONTENT_LENGTH`` (413).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from flask import request

_CONSTANT = re.compile(r"(?<![\w\"])(-?Infinity|NaN)(?![\w\"])")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_NUL = "\x00"


class BodyError(Exception):
    """A body that cannot be read: ``status`` (400, 415, 422), a message and the path at fault."""

    def __init__(self, status: int, message: str, path: str = "(body)") -> None:
        super().__init__(message)
        self.status, self.message, self.path = status, message, path


def _where(text: str, position: int) -> str:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"line {line}, column {column}"


def _no_constant(name: str) -> Any:
    raise _Constant(name)


class _Constant(ValueError):
    pass


def parse() -> Any:
    """Return the request's JSON body, numbers with a fraction as ``Decimal``.

    :raise BodyError: for another content type, malformed JSON, NaN/Infinity, or text that is no text.
    """
    if not request.is_json:
        raise BodyError(
            415,
            f"The body must be JSON sent with Content-Type: application/json, not {request.mimetype or 'none'}.",
        )
    raw = request.get_data(cache=True)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BodyError(400, f"The body is not UTF-8 (byte {exc.start + 1} cannot be read).") from None
    if not text.strip():
        raise BodyError(400, "The body is empty; send a JSON object.")
    try:
        data = json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
    except _Constant as exc:
        found = _CONSTANT.search(text)
        where = f" at {_where(text, found.start())}" if found else ""
        raise BodyError(400, f"{exc} is not a JSON number{where}: send a number or a decimal string.") from None
    except json.JSONDecodeError as exc:
        raise BodyError(400, f"The body is not valid JSON at {_where(text, exc.pos)}: {exc.msg}.") from None
    except RecursionError:
        raise BodyError(400, "The body nests too deeply to be read as JSON.") from None
    _check_text(data, "")
    return data


def _check_text(value: Any, path: str) -> None:
    if isinstance(value, str):
        _check_string(value, path or "(body)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_string(key, path or "(body)", is_key=True)
            _check_text(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_text(item, f"{path}[{i}]")


def _check_string(text: str, path: str, *, is_key: bool = False) -> None:
    what = "key" if is_key else "text"
    if _SURROGATE.search(text):
        raise BodyError(
            422,
            f"{path}: the {what} holds a lone UTF-16 surrogate (such as \\ud800), which is not valid text; "
            "send the character itself or a complete surrogate pair",
            path,
        )
    if _NUL in text:
        raise BodyError(422, f"{path}: the {what} holds a NUL character (\\u0000); remove it", path)
