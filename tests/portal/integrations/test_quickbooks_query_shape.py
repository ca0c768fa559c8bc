"""A QuickBooks query answer of an unexpected shape is refused, never read as "no rows"."""

from __future__ import annotations

import pytest

from portal.integrations.base import Unavailable
from portal.integrations.quickbooks import _query_rows


@pytest.mark.parametrize(
    ("body", "rows"),
    [
        ({"QueryResponse": {}, "time": "2026-11-22T10:00:00.000-08:00"}, []),
        ({"QueryResponse": {"Item": [{"Id": "1"}], "startPosition": 1, "maxResults": 1}}, [{"Id": "1"}]),
    ],
)
def test_well_formed_answers_give_their_rows(body, rows):
    assert _query_rows(body) == rows


@pytest.mark.parametrize(
    "body",
    [
        {"QueryResponse": {"Item": "<script>alert(1)</script>"}},
        {"QueryResponse": {"Item": [1, 2]}},
        {"QueryResponse": "nothing"},
        {"Fault": {}},
        ["not", "an", "object"],
    ],
)
def test_malformed_answers_are_refused_with_the_text(body):
    with pytest.raises(Unavailable, match="unexpected shape") as caught:
        _query_rows(body)
    assert caught.value.provider_text == str(body)[:500]
