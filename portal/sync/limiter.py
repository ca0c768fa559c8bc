"""A rate limiter per (provider, external company) in Redis, shared by every worker (DESIGN.md "Jobs").

Each provider budget window (Exact 60/min + 5,000/day per division, QBO 500/min per realm,
bexio per minute per company; :mod:`portal.integrations.specs`) is one Redis hash
``{used, limit, reset}``. Before a call, :meth:`RateLimiter.before_request` takes a slot in
every window of the call's company in one atomic Lua script; when a window is full it *paces*:
it sleeps until that window resets and tries again, rather than letting the provider refuse.
A wait longer than ``max_wait`` (the daily window) raises :class:`RateLimited` instead, so the
job reschedules itself for ``retry_at`` instead of holding a worker for hours.

After each response, :meth:`RateLimiter.on_response` corrects the window from the provider's
remaining-quota headers (:func:`portal.integrations.http.read_quota`): the provider's limit
replaces ours (a sandbox scale, a bigger plan), ``used`` never drops below what the provider
says was used, and the provider's reset time wins. A 429 reports ``remaining = 0``, so every
worker then waits for the reset.

Windows are fixed and aligned like the providers' (clock minute, UTC day) until a header says
otherwise. Calls without a company (OAuth token calls, Exact's ``current/Me``) are not counted.
Redis trouble never fails a ledger call: the limiter then logs and lets the call through.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import redis

from ..integrations import specs
from ..integrations.base import RateLimited
from ..integrations.http import RequestInfo, ResponseInfo

log = logging.getLogger(__name__)

KEY_PREFIX = "ledgerlink:ratelimit"

#: Headers of different responses disagree on the reset by a rounding; this much is the same reset.
RESET_TOLERANCE_MS = 1500
#: Start counting a new window this long after its reset (a provider clock a little behind ours).
DEFAULT_MARGIN_MS = 250

# KEYS: one hash per window, then the company's live-demand key. ARGV: now_ms, margin_ms, then per
# window: length_ms, default limit, ttl_s, then the share (0-1] of each window the caller may fill,
# the slots wanted, how long live demand lasts (ms) and the share a background caller may fill while
# there is none. A caller at the full share is live work: it marks the demand. A background caller
# (a back-fill) fills its share while live work was seen lately, else all but a reserve: the quota
# live syncs do not need is used, not left idle. Takes as many slots as wanted, free, and at most
# 1/BULK_PART of every window (at least one). Returns {0, slots taken, then per window: used, limit,
# reset} when slots were taken in every window, else {the milliseconds to wait} (nothing taken).
_ACQUIRE = """
local now = tonumber(ARGV[1])
local margin = tonumber(ARGV[2])
local windows = #KEYS - 1
local live = KEYS[#KEYS]
local share = tonumber(ARGV[2 + windows * 3 + 1]) or 1
local want = tonumber(ARGV[2 + windows * 3 + 2]) or 1
local live_ms = tonumber(ARGV[2 + windows * 3 + 3]) or 0
local idle_share = tonumber(ARGV[2 + windows * 3 + 4]) or share
if share >= 1 then
  if live_ms > 0 then
    redis.call('SET', live, '1', 'PX', live_ms)
  end
elseif redis.call('EXISTS', live) == 0 and idle_share > share then
  share = idle_share
end
local wait = 0
local states = {}
for i = 1, windows do
  local base = 2 + (i - 1) * 3
  local length = tonumber(ARGV[base + 1])
  local default = tonumber(ARGV[base + 2])
  local h = redis.call('HMGET', KEYS[i], 'used', 'limit', 'reset')
  local used = tonumber(h[1]) or 0
  local limit = tonumber(h[2]) or default
  local reset = tonumber(h[3])
  if reset == nil or now >= reset + margin then
    if reset ~= nil and now < reset + length then
      reset = reset + length
    else
      reset = now - (now % length) + length
    end
    used = 0
  end
  states[i] = {used, limit, reset}
  if used + 1 > math.max(1, math.floor(limit * share)) then
    local w = reset + margin - now
    if w < 1 then w = 1 end
    if w > wait then wait = w end
  end
end
if wait > 0 then
  return {wait}
end
local take = want
for i = 1, windows do
  local cap = math.max(1, math.floor(states[i][2] * share))
  take = math.min(take, cap - states[i][1], math.max(1, math.floor(cap / BULK_PART)))
end
if take < 1 then take = 1 end
local taken = {0, take}
for i = 1, windows do
  local ttl = tonumber(ARGV[2 + (i - 1) * 3 + 3])
  redis.call('HSET', KEYS[i], 'used', states[i][1] + take, 'limit', states[i][2], 'reset', states[i][3])
  redis.call('EXPIRE', KEYS[i], ttl)
  table.insert(taken, states[i][1] + take)
  table.insert(taken, states[i][2])
  table.insert(taken, states[i][3])
end
return taken
"""

# KEYS: one hash per reported window. ARGV: tolerance_ms, ttl_s, now_ms, then per window: limit,
# remaining, reset_ms (each may be ''). A reset already past is a late answer of an earlier window:
# ignored. A reset that differs from ours replaces it (the provider's windows are the truth);
# ``used`` only ever grows to the provider's.
_OBSERVE = """
local tolerance = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
for i = 1, #KEYS do
  local base = 3 + (i - 1) * 3
  local reported = tonumber(ARGV[base + 3])
  if reported == nil or reported > now then
    local h = redis.call('HMGET', KEYS[i], 'used', 'limit', 'reset')
    local used = tonumber(h[1])
    local limit = tonumber(ARGV[base + 1]) or tonumber(h[2])
    local remaining = tonumber(ARGV[base + 2])
    local reset = tonumber(h[3])
    if reset ~= nil and now >= reset then
      used = nil
    end
    if reported ~= nil then
      if reset == nil or math.abs(reported - reset) > tolerance or reported > reset then
        reset = reported
      end
    end
    if limit ~= nil and remaining ~= nil then
      local spent = limit - remaining
      if used == nil or spent > used then used = spent end
    end
    local fields = {}
    if used ~= nil then table.insert(fields, 'used'); table.insert(fields, used) end
    if limit ~= nil then table.insert(fields, 'limit'); table.insert(fields, limit) end
    if reset ~= nil then table.insert(fields, 'reset'); table.insert(fields, reset) end
    if #fields > 0 then
      redis.call('HSET', KEYS[i], unpack(fields))
      redis.call('EXPIRE', KEYS[i], ttl)
    end
  end
end
return 1
"""


#: Told the seconds of each pacing wait before it starts (see :func:`while_waiting`).
_before_wait: ContextVar[Callable[[float], None] | None] = ContextVar("ledgerlink_limiter_before_wait", default=None)


@contextmanager
def while_waiting(callback: Callable[[float], None]) -> Iterator[None]:
    """Call ``callback(seconds)`` before every pacing wait of this context's calls.

    A job holding a short lock renews it for the length of the wait, so that a wait of up to
    ``max_wait`` never outlives the lock it holds.
    """
    token = _before_wait.set(callback)
    try:
        yield
    finally:
        _before_wait.reset(token)


#: Live work (a caller at the full share) counts as present this long after its last slot ...
LIVE_SECONDS = 30
#: ... and while none is, a background caller may fill all of a window but this part, which is
#: kept for live work that starts mid-window.
LIVE_RESERVE = 0.05

#: Slots one call of the script takes at most for later calls of the same limiter ...
BULK_SLOTS = 10
#: ... and never more than this part of any window: small windows are taken slot by slot.
BULK_PART = 50

_ACQUIRE = _ACQUIRE.replace("BULK_PART", str(BULK_PART))


@dataclass(frozen=True)
class Window:
    """One budget of a provider: its name (as in :class:`~portal.integrations.http.QuotaSnapshot`)."""

    name: str
    seconds: int
    limit: int


def windows_for(spec: specs.ProviderSpec) -> tuple[Window, ...]:
    """Return the provider's budget windows from its spec."""
    found = [Window("minute", 60, spec.quotas.per_minute)]
    if spec.quotas.per_day:
        found.append(Window("day", 86400, spec.quotas.per_day))
    return tuple(found)


def _within_one_length(window, now_ms: int, seconds: int | None):
    """Return ``window`` with a reset no further ahead than one window length from our clock.

    A minute window resets within a minute: a reported reset hours ahead comes from a provider
    clock far from ours, and trusting it would hold the budget spent for those hours.
    """
    if window is None or window.reset_at is None or seconds is None:
        return window
    latest = datetime.fromtimestamp((now_ms + (seconds * 1000) + RESET_TOLERANCE_MS) / 1000, UTC)
    return window if window.reset_at <= latest else replace(window, reset_at=latest)


def _budget(provider: str, company: str, url: str) -> tuple[str, int | None]:
    """Return whose budget a call to ``url`` counts in and, for a route with its own, its limit.

    A route with a budget of its own (bexio's searches, PDFs, articles) is counted as
    ``<company>:<group>``, so its limit never replaces the company's general one.
    """
    spec = specs.get_spec(provider)
    group = spec.quotas.route_group(url)
    if group is None:
        return company, None
    return f"{company}:{group}", spec.quotas.route_limits[group]


def window_key(provider: str, company: str, window: str) -> str:
    """Return the Redis key of one (provider, company) window."""
    return f"{KEY_PREFIX}:{provider}:{company}:{window}"


def live_key(provider: str, company: str) -> str:
    """Return the Redis key that says live work took a slot of (provider, company) lately."""
    return f"{KEY_PREFIX}:{provider}:{company}:live"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class RateLimiter:
    """Paces calls to one provider under its per-company budgets, shared through Redis."""

    def __init__(
        self,
        connection: redis.Redis,
        *,
        max_wait: float = 90.0,
        margin_ms: int = DEFAULT_MARGIN_MS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        scale: float = 1.0,
    ) -> None:
        self.redis = connection
        #: Multiplies the documented budgets (a window's limit until a provider header reports one).
        self.scale = scale
        self.max_wait = max_wait
        self.margin_ms = margin_ms
        self._sleep = sleep
        self._clock = clock
        self._acquire = connection.register_script(_ACQUIRE)
        self._observe = connection.register_script(_OBSERVE)
        #: Seconds slept pacing, for logs and tests.
        self.waited = 0.0
        #: (provider, company, window) → (used, limit, reset ms) as this limiter's last slot left it.
        self._known: dict[tuple[str, str, str], tuple[int, int, int]] = {}
        #: (provider, company, share) → (slots taken but not used yet, until when in ms).
        self._spare: dict[tuple[str, str, float], tuple[int, int]] = {}

    # -- the LedgerHttp hooks -----------------------------------------------------------------

    def before_request(self, info: RequestInfo, *, share: float = 1.0) -> None:
        """Take a slot for the call, sleeping while the company's windows are full.

        ``share`` is the part of each window this caller may fill (see :meth:`acquire`).

        :raise RateLimited: when the wait would be longer than ``max_wait`` (reschedule instead).
        """
        if info.company is None:
            return
        budget, limit = _budget(info.provider, str(info.company), info.url)
        self.acquire(info.provider, budget, share=share, route_limit=limit)

    def on_response(self, info: ResponseInfo) -> None:
        """Correct the company's windows from the response's quota headers."""
        if info.company is None or info.quota is None:
            return
        budget, _limit = _budget(info.provider, str(info.company), info.url)
        self.observe(info.provider, budget, info.quota)

    # -- the work -----------------------------------------------------------------------------

    def acquire(self, provider: str, company: str, *, share: float = 1.0, route_limit: int | None = None) -> None:
        """Take one slot in every window of (provider, company), pacing as needed.

        With ``share`` below 1 the caller is background work: while live work (a caller at the
        full share) took a slot in the last :data:`LIVE_SECONDS`, it waits once ``share`` of a
        window is used, whoever used it — a back-fill at 0.5 leaves at least half of every window
        to live syncs, which take slots up to the full limit. With no live work it may fill all
        but :data:`LIVE_RESERVE` of every window: quota nobody else needs is not left idle.
        """
        spare = self._spare.get((provider, company, share))
        if spare is not None and spare[0] > 0 and self._clock() * 1000 < spare[1]:
            self._spare[(provider, company, share)] = (spare[0] - 1, spare[1])
            return
        spec = specs.get_spec(provider)
        windows = windows_for(spec) if route_limit is None else (Window("minute", 60, route_limit),)
        if self.scale != 1:
            windows = tuple(replace(w, limit=max(1, int(w.limit * self.scale))) for w in windows)
        keys = [window_key(provider, company, w.name) for w in windows] + [live_key(provider, company)]
        started = self._clock()
        while True:
            args: list[float] = [int(self._clock() * 1000), self.margin_ms]
            for w in windows:
                args += [w.seconds * 1000, w.limit, max(2 * w.seconds, 86400)]
            args += [share, BULK_SLOTS, LIVE_SECONDS * 1000, max(share, 1 - LIVE_RESERVE)]
            try:
                answer = self._acquire(keys=keys, args=args)
            except redis.RedisError:
                log.exception("rate limiter unavailable for %s %s; the call goes unpaced", provider, company)
                return
            wait_ms = int(answer[0])
            if wait_ms <= 0:
                resets = []
                for i, w in enumerate(windows):
                    used, limit, reset = (int(v) for v in answer[2 + 3 * i : 5 + 3 * i])
                    self._known[(provider, company, w.name)] = (used, limit, reset)
                    resets.append(reset)
                # Slots taken beyond this call serve the next calls until the first window resets.
                self._spare[(provider, company, share)] = (int(answer[1]) - 1, min(resets))
                return
            wait = wait_ms / 1000
            if (self._clock() - started) + wait > self.max_wait:
                retry_at = datetime.fromtimestamp(self._clock() + wait, UTC)
                raise RateLimited(
                    f"{spec.name} budget of {company} is spent until {retry_at.isoformat()}",
                    retry_at=retry_at,
                    provider=provider,
                )
            log.info("pacing %s %s: waiting %.2fs for the quota window to reset", provider, company, wait)
            # A little jitter, so that workers woken by the same reset do not all race at once.
            pause = wait + random.random() * 0.05  # noqa: S311 - jitter, not a secret
            before_wait = _before_wait.get()
            if before_wait is not None:
                try:
                    before_wait(pause)
                except Exception:  # the wait goes on; the caller's own checks notice what failed
                    log.exception("before-wait callback of the rate limiter failed")
            self.waited += pause
            self._sleep(pause)

    def observe(self, provider: str, company: str, quota) -> None:
        """Fold a :class:`~portal.integrations.http.QuotaSnapshot` into the company's windows (one round trip).

        Windows the snapshot would not change are left out, and with them the round trip when
        none would change (see :meth:`_changes`).
        """
        now_ms = int(self._clock() * 1000)
        lengths = {w.name: w.seconds for w in windows_for(specs.get_spec(provider))}
        keys: list[str] = []
        args: list[int | str] = [RESET_TOLERANCE_MS, 86400 * 2, now_ms]
        for name in ("minute", "day"):
            window = _within_one_length(getattr(quota, name), now_ms, lengths.get(name))
            if window is None or not self._changes(provider, company, name, window, now_ms):
                continue
            keys.append(window_key(provider, company, name))
            args += [
                "" if window.limit is None else window.limit,
                "" if window.remaining is None else window.remaining,
                "" if window.reset_at is None else _ms(window.reset_at),
            ]
        if not keys:
            return
        # The provider counts more, another limit or another window: slots kept aside may be gone.
        self._spare = {key: spare for key, spare in self._spare.items() if key[:2] != (provider, company)}
        try:
            self._observe(keys=keys, args=args)
        except redis.RedisError:
            log.exception("rate limiter could not record the quota of %s %s", provider, company)

    def _changes(self, provider: str, company: str, name: str, window, now_ms: int) -> bool:
        """Say whether folding ``window`` in could change the stored window (else it need not be sent).

        Judged against the window as this limiter's last slot left it: ``used`` only grows and the
        limit and reset stay until a header changes them, so a report of the same limit, a reset
        not later than ours (within :data:`RESET_TOLERANCE_MS`) and no more calls used than we
        counted changes nothing (see ``_OBSERVE``). A report of a past reset is ignored there too.
        """
        reported = None if window.reset_at is None else _ms(window.reset_at)
        if reported is not None and reported <= now_ms:
            return False
        known = self._known.get((provider, company, name))
        if known is None:
            return True
        used, limit, reset = known
        if now_ms >= reset:
            return True
        if window.limit is not None and window.limit != limit:
            return True
        if reported is not None and (reported > reset or reset - reported > RESET_TOLERANCE_MS):
            return True
        if window.remaining is None:
            return False
        return (limit if window.limit is None else window.limit) - window.remaining > used

    def state(self, provider: str, company: str) -> dict[str, dict[str, float]]:
        """Return the stored windows of (provider, company) (for pages and tests)."""
        found = {}
        for w in windows_for(specs.get_spec(provider)):
            raw = self.redis.hgetall(window_key(provider, company, w.name))
            if raw:
                found[w.name] = {k.decode(): float(v) for k, v in raw.items()}  # type: ignore[union-attr]  # bytes: no decode_responses
        return found

    def reset(self, provider: str, company: str) -> None:
        """Forget the counters of (provider, company)."""
        keys = [window_key(provider, company, w.name) for w in windows_for(specs.get_spec(provider))]
        self.redis.delete(*keys)


def from_config(config, connection: redis.Redis) -> RateLimiter | None:
    """Return the app's limiter, or None when ``RATE_LIMITER`` is off."""
    if not config.get("RATE_LIMITER", True):
        return None
    return RateLimiter(
        connection,
        max_wait=float(config.get("RATE_LIMIT_MAX_WAIT_SECONDS", 90)),
        scale=float(config.get("RATE_LIMIT_SCALE", 1)),
    )


def window_usage(
    connection: redis.Redis, provider: str, companies: list[str], window: str = "day", now: datetime | None = None
) -> dict[str, dict[str, float | None]]:
    """Return ``{company: {used, limit, reset}}`` of one window per company, read in one round trip.

    Read only (the ops dashboard): a window already reset counts as unused; a company without
    a stored window is missing from the result. ``reset`` is in epoch milliseconds.
    """
    if not companies:
        return {}
    now_ms = _ms(now or datetime.now(UTC))
    pipe = connection.pipeline(transaction=False)
    for company in companies:
        pipe.hgetall(window_key(provider, company, window))
    try:
        raw = pipe.execute()
    except redis.RedisError:
        log.exception("rate limiter counters unavailable")
        return {}
    found: dict[str, dict[str, float | None]] = {}
    for company, values in zip(companies, raw, strict=True):
        if not values:
            continue
        fields = {k.decode(): float(v) for k, v in values.items()}
        reset = fields.get("reset")
        used = fields.get("used", 0.0) if reset is None or reset > now_ms else 0.0
        found[company] = {"used": used, "limit": fields.get("limit"), "reset": reset}
    return found
