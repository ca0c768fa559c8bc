"""The OData v2 subset Exact Online speaks: $filter parsing, query options and wire formats.

Exact's REST API is WCF Data Services (OData v2, JSON verbose): dates travel as ``/Date(ms)/``,
keys as ``guid'...'`` literals, and query errors use the WCF texts (exact-online.md §3.0, §4).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

_DATE_WIRE = re.compile(r"^/Date\((-?\d+)(?:[+-]\d{4})?\)/$")


class ODataError(Exception):
    """A query or payload the OData layer rejects; ``message`` is the WCF text."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# -- wire formats -----------------------------------------------------------------------------
def ms_to_wire(ms: int | None) -> str | None:
    """Render epoch milliseconds the way Exact sends dates (``/Date(1351209600000)/``)."""
    return None if ms is None else f"/Date({ms})/"


def datetime_to_ms(when: datetime) -> int:
    """Return epoch milliseconds of an aware or naive-UTC datetime."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def date_to_ms(day: date) -> int:
    """Return epoch milliseconds of midnight UTC on ``day`` (Exact's date-only values)."""
    return datetime_to_ms(datetime(day.year, day.month, day.day, tzinfo=UTC))


def ms_to_date(ms: int) -> date:
    """Return the UTC calendar day of epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date()


def parse_date_in(value: object) -> int | None:
    """Parse a request date (ISO-8601 or ``/Date(ms)/``) into epoch milliseconds.

    :raise ValueError: when the value is not a date Exact would accept.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("not a string")
    text = value.strip()
    match = _DATE_WIRE.match(text)
    if match:
        return int(match.group(1))
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return datetime_to_ms(parsed)


def pad_left(value: str, width: int) -> str:
    """Right-align ``value`` in ``width`` characters (Exact's Account Code, exact-online.md §3.0)."""
    return value.strip().rjust(width)


def pad_right(value: str, width: int) -> str:
    """Left-align ``value`` in ``width`` characters (VAT codes, Country, Unit, exact-online.md §3.0)."""
    return value.strip().ljust(width)


# -- $filter ----------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<guid>guid'(?P<guidv>[^']*)')
    | (?P<dt>datetime'(?P<dtv>[^']*)')
    | (?P<str>'(?P<strv>(?:[^']|'')*)')
    | (?P<num>-?\d+(?:\.\d+)?)(?P<suffix>[LlMmDdFf])?
    | (?P<lp>\() | (?P<rp>\)) | (?P<comma>,)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE | re.IGNORECASE,
)

