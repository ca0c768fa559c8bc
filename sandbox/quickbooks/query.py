"""The QBO query language: parse ``SELECT … FROM … WHERE … ORDERBY … STARTPOSITION … MAXRESULTS``.

Grammar and variants per quickbooks-online.md §2.2: one entity, conditions joined by AND only (no OR, JOIN,
GROUP BY), operators ``= < > <= >= IN LIKE`` (LIKE knows only ``%``), single-quoted strings with
``\\'`` escapes, ``ORDERBY`` or ``ORDER BY``, paging clauses in either order, ``COUNT(*)``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .faults import QBOFault, invalid_query

MAX_RESULTS_LIMIT = 1000
DEFAULT_MAX_RESULTS = 100

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:\\.|[^'\\])*')
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op><=|>=|!=|<>|<|>|=)
  | (?P<punct>[(),*])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"select", "from", "where", "and", "or", "orderby", "order", "by", "asc", "desc", "in", "like"}
_KEYWORDS |= {"startposition", "maxresults", "count", "not", "join", "group"}


@dataclass(frozen=True)
class Token:
    """One lexical token with its 1-based column."""

    kind: str
    text: str
    column: int

    @property
    def word(self) -> str:
        return self.text.lower()

    def label(self) -> str:
        """Name the token the way QBO's JavaCC parser does in its messages."""
        if self.kind == "string":
            return "<STRING>"
        if self.kind == "number":
            return "<INTEGER>" if "." not in self.text else "<DECIMAL>"
        if self.kind == "ident" and self.word not in _KEYWORDS:
            return "<IDENTIFIER>"
        return f'"{self.text}"'


@dataclass(frozen=True)
class Condition:
    """``prop op value``; for IN, ``value`` is a tuple."""

    prop: str
    op: str
    value: Any


@dataclass
class Query:
    """A parsed SELECT statement."""

    entity: str
    count: bool = False
    #: Extra projected properties (``SELECT *, Sku``); None means all.
    projection: list[str] | None = None
    conditions: list[Condition] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)
    start: int = 1
    max_results: int = DEFAULT_MAX_RESULTS


