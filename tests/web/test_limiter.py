"""Rate-limiter backends (bot.web.limiter): one suite over memory and Redis.

The Redis half runs when SIGNBOT_TEST_REDIS_URL is set (CI sets it); every test uses its own
key prefix and deletes its keys afterwards. Time is a controllable clock handed to the limiter,
set at a realistic wall-clock value (Redis replicas use time.time()).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import uuid
from collections import Counter

import pytest
import redis.asyncio

from bot.web.limiter import Limiter, MemoryLimiter, RedisLimiter, build_limiter
from bot.web.ratelimit import BucketPolicy

REDIS_URL = os.environ.get("SIGNBOT_TEST_REDIS_URL")
needs_redis = [
    pytest.mark.redis,
    pytest.mark.skipif(
        not REDIS_URL, reason="SIGNBOT_TEST_REDIS_URL is not set: Redis backend not tested"
    ),
]


def redis_only(test):
    for mark in needs_redis:
        test = mark(test)
    return test


UNREACHABLE = "redis://127.0.0.1:1/0"
T0 = 1_700_000_000.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def prefix() -> str:
    return f"signbot:test:rl:{uuid.uuid4().hex}:"


@pytest.fixture
async def redis_cleanup(prefix):
    """Deletes every key under this test's prefix afterwards."""
    yield
    if REDIS_URL:
        client = redis.asyncio.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match=prefix + "*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("redis", id="redis", marks=needs_redis),
    ]
)
async def make_limiter(request, prefix, redis_cleanup):
    """make_limiter(clock, policy=BucketPolicy()) -> a limiter of this test's backend."""
    made: list[Limiter] = []

    def make(clock, policy=BucketPolicy()):
        if request.param == "memory":
            limiter = MemoryLimiter(policy, clock=clock)
        else:
            limiter = RedisLimiter(REDIS_URL, policy, clock=clock, prefix=prefix)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


async def exhaust(limiter, key="key_a", n=200):
    return [await limiter.hit(key) for _ in range(n)]


# --- both backends ---------------------------------------------------------------------------


async def test_is_a_limiter(make_limiter, clock):
    limiter = make_limiter(clock)
    assert isinstance(limiter, Limiter)
    assert await limiter.healthy() is True


async def test_burst_of_200_then_refused(make_limiter, clock):
    limiter = make_limiter(clock)
    burst = await exhaust(limiter)
    assert all(d.allowed for d in burst)
    assert [d.remaining for d in burst] == list(range(199, -1, -1))
    refused = await limiter.hit("key_a")
    assert not refused.allowed
    assert (refused.retry_after, refused.remaining) == (1, 0)
    assert refused.headers()["Retry-After"] == "1"


async def test_one_more_token_after_0_6_s(make_limiter, clock):
    limiter = make_limiter(clock)
    await exhaust(limiter)
    for _ in range(50):  # refusals cost nothing
        assert not (await limiter.hit("key_a")).allowed
    clock.now = T0 + 0.5
    assert not (await limiter.hit("key_a")).allowed
    clock.now = T0 + 0.6
    assert (await limiter.hit("key_a")).allowed
    refused = await limiter.hit("key_a")
    assert not refused.allowed and refused.retry_after == 1


