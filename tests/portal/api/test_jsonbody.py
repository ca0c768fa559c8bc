"""The API's one body reader: any bytes give a value or a BodyError with a message, never anything else."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.api import jsonbody


def _texts(value):
    """Yield every string of JSON data, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def _storable(text: str) -> bool:
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def _parse(app, raw: bytes, content_type: str = "application/json"):
    with app.test_request_context("/api/v1/x", method="PUT", data=raw, content_type=content_type):
        return jsonbody.parse()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_give_a_value_or_a_clear_refusal(app, raw):
    outcome: object
    try:
        outcome = _parse(app, raw)
    except jsonbody.BodyError as exc:
        outcome = exc
    if isinstance(outcome, jsonbody.BodyError):
        assert outcome.status in (400, 415, 422) and outcome.message
    else:
        json.dumps(outcome, default=str)  # what was accepted is JSON data


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=8,
    )
)
def test_text_is_accepted_exactly_when_it_is_storable(app, value):
    raw = json.dumps(value).encode()
    storable = all(_storable(text) for text in _texts(value))
    if storable:
        assert _parse(app, raw) == value
    else:
        with pytest.raises(jsonbody.BodyError) as exc:
            _parse(app, raw)
        assert exc.value.status == 422


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"a": NaN}', "NaN is not a JSON number at line 1, column 7"),
        (b'{\n  "a": 1,\n  "b": Infinity\n}', "Infinity is not a JSON number at line 3, column 8"),
        (b'{"a": 1,}', "not valid JSON at line 1, column 9"),
        (b"", "The body is empty"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_each_defect_is_named_with_its_place(app, raw, words):
    with pytest.raises(jsonbody.BodyError) as exc:
        _parse(app, raw)
    assert words in exc.value.message


def test_only_json_is_taken(app):
    with pytest.raises(jsonbody.BodyError) as exc:
        _parse(app, b'{"a": 1}', content_type="text/plain")
    assert exc.value.status == 415 and "application/json" in exc.value.message
    assert _parse(app, b'{"a": 1.50}', content_type="application/json; charset=utf-8") == {"a": Decimal("1.50")}
