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

    window = shared.state("bexio", company)["minute"]
    # The snapshot was read: its limit replaces ours, and the provider's count is at most ours.
    assert window["limit"] == 10 and window["used"] >= 8


def test_adapters_built_by_the_portal_carry_the_limiter_unless_it_is_off(app):
    import time

    from portal.connections.providers import build_adapter
    from portal.extensions import queue
    from portal.sync.limiter import window_key

    reset = time.time() + 30
    info = ResponseInfo(
        "bexio", "co-off", "GET", "https://api.bexio.com/2.0/contact", 200, {}, snapshot(60, 10, reset), 0.1
    )
    with app.test_request_context():
        http = build_adapter("bexio").http
        assert http.before_request is not None and http.on_response is not None
        app.config["RATE_LIMITER"] = False
        try:
            http = build_adapter("bexio").http
        finally:
            app.config["RATE_LIMITER"] = True
        assert http.before_request is None
        http.on_response(info)  # the metrics still count responses; no window is kept
        assert not queue.connection.exists(window_key("bexio", "co-off", "minute"))
        build_adapter("bexio").http.on_response(info)
        assert queue.connection.hget(window_key("bexio", "co-off", "minute"), "used") == b"50"


def _counting(rconn) -> list[str]:
    """Record the name of every command the connection sends (one round trip each here)."""
    sent: list[str] = []
    original = rconn.execute_command

    def execute_command(*args, **options):
        sent.append(str(args[0]).upper())
        return original(*args, **options)

    rconn.execute_command = execute_command
    return sent


def test_a_call_costs_one_round_trip_and_a_report_that_changes_nothing_none(rconn, company):
    clock = FakeTime()
    shared = limiter(rconn, clock)
    shared.acquire("exact-online", company)  # loads the scripts
    shared.observe("exact-online", company, snapshot(60, 59, T0 + 30, day=(5000, 4999, T0 + 3600)))
    sent = _counting(rconn)

    shared.before_request(RequestInfo("exact-online", company, "GET", "https://x"))
    assert sent == ["EVALSHA"]  # both windows in one script

    # The provider counts no more calls than we did, same limit and reset: nothing to correct.
    quiet = snapshot(60, 58, T0 + 30, day=(5000, 4998, T0 + 3600))
    shared.on_response(ResponseInfo("exact-online", company, "GET", "https://x", 200, {}, quiet, 0.1))
    assert sent == ["EVALSHA"]

    # It counts more (another app): both windows corrected in one script.
    busy = snapshot(60, 40, T0 + 30, day=(5000, 4000, T0 + 3600))
    shared.on_response(ResponseInfo("exact-online", company, "GET", "https://x", 200, {}, busy, 0.1))
    assert sent == ["EVALSHA", "EVALSHA"]
    state = shared.state("exact-online", company)
    assert (state["minute"]["used"], state["day"]["used"]) == (20, 1000)

    # A 429 (nothing remaining) always reaches the shared windows.
    spent = snapshot(60, 0, T0 + 30)
    del sent[:]
    shared.before_request(RequestInfo("exact-online", company, "GET", "https://x"))
    shared.on_response(ResponseInfo("exact-online", company, "GET", "https://x", 429, {}, spent, 0.1))
    assert sent == ["EVALSHA", "EVALSHA"]
    assert shared.state("exact-online", company)["minute"]["used"] == 60


def test_a_big_window_is_taken_a_few_slots_at_a_time_and_a_429_drops_those_left(rconn, company):
    from portal.sync.limiter import BULK_SLOTS

    clock = FakeTime()
    shared = limiter(rconn, clock)
    key = f"ledgerlink:ratelimit:quickbooks:{company}:minute"
    rconn.hset(key, mapping={"limit": 5000, "used": 0, "reset": (T0 + 30) * 1000})
    sent = _counting(rconn)

    for _ in range(BULK_SLOTS):
        shared.acquire("quickbooks", company)
    assert sent == ["EVALSHA"]  # one round trip took the slots of ten calls
    assert int(rconn.hget(key, "used")) == BULK_SLOTS  # counted in the shared window at once

    shared.acquire("quickbooks", company)
    assert sent == ["EVALSHA", "HGET", "EVALSHA"]

    # A 429: the slots kept aside are dropped, the next call waits for the reset.
    spent = QuotaSnapshot(minute=QuotaWindow(5000, 0, datetime.fromtimestamp(T0 + 30, UTC)), day=None)
    shared.observe("quickbooks", company, spent)
    shared.acquire("quickbooks", company)
    assert clock.slept and clock.now >= T0 + 30


def test_a_small_window_is_taken_slot_by_slot(rconn, company):
    clock = FakeTime()
    shared = limiter(rconn, clock)
    key = f"ledgerlink:ratelimit:bexio:{company}:minute"
    rconn.hset(key, mapping={"limit": 60, "used": 0, "reset": (T0 + 30) * 1000})
    for _ in range(3):
        shared.acquire("bexio", company)
    assert int(rconn.hget(key, "used")) == 3


def test_a_reset_reported_hours_ahead_holds_the_budget_for_one_window_at_most(rconn, company):
    """A provider clock far ahead of ours cannot keep the minute budget spent for hours."""
    clock = FakeTime()
    shared = limiter(rconn, clock)
    shared.observe("exact-online", company, snapshot(60, 0, T0 + 9 * 3600))  # spent "until" 9 h from now

    shared.acquire("exact-online", company)

    assert 0 < sum(clock.slept) <= 62  # waited out one minute window, not nine hours


BEXIO_API = "https://api.bexio.com"