async def test_sustained_rate_is_100_per_minute(make_limiter, clock):
    """10 simulated minutes from an empty bucket, a request every 0.1 s: 100 allowed a minute."""
    limiter = make_limiter(clock)
    await exhaust(limiter)
    per_minute: Counter[int] = Counter()
    for step in range(1, 6001):
        clock.now = T0 + step / 10
        if (await limiter.hit("key_a")).allowed:
            per_minute[(step - 1) // 600] += 1
    assert abs(sum(per_minute.values()) - 1000) <= 1
    assert all(abs(per_minute[minute] - 100) <= 1 for minute in range(10)), per_minute


async def test_keys_are_independent(make_limiter, clock):
    limiter = make_limiter(clock)
    await exhaust(limiter, "key_a")
    assert not (await limiter.hit("key_a")).allowed
    other = await exhaust(limiter, "key_b")
    assert all(d.allowed for d in other)
    assert other[0].remaining == 199
    assert not (await limiter.hit("key_a")).allowed
    assert not (await limiter.hit("key_b")).allowed


async def test_headers_count_down_to_a_full_bucket(make_limiter, clock):
    limiter = make_limiter(clock)
    first = await limiter.hit("key_a")
    assert first.headers() == {
        "RateLimit-Limit": "100",
        "RateLimit-Remaining": "199",
        "RateLimit-Reset": "1",
    }
    burst = await exhaust(limiter, n=199)
    assert [d.reset for d in burst[:3]] == [2, 2, 3]  # ceil(0.6 s per missing token)
    assert burst[-1].headers()["RateLimit-Reset"] == "120"
    refused = await limiter.hit("key_a")
    assert refused.headers() == {
        "RateLimit-Limit": "100",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "120",
        "Retry-After": "1",
    }
    clock.now = T0 + 60  # 100 tokens back, one taken: 101 missing -> 60.6 s
    d = await limiter.hit("key_a")
    assert (d.remaining, d.reset) == (99, 61)
    clock.now = T0 + 90  # 149 tokens, one taken: 52 missing -> 31.2 s
    d = await limiter.hit("key_a")
    assert (d.remaining, d.reset) == (148, 32)
    clock.now = T0 + 90 + 31  # 51.7 tokens back: not quite full
    d = await limiter.hit("key_a")
    assert (d.remaining, d.reset) == (198, 1)
    clock.now += d.reset  # wait out the announced reset: full again
    d = await limiter.hit("key_a")
    assert (d.remaining, d.reset) == (199, 1)


async def test_clock_going_backwards_refills_nothing(make_limiter, clock):
    limiter = make_limiter(clock)
    await exhaust(limiter)
    clock.now = T0 - 3600
    assert not (await limiter.hit("key_a")).allowed
    clock.now = T0 + 0.6  # the time is counted from T0, once
    assert (await limiter.hit("key_a")).allowed
    assert not (await limiter.hit("key_a")).allowed


async def test_other_policy(make_limiter, clock):
    limiter = make_limiter(clock, BucketPolicy(capacity=3, per_minute=6))
    assert [(await limiter.hit("k")).allowed for _ in range(4)] == [True, True, True, False]
    refused = await limiter.hit("k")
    assert (refused.limit, refused.retry_after, refused.reset) == (6, 10, 30)


# --- memory only -----------------------------------------------------------------------------


async def test_memory_drops_full_buckets_when_the_table_is_full(clock):
    limiter = MemoryLimiter(clock=clock, max_keys=10)
    for i in range(10):
        await exhaust(limiter, f"k{i}", n=10)  # 190 tokens: full again after 6 s
    assert len(limiter) == 10
    clock.now = T0 + 6
    await limiter.hit("new")
    assert len(limiter) == 1  # all ten were full: dropping them changes nothing
    assert (await limiter.hit("k0")).remaining == 199


async def test_memory_under_pressure_drops_the_nearest_to_full(clock, caplog):
    limiter = MemoryLimiter(clock=clock, max_keys=10)
    for i in range(10):
        await exhaust(limiter, f"k{i}", n=20 * (i + 1))  # k0 has 180 tokens left ... k9 none
    clock.now = T0 + 1  # 1.67 tokens back each: none full
    with caplog.at_level(logging.WARNING, logger="signbot.ratelimit"):
        await limiter.hit("new")
    assert len(limiter) == 10
    assert "nearest to full" in caplog.text
    assert (await limiter.hit("k0")).remaining == 199  # dropped: a fresh bucket
    kept = await limiter.hit("k9")  # kept: 0 + 1.67 tokens, one taken
    assert kept.allowed and kept.remaining == 0


async def test_memory_rejects_nonsense_max_keys():
    with pytest.raises(ValueError):
        MemoryLimiter(max_keys=0)


# --- Redis only ------------------------------------------------------------------------------


@redis_only
@pytest.mark.usefixtures("redis_cleanup")
async def test_redis_replicas_share_one_budget_under_concurrency(prefix):
    clock = Clock()
    replicas = [RedisLimiter(REDIS_URL, clock=clock, prefix=prefix) for _ in range(2)]
    try:
        decisions = await asyncio.gather(*(replicas[i % 2].hit("shared") for i in range(300)))
    finally:
        for replica in replicas:
            await replica.close()
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 200
    assert sorted(d.remaining for d in allowed) == list(range(200))  # each token once
    assert all(d.retry_after == 1 for d in decisions if not d.allowed)


@redis_only
@pytest.mark.usefixtures("redis_cleanup")
async def test_redis_bucket_expires_once_it_would_be_full(prefix):
    limiter = RedisLimiter(REDIS_URL, clock=Clock(), prefix=prefix)
    client = redis.asyncio.from_url(REDIS_URL)
    try:
        await limiter.hit("key_a")
        ttl_ms = await client.pttl(prefix + "key_a")
        assert 120_000 < ttl_ms <= 130_000
        assert await client.hgetall(prefix + "key_a") == {
            b"tokens": b"199",
            b"ts": b"1700000000",
        }
    finally:
        await limiter.close()
        await client.aclose()


@redis_only
@pytest.mark.usefixtures("redis_cleanup")
async def test_redis_leaves_a_given_client_open(prefix):
    client = redis.asyncio.from_url(REDIS_URL)
    try:
        limiter = RedisLimiter(client, clock=Clock(), prefix=prefix)
        assert (await limiter.hit("key_a")).remaining == 199
        await limiter.close()
        assert await client.ping()
    finally:
        await client.aclose()


@redis_only
@pytest.mark.usefixtures("redis_cleanup")
async def test_redis_error_falls_back_to_memory_and_recovers(prefix, caplog):
    """A real Redis error (WRONGTYPE at the bucket's key) hands the decision to the in-memory
    fallback — still limited — then the shared budget is used again."""
    limiter = RedisLimiter(REDIS_URL, clock=Clock(), prefix=prefix)
    limiter.RETRY_INTERVAL = 0.0  # try Redis on every request
    client = redis.asyncio.from_url(REDIS_URL)
    try:
        await client.set(prefix + "key_a", "not a hash")
        with caplog.at_level(logging.INFO, logger="signbot.ratelimit"):
            decisions = [await limiter.hit("key_a") for _ in range(300)]
            allowed = [d for d in decisions if d.allowed]
            assert [d.remaining for d in allowed] == list(range(199, -1, -1))
            assert decisions[200:] == [d for d in decisions if not d.allowed]  # 100 refused
            assert limiter.fallback_hits == 300
            await client.delete(prefix + "key_a")
            assert (await limiter.hit("key_a")).remaining == 199
            assert (await limiter.hit("key_a")).remaining == 198
            for _ in range(3):  # flapping within WARN_INTERVAL: no further warnings
                await client.set(prefix + "key_a", "not a hash")
                # the fallback's bucket is kept across the recovery: no fresh burst
                assert not (await limiter.hit("key_a")).allowed
                await client.delete(prefix + "key_a")
                assert (await limiter.hit("key_a")).remaining == 199
            assert limiter.fallback_hits == 303
        records = [r for r in caplog.records if r.name == "signbot.ratelimit"]
        assert [r.levelno for r in records] == [logging.WARNING, logging.INFO]
        assert "WRONGTYPE" in records[0].getMessage()
        assert "300 requests limited in memory" in records[1].getMessage()
    finally:
        await limiter.close()
        await client.aclose()


# --- Redis unreachable (no server needed) ----------------------------------------------------


async def test_unreachable_redis_limits_in_memory(caplog):
    limiter = RedisLimiter(UNREACHABLE, clock=Clock())
    limiter.RETRY_INTERVAL = 0.0  # try (and fail) on every request: still one warning
    try:
        with caplog.at_level(logging.WARNING, logger="signbot.ratelimit"):
            decisions = [await limiter.hit(f"key_{i % 3}") for i in range(20)]
            assert all(d.allowed for d in decisions)
            assert decisions[0].headers() == {
                "RateLimit-Limit": "100",
                "RateLimit-Remaining": "199",
                "RateLimit-Reset": "1",
            }
            assert decisions[3].remaining == 198  # key_0's second request: counted
            flood = [await limiter.hit("key_x") for _ in range(250)]
            assert sum(d.allowed for d in flood) == 200  # the same budget, in this process
            assert flood[-1].headers()["Retry-After"] == "1"
        warnings = [r for r in caplog.records if r.name == "signbot.ratelimit"]
        assert len(warnings) == 1
        assert warnings[0].levelno == logging.WARNING
        assert "in this process's memory" in warnings[0].getMessage()
        assert limiter.fallback_hits == 270
        assert await limiter.healthy() is False
    finally:
        await limiter.close()


async def test_build_limiter():
    memory = build_limiter(None)
    assert isinstance(memory, MemoryLimiter)
    assert isinstance(build_limiter(""), MemoryLimiter)
    policy = BucketPolicy(capacity=20, per_minute=10)
    remote = build_limiter(UNREACHABLE, policy)  # no connection is made until used
    try:
        assert isinstance(remote, RedisLimiter)
        assert remote.policy == policy
    finally:
        await remote.close()
        await memory.close()


@redis_only
@pytest.mark.usefixtures("redis_cleanup")
async def test_redis_and_memory_agree_decision_for_decision(prefix):
    """The Lua script and the Python arithmetic give the same answers on a random walk."""
    rng = random.Random(20240601)
    clock = Clock()
    memory = MemoryLimiter(clock=clock)
    remote = RedisLimiter(REDIS_URL, clock=clock, prefix=prefix)
    try:
        outcomes: Counter[bool] = Counter()
        for _ in range(3000):
            if rng.random() < 0.003:
                clock.now += 60.0
            else:
                clock.now += rng.choice([0.0] * 10 + [0.01, 0.1, 0.6, -1.0])
            key = rng.choice("aaab")
            decision = await remote.hit(key)
            assert decision == await memory.hit(key)
            outcomes[decision.allowed] += 1
        assert outcomes[True] > 500 and outcomes[False] > 500
    finally:
        await remote.close()
        await memory.close()
