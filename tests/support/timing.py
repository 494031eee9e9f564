"""CPU time of a piece of work, for the suite's "this stays fast" guards.

Wall-clock guards flake on a busy 2-core CI machine: a session-scoped server's worker thread
or another process can hold the CPU (or the GIL) long enough to push a 60 ms composition past
a second, and so can a full garbage collection late in the session (see :func:`cpu_seconds`).
What such a guard means to catch is work gone quadratic, and that shows in the CPU time of
the thread doing the work, which waiting for the GIL or a core does not inflate. The work
must therefore run in the calling thread (no pools), which is true of every use here.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def cpu_seconds(work: Callable[[], T]) -> tuple[T, float]:
    """Run ``work`` once in this thread; return its result and the CPU seconds it used.

    The cyclic garbage collector is held off meanwhile: late in a long test session a full
    collection walks every object the session made (about 0.7 s of CPU for 8 million of
    them, measured here), charged to whichever allocation happened to trigger it — the likely
    reason a 60 ms composition once measured 0.75 s. Its work is the session's, not this
    one's; it runs after."""
    gc.disable()
    try:
        started = time.thread_time()
        result = work()
        return result, time.thread_time() - started
    finally:
        gc.enable()
