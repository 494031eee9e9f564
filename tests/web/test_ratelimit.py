"""Token-bucket arithmetic (bot.web.ratelimit): pure, table-driven."""

from __future__ import annotations

import ast
import itertools
import math
import sys
from pathlib import Path

import pytest

from bot.web import ratelimit
from bot.web.ratelimit import BucketPolicy, Decision, decide, take

DEFAULT = BucketPolicy()
SLOW = BucketPolicy(capacity=10, per_minute=6)  # one token every 10 s
FAST = BucketPolicy(capacity=5, per_minute=600)  # ten tokens a second
WALL = 1_700_000_000.0  # a realistic time.time(): doubles there are ~0.24 µs apart

# policy, tokens, updated_at, now ->
#   allowed, remaining, reset, retry_after, new_tokens, new_updated_at
TAKE_CASES = [
    ("fresh bucket", DEFAULT, 200.0, 0.0, 0.0, True, 199, 1, 0, 199.0, 0.0),
    ("last whole token", DEFAULT, 1.0, 0.0, 0.0, True, 0, 120, 0, 0.0, 0.0),
    ("empty", DEFAULT, 0.0, 0.0, 0.0, False, 0, 120, 1, 0.0, 0.0),
    ("empty, 0.5 s later", DEFAULT, 0.0, 0.0, 0.5, False, 0, 120, 1, 0.5 * 100 / 60, 0.5),
    ("empty, 0.6 s later", DEFAULT, 0.0, 0.0, 0.6, True, 0, 120, 0, 0.0, 0.6),
    (
        "empty, 0.6 s later, wall clock",
        DEFAULT,
        0.0,
        WALL,
        WALL + 0.6,
        True,
        0,
        120,
        0,
        0.0,
        WALL + 0.6,
    ),
    ("half a token", DEFAULT, 0.5, 0.0, 0.0, False, 0, 120, 1, 0.5, 0.0),
    ("float noise below one", DEFAULT, 0.9999999999999999, 0.0, 0.0, True, 0, 120, 0, 0.0, 0.0),
    ("fractional", DEFAULT, 150.7, 0.0, 0.0, True, 149, 31, 0, 149.7, 0.0),
    ("a minute refills 100", DEFAULT, 0.0, 0.0, 60.0, True, 99, 61, 0, 99.0, 60.0),
    ("refill capped at capacity", DEFAULT, 10.0, 0.0, 1000.0, True, 199, 1, 0, 199.0, 1000.0),
    ("over capacity is capped", DEFAULT, 500.0, 0.0, 0.0, True, 199, 1, 0, 199.0, 0.0),
    ("negative is floored", DEFAULT, -3.0, 0.0, 0.0, False, 0, 120, 1, 0.0, 0.0),
    ("clock backwards: no refill", DEFAULT, 5.0, 100.0, 50.0, True, 4, 118, 0, 4.0, 100.0),
    ("clock backwards, refused", DEFAULT, 0.5, 100.0, 0.0, False, 0, 120, 1, 0.5, 100.0),
    ("slow: empty", SLOW, 0.0, 0.0, 0.0, False, 0, 100, 10, 0.0, 0.0),
    ("slow: half a token", SLOW, 0.0, 0.0, 5.0, False, 0, 95, 5, 0.5, 5.0),
    ("slow: one token", SLOW, 0.0, 0.0, 10.0, True, 0, 100, 0, 0.0, 10.0),
    ("fast: retry-after is at least 1", FAST, 0.0, 0.0, 0.0, False, 0, 1, 1, 0.0, 0.0),
    ("fast: full after 0.5 s", FAST, 0.0, 0.0, 0.5, True, 4, 1, 0, 4.0, 0.5),
]


@pytest.mark.parametrize(
    (
        "policy",
        "tokens",
        "updated_at",
        "now",
        "allowed",
        "remaining",
        "reset",
        "retry_after",
        "new_tokens",
        "new_updated_at",
    ),
    [pytest.param(*case[1:], id=case[0]) for case in TAKE_CASES],
)
def test_take(
    policy,
    tokens,
    updated_at,
    now,
    allowed,
    remaining,
    reset,
    retry_after,
    new_tokens,
    new_updated_at,
):
    decision, got_tokens, got_updated_at = take(policy, tokens, updated_at, now)
    assert decision == Decision(allowed, policy.per_minute, remaining, reset, retry_after)
    assert got_tokens == pytest.approx(new_tokens, abs=1e-6)
    assert isinstance(got_tokens, float)
    assert got_updated_at == new_updated_at


