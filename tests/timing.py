"""How a cost grows with its input, measured as a ratio on the same machine: no wall-clock limit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def growth(work: Callable[[Any], object], make: Callable[[int], Any], size: int, factor: int = 8) -> float:
    """How much more CPU time ``work(make(factor * size))`` takes than ``work(make(size))``.

    About ``factor`` when the cost is linear, ``factor ** 2`` when quadratic. Each side is the best
    of three runs, taken in turn, of the CPU time of this thread (``time.thread_time``): the time
    other processes hold the cores is not counted, so the ratio holds on a loaded machine, where
    the wall clock (and a time limit) would not. ``work`` must run in the calling thread.
    """
    small, large = make(size), make(factor * size)
    best = {"small": float("inf"), "large": float("inf")}
    for _ in range(3):
        for side, value in (("small", small), ("large", large)):
            started = time.thread_time()
            work(value)
            best[side] = min(best[side], time.thread_time() - started)
    return best["large"] / max(best["small"], 1e-6)