_COMPARE: dict[str, Callable[[object, object], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}

_FUNCTIONS: dict[str, tuple[int, Callable[..., object]]] = {
    "trim": (1, lambda s: s.strip() if isinstance(s, str) else s),
    "tolower": (1, lambda s: s.lower() if isinstance(s, str) else s),
    "toupper": (1, lambda s: s.upper() if isinstance(s, str) else s),
    "length": (1, lambda s: len(s) if isinstance(s, str) else None),
    "substringof": (2, lambda a, b: isinstance(a, str) and isinstance(b, str) and a.lower() in b.lower()),
    "startswith": (2, lambda a, b: isinstance(a, str) and isinstance(b, str) and a.startswith(b)),
    "endswith": (2, lambda a, b: isinstance(a, str) and isinstance(b, str) and a.endswith(b)),
}


class _Guid(str):
    """A guid'...' literal: compares case-insensitively with stored lowercase ids."""


@dataclass
class _Token:
    kind: str
    value: object
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ODataError(f"Syntax error at position {pos}.")
        start = match.start(match.lastgroup) if match.lastgroup else pos
        if match.group("guid") is not None:
            tokens.append(_Token("lit", _Guid(match.group("guidv").lower()), start))
        elif match.group("dt") is not None:
            try:
                tokens.append(_Token("lit", parse_date_in(match.group("dtv")), start))
            except ValueError as exc:
                raise ODataError(f"Unrecognized 'Edm.DateTime' literal '{match.group('dt')}' in '{start}'.") from exc
        elif match.group("str") is not None:
            tokens.append(_Token("lit", match.group("strv").replace("''", "'"), start))
        elif match.group("num") is not None:
            raw, suffix = match.group("num"), (match.group("suffix") or "").lower()
            value: object = float(raw) if ("." in raw or suffix in ("m", "d", "f")) else int(raw)
            tokens.append(_Token("lit", value, start))
        elif match.group("lp"):
            tokens.append(_Token("(", None, start))
        elif match.group("rp"):
            tokens.append(_Token(")", None, start))
        elif match.group("comma"):
            tokens.append(_Token(",", None, start))
        else:
            tokens.append(_Token("name", match.group("name"), start))
        pos = match.end()
    return tokens


@dataclass
class Filter:
    """A compiled $filter: call :meth:`matches` per record; ``fields`` lists the properties used."""

    predicate: Callable[[dict], object]
    fields: frozenset[str]

    def matches(self, record: dict) -> bool:
        """Say whether ``record`` satisfies the filter."""
        return bool(self.predicate(record))


class _Parser:
    def __init__(self, text: str, fields: Iterable[str], type_name: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.fields = set(fields)
        self.type_name = type_name
        self.used: set[str] = set()

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise ODataError("Expression expected at position end of text.")
        self.i += 1
        return token

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token is not None and token.kind == "name" and str(token.value).lower() in words:
            self.i += 1
            return str(token.value).lower()
        return None

    def expect(self, kind: str) -> None:
        token = self.take()
        if token.kind != kind:
            raise ODataError(f"'{kind}' expected at position {token.pos}.")

    def parse(self) -> Filter:
        if not self.tokens:
            raise ODataError("Expression expected at position 0.")
        predicate = self.or_expr()
        extra = self.peek()
        if extra is not None:
            raise ODataError(f"Syntax error at position {extra.pos}.")
        return Filter(predicate, frozenset(self.used))

    def or_expr(self) -> Callable[[dict], object]:
        left = self.and_expr()
        while self.keyword("or"):
            right = self.and_expr()
            left = (lambda a, b: lambda r: bool(a(r)) or bool(b(r)))(left, right)
        return left

    def and_expr(self) -> Callable[[dict], object]:
        left = self.not_expr()
        while self.keyword("and"):
            right = self.not_expr()
            left = (lambda a, b: lambda r: bool(a(r)) and bool(b(r)))(left, right)
        return left

    def not_expr(self) -> Callable[[dict], object]:
        if self.keyword("not"):
            inner = self.not_expr()
            return lambda r: not inner(r)
        return self.comparison()

    def comparison(self) -> Callable[[dict], object]:
        left = self.primary()
        token = self.peek()
        if token is not None and token.kind == "name" and str(token.value).lower() in _COMPARE:
            self.i += 1
            op_name = str(token.value).lower()
            right = self.primary()
            return _compare(op_name, left, right, token.pos)
        return left

    def primary(self) -> Callable[[dict], object]:
        token = self.take()
        if token.kind == "(":
            inner = self.or_expr()
            self.expect(")")
            return inner
        if token.kind == "lit":
            value = token.value
            return lambda r: value
        if token.kind == "name":
            name = str(token.value)
            lowered = name.lower()
            nxt = self.peek()
            if nxt is not None and nxt.kind == "(" and lowered in _FUNCTIONS:
                self.i += 1
                arity, fn = _FUNCTIONS[lowered]
                args = [self.or_expr()]
                while self.peek() is not None and self.peek().kind == ",":
                    self.i += 1
                    args.append(self.or_expr())
                self.expect(")")
                if len(args) != arity:
                    raise ODataError(f"No applicable function found for '{lowered}' at position {token.pos}.")
                return lambda r: fn(*(a(r) for a in args))
            if lowered in ("true", "false"):
                flag = lowered == "true"
                return lambda r: flag
            if lowered == "null":
                return lambda r: None
            if name not in self.fields:
                raise ODataError(f"No property '{name}' exists in type '{self.type_name}' at position {token.pos}.")
            self.used.add(name)
            return lambda r: r.get(name)
        raise ODataError(f"Expression expected at position {token.pos}.")


def _compare(op_name: str, left, right, pos: int) -> Callable[[dict], bool]:
    compare = _COMPARE[op_name]

    def run(record: dict) -> bool:
        a, b = left(record), right(record)
        if isinstance(a, _Guid) or isinstance(b, _Guid):
            a = a.lower() if isinstance(a, str) else a
            b = b.lower() if isinstance(b, str) else b
        if a is None or b is None:
            if op_name == "eq":
                return a is b
            if op_name == "ne":
                return a is not b
            return False
        if isinstance(a, bool) != isinstance(b, bool) or isinstance(a, str) != isinstance(b, str):
            raise ODataError(
                f"Operator '{op_name}' incompatible with operand types '{_edm(a)}' and '{_edm(b)}' at position {pos}."
            )
        return compare(a, b)

    return run


def _edm(value: object) -> str:
    if isinstance(value, bool):
        return "Edm.Boolean"
    if isinstance(value, str):
        return "Edm.String"
    if isinstance(value, float):
        return "Edm.Double"
    return "Edm.Int32"


def parse_filter(text: str, fields: Iterable[str], type_name: str) -> Filter:
    """Compile an OData $filter expression over ``fields``.

    :raise ODataError: on a syntax error or an unknown property (WCF wording).
    """
    return _Parser(text, fields, type_name).parse()


# -- other query options ----------------------------------------------------------------------
def parse_select(text: str | None, fields: Iterable[str], type_name: str) -> list[str] | None:
    """Return the selected properties, or None for all.

    :raise ODataError: on an unknown property.
    """
    if text is None or text.strip() in ("", "*"):
        return None
    known = set(fields)
    chosen: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if name == "*":
            return None
        if name not in known:
            raise ODataError(f"No property '{name}' exists in type '{type_name}' at position 0.")
        if name not in chosen:
            chosen.append(name)
    return chosen


def parse_orderby(text: str | None, fields: Iterable[str], type_name: str) -> list[tuple[str, bool]]:
    """Return (property, descending) pairs of an $orderby option.

    :raise ODataError: on an unknown property or direction.
    """
    if not text:
        return []
    known = set(fields)
    order: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise ODataError(f"Syntax error in '$orderby': '{part.strip()}'.")
        if words[0] not in known:
            raise ODataError(f"No property '{words[0]}' exists in type '{type_name}' at position 0.")
        order.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    return order


def parse_count(name: str, text: str | None) -> int | None:
    """Parse $top / $skip.

    :raise ODataError: when the value is not a non-negative integer.
    """
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ODataError(f"Invalid integer value '{text}' for '{name}' query option.")
    return value


def sort_records(records: list[dict], order: list[tuple[str, bool]], key: str) -> list[dict]:
    """Sort by $orderby (nulls first, like SQL Server) and then by the entity key."""
    records.sort(key=lambda r: r[key])
    for name, desc in reversed(order):
        records.sort(
            key=lambda r, n=name: (r.get(n) is not None, r.get(n) if r.get(n) is not None else 0),
            reverse=desc,
        )
    return records


def parse_skiptoken(text: str | None) -> str | None:
    """Return the key a ``$skiptoken=guid'...'`` continues after.

    :raise ODataError: when the token is not a guid literal.
    """
    if not text:
        return None
    match = re.fullmatch(r"guid'([0-9a-fA-F-]{36})'", text.strip())
    if match is None:
        raise ODataError("The skip token value is not valid.")
    return match.group(1).lower()


def parse_sync_skiptoken(text: str | None) -> int | None:
    """Return the Timestamp a sync endpoint's ``$skiptoken=<Timestamp>L`` continues after.

    Sync rows are keyed by ``Timestamp`` (Edm.Int64), so the token is that key's literal, with or
    without the ``L`` suffix.

    :raise ODataError: when the token is not an integer literal.
    """
    if not text:
        return None
    match = re.fullmatch(r"(\d{1,19})[lL]?", text.strip())
    if match is None:
        raise ODataError("The skip token value is not valid.")
    return int(match.group(1))
