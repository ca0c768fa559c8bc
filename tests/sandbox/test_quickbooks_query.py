"""The QBO query-language parser and matcher, including property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.quickbooks import query as Q
from sandbox.quickbooks.faults import QBOFault


def test_variants_clients_send():
    q = Q.parse(
        "SELECT * FROM Customer WHERE Active IN (True, false) ORDER BY DisplayName DESC MAXRESULTS 5 STARTPOSITION 11 "
    )
    assert (q.entity, q.start, q.max_results, q.order) == ("Customer", 11, 5, [("DisplayName", True)])
    q = Q.parse("select count(*) from Invoice where MetaData.LastUpdatedTime > '2020-01-01T00:00:00-07:00'")
    assert q.count
    assert q.conditions[0].prop == "MetaData.LastUpdatedTime"
    assert Q.parse("SELECT *, Sku FROM Item").projection is None
    assert Q.parse("SELECT Id, Name FROM Item").projection == ["Id", "Name"]
    assert Q.parse("select * from Item STARTPOSITION 2 MAXRESULTS 3 ORDERBY Name").start == 2


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * FROM Customer WHERE a = 'x' OR b = 'y'",
        "SELECT * FROM",
        "SELECT * FROM Customer WHERE DisplayName = 'unclosed",
        "SELECT * FROM Customer MAXRESULTS 1001",
        "DELETE FROM Customer",
        "",
    ],
)
def test_bad_queries_are_4001(text):
    with pytest.raises(QBOFault) as exc:
        Q.parse(text)
    assert exc.value.code == "4001"
    assert exc.value.message == "Invalid query"


def test_matching_rules():
    obj = {
        "DisplayName": "Amy's Bird",
        "Id": "12",
        "TotalAmt": 337.5,
        "CustomerRef": {"value": "3"},
        "MetaData": {"LastUpdatedTime": "2020-09-29T06:00:44-07:00"},
        "Active": True,
    }
    assert Q.matches(obj, Q.Condition("displayname", "like", "amy%"))
    assert Q.matches(obj, Q.Condition("Id", ">", "9"))
    assert Q.matches(obj, Q.Condition("TotalAmt", ">", "300.00"))
    assert Q.matches(obj, Q.Condition("CustomerRef", "=", "3"))
    assert Q.matches(obj, Q.Condition("MetaData.LastUpdatedTime", ">", "2020-09-29T12:00:00Z"))
    assert not Q.matches(obj, Q.Condition("Active", "=", False))
    assert Q.matches(obj, Q.Condition("Id", "in", ("1", "12")))


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_quote_round_trips_through_the_parser(value):
    q = Q.parse(f"SELECT * FROM Customer WHERE DisplayName = {Q.quote(value)}")
    assert q.conditions[0].value == value
    assert Q.matches({"DisplayName": value}, q.conditions[0])


@given(st.text(max_size=60))
def test_parser_never_crashes(text):
    outcome = None
    try:
        Q.parse(text)
    except QBOFault as fault:
        outcome = fault.code
    assert outcome in (None, "4001")


@given(st.integers(1, 1000), st.integers(1, 5000), st.booleans())
def test_paging_clauses_in_either_order(maxr, start, swap):
    clauses = [f"MAXRESULTS {maxr}", f"STARTPOSITION {start}"]
    q = Q.parse("SELECT * FROM Invoice " + " ".join(reversed(clauses) if swap else clauses))
    assert (q.max_results, q.start) == (maxr, start)
