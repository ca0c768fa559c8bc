"""The search criteria of ``POST /2.0/<resource>/search`` (bexio.md §2.4): parse and match."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

#: Criteria the API accepts, each mapped to its canonical operator (bexio.md §2.4).
CRITERIA = {
    "=": "=",
    "equal": "=",
    "!=": "!=",
    "not_equal": "!=",
    ">": ">",
    "greater_than": ">",
    ">=": ">=",
    "greater_equal": ">=",
    "<": "<",
    "less_than": "<",
    "<=": "<=",
    "less_equal": "<=",
    "like": "like",
    "not_like": "not_like",
    "is_null": "is_null",
    "not_null": "not_null",
    "in": "in",
    "not_in": "not_in",
}

#: Field and value strings are limited to 255 characters (bexio.md §2.4).
MAX_LEN = 255


class SearchError(ValueError):
    """A search body the API refuses; the message names the offending part."""


@dataclass(frozen=True)
class Condition:
    """One parsed ``{"field", "value", "criteria"}`` condition."""

    field: str
    op: str
    value: Any


def parse(body: Any, fields: Iterable[str]) -> list[Condition]:
    """Parse a search body into conditions over the allowed ``fields``.

    :raise SearchError: when the body is not a list of valid conditions.
    """
    allowed = set(fields)
    if not isinstance(body, list):
        raise SearchError("search body must be an array of conditions")
    conditions = []
    for item in body:
        if not isinstance(item, dict):
            raise SearchError("each condition must be an object")
        field = item.get("field")
        if not isinstance(field, str) or not field or len(field) > MAX_LEN:
            raise SearchError("field [Required.]")
        if field not in allowed:
            raise SearchError(f"field [Invalid field {field!r}.]")
        criteria = item.get("criteria", "like")
        if criteria is None:
            criteria = "like"
        op = CRITERIA.get(criteria) if isinstance(criteria, str) else None
        if op is None:
            raise SearchError(f"criteria [Invalid criteria {criteria!r}.]")
        value = item.get("value")
        if op in ("in", "not_in"):
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
                raise SearchError("value [Invalid.]")
            value = [str(v) for v in value]
        elif op not in ("is_null", "not_null"):
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise SearchError("value [Required.]")
            value = str(value)
            if len(value) > MAX_LEN:
                raise SearchError("value [Invalid.]")
        conditions.append(Condition(field, op, value))
    return conditions


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _compare(actual: Any, expected: str) -> int | None:
    """Compare like MySQL would: numerically when both sides are numbers, else as text."""
    if actual is None:
        return None
    a, b = _number(actual), _number(expected)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    left, right = str(actual).casefold(), expected.casefold()
    return (left > right) - (left < right)


def like_pattern(value: str) -> re.Pattern:
    """Return the regex of SQL ``LIKE '%value%'``, honouring ``%`` and ``_`` wildcards."""
    parts = []
    for ch in value:
        if ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile(".*" + "".join(parts) + ".*", re.IGNORECASE | re.DOTALL)


def matcher(conditions: list[Condition]) -> Callable[[dict], bool]:
    """Return a predicate that is true for a record matching every condition (AND)."""
    tests: list[Callable[[dict], bool]] = []
    for cond in conditions:
        field, op, value = cond.field, cond.op, cond.value
        if op == "is_null":
            tests.append(lambda r, f=field: r.get(f) in (None, ""))
        elif op == "not_null":
            tests.append(lambda r, f=field: r.get(f) not in (None, ""))
        elif op in ("like", "not_like"):
            # Case-insensitive like MySQL's *_ci collations; casefold also equates ß and ss.
            pattern = like_pattern(value.casefold())
            want = op == "like"

            def test(r, f=field, p=pattern, want=want):
                actual = r.get(f)
                return actual is not None and bool(p.fullmatch(str(actual).casefold())) is want

            tests.append(test)
        elif op in ("in", "not_in"):
            want = op == "in"
            tests.append(
                lambda r, f=field, vs=value, want=want: (
                    r.get(f) is not None and any(_compare(r.get(f), v) == 0 for v in vs) is want
                )
            )
        else:
            check = {
                "=": lambda c: c == 0,
                "!=": lambda c: c != 0,
                ">": lambda c: c > 0,
                ">=": lambda c: c >= 0,
                "<": lambda c: c < 0,
                "<=": lambda c: c <= 0,
            }[op]
            tests.append(lambda r, f=field, v=value, check=check: (c := _compare(r.get(f), v)) is not None and check(c))
    return lambda record: all(t(record) for t in tests)
