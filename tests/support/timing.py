"""CPU time of a piece of work, for the suite's "this stays fast" guards.

Wall-clock guards flake on a busy 2-core CI machine: a session-scoped server's worker thread or
another process can hold the CPU (or the GIL) long enough to push a 60 ms composition past a
second. What such a guard means to catch is work gone quadratic, and that shows in the CPU
time of the thread doing the work, which waiting for the GIL or a core does not inflate.
The work must therefore run in the calling thread (no pools), which is true of every use here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def cpu_seconds(work: Callable[[], T]) -> tuple[T, float]:
    """Run ``work`` once in this thread; return its result and the CPU seconds it used."""
    started = time.thread_time()
    result = work()
    return result, time.thread_time() - started
