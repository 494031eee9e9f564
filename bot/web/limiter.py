"""Where the token buckets of :mod:`bot.web.ratelimit` live: process memory or Redis.

Both backends answer the same async interface (:class:`Limiter`) with the same numbers, because
the arithmetic is :mod:`bot.web.ratelimit`'s in both (the Redis script mirrors :func:`take`
line for line and hands the resulting token count back to :func:`decide`).

* :class:`MemoryLimiter` — the default: one process, one budget per key. ``hit`` is a dict
  lookup plus :func:`take` (no locks: asyncio runs it without interruption). Memory is bounded
  by ``max_keys``: when the table is full, buckets that have refilled completely are dropped
  first — exact, since a bucket nobody has seen is full too. Only if that frees too little are
  the nearest-to-full buckets dropped as well; that errs in the client's favour (at most the
  tokens they were missing) and is logged.
* :class:`RedisLimiter` — when ``SIGNBOT_REDIS_URL`` is set: one Lua script refills and
  consumes atomically, so any number of replicas share one budget per key. The state is a hash
  ``{prefix}{key}`` with fields ``tokens`` and ``ts`` that expires once the bucket would be full
  anyway (``capacity / rate`` seconds plus a margin). The time is the caller's clock (wall time
  by default, passed into the script), so tests can drive it.

**Redis down: each replica limits in its own memory.** If Redis errs or is unreachable,
``hit`` answers from an embedded :class:`MemoryLimiter` with the same policy (and clock): the
API keeps answering, and a flood is still bounded — per replica instead of shared, so N
replicas let through at most N budgets per key while Redis is down. An outage of the limiter
must not become an outage of the API, nor lift the limit. It then skips Redis for
``RedisLimiter.RETRY_INTERVAL`` seconds (so a black-holed Redis costs one timeout per second,
not one per request), logs a warning on the ``signbot.ratelimit`` logger at most once per
``RedisLimiter.WARN_INTERVAL`` seconds (with the count of requests limited in memory), and
after a warned outage logs once at INFO when Redis answers again and the shared budget is
used again; ``healthy()`` PINGs, so it is False while Redis is down (``/readyz`` reports
``ratelimit: degraded`` without failing). The in-memory buckets are kept across a recovery
(a flapping Redis gives no fresh burst; they refill by time like any bucket, and are bounded
by ``max_keys``). ``RedisLimiter.fallback_hits`` counts the requests decided in memory.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bot.web.ratelimit import EPSILON, BucketPolicy, Decision, decide, take

__all__ = ["Limiter", "MemoryLimiter", "RedisLimiter", "build_limiter"]

log = logging.getLogger("signbot.ratelimit")


@runtime_checkable
class Limiter(Protocol):
    """A rate limiter keyed by opaque strings (the API key id)."""

    async def hit(self, key: str) -> Decision:
        """Count one request for ``key`` and say whether it may proceed."""
        ...

    async def healthy(self) -> bool:
        """Whether the backing store answers (memory: always)."""
        ...

    async def close(self) -> None:
        """Release connections and state."""
        ...


class MemoryLimiter:
    """Token buckets in a dict of ``key -> [tokens, updated_at]``; one process only."""

    #: When the table is full and too few buckets are full, shrink to this share of max_keys.
    LOW_WATER = 0.9

    def __init__(
        self,
        policy: BucketPolicy = BucketPolicy(),
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.policy = policy
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, list[float]] = {}

    def __len__(self) -> int:
        """The number of buckets held (each not known to be full)."""
        return len(self._buckets)

    async def hit(self, key: str) -> Decision:
        now = self._clock()
        state = self._buckets.get(key)
        if state is None:
            if len(self._buckets) >= self._max_keys:
                self._evict(now)
            state = self._buckets[key] = [float(self.policy.capacity), now]
        decision, state[0], state[1] = take(self.policy, state[0], state[1], now)
        return decision

    async def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        self._buckets.clear()

    def _missing(self, state: list[float], now: float) -> float:
        """Tokens ``state`` still lacks to be full at ``now`` (<= 0: full)."""
        tokens, updated_at = state
        if now > updated_at:
            tokens += (now - updated_at) * self.policy.per_minute / 60.0
        return self.policy.capacity - tokens

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        full = [k for k, state in buckets.items() if self._missing(state, now) <= EPSILON]
        for k in full:
            del buckets[k]
        target = min(int(self._max_keys * self.LOW_WATER), self._max_keys - 1)
        excess = len(buckets) - target
        if excess > 0:
            victims = heapq.nsmallest(excess, buckets, key=lambda k: self._missing(buckets[k], now))
            for k in victims:
                del buckets[k]
            log.warning(
                "rate limiter: %d keys active at once (max_keys=%d); dropped the %d buckets "
                "nearest to full, whose keys get a fresh burst",
                len(buckets) + len(victims),
                self._max_keys,
                len(victims),
            )


# KEYS[1]: the bucket hash. ARGV: capacity, per_minute, now, ttl_ms, epsilon.
# Mirrors bot.web.ratelimit.take; returns {allowed (1|0), tokens after (as a %.17g string)}.
# A refused request writes nothing: the refill is linear, so the stored state stays exact.
_LUA_TAKE = """
local capacity = tonumber(ARGV[1])
local per_minute = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local eps = tonumber(ARGV[5])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  tokens = tokens + (now - ts) * per_minute / 60
  ts = now