def _bexio_call(shared: RateLimiter, company: str, method: str, path: str, quota: QuotaSnapshot) -> None:
    url = f"{BEXIO_API}{path}"
    shared.before_request(RequestInfo("bexio", company, method, url))
    shared.on_response(ResponseInfo("bexio", company, method, url, 200, {}, quota, 0.01))


def test_bexio_searches_count_in_their_own_budget_and_never_lower_the_general_one(rconn, company):
    """bexio limits searches to 250 a minute and other calls to 1000 (bexio.md §5): two windows, not one flipping."""
    clock = FakeTime()
    shared = limiter(rconn, clock)
    for n in range(1, 4):
        _bexio_call(shared, company, "POST", "/2.0/kb_invoice/search", snapshot(250, 250 - n, T0 + 30))
        _bexio_call(shared, company, "POST", "/2.0/kb_invoice", snapshot(1000, 1000 - 2 * n, T0 + 30))
        _bexio_call(shared, company, "GET", "/2.0/kb_invoice/7", snapshot(1000, 1000 - 2 * n - 1, T0 + 30))

    general = shared.state("bexio", company)["minute"]
    searches = shared.state("bexio", f"{company}:search")["minute"]
    assert general["limit"] == 1000 and searches["limit"] == 250
    assert general["used"] >= 6 and searches["used"] >= 3  # slots taken ahead count as used
    assert clock.slept == []


def test_a_spent_bexio_search_budget_paces_searches_only(rconn, company):
    clock = FakeTime()
    shared = limiter(rconn, clock)
    _bexio_call(shared, company, "POST", "/2.0/contact/search", snapshot(250, 0, T0 + 20))  # searches spent

    shared.acquire("bexio", company)  # a write goes at once
    assert clock.slept == []
    shared.before_request(RequestInfo("bexio", company, "POST", f"{BEXIO_API}/2.0/contact/search"))
    assert 0 < sum(clock.slept) <= 21  # the next search waits for its own window


def test_bexio_account_and_country_searches_count_in_the_general_budget():
    from portal.integrations import specs

    quotas = specs.get_spec("bexio").quotas
    assert quotas.route_group(f"{BEXIO_API}/2.0/contact/search") == "search"
    assert quotas.route_group(f"{BEXIO_API}/2.0/article/search") == "search"  # recorded: 250, not 400
    assert quotas.route_group(f"{BEXIO_API}/2.0/article/12") == "article"
    assert quotas.route_group(f"{BEXIO_API}/2.0/country/search") is None  # recorded: 1000
    assert quotas.route_group(f"{BEXIO_API}/2.0/accounts/search") is None
    assert quotas.route_group(f"{BEXIO_API}/2.0/kb_invoice/4/pdf") == "pdf"


def test_a_scale_multiplies_the_documented_budget_until_a_header_reports_the_real_one(rconn, company):
    clock = FakeTime()
    scaled = limiter(rconn, clock, scale=2)

    scaled.observe("exact-online", company, snapshot(60, 60, T0 + 30))  # a reported limit wins over the scale
    for _ in range(60):
        scaled.acquire("exact-online", company)
    assert clock.slept == []
    scaled.acquire("exact-online", company)
    assert len(clock.slept) == 1

    realm = f"{company}-realm"  # QuickBooks reports nothing and documents 500 calls a minute per realm
    for _ in range(1000):
        scaled.acquire("quickbooks", realm)
    assert len(clock.slept) == 1
    scaled.acquire("quickbooks", realm)
    assert len(clock.slept) == 2  # the 1,001st of the minute waits for the next one


def test_the_scale_comes_from_the_configuration(rconn):
    from portal.sync.limiter import from_config

    assert from_config({"RATE_LIMIT_SCALE": 1000}, rconn).scale == 1000
    assert from_config({}, rconn).scale == 1
    assert from_config({"RATE_LIMITER": False, "RATE_LIMIT_SCALE": 1000}, rconn) is None


def _fill(shared: RateLimiter, company: str, share: float) -> int:
    """Take slots at ``share`` until the limiter would have to wait (it never sleeps); return how many."""
    taken = 0
    while True:
        try:
            shared.acquire("exact-online", company, share=share)
        except RateLimited:
            return taken
        taken += 1


def test_a_back_fill_uses_the_quota_live_syncs_do_not_need_and_yields_when_they_come(rconn, company):
    clock = FakeTime()
    background, live = limiter(rconn, clock, max_wait=0), limiter(rconn, clock, max_wait=0)
    background.observe("exact-online", company, snapshot(60, 60, T0 + 30))

    # No live sync lately: the back-fill fills the window but the 5 % kept for live work to start.
    assert _fill(background, company, 0.5) == 57
    # A live push starting mid-window gets that reserve at once.
    assert _fill(live, company, 1.0) == 3

    # The next window, with live work seen lately: the back-fill keeps to its share, live work has the rest.
    clock.now = T0 + 31
    assert _fill(background, company, 0.5) == 30
    assert _fill(live, company, 1.0) == 30
    assert clock.slept == []


def test_live_demand_fades_and_the_back_fill_takes_the_whole_window_again(rconn, company):
    from portal.sync.limiter import live_key

    clock = FakeTime()
    shared = limiter(rconn, clock, max_wait=0)
    shared.observe("exact-online", company, snapshot(60, 60, T0 + 30))
    shared.acquire("exact-online", company)  # live work
    assert 0 < rconn.pttl(live_key("exact-online", company)) <= 30_000
    assert _fill(shared, company, 0.5) == 29  # its share: 30 of 60, one used by the live call

    rconn.delete(live_key("exact-online", company))  # 30 s without live work
    assert _fill(shared, company, 0.5) == 27  # up to 57 of 60 now
