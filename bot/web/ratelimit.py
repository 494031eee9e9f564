"""Token-bucket arithmetic for the per-API-key rate limit (pure: stdlib only).

One bucket per key holds up to ``capacity`` tokens (the burst) and refills continuously at
``per_minute`` tokens a minute (the sustained rate, also the advertised ``RateLimit-Limit``).
A request takes one whole token or is refused. A bucket nobody has seen is full.

The state of a bucket is two floats, ``(tokens, updated_at)``; :func:`take` maps a state and the
current time to a :class:`Decision` and the next state, and :func:`decide` turns a state that a
storage backend already computed (the Redis script) into the same :class:`Decision`, so the
numbers on the wire have one definition.

Floating point: refills are computed as ``elapsed * per_minute / 60`` and compared with a
tolerance of ``EPSILON`` tokens (0.6 µs of refill at 100/min), so that 0.6 s after the last
token at 100/min gives one token back rather than 0.9999999999999999, even when the times are
wall-clock values around 1.7e9 (whose doubles are only ~0.24 µs apart).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["EPSILON", "BucketPolicy", "Decision", "decide", "take"]

#: Tolerance, in tokens, absorbing floating-point noise in refills and timestamps.
EPSILON = 1e-6


@dataclass(frozen=True, slots=True)
class BucketPolicy:
    """The shape of every bucket: ``capacity`` tokens of burst, ``per_minute`` of refill."""

    capacity: int = 200  # burst
    per_minute: int = 100  # sustained refill, also the advertised RateLimit-Limit

    def __post_init__(self) -> None:
        if self.per_minute <= 0:
            raise ValueError("per_minute must be positive")
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")

    @property
    def seconds_to_fill(self) -> float:
        """Seconds an empty bucket takes to become full (``capacity / rate``)."""
        return self.capacity * 60.0 / self.per_minute


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one request and what the client is told about its budget."""

    allowed: bool
    limit: int  # RateLimit-Limit (policy.per_minute)
    remaining: int  # whole tokens left after this request (>= 0)
    reset: int  # seconds until the bucket is full again (ceil, >= 0)
    retry_after: int  # 0 when allowed; else ceil(seconds until one token), >= 1

    def headers(self) -> dict[str, str]:
        """``RateLimit-Limit/Remaining/Reset``, plus ``Retry-After`` when refused."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


def decide(policy: BucketPolicy, allowed: bool, tokens: float) -> Decision:
    """The :class:`Decision` for a bucket left with ``tokens`` after the request was judged.

    ``tokens`` is the state *after* consumption (when allowed) and after the refill.
    """
    per_minute = policy.per_minute
    remaining = int(tokens + EPSILON) if tokens > 0.0 else 0
    missing = policy.capacity - tokens
    reset = math.ceil((missing - EPSILON) * 60.0 / per_minute) if missing > EPSILON else 0
    if allowed:
        retry_after = 0
    else:
        retry_after = math.ceil((1.0 - tokens - EPSILON) * 60.0 / per_minute)
        if retry_after < 1:
            retry_after = 1
    return Decision(allowed, per_minute, remaining, reset, retry_after)


def take(
    policy: BucketPolicy, tokens: float, updated_at: float, now: float
) -> tuple[Decision, float, float]:
    """Refill the bucket up to ``now``, then consume one token if a whole one is there.

    Returns ``(decision, new_tokens, new_updated_at)``. The refill never goes beyond
    ``capacity``; a clock going backwards (``now < updated_at``) counts as no time at all and
    keeps ``updated_at`` (the later instant), so the time in between is never refilled twice.
    """
    capacity = policy.capacity
    if now > updated_at:
        tokens += (now - updated_at) * policy.per_minute / 60.0
        updated_at = now
    if tokens > capacity:
        tokens = float(capacity)
    elif tokens < 0.0:
        tokens = 0.0
    if tokens + EPSILON >= 1.0:
        tokens -= 1.0
        if tokens < 0.0:
            tokens = 0.0
        return decide(policy, True, tokens), tokens, updated_at
    return decide(policy, False, tokens), float(tokens), updated_at
