"""Two worker processes pushing into one Exact division share its quota through the Redis limiter.

Two business units of one organization are connected to the same Exact division, so their calls
count against one (app, division) budget. The sandbox's budget is scaled down to 12 calls per
6-second "minute" and each unit pushes more invoices than that allows; one real ``rq worker``
process per unit pushes at the same time. The shared limiter must pace both so that the sandbox
refuses nothing: no 429, no record failed or left behind, every invoice exactly once.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import requests

from tests.portal.sync.conftest import CONNECT, add_invoice, connect_unit, ledger_documents
from tests.portal.sync.rq_workers import (
    enqueue_push,
    records,
    sandbox_get,
    sandbox_post,
    start_worker,
    wait_for,
)

PROVIDER = "exact-online"
DIVISION = CONNECT[PROVIDER][1]
#: 60 calls per minute scaled to 12 per window, the minute scaled to 6 seconds.
QUOTA = {"scale": 0.2, "window_scale": 0.1}
LIMIT, WINDOW_SECONDS = 12, 6.0
#: Per unit: a customer creation, then per invoice a look-up, a creation and the steps after the
#: push (2 to 5 calls): at least 9 calls per unit, together more than one window allows.
INVOICES_PER_UNIT = 4


def _second_unit(app, org_unit) -> int:
    from portal.extensions import db
    from portal.models import BusinessUnit

    with app.app_context():
        unit = BusinessUnit(organization_id=org_unit["org_id"], name="Pushtest NL 2", country="NL", currency="EUR")
        db.session.add(unit)
        db.session.commit()
        return unit.id


def _forget_limiter_windows(redis_url: str) -> None:
    # The connect flow's calls were counted under the real quota; start from the scaled one.
    connection = redis.Redis.from_url(redis_url)
    for key in connection.scan_iter(f"ledgerlink:ratelimit:{PROVIDER}:*"):
        connection.delete(key)


def _minute_counter(sandbox: str) -> dict:
    counters = [
        c
        for c in sandbox_get(sandbox, "quotas")["counters"]
        if c["key"][0] == PROVIDER and c["key"][2] == DIVISION and c["key"][-1] == "minute"
    ]
    assert len(counters) == 1, counters  # one app, one division: one shared budget
    return counters[0]


def _exact_token(sandbox: str) -> str:
    """Return an access token of jan.devries for the division, through the sandbox's OAuth."""
    client = next(c for c in sandbox_get(sandbox, "clients") if c["provider"] == PROVIDER)
    redirect_uri = "http://127.0.0.1:9/callback"
    approved = sandbox_post(
        sandbox,
        "consent",
        {
            "provider": PROVIDER,
            "region": "nl",
            "client_id": client["client_id"],
            "redirect_uri": redirect_uri,
            "state": "s",
            "user": "jan.devries",
            "divisions": [DIVISION],
        },
    )
    code = parse_qs(urlsplit(approved["redirect_url"]).query)["code"][0]
    response = requests.post(
        f"{sandbox}/exact-online/nl/api/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
        },
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def test_the_sandbox_scales_quota_windows_and_counts_calls_over_the_limit(sandbox):
    # 60/min scaled to 3 per window, the minute stretched to 10 minutes: no boundary within the test.
    sandbox_post(sandbox, "quotas", {"scale": 0.05, "window_scale": 10})
    headers = {"Authorization": f"Bearer {_exact_token(sandbox)}"}
    url = f"{sandbox}/exact-online/nl/api/v1/{DIVISION}/logistics/Items"

    responses = [
        requests.get(url, params={"$select": "ID", "$filter": "Code eq 'CONSULT'"}, headers=headers, timeout=10)
        for _ in range(4)
    ]

    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert responses[0].headers["X-RateLimit-Minutely-Limit"] == "3"
    reset = int(responses[0].headers["X-RateLimit-Minutely-Reset"]) / 1000
    assert 0 < reset - time.time() <= 600
    counter = _minute_counter(sandbox)
    assert (counter["window_seconds"], counter["within_limit"], counter["over_limit"]) == (600, 3, 1)
    assert sandbox_get(sandbox, "quotas")["window_scale"] == 10
    sandbox_post(sandbox, "quotas", {"window_scale": 1})
    assert sandbox_get(sandbox, "quotas")["counters"] == []  # a change of quotas starts counting anew


@pytest.mark.workers
def test_two_workers_on_one_division_stay_within_its_quota(
    app, sandbox, flow, org_unit, connect, database_url, redis_url, tmp_path
):
    units = [org_unit["unit_id"], _second_unit(app, org_unit)]
    connections = [connect(PROVIDER), connect_unit(app, flow, units[1], PROVIDER)]
    numbers = {
        cid: [add_invoice(app, org_unit, unit)[1] for _ in range(INVOICES_PER_UNIT)]
        for cid, unit in zip(connections, units, strict=True)
    }
    sandbox_post(sandbox, "quotas", QUOTA)
    _forget_limiter_windows(redis_url)
    workers = [start_worker(app, database_url, redis_url, tmp_path, f"unit-{n}") for n in (1, 2)]
    try:
        # Start both pushes early in a quota window (not timing-critical: the limiter must cope
        # anywhere, but a call sent just before a boundary is counted by the sandbox in the next
        # window, which the limiter cannot know; see the report of this test).
        wait_for(lambda: time.time() % WINDOW_SECONDS < WINDOW_SECONDS / 3, timeout=10, what="a fresh window")
        for connection_id in connections:
            enqueue_push(app, connection_id)

        def all_pushed() -> bool:
            return all(
                len(found := records(app, cid)) == INVOICES_PER_UNIT and all(r["state"] == "pushed" for r in found)
                for cid in connections
            )

        wait_for(all_pushed, what="every invoice pushed")
    finally:
        for worker in workers:
            worker.stop()

    counter = _minute_counter(sandbox)
    assert counter["over_limit"] == 0, counter  # the sandbox answered no 429
    assert counter["within_limit"] > LIMIT  # more calls than one window allows: the limiter paced them
    for connection_id in connections:
        for record in records(app, connection_id):
            assert record["state"] == "pushed" and record["attempts"] == 1, record
        for number in numbers[connection_id]:
            assert len(ledger_documents(sandbox, PROVIDER, number)) == 1, number
    _assert_no_rate_limited_runs(app, connections)


def _assert_no_rate_limited_runs(app, connections: list[int]) -> None:
    from portal.extensions import db
    from portal.models import SyncRun

    with app.app_context():
        runs = [r for r in db.session.scalars(db.select(SyncRun)) if r.parameters.get("connection_id") in connections]
    assert len(runs) == 2, [(r.id, r.status.value, r.message) for r in runs]  # no rescheduled run
    for run in runs:
        assert run.status.value == "succeeded", run.message
        assert run.counts["invoices"] == run.counts["pushed"] == INVOICES_PER_UNIT, run.counts
        assert not {"failed", "pending", "rate_limited"} & set(run.counts), run.counts
