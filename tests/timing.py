"""How a cost grows with its input, measured as a ratio on the same machine: no wall-clock limit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def growth(work: Callable[[Any], object], make: Callable[[int], Any], size: int, factor: int = 8) -> float:
    """How much longer ``work(make(factor * size))`` takes than ``work(make(size))``.

    About ``factor`` when the cost is linear, ``factor ** 2`` when quadratic. Each side is the best
    of three runs: a loaded machine slows both alike, so the ratio holds where a time limit would not.
    """

    def best(value: Any) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            work(value)
            times.append(time.perf_counter() - started)
        return max(min(times), 1e-6)

    small, large = make(size), make(factor * size)
    return best(large) / best(small)
