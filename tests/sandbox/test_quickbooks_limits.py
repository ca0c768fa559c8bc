"""QBO throttling (500/min, 10 concurrent, batches) and fault injection in QBO's own formats."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.sandbox.test_quickbooks_support import US_REALM, Qbo


def post(base, path, body):
    r = requests.post(f"{base}{path}", json=body, timeout=10)
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_per_minute_quota_gives_xml_throttle_then_recovers(sandbox_url):
    qbo = Qbo(sandbox_url)
    post(sandbox_url, "/_control/quotas", {"scale": 0.01})  # 500/min -> 5/min
    codes = [qbo.get("preferences").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    r = qbo.get("preferences")
    assert r.headers["Content-Type"] == "application/xml"
    assert 'code="3001"' in r.text
    assert "message=ThrottleExceeded; errorCode=003001; statusCode=429" in r.text
    assert "intuit_tid" in r.headers
    post(sandbox_url, "/_control/clock", {"advance_seconds": 60})
    assert qbo.get("preferences").status_code == 200
    post(sandbox_url, "/_control/quotas", {"enabled": False})
    assert all(qbo.get("preferences").status_code == 200 for _ in range(10))


@pytest.mark.faults
def test_concurrency_gate_per_realm(sandbox_url):
    qbo = Qbo(sandbox_url)
    post(sandbox_url, "/_control/quickbooks/set_limits", {"concurrent": 2})
    post(
        sandbox_url,
        "/_control/faults",
        {"provider": "quickbooks", "kind": "latency", "ms": 400, "path_contains": "/companyinfo/"},
    )
    results = []

    def call():
        results.append(qbo.get(f"companyinfo/{US_REALM}").status_code)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 200, 429, 429]


def test_batch_quota(sandbox_url):
    qbo = Qbo(sandbox_url)
    post(sandbox_url, "/_control/quickbooks/set_limits", {"batch_per_minute": 1})
    body = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Term"}]}
    assert qbo.post("batch", body).status_code == 200
    assert qbo.post("batch", body).status_code == 429


@pytest.mark.faults
def test_injected_500_storm_and_timeout_after_commit(sandbox_url):
    qbo = Qbo(sandbox_url)
    post(
        sandbox_url,
        "/_control/faults",
        {"provider": "quickbooks", "kind": "error_rate", "status": 500, "count": 1},
    )
    r = qbo.get("preferences")
    assert r.status_code == 500
    assert r.json()["Fault"]["type"] == "SystemFault"
    assert r.json()["Fault"]["Error"][0]["code"] == "10000"
    post(
        sandbox_url,
        "/_control/faults",
        {"provider": "quickbooks", "kind": "rate_limit_storm", "count": 1, "company": US_REALM},
    )
    assert qbo.get("preferences").status_code == 429
    post(
        sandbox_url,
        "/_control/faults",
        {"provider": "quickbooks", "kind": "timeout_after_commit", "count": 1},
    )
    body = {
        "CustomerRef": {"value": "1"},
        "Line": [
            {
                "Amount": 5,
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
            }
        ],
    }
    before = qbo.query("SELECT COUNT(*) FROM Invoice").json()["QueryResponse"]["totalCount"]
    assert qbo.post("invoice", body, params={"requestid": "t-1"}).status_code == 504
    assert qbo.query("SELECT COUNT(*) FROM Invoice").json()["QueryResponse"]["totalCount"] == before + 1
    # The retry with the same requestid gets the committed invoice, not a duplicate.
    assert qbo.post("invoice", body, params={"requestid": "t-1"}).status_code == 200
    assert qbo.query("SELECT COUNT(*) FROM Invoice").json()["QueryResponse"]["totalCount"] == before + 1
    post(
        sandbox_url,
        "/_control/faults",
        {"provider": "quickbooks", "kind": "error_rate", "status": 503, "count": 1},
    )
    assert qbo.get("preferences").status_code == 503


def test_control_errors_and_ledger(sandbox_url):
    r = requests.post(f"{sandbox_url}/_control/quickbooks/nope", json={}, timeout=10)
    assert r.status_code == 404
    r = requests.post(f"{sandbox_url}/_control/quickbooks/set_preferences", json={"realm_id": "1"}, timeout=10)
    assert r.status_code == 404
    r = requests.post(
        f"{sandbox_url}/_control/quickbooks/set_preferences",
        json={"realm_id": US_REALM, "closing_date": "not a date"},
        timeout=10,
    )
    assert r.status_code == 400
    Qbo(sandbox_url)
    ledger = requests.get(f"{sandbox_url}/_control/ledger/quickbooks/{US_REALM}", timeout=10).json()
    assert ledger["CompanyInfo"]["Country"] == "US"
    assert len(ledger["grants"]) == 1
    assert {i["Name"] for i in ledger["entities"]["Item"]} >= {"Hardware", "Cables"}


@pytest.mark.faults
def test_a_reset_lets_go_of_a_held_answer_and_its_concurrency_slot(sandbox_url):
    def invoices() -> int:
        ledger = requests.get(f"{sandbox_url}/_control/ledger/quickbooks/{US_REALM}", timeout=10).json()
        return len(ledger["entities"].get("Invoice", []))

    qbo, before = Qbo(sandbox_url), invoices()
    post(
        sandbox_url,
        "/_control/faults",
        {
            **{"provider": "quickbooks", "kind": "timeout_after_commit", "mode": "hang", "hang_seconds": 60},
            **{"methods": ["POST"], "path_pattern": "/invoice$"},
        },
    )
    body = {
        "CustomerRef": {"value": "1"},
        "Line": [
            {"Amount": 10, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}
        ],
    }
    answers: list[int] = []
    held = threading.Thread(
        target=lambda: answers.append(qbo.session.post(qbo.url("invoice"), json=body, timeout=90).status_code)
    )
    held.start()
    deadline = time.monotonic() + 10
    while invoices() == before and time.monotonic() < deadline:  # committed, its answer held
        time.sleep(0.05)
    assert invoices() == before + 1 and held.is_alive()

    reset_at = time.monotonic()
    post(sandbox_url, "/_control/reset", {})
    held.join(10)
    assert answers == [504]  # the answer is let go at once, still as a timeout
    assert time.monotonic() - reset_at < 5
    # Nothing of the held request stays in flight: the realm's only slot is free.
    fresh = Qbo(sandbox_url)
    post(sandbox_url, "/_control/quickbooks/set_limits", {"concurrent": 1})
    assert fresh.get(f"companyinfo/{US_REALM}").status_code == 200
