"""Sources that keep sending wrong credentials get their answers slowly; refusals are logged in aggregate.

A message's credentials are checked first: the right ones are never kept waiting nor refused,
whatever else comes from the same address (ThingSpace sends from a few addresses, some of its
messages carry an old password during a password change, and behind a reverse proxy every sender
has the proxy's address). Each source (the TCP peer's address) has a leaky bucket of failed checks:
every failure adds one, and ``leak`` are forgotten per second. Once a source's bucket holds more
than ``free``, each of its wrong answers waits (doubling from 50 ms up to ``max_delay``) before it
is given, and at most ``max_waiting`` of them wait at once: the rest are answered 429 at once. A
one-at-a-time guesser is brought from thousands of tries a second to a few; a guesser that does not
wait for answers is not slowed, and only a long listener password (up to 40 characters) stops it.
The table holds at most ``max_sources`` sources (least recently seen dropped first): memory is
bounded.

Refusals are logged once for the first of a kind (source and status) and then as one line per
``interval`` per kind with a count, never one line each.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    level: float
    at: float
    waiting: int = 0


class Throttle:
    """Per-source slowing of repeated wrong credentials, with bounded memory.

    Args:
        free: Failures a source may have in its bucket before it is slowed.
        leak: Failures forgotten per second.
        max_delay: Longest wait before a slowed source's message is checked, in seconds.
        max_waiting: Messages of one slowed source waiting at once; more are answered 429.
        max_sources: Sources remembered at once.
        clock: Monotonic clock (tests give their own).
    """

    def __init__(
        self,
        *,
        free: int = 5,
        leak: float = 1.0,
        max_delay: float = 2.0,
        max_waiting: int = 4,
        max_sources: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = free
        self.leak = leak
        self.max_delay = max_delay
        self.max_waiting = max_waiting
        self.max_sources = max_sources
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self.slowed = 0  # messages made to wait
        self.turned_away = 0  # messages answered 429

    def _bucket(self, source: str) -> _Bucket | None:
        bucket = self._buckets.get(source)
        if bucket is None:
            return None
        now = self.clock()
        bucket.level = max(0.0, bucket.level - (now - bucket.at) * self.leak)
        bucket.at = now
        if bucket.level == 0 and not bucket.waiting:
            del self._buckets[source]
            return None
        self._buckets.move_to_end(source)
        return bucket

    def delay(self, source: str) -> float:
        """Seconds a wrong answer to ``source`` waits before it is given (0: none)."""
        bucket = self._bucket(source)
        excess = 0.0 if bucket is None else bucket.level - self.free
        if excess <= 0:
            return 0.0
        return min(self.max_delay, 0.05 * 2 ** min(excess, 16))

    def failed(self, source: str) -> None:
        """Count a failed credential check from ``source``."""
        bucket = self._bucket(source)
        if bucket is None:
            bucket = self._buckets[source] = _Bucket(0.0, self.clock())
            while len(self._buckets) > self.max_sources:
                self._buckets.popitem(last=False)
        bucket.level += 1

    async def wait(self, source: str) -> bool:
        """Wait as long as ``source`` has earned; ``False`` (at once): too many of its answers wait already."""
        seconds = self.delay(source)
        if not seconds:
            return True
        bucket = self._buckets[source]
        if bucket.waiting >= self.max_waiting:
            self.turned_away += 1
            return False
        self.slowed += 1
        bucket.waiting += 1
        try:
            await asyncio.sleep(seconds)
        finally:
            bucket.waiting -= 1
        return True

    def retry_after(self, source: str) -> int:
        """Whole seconds a turned-away source is told to wait (``Retry-After``)."""
        return max(1, math.ceil(self.delay(source)))

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass
class _Tally:
    reason: str
    count: int = 0


class RefusalLog:
    """Logs refusals: the first of each (source, status) at once, then one line per ``interval`` with a count.

    At most ``max_kinds`` kinds are tallied at once; refusals of others are tallied as from
    "other sources". Logging happens on the running event loop (a timer per tallied kind).
    """

    OTHERS = "other sources"

    def __init__(self, log: logging.Logger, *, interval: float = 10.0, max_kinds: int = 1024) -> None:
        self.log = log
        self.interval = interval
        self.max_kinds = max_kinds
        self._tallies: dict[tuple[str, int], _Tally] = {}
        self.lines = 0  # lines logged

    def refused(self, peer: str, status: int, reason: str) -> None:
        """Note one refusal: logged now if it is the first of its kind in a while, else counted."""
        key = (peer, status)
        tally = self._tallies.get(key)
        if tally is not None:
            tally.count += 1
            return
        if len(self._tallies) >= self.max_kinds:
            key = (self.OTHERS, status)
            tally = self._tallies.get(key)
            if tally is not None:
                tally.count += 1
                return
        self._tallies[key] = _Tally(reason)
        self.lines += 1
        self.log.info("refused a message from %s with %d: %s", key[0], status, reason)
        self._arm(key)

    def _arm(self, key: tuple[str, int]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on a loop: nothing to report later with; the next one logs again
            self._tallies.pop(key, None)
            return
        loop.call_later(self.interval, self._report, key)

    def _report(self, key: tuple[str, int]) -> None:
        tally = self._tallies[key]
        if not tally.count:  # a quiet interval: the next refusal of this kind is logged at once
            del self._tallies[key]
            return
        self.lines += 1
        self.log.info(
            "refused %d more messages from %s with %d in the last %g s: %s",
            tally.count,
            key[0],
            key[1],
            self.interval,
            tally.reason,
        )
        tally.count = 0
        self._arm(key)