end
if tokens > capacity then
  tokens = capacity
elseif tokens < 0 then
  tokens = 0
end
if tokens + eps >= 1 then
  tokens = tokens - 1
  if tokens < 0 then tokens = 0 end
  local t = string.format('%.17g', tokens)
  redis.call('HSET', KEYS[1], 'tokens', t, 'ts', string.format('%.17g', ts))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {1, t}
end
return {0, string.format('%.17g', tokens)}
"""


class RedisLimiter:
    """Token buckets in Redis, refilled and consumed by one atomic Lua script; while Redis
    fails, the same buckets in this process's memory."""

    #: Seconds to wait after a Redis error before trying Redis again (memory decides meanwhile).
    RETRY_INTERVAL = 1.0
    #: At most one warning per this many seconds while Redis is failing.
    WARN_INTERVAL = 30.0
    #: Seconds added to capacity/rate for the key's expiry (clock skew between replicas).
    TTL_MARGIN = 10.0
    #: For a client built from a URL (a URL's own query options win): socket timeouts,
    #: connections per process, and how long a request waits for a free connection.
    SOCKET_TIMEOUT = 0.5
    MAX_CONNECTIONS = 50
    POOL_TIMEOUT = 1.0

    def __init__(
        self,
        url_or_client: str | redis.asyncio.Redis,
        policy: BucketPolicy = BucketPolicy(),
        clock: Callable[[], float] = time.time,
        prefix: str = "signbot:rl:",
    ) -> None:
        if isinstance(url_or_client, str):
            # A bounded pool that queues a burst of concurrent requests instead of failing them.
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                url_or_client,
                max_connections=self.MAX_CONNECTIONS,
                timeout=self.POOL_TIMEOUT,
                socket_connect_timeout=self.SOCKET_TIMEOUT,
                socket_timeout=self.SOCKET_TIMEOUT,
                # One quick reconnect (a pooled connection gone stale), never a backoff loop.
                retry=Retry(NoBackoff(), 1),
            )
            self._client = redis.asyncio.Redis.from_pool(pool)
            self._owns_client = True
        else:
            self._client = url_or_client
            self._owns_client = False
        self.policy = policy
        self._clock = clock
        self.prefix = prefix
        self._script = self._client.register_script(_LUA_TAKE)
        ttl_ms = math.ceil((policy.seconds_to_fill + self.TTL_MARGIN) * 1000)
        self._static_args = (policy.capacity, policy.per_minute, ttl_ms, repr(EPSILON))
        self._fallback = MemoryLimiter(policy, clock=clock)
        self._skip_until = 0.0  # time.monotonic() before which Redis is not tried
        self._next_warning = 0.0  # time.monotonic() before which failures are not logged
        self._degraded = False  # the last call to Redis failed
        self._announced = False  # ... and a warning said so
        self._fallback_since_warning = 0
        #: Requests decided by the in-memory fallback because Redis failed (for metrics).
        self.fallback_hits = 0

    async def hit(self, key: str) -> Decision:
        if self._skip_until and time.monotonic() < self._skip_until:
            return await self._in_memory(key)
        capacity, per_minute, ttl_ms, eps = self._static_args
        try:
            allowed, tokens = await self._script(
                keys=[self.prefix + key],
                args=[capacity, per_minute, repr(float(self._clock())), ttl_ms, eps],
            )
        except (RedisError, OSError) as exc:  # OSError covers raw socket errors and timeouts
            self._failed(exc)
            return await self._in_memory(key)
        if self._degraded:
            self._recovered()
        return decide(self.policy, allowed == 1, float(tokens))

    async def healthy(self) -> bool:
        try:
            ok = bool(await self._client.ping())
        except (RedisError, OSError):
            return False
        if ok:
            self._skip_until = 0.0
        return ok

    async def close(self) -> None:
        """Close the client if this limiter built it from a URL (a given client is the caller's)."""
        if self._owns_client:
            await self._client.aclose()
        await self._fallback.close()

    async def _in_memory(self, key: str) -> Decision:
        self.fallback_hits += 1
        self._fallback_since_warning += 1
        return await self._fallback.hit(key)

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._degraded = True
        self._skip_until = now + self.RETRY_INTERVAL
        if now >= self._next_warning:
            self._next_warning = now + self.WARN_INTERVAL
            self._announced = True
            log.warning(
                "rate limiter: Redis failed (%s: %s); limiting in this process's memory (each "
                "replica its own budget) until it answers; %d requests limited in memory since "
                "the last warning",
                type(exc).__name__,
                exc,
                self._fallback_since_warning,
            )
            self._fallback_since_warning = 0

    def _recovered(self) -> None:
        # Said once per warned outage, so a flapping Redis still logs once per WARN_INTERVAL.
        self._degraded = False
        if self._announced:
            self._announced = False
            log.info(
                "rate limiter: Redis answers again; the shared budget is used again (%d "
                "requests limited in memory since the last warning)",
                self._fallback_since_warning,
            )
            self._fallback_since_warning = 0


def build_limiter(redis_url: str | None, policy: BucketPolicy = BucketPolicy()) -> Limiter:
    """A :class:`RedisLimiter` when ``redis_url`` is set (replicas share one budget), else a
    :class:`MemoryLimiter` (per process)."""
    if redis_url:
        return RedisLimiter(redis_url, policy)
    return MemoryLimiter(policy)