def parser_error(token: Token | None, text: str) -> QBOFault:
    """Return the 4001 fault QBO answers for a syntax error at ``token``."""
    if token is None:
        return invalid_query(f'QueryParserError: Encountered "<EOF>" at line 1, column {len(text) + 1}.')
    return invalid_query(
        f'QueryParserError: Encountered " {token.label()} "{token.text} "" at line 1, column {token.column}.'
    )


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens.

    :raise QBOFault: 4001 on a character that starts no token (e.g. an unclosed quote).
    """
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise invalid_query(
                f'QueryParserError: Lexical error at line 1, column {pos + 1}.  Encountered: "{text[pos]}"'
            )
        if m.lastgroup != "ws":
            tokens.append(Token(m.lastgroup or "", m.group(), pos + 1))
        pos = m.end()
    return tokens


def unquote(literal: str) -> str:
    """Return the value of a single-quoted literal, undoing backslash escapes."""
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def quote(value: str) -> str:
    """Return ``value`` as a query literal (the inverse of :func:`unquote`)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise parser_error(None, self.text)
        self.i += 1
        return tok

    def expect_word(self, *words: str) -> Token:
        tok = self.next()
        if tok.kind != "ident" or tok.word not in words:
            raise parser_error(tok, self.text)
        return tok

    def expect(self, text: str) -> Token:
        tok = self.next()
        if tok.text != text:
            raise parser_error(tok, self.text)
        return tok

    def at_word(self, *words: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "ident" and tok.word in words

    def identifier(self) -> str:
        tok = self.next()
        if tok.kind != "ident" or tok.word in _KEYWORDS:
            raise parser_error(tok, self.text)
        return tok.text

    def integer(self) -> int:
        tok = self.next()
        if tok.kind != "number" or "." in tok.text or tok.text.startswith("-"):
            raise parser_error(tok, self.text)
        return int(tok.text)

    def value(self) -> Any:
        tok = self.next()
        if tok.kind == "string":
            return unquote(tok.text)
        if tok.kind == "number":
            return float(tok.text) if "." in tok.text else int(tok.text)
        if tok.kind == "ident" and tok.word in ("true", "false"):
            return tok.word == "true"
        raise parser_error(tok, self.text)

    def parse(self) -> Query:
        self.expect_word("select")
        count, projection = False, None
        if self.at_word("count"):
            self.next()
            self.expect("(")
            self.expect("*")
            self.expect(")")
            count = True
        else:
            star, props = False, []
            while True:
                if self.peek() is not None and self.peek().text == "*":
                    self.next()
                    star = True
                else:
                    props.append(self.identifier())
                if self.peek() is None or self.peek().text != ",":
                    break
                self.next()
            # ``SELECT *, Sku`` (python-quickbooks Item.all) is the full object; only a pure list projects.
            projection = None if star else props
        self.expect_word("from")
        query = Query(entity=self.identifier(), count=count, projection=projection)
        seen: set[str] = set()
        while (tok := self.peek()) is not None:
            word = tok.word if tok.kind == "ident" else ""
            if word in seen or word not in ("where", "orderby", "order", "startposition", "maxresults"):
                raise parser_error(tok, self.text)
            self.next()
            if word == "where":
                query.conditions = self.conditions()
            elif word in ("orderby", "order"):
                if word == "order":
                    self.expect_word("by")
                seen.add("order" if word == "orderby" else "orderby")
                query.order = self.ordering()
            elif word == "startposition":
                query.start = self.integer()
            else:
                query.max_results = self.integer()
            seen.add(word)
        if query.max_results > MAX_RESULTS_LIMIT:
            raise invalid_query(
                f"QueryValidationError: value {query.max_results} is too large. "
                f"Max allowed value is: {MAX_RESULTS_LIMIT}"
            )
        if query.start < 1:
            query.start = 1
        return query

    def conditions(self) -> list[Condition]:
        conds = [self.condition()]
        while self.at_word("and"):
            self.next()
            conds.append(self.condition())
        return conds

    def condition(self) -> Condition:
        prop = self.identifier()
        tok = self.next()
        if tok.kind == "op" and tok.text not in ("!=", "<>"):
            return Condition(prop, tok.text, self.value())
        if tok.kind == "ident" and tok.word == "like":
            value = self.value()
            if not isinstance(value, str):
                raise parser_error(self.tokens[self.i - 1], self.text)
            return Condition(prop, "like", value)
        if tok.kind == "ident" and tok.word == "in":
            self.expect("(")
            values = [self.value()]
            while (nxt := self.next()).text == ",":
                values.append(self.value())
            if nxt.text != ")":
                raise parser_error(nxt, self.text)
            return Condition(prop, "in", tuple(values))
        raise parser_error(tok, self.text)

    def ordering(self) -> list[tuple[str, bool]]:
        order = []
        while True:
            prop = self.identifier()
            desc = False
            if self.at_word("asc", "desc"):
                desc = self.next().word == "desc"
            order.append((prop, desc))
            if self.peek() is None or self.peek().text != ",":
                return order
            self.next()


def parse(text: str) -> Query:
    """Parse one query.

    :raise QBOFault: 4001 with QBO's QueryParserError/QueryValidationError detail.
    """
    if not text or not text.strip():
        raise invalid_query('QueryParserError: Encountered "<EOF>" at line 1, column 1.')
    return _Parser(text.strip()).parse()


# -- evaluation ------------------------------------------------------------------------------
def lookup(obj: dict, prop: str) -> Any:
    """Return ``obj``'s value at the dotted ``prop``; a Ref object yields its ``value``."""
    cur: Any = obj
    for part in prop.split("."):
        if not isinstance(cur, dict):
            return None
        if part in cur:
            cur = cur[part]
        else:
            # QBO property names in queries are case-insensitive.
            low = part.lower()
            cur = next((v for k, v in cur.items() if k.lower() == low), None)
    if isinstance(cur, dict) and "value" in cur:
        return cur["value"]
    return cur


def _is_number(text: str) -> bool:
    # ASCII digits only: str.isdigit() accepts "²", which int() refuses (found by hypothesis).
    return text.isascii() and text.isdigit()


@functools.lru_cache(maxsize=1024)
def _as_datetime(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def _coerce(actual: Any, literal: Any) -> tuple[Any, Any] | None:
    """Bring a stored value and a literal to comparable types, or None when they cannot be."""
    if actual is None:
        return None
    if isinstance(actual, bool) or isinstance(literal, bool):
        if isinstance(literal, str):
            literal = literal.strip().lower() == "true"
        return (bool(actual), bool(literal)) if isinstance(actual, bool) else None
    if isinstance(actual, int | float):
        try:
            return float(actual), float(literal)
        except (TypeError, ValueError):
            return None
    text, lit = str(actual), str(literal)
    if _is_number(text) and _is_number(lit):
        # Ids are strings of digits; compare them as numbers so Id > '9' behaves.
        return int(text), int(lit)
    # The literal first: it is the same for every row, and most are no date-time at all.
    if len(text) > 10 and len(lit) > 10 and (b := _as_datetime(lit)) and (a := _as_datetime(text)):
        return a, b
    if len(lit) > 10 and len(text) == 10 and (b := _as_datetime(lit)):
        return text, b.date().isoformat()
    return text.lower(), lit.lower()


def _like(actual: Any, pattern: str) -> bool:
    if actual is None:
        return False
    regex = "^" + ".*".join(re.escape(p) for p in pattern.lower().split("%")) + "$"
    return re.match(regex, str(actual).lower(), re.DOTALL) is not None


def matches(obj: dict, cond: Condition) -> bool:
    """Say whether ``obj`` satisfies ``cond``."""
    actual = lookup(obj, cond.prop)
    if cond.op == "like":
        return _like(actual, cond.value)
    if cond.op == "in":
        return any(matches(obj, Condition(cond.prop, "=", v)) for v in cond.value)
    pair = _coerce(actual, cond.value)
    if pair is None:
        return False
    a, b = pair
    try:
        return {
            "=": a == b,
            "<": a < b,
            ">": a > b,
            "<=": a <= b,
            ">=": a >= b,
        }[cond.op]
    except TypeError:
        return False


def sort_key(prop: str):
    """Return a key function ordering objects by ``prop`` (missing values first)."""

    def key(obj: dict):
        value = lookup(obj, prop)
        if value is None:
            return (0, 0, "")
        if isinstance(value, bool | int | float):
            return (1, float(value), "")
        text = str(value)
        if _is_number(text):
            return (1, float(text), "")
        return (2, 0, text.lower())

    return key
