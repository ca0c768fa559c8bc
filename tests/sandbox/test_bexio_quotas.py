"""bexio quotas (per-minute window, real headers, 429) and injected faults."""

from __future__ import annotations

import pytest
import requests

from tests.sandbox.test_bexio_support import (
    COMPANY,
    SECOND_COMPANY,
    Api,
    login,
    new_invoice,
)
from tests.sandbox.test_bexio_support import api as api_fixture
from tests.sandbox.test_bexio_support import bexio_tokens as tokens_fixture

# Shared fixtures, bound under the names the tests ask for.
api = api_fixture
bexio_tokens = tokens_fixture


def quotas(base: str, **body) -> None:
    requests.post(f"{base}/_control/quotas", json=body, timeout=10).raise_for_status()


def fault(base: str, **spec) -> None:
    resp = requests.post(f"{base}/_control/faults", json={"provider": "bexio", **spec}, timeout=10)
    assert resp.status_code == 201, resp.text


def freeze_at_window_start(base: str) -> None:
    requests.post(
        f"{base}/_control/clock", json={"set": "2026-06-18T12:00:00+00:00", "freeze": True}, timeout=10
    ).raise_for_status()


def test_rate_limit_headers_count_down(sandbox_url, api):
    freeze_at_window_start(sandbox_url)
    api = Api(sandbox_url, login(sandbox_url)["access_token"])
    first = api.get("/2.0/contact")
    second = api.get("/2.0/contact")
    for resp in (first, second):
        assert resp.headers["ratelimit-limit"] == "1000"
        assert resp.headers["x-ratelimit-limit-minute"] == "1000"
        assert resp.headers["ratelimit-remaining"] == resp.headers["x-ratelimit-remaining-minute"]
        assert resp.headers["ratelimit-reset"] == "60"
        assert "Retry-After" not in resp.headers
    assert int(second.headers["ratelimit-remaining"]) == int(first.headers["ratelimit-remaining"]) - 1
    requests.post(f"{sandbox_url}/_control/clock", json={"advance_seconds": 45}, timeout=10)
    assert api.get("/2.0/contact").headers["ratelimit-reset"] == "15"


def test_429_when_the_minute_is_used_up_then_recovers(sandbox_url):
    freeze_at_window_start(sandbox_url)
    api = Api(sandbox_url, login(sandbox_url)["access_token"])
    quotas(sandbox_url, scale=0.005)  # 1000/min → 5/min
    statuses = [api.get("/2.0/unit").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    limited = api.get("/2.0/unit")
    assert limited.json() == {"error_code": 429, "message": "Too many requests"}
    assert limited.headers["ratelimit-remaining"] == "0"
    assert limited.headers["x-ratelimit-remaining-minute"] == "0"
    assert limited.headers["ratelimit-limit"] == "5"
    assert int(limited.headers["ratelimit-reset"]) <= 60
    # Writes are refused too and leave no trace.
    assert api.post("/2.0/kb_invoice", json={"contact_id": 1, "user_id": 1}).status_code == 429
    # Searches have their own, smaller window (250/min recorded) → 1/min at this scale.
    search = [api.post("/2.0/contact/search", json=[]).status_code for _ in range(2)]
    assert search == [200, 429]
    requests.post(f"{sandbox_url}/_control/clock", json={"advance_seconds": 60}, timeout=10)
    assert api.get("/2.0/unit").status_code == 200


def test_quota_is_per_company(sandbox_url):
    freeze_at_window_start(sandbox_url)
    first = Api(sandbox_url, login(sandbox_url)["access_token"])
    second = Api(sandbox_url, login(sandbox_url, company_id=SECOND_COMPANY)["access_token"])
    quotas(sandbox_url, scale=0.002)  # 2/min
    assert [first.get("/2.0/unit").status_code for _ in range(3)] == [200, 200, 429]
    assert second.get("/2.0/unit").status_code == 200


def test_quotas_off_never_refuse_but_still_send_headers(sandbox_url, api):
    quotas(sandbox_url, enabled=False, scale=0.001)
    responses = [api.get("/2.0/unit") for _ in range(4)]
    assert [r.status_code for r in responses] == [200] * 4
    assert all("ratelimit-remaining" in r.headers for r in responses)


@pytest.mark.faults
def test_error_rate_fault_renders_bexio_error(sandbox_url, api):
    fault(sandbox_url, kind="error_rate", status=503, count=1, company=COMPANY)
    resp = api.get("/2.0/contact")
    assert resp.status_code == 503
    assert resp.json() == {"error_code": 503, "message": "Service Unavailable"}
    assert api.get("/2.0/contact").status_code == 200


@pytest.mark.faults
def test_rate_limit_storm(sandbox_url, api):
    fault(sandbox_url, kind="rate_limit_storm", seconds=30)
    resp = api.get("/2.0/contact")
    assert resp.status_code == 429
    assert resp.headers["ratelimit-remaining"] == "0"
    requests.post(f"{sandbox_url}/_control/clock", json={"advance_seconds": 31}, timeout=10)
    assert api.get("/2.0/contact").status_code == 200


@pytest.mark.faults
def test_timeout_after_commit_keeps_the_write(sandbox_url, api):
    fault(sandbox_url, kind="timeout_after_commit", count=1, methods=["POST"], path_contains="kb_invoice")
    resp = api.post("/2.0/kb_invoice", json={"contact_id": 1, "user_id": 1, "api_reference": "retry-me"})
    assert resp.status_code == 504
    found = api.post("/2.0/kb_invoice/search", json=[{"field": "api_reference", "value": "retry-me", "criteria": "="}])
    assert len(found.json()) == 1
    assert new_invoice(api)["id"] > found.json()[0]["id"]


@pytest.mark.faults
def test_latency_fault(sandbox_url, api):
    fault(sandbox_url, kind="latency", ms=200, count=1)
    resp = api.get("/2.0/unit")
    assert resp.status_code == 200
    assert resp.elapsed.total_seconds() >= 0.2
