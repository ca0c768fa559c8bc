"""The ops pages run as many SQL statements for many rows as for few (no N+1)."""

from __future__ import annotations

import pytest

PROVIDERS = ("exact-online", "quickbooks", "bexio")
LINK_TEXT = "The QuickBooks customer of this record is missing. Link the customer again. (QuickBooks Online: customer)"


def _fill(world, connections: int, records_each: int) -> list[int]:
    ids = []
    for i in range(connections):
        provider = PROVIDERS[i % 3]
        cid = world.connection(provider, ("connected", "failing", "paused")[i % 3], refresh_in_days=i)
        ids.append(cid)
        for j in range(records_each):
            if j % 2:
                world.record(cid, "needs_action", error_class="customer_not_linked", text=f"{LINK_TEXT} {i}")
            else:
                world.record(cid, kind=("invoice", "customer", "credit_note", "payment")[j % 4])
        world.record(cid, "pushed")
    return ids


def _statements(client, count_queries, url: str) -> int:
    with count_queries() as statements:
        response = client.get(url)
        assert response.status_code == 200, url
    return len(statements)


@pytest.mark.parametrize(
    "url",
    [
        "/ops/",
        "/ops/connections",
        "/ops/connections?with_failures=1&sort=provider",
        "/ops/failures",
        "/ops/failures/records",
        "/ops/failures/records?error_class=mapping_missing",
    ],
)
def test_page_statements_do_not_grow_with_rows(ops_client, world, count_queries, url):
    client, _ = ops_client
    _fill(world, 2, 2)
    few = _statements(client, count_queries, url)
    _fill(world, 9, 4)
    many = _statements(client, count_queries, url)
    assert many == few, (url, few, many)


def test_records_page_statements_do_not_grow_with_rows(ops_client, world, count_queries):
    client, _ = ops_client
    cid = _fill(world, 1, 0)[0]
    for kind in ("invoice", "customer", "credit_note", "payment"):
        world.record(cid, kind=kind)
    few = _statements(client, count_queries, f"/ops/connections/{cid}/records")
    for _ in range(15):
        world.record(cid, kind="invoice")
        world.record(cid, kind="customer")
    many = _statements(client, count_queries, f"/ops/connections/{cid}/records")
    assert many == few