# allowed, tokens left -> remaining, reset, retry_after (default policy: 0.6 s per token)
DECIDE_CASES = [
    (True, 199.0, 199, 1, 0),
    (True, 0.0, 0, 120, 0),
    (True, 200.0, 200, 0, 0),
    (True, 199.9999999, 200, 0, 0),  # within EPSILON of full
    (True, 100.0, 100, 60, 0),
    (True, 100.5, 100, 60, 0),  # 99.5 missing -> 59.7 s -> 60
    (False, 0.0, 0, 120, 1),
    (False, 0.99, 0, 120, 1),  # 0.006 s until a token, still 1
    (False, 0.0000001, 0, 120, 1),
]


@pytest.mark.parametrize(("allowed", "tokens", "remaining", "reset", "retry_after"), DECIDE_CASES)
def test_decide(allowed, tokens, remaining, reset, retry_after):
    assert decide(DEFAULT, allowed, tokens) == Decision(allowed, 100, remaining, reset, retry_after)


@pytest.mark.parametrize(
    ("decision", "headers"),
    [
        (
            Decision(True, 100, 199, 1, 0),
            {"RateLimit-Limit": "100", "RateLimit-Remaining": "199", "RateLimit-Reset": "1"},
        ),
        (
            Decision(False, 100, 0, 120, 1),
            {
                "RateLimit-Limit": "100",
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": "120",
                "Retry-After": "1",
            },
        ),
        (
            Decision(False, 6, 0, 95, 5),
            {
                "RateLimit-Limit": "6",
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": "95",
                "Retry-After": "5",
            },
        ),
    ],
)
def test_headers(decision, headers):
    assert decision.headers() == headers


def test_decision_is_immutable():
    decision = Decision(True, 100, 199, 1, 0)
    with pytest.raises(AttributeError):
        decision.allowed = False  # type: ignore[misc]


def test_policy_defaults_and_validation():
    assert (DEFAULT.capacity, DEFAULT.per_minute) == (200, 100)
    assert DEFAULT.seconds_to_fill == 120.0
    with pytest.raises(ValueError):
        BucketPolicy(per_minute=0)
    with pytest.raises(ValueError):
        BucketPolicy(capacity=0)


@pytest.mark.parametrize("policy", [DEFAULT, SLOW, FAST], ids=["default", "slow", "fast"])
def test_invariants(policy):
    """Over a grid of states and times, every decision stays within the contract."""
    levels = [
        0.0,
        0.3,
        0.999999,
        1.0,
        1.5,
        policy.capacity / 2,
        policy.capacity - 1.0,
        float(policy.capacity),
    ]
    gaps = [-5.0, 0.0, 0.001, 0.3, 0.6, 1.0, 7.5, 60.0, 1e6]
    for tokens, gap in itertools.product(levels, gaps):
        decision, new_tokens, new_updated_at = take(policy, tokens, 10.0, 10.0 + gap)
        assert decision.limit == policy.per_minute
        assert 0.0 <= new_tokens <= policy.capacity - 1 or not decision.allowed
        assert 0.0 <= new_tokens <= policy.capacity
        assert decision.remaining == math.floor(new_tokens + ratelimit.EPSILON)
        assert 0 <= decision.reset <= math.ceil(policy.seconds_to_fill)
        assert new_updated_at == max(10.0, 10.0 + gap)
        if decision.allowed:
            assert decision.retry_after == 0
            assert "Retry-After" not in decision.headers()
        else:
            assert new_tokens < 1.0
            assert 1 <= decision.retry_after <= math.ceil(60 / policy.per_minute)
            assert decision.headers()["Retry-After"] == str(decision.retry_after)


def test_burst_then_refusal_then_steady_rate():
    """200 at once, the 201st refused; then one every 0.6 s, never more."""
    tokens, updated_at = 200.0, 0.0
    for i in range(200):
        decision, tokens, updated_at = take(DEFAULT, tokens, updated_at, 0.0)
        assert decision.allowed and decision.remaining == 199 - i
    decision, tokens, updated_at = take(DEFAULT, tokens, updated_at, 0.0)
    assert not decision.allowed and decision.retry_after == 1
    allowed = 0
    for step in range(1, 6001):  # 10 minutes, a request every 0.1 s
        decision, tokens, updated_at = take(DEFAULT, tokens, updated_at, step / 10)
        allowed += decision.allowed
    assert allowed == 1000


def test_module_is_pure():
    """Stdlib only: no framework, database or network library (also an import-linter rule)."""
    tree = ast.parse(Path(ratelimit.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
