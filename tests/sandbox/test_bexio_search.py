"""Property tests of the bexio search-criteria parser and matcher (sandbox/bexio/search.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.bexio.search import CRITERIA, SearchError, matcher, parse

FIELDS = ("name_1", "mail", "id")
plain_text = st.text(alphabet=st.characters(blacklist_characters="%_", blacklist_categories=("Cs",)), max_size=20)


@given(st.sampled_from(sorted(CRITERIA)), st.sampled_from(FIELDS), st.text(max_size=30))
def test_every_documented_criteria_parses(criteria, field, value):
    body = [{"field": field, "value": [value] if criteria in ("in", "not_in") else value, "criteria": criteria}]
    (cond,) = parse(body, FIELDS)
    assert cond.op == CRITERIA[criteria]
    assert cond.field == field


@given(st.text(min_size=1, max_size=10).filter(lambda f: f not in FIELDS))
def test_unknown_fields_are_refused(field):
    with pytest.raises(SearchError):
        parse([{"field": field, "value": "x"}], FIELDS)


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        "x",
        [1],
        [{"value": "x"}],
        [{"field": "mail", "value": "x", "criteria": "~"}],
        [{"field": "mail", "value": "x" * 256}],
        [{"field": "mail", "value": True}],
    ],
)
def test_malformed_bodies_are_refused(body):
    with pytest.raises(SearchError):
        parse(body, FIELDS)


@given(plain_text, plain_text, plain_text)
def test_like_is_case_insensitive_substring(prefix, needle, suffix):
    record = {"mail": prefix + needle + suffix}
    like = matcher(parse([{"field": "mail", "value": needle.upper()}], FIELDS))
    not_like = matcher(parse([{"field": "mail", "value": needle.upper(), "criteria": "not_like"}], FIELDS))
    if needle.upper().casefold() == needle.casefold():
        assert like(record)
    assert like(record) != not_like(record)


@given(st.integers(-(10**6), 10**6), st.integers(-(10**6), 10**6))
def test_numeric_comparisons_match_python(actual, value):
    record = {"id": actual}
    for criteria, expected in (
        ("=", actual == value),
        ("!=", actual != value),
        (">", actual > value),
        (">=", actual >= value),
        ("<", actual < value),
        ("<=", actual <= value),
    ):
        assert matcher(parse([{"field": "id", "value": str(value), "criteria": criteria}], FIELDS))(record) is expected
    # "1.0" and 1 are the same number, as in MySQL.
    assert matcher(parse([{"field": "id", "value": f"{actual}.0", "criteria": "="}], FIELDS))(record)


@given(st.integers(0, 50), st.lists(st.integers(0, 50), max_size=5))
def test_in_is_any_equal(actual, values):
    record = {"id": actual}
    assert matcher(parse([{"field": "id", "value": [str(v) for v in values], "criteria": "in"}], FIELDS))(record) is (
        actual in values
    )
    assert matcher(parse([{"field": "id", "value": ",".join(map(str, values)), "criteria": "not_in"}], FIELDS))(
        record
    ) is (actual not in values)


@given(st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=5)))
def test_null_checks_are_complementary(value):
    record = {"mail": value}
    is_null = matcher(parse([{"field": "mail", "criteria": "is_null"}], FIELDS))(record)
    not_null = matcher(parse([{"field": "mail", "criteria": "not_null"}], FIELDS))(record)
    assert is_null != not_null


@given(st.lists(st.sampled_from(["a", "b", "ab"]), max_size=3), st.sampled_from(["a", "b", "ab", "ba"]))
def test_conditions_are_anded(needles, value):
    body = [{"field": "name_1", "value": n} for n in needles]
    assert matcher(parse(body, FIELDS))({"name_1": value}) is all(n in value for n in needles)


def test_like_wildcards():
    assert matcher(parse([{"field": "mail", "value": "a%z"}], FIELDS))({"mail": "xxabcz"})
    assert matcher(parse([{"field": "mail", "value": "a_c"}], FIELDS))({"mail": "abc"})
    assert not matcher(parse([{"field": "mail", "value": "a_c"}], FIELDS))({"mail": "abbc"})
