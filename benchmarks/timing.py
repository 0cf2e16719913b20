"""The one timing rule every benchmark here uses: the best wall time of a few calls after a
warm-up (first-touch allocations, lazy initialisation, a compile). The minimum, not the mean:
on a shared machine, noise only ever adds time."""
from __future__ import annotations

import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], repeats: int, *, warmup: Callable[[], object] | None = None,
              sync: Callable[[], None] = lambda: None) -> float:
    """Best wall time of `repeats` calls of fn, after one call of `warmup` (default fn);
    `sync` waits for queued device work, so that an interval covers it."""
    (warmup or fn)()
    best = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best
