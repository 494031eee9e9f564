"""The per-key rate limit through the real HTTP app, with a clock the test controls.

The app is built with ``create_app(..., limiter=...)`` around a limiter whose clock is frozen,
so "200 at once" and "0.6 s later" mean exactly that. The same test runs on the in-memory
limiter and, when ``SIGNBOT_TEST_REDIS_URL`` is set, on Redis; a last test puts two apps (two
replicas) on one Redis and checks they share one budget.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
import redis

from bot import migrations
from bot.accounts import service as accounts
from bot.app import create_app
from bot.config import Settings
from bot.db import Database
from bot.web.limiter import Limiter, MemoryLimiter, RedisLimiter
from tests.support.servers import free_port, uvicorn_thread

REDIS_URL = os.environ.get("SIGNBOT_TEST_REDIS_URL")
PROBLEM = "application/problem+json"

needs_redis = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="SIGNBOT_TEST_REDIS_URL is not set"),
]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Db:
    settings: Settings
    db: Database


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Db]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("ratelimit"), redis_url=None)
    db = Database(settings.effective_database_url)
    migrations.upgrade(db)
    yield Db(settings, db)
    db.dispose()


def new_account_keys(database: Db, count: int = 2) -> list[str]:
    def work(session):  # type: ignore[no-untyped-def]
        account = accounts.create_account(session, f"rl-{uuid.uuid4().hex[:10]}")
        return [
            accounts.create_key(session, account.id, "test", f"k{i}").secret for i in range(count)
        ]

    return database.db.run_sync(work)


@contextmanager
def serve(database: Db, limiter: Limiter) -> Iterator[str]:
    """One replica of the API around ``limiter``; yields the API base URL."""
    port = free_port()
    settings = database.settings.model_copy(update={"port": port})
    app = create_app(settings, database.db, limiter=limiter)
    with uvicorn_thread(app, port) as base:
        yield f"{base}/api/v1"


def client(base: str, secret: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.Client(base_url=base, headers=headers, timeout=30)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    assert REDIS_URL
    prefix = f"signbot:test:{uuid.uuid4().hex}:"
    yield prefix
    r = redis.Redis.from_url(REDIS_URL)
    try:
        for name in r.scan_iter(match=prefix + "*"):
            r.delete(name)
    finally:
        r.close()


def make_limiter(kind: str, clock: FakeClock, prefix: str | None) -> Limiter:
    if kind == "memory":
        return MemoryLimiter(clock=clock)
    assert REDIS_URL and prefix
    return RedisLimiter(REDIS_URL, clock=clock, prefix=prefix)


def assert_rate_limited(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["code"] == "RATE_LIMITED" and body["status"] == 429
    assert "rate limit" in body["error"].lower()
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit(), retry_after
    assert response.headers["RateLimit-Remaining"] == "0"
    assert response.headers["RateLimit-Limit"] == "100"
    assert int(response.headers["RateLimit-Reset"]) > 0
    return int(retry_after)


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=needs_redis)])
def test_burst_of_200_then_429_then_one_more_after_0_6_s(
    database: Db, kind: str, request: pytest.FixtureRequest
) -> None:
    prefix = request.getfixturevalue("redis_prefix") if kind == "redis" else None
    clock = FakeClock(1_700_000_000.0 if kind == "redis" else 1000.0)
    first_key, second_key = new_account_keys(database)
    with serve(database, make_limiter(kind, clock, prefix)) as base:
        with client(base, None) as anonymous:
            for i in range(30):  # 401s are answered before the limiter: they cost nothing
                headers = {"Authorization": f"Bearer sk_test_{'x' * 31}{i % 10}"} if i % 2 else {}
                response = anonymous.get("/envelopes", headers=headers)
                assert response.status_code == 401
                assert response.json()["code"] == "UNAUTHORIZED"
        with client(base, first_key) as c:
            remaining = []
            for _ in range(200):
                response = c.get("/envelopes")
                assert response.status_code == 200, response.text
                remaining.append(int(response.headers["RateLimit-Remaining"]))
            assert remaining == list(range(199, -1, -1))

            retry_after = assert_rate_limited(c.get("/envelopes"))
            assert retry_after == 1  # one token comes back every 0.6 s
            assert_rate_limited(c.post("/envelopes", json={}))  # every route, every method

            with client(base, None) as anonymous:  # a bad key is still 401, not 429
                assert anonymous.get("/envelopes").status_code == 401

            clock.advance(0.6)
            assert c.get("/envelopes").status_code == 200
            assert_rate_limited(c.get("/envelopes"))

            clock.advance(0.3)
            assert_rate_limited(c.get("/envelopes"))
            clock.advance(0.3)
            assert c.get("/envelopes").status_code == 200

        with client(base, second_key) as other:  # same account, another key: its own budget
            response = other.get("/envelopes")
            assert response.status_code == 200
            assert response.headers["RateLimit-Remaining"] == "199"


def test_bucket_refills_to_full_after_two_minutes(database: Db) -> None:
    clock = FakeClock(50.0)
    (secret,) = new_account_keys(database, 1)
    with serve(database, MemoryLimiter(clock=clock)) as base, client(base, secret) as c:
        for _ in range(200):
            assert c.get("/envelopes").status_code == 200
        assert_rate_limited(c.get("/envelopes"))
        clock.advance(60)  # 100 tokens back
        allowed = 0
        while c.get("/envelopes").status_code == 200:
            allowed += 1
            assert allowed <= 101
        assert allowed == 100
        clock.advance(600)  # never more than the burst
        response = c.get("/envelopes")
        assert response.headers["RateLimit-Remaining"] == "199"


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="SIGNBOT_TEST_REDIS_URL is not set")
def test_two_replicas_on_one_redis_share_one_budget(database: Db, redis_prefix: str) -> None:
    assert REDIS_URL
    clock = FakeClock(time.time())
    (secret,) = new_account_keys(database, 1)
    replica_a = RedisLimiter(REDIS_URL, clock=clock, prefix=redis_prefix)
    replica_b = RedisLimiter(REDIS_URL, clock=clock, prefix=redis_prefix)
    with serve(database, replica_a) as base_a, serve(database, replica_b) as base_b:
        assert base_a != base_b
        with client(base_a, secret) as a, client(base_b, secret) as b:
            answers_a = [a.get("/envelopes") for _ in range(120)]
            answers_b = [b.get("/envelopes") for _ in range(81)]
    statuses = [r.status_code for r in answers_a + answers_b]
    assert statuses.count(200) == 200
    assert statuses.count(429) == 1
    assert statuses[-1] == 429
    assert answers_b[0].headers["RateLimit-Remaining"] == "79"  # 120 were spent on replica A
    assert_rate_limited(answers_b[-1])
