"""Declared shapes of the providers' real answers, and a checker for the sandbox's answers.

The modules beside this one (``bexio``, ``exact_online``, ``quickbooks``) describe, per emulated
endpoint, what the real API answers: status, content type, headers, and the body's envelope,
keys and value types. They were written from recorded real responses and the providers' own
documentation; they hold types, never the recorded values. The sandbox tests send the real
request to the emulator and check its answer against the declared shape with :func:`check`.

A shape is one of:

- a type: :data:`STR`, :data:`INT`, :data:`NUM`, :data:`BOOL`, :data:`ANY`, or a string type with a
  format (:data:`DEC`, :data:`DATE`, …: the JSON value is a string, its text follows the format);
- ``Maybe(shape)``: the shape or null;
- a ``dict``: an object with exactly these keys (``Obj`` for optional or extra keys);
- a one-element ``list``: an array whose every element has that shape (``Many`` for a minimum);
- ``Tagged(key, {value: shape})``: an object whose shape depends on the value of one key;
- ``Const(value)``: exactly this JSON value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests


@dataclass(frozen=True)
class Type:
    """A JSON type, optionally a string whose text matches ``pattern``."""

    name: str
    pattern: str | None = None

    def problems(self, value: Any, path: str) -> list[str]:
        if self.name == "any":
            return []
        actual = json_type(value)
        ok = actual == self.name or (self.name == "number" and actual == "integer")
        if not ok:
            return [f"{path}: expected {self}, got {actual} {short(value)}"]
        if self.pattern and not re.fullmatch(self.pattern, value):
            return [f"{path}: expected {self}, got {short(value)}"]
        return []

    def __str__(self) -> str:
        return self.name if not self.pattern else f"{self.name} /{self.pattern}/"


STR = Type("string")
INT = Type("integer")
#: Any JSON number, integral or not (the providers write 100 and 100.5 alike).
NUM = Type("number")
BOOL = Type("boolean")
ANY = Type("any")
#: A decimal number written as a string: "100", "8.10", "100.000000".
DEC = Type("string", r"-?\d+(\.\d+)?")
#: A whole number written as a string: an id or a counter ("0", "2").
DIGITS = Type("string", r"-?\d+")
#: A calendar date: "2026-06-18".
DATE = Type("string", r"\d{4}-\d\d-\d\d")
#: A local date and time without zone, space-separated: "2026-06-18 14:55:15".
LOCAL_DATETIME = Type("string", r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
#: An ISO 8601 date-time with its UTC offset: "2020-09-29T09:44:19-07:00".
ISO_DATETIME = Type("string", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)")
#: OData v2's date literal: "/Date(1380585600000)/".
ODATA_DATE = Type("string", r"/Date\(-?\d+\)/")
#: A GUID as Exact writes them: "e5d5c5c4-…".
GUID = Type("string", r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: An absolute http(s) URL.
URL = Type("string", r"https?://\S+")


@dataclass(frozen=True)
class Maybe:
    """The shape, or null."""

    shape: Any


@dataclass(frozen=True)
class Const:
    """Exactly this JSON value."""

    value: Any


@dataclass(frozen=True)
class Obj:
    """An object: ``keys`` must all be there, ``optional`` may be, others only when ``extra``."""

    keys: Mapping[str, Any]
    optional: Mapping[str, Any] = field(default_factory=dict)
    extra: bool = False


@dataclass(frozen=True)
class Many:
    """An array of at least ``min`` elements, each of ``shape``."""

    shape: Any
    min: int = 0


@dataclass(frozen=True)
class Tagged:
    """An object whose shape is chosen by the value of its ``key`` (e.g. a line's type)."""

    key: str
    shapes: Mapping[str, Any]


@dataclass(frozen=True)
class OneOf:
    """Any of the shapes."""

    shapes: tuple[Any, ...]


def json_type(value: Any) -> str:
    """Return the JSON type of ``value`` (integer for whole numbers, number otherwise)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"not a JSON value: {value!r}")


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def problems(shape: Any, value: Any, path: str = "$", *, nulls: bool = False) -> list[str]:
    """List every place where ``value`` does not have ``shape`` (empty when it does).

    With ``nulls``, a null stands for any value (the key must still be there): for an emulator
    whose demo data leaves fields empty that the real ledger fills.
    """
    if nulls and value is None:
        return []
    if isinstance(shape, Type):
        return shape.problems(value, path)
    if isinstance(shape, Maybe):
        return [] if value is None else problems(shape.shape, value, path, nulls=nulls)
    if isinstance(shape, Const):
        return [] if value == shape.value else [f"{path}: expected {shape.value!r}, got {short(value)}"]
    if isinstance(shape, OneOf):
        found = [problems(s, value, path, nulls=nulls) for s in shape.shapes]
        return [] if any(not p for p in found) else [f"{path}: matches none of {len(found)} shapes: {found[0][0]}"]
    if isinstance(shape, dict):
        shape = Obj(shape)
    if isinstance(shape, list):
        (item,) = shape
        shape = Many(item)
    if isinstance(shape, Many):
        if not isinstance(value, list):
            return [f"{path}: expected array, got {json_type(value)} {short(value)}"]
        if len(value) < shape.min:
            return [f"{path}: expected at least {shape.min} elements, got {len(value)}"]
        return [p for i, item in enumerate(value) for p in problems(shape.shape, item, f"{path}[{i}]", nulls=nulls)]
    if isinstance(shape, Tagged):
        if not isinstance(value, dict):
            return [f"{path}: expected object, got {json_type(value)} {short(value)}"]
        tag = value.get(shape.key)
        if tag not in shape.shapes:
            return [f"{path}.{shape.key}: expected one of {sorted(shape.shapes)}, got {short(tag)}"]
        return problems(shape.shapes[tag], value, path, nulls=nulls)
    if isinstance(shape, Obj):
        if not isinstance(value, dict):
            return [f"{path}: expected object, got {json_type(value)} {short(value)}"]
        found: list[str] = []
        missing = [k for k in shape.keys if k not in value]
        if missing:
            found.append(f"{path}: missing keys {missing}")
        unknown = [k for k in value if k not in shape.keys and k not in shape.optional]
        if unknown and not shape.extra:
            found.append(f"{path}: unexpected keys {unknown}")
        for key, item in value.items():
            sub = shape.keys.get(key, shape.optional.get(key))
            if sub is not None:
                found += problems(sub, item, f"{path}.{key}", nulls=nulls)
        return found
    raise TypeError(f"not a shape: {shape!r}")


def assert_shape(shape: Any, value: Any, *, nulls: bool = False) -> None:
    """Fail with every difference listed when ``value`` does not have ``shape``."""
    found = problems(shape, value, nulls=nulls)
    assert not found, "answer differs from the provider's shape:\n" + "\n".join(found)


@dataclass(frozen=True)
class Answer:
    """What a provider answers to one request: status, content type, headers and body shape.

    ``headers`` must be present (any value), ``header_values`` present with exactly that value,
    ``absent`` must not be sent. ``body`` is None for an answer that is not JSON.
    """

    status: int
    body: Any = None
    content_type: str = "application/json"
    headers: tuple[str, ...] = ()
    header_values: Mapping[str, str] = field(default_factory=dict)
    absent: tuple[str, ...] = ()


def check(answer: Answer, response: requests.Response, *, nulls: bool = False) -> Any:
    """Assert ``response`` is the declared ``answer``; return its parsed body (or its text).

    ``nulls``: see :func:`problems`.
    """
    assert response.status_code == answer.status, f"{response.status_code}: {response.text[:500]}"
    content_type = response.headers.get("Content-Type", "")
    if ";" not in answer.content_type:  # the media type only; a declared charset is compared too
        content_type = content_type.split(";")[0].strip()
    assert content_type == answer.content_type, response.headers
    for name in answer.headers:
        assert name in response.headers, f"header {name} missing"
    for name, value in answer.header_values.items():
        assert response.headers.get(name) == value, f"header {name}: {response.headers.get(name)!r} != {value!r}"
    for name in answer.absent:
        assert name not in response.headers, f"header {name} should not be sent"
    if answer.body is None:
        return response.text
    body = response.json()
    assert_shape(answer.body, body, nulls=nulls)
    return body
