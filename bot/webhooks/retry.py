"""When to try a failed delivery again. Pure arithmetic.

Attempt n (n ≥ 1 failed attempts so far) waits ``base * 6**(n-1)``, capped at 24 h, with ±20 %
jitter. With the default 10 s base: 10 s, 1 min, 6 min, 36 min, 3.6 h, 21.6 h, 24 h, 24 h —
nine attempts over about three days, after which the delivery is marked failed.
"""

from __future__ import annotations

import random
from datetime import timedelta

MAX_ATTEMPTS = 9
CAP = timedelta(hours=24)
GIVE_UP_AFTER = timedelta(days=3)
ENDPOINT_DISABLE_AFTER = timedelta(days=3)


def delay(failed_attempts: int, base_seconds: float, rng: random.Random | None = None) -> timedelta:
    """The wait before the next attempt, after ``failed_attempts`` failures (≥ 1)."""
    nominal = min(base_seconds * 6 ** (failed_attempts - 1), CAP.total_seconds())
    jitter = (rng or random).uniform(0.8, 1.2)  # spreading load, not security
    return timedelta(seconds=nominal * jitter)


def should_give_up(failed_attempts: int, age: timedelta) -> bool:
    return failed_attempts >= MAX_ATTEMPTS or age >= GIVE_UP_AFTER
