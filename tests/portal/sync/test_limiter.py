"""The shared rate limiter on the real test Redis: pacing, header corrections, wiring into LedgerHttp."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
import redis as redis_lib

from portal.integrations.base import RateLimited
from portal.integrations.http import QuotaSnapshot, QuotaWindow, RequestInfo, ResponseInfo
from portal.sync.limiter import RateLimiter

#: A whole minute (1_800_000_000 is a multiple of 60) plus 30 s.
T0 = 1_800_000_030.0


class FakeTime:
    """A clock that only moves when the limiter sleeps."""

    def __init__(self, start: float = T0) -> None:
        self.now = start
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def rconn(redis_url):
    connection = redis_lib.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def company():
    return f"test-{os.urandom(4).hex()}"


def limiter(rconn, clock: FakeTime, **options) -> RateLimiter:
    return RateLimiter(rconn, sleep=clock.sleep, clock=clock.time, **options)


def snapshot(limit: int, remaining: int, reset: float, day: tuple[int, int, float] | None = None) -> QuotaSnapshot:
    minute = QuotaWindow(limit, remaining, datetime.fromtimestamp(reset, UTC))
    daily = QuotaWindow(day[0], day[1], datetime.fromtimestamp(day[2], UTC)) if day else None
    return QuotaSnapshot(minute=minute, day=daily)


def test_calls_within_the_window_go_at_once_and_the_next_waits_for_the_reset(rconn, company):
    clock = FakeTime()
    shared = limiter(rconn, clock)
    shared.observe("exact-online", company, snapshot(60, 60, T0 + 30))
    rconn.hset(f"ledgerlink:ratelimit:exact-online:{company}:minute", "limit", 3)

    for _ in range(3):
        shared.acquire("exact-online", company)
    assert clock.slept == []

    shared.acquire("exact-online", company)

    assert len(clock.slept) == 1
    assert clock.now >= T0 + 30  # slept into the next window (plus the margin)
    assert shared.state("exact-online", company)["minute"]["used"] == 1


def test_two_limiters_on_one_redis_share_the_budget(rconn, company):
    clock = FakeTime()
    one, two = limiter(rconn, clock), limiter(rconn, clock)
    rconn.hset(
        f"ledgerlink:ratelimit:bexio:{company}:minute", mapping={"limit": 2, "used": 0, "reset": (T0 + 30) * 1000}
    )

    one.acquire("bexio", company)
    two.acquire("bexio", company)
    assert clock.slept == []
    one.acquire("bexio", company)  # the third call of the company, whichever worker makes it

    assert len(clock.slept) == 1 and clock.slept[0] == pytest.approx(30.25, abs=0.1)


def test_headers_correct_the_limit_and_the_count_but_never_lower_it(rconn, company):
    clock = FakeTime()
    shared = limiter(rconn, clock)
    shared.acquire("exact-online", company)
    shared.acquire("exact-online", company)

    # The provider saw more calls than we counted (another app, a scale): its count wins.
    shared.observe("exact-online", company, snapshot(6, 1, T0 + 30, day=(500, 480, T0 + 3600)))
    state = shared.state("exact-online", company)
    assert (state["minute"]["limit"], state["minute"]["used"]) == (6, 5)
    assert (state["day"]["limit"], state["day"]["used"]) == (500, 20)

    # A late response reporting less use does not give slots back.
    shared.observe("exact-online", company, snapshot(6, 4, T0 + 30))
    assert shared.state("exact-online", company)["minute"]["used"] == 5

    # A response of a window that is already over is ignored.
    shared.observe("exact-online", company, snapshot(6, 6, T0 - 30))
    assert shared.state("exact-online", company)["minute"]["reset"] == (T0 + 30) * 1000


def test_a_429_makes_every_worker_wait_for_the_reset(rconn, company):
    clock = FakeTime()
    shared = limiter(rconn, clock)
    shared.acquire("exact-online", company)
    shared.observe("exact-online", company, snapshot(60, 0, T0 + 10))  # what a 429 reports

    shared.acquire("exact-online", company)

    assert clock.slept and clock.now >= T0 + 10


def test_a_spent_daily_budget_raises_rate_limited_instead_of_sleeping_for_hours(rconn, company):
    clock = FakeTime()
    shared = limiter(rconn, clock, max_wait=90)
    shared.observe("exact-online", company, snapshot(60, 59, T0 + 30, day=(5000, 0, T0 + 7200)))

    with pytest.raises(RateLimited) as caught:
        shared.acquire("exact-online", company)

    assert clock.slept == []
    assert caught.value.retry_at >= datetime.fromtimestamp(T0 + 7200, UTC)


def test_hooks_skip_calls_without_a_company_and_read_quota_snapshots(rconn, company):
    clock = FakeTime()
    shared = limiter(rconn, clock)
    shared.before_request(RequestInfo("exact-online", None, "POST", "https://x/token"))
    assert shared.state("exact-online", company) == {}

    shared.before_request(RequestInfo("bexio", company, "GET", "https://x/2.0/contact"))
    info = ResponseInfo("bexio", company, "GET", "https://x", 200, {}, snapshot(10, 2, T0 + 30), 0.01)
    shared.on_response(info)

    assert shared.state("bexio", company)["minute"]["used"] == 8


def test_adapters_built_by_the_portal_carry_the_limiter_unless_it_is_off(app):
    from portal.connections.providers import build_adapter

    with app.test_request_context():
        http = build_adapter("bexio").http
        assert http.before_request is not None and http.on_response is not None
        app.config["RATE_LIMITER"] = False
        try:
            http = build_adapter("bexio").http
        finally:
            app.config["RATE_LIMITER"] = True
        assert http.before_request is None and http.on_response is None
