"""Fault injection: scripted misbehaviours for the next requests, and random rates of them."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from tskit.simulator._replies import Code, Reply, cm_error

Operation = Literal["token", "login", "list", "register", "deregister"]
CALLBACK_OPERATIONS: tuple[Operation, ...] = ("list", "register", "deregister")
#: Operations a fault can hit.
FAULTABLE = frozenset({"token", "login", "list", "register", "deregister"})


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted misbehaviour, applied to the next matching request.

    Attributes:
        status: Answer with this HTTP status (and a ThingSpace error body) instead of serving.
        retry_after: ``Retry-After`` seconds to send with the status.
        drop: Close the connection without an answer: ``"before"`` the request takes effect,
            or ``"after"`` it took effect (the answer is lost).
        operations: The operations it may hit.
    """

    status: int | None = None
    retry_after: float | None = None
    drop: Literal["before", "after"] | None = None
    operations: tuple[Operation, ...] = CALLBACK_OPERATIONS


@dataclass
class Faults:
    """Fault knobs for tests and benchmarks. Rates apply to the three callbacks calls only.

    Attributes:
        latency: Seconds added before every answer.
        error_rate: Share of callbacks calls answered ``500`` without taking effect.
        rate_limit_rate: Share answered ``429`` with ``Retry-After: retry_after``.
        retry_after: Seconds announced in ``Retry-After`` on those 429s.
        drop_rate: Share of connections dropped without an answer, after the call took effect.
        seed: Seed of the random draws, so that a run can be repeated.
    """

    latency: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: float = 1.0
    drop_rate: float = 0.0
    seed: int | None = None
    scripted: deque[Fault] = field(default_factory=deque, repr=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.seed is not None:
            self._rng.seed(self.seed)

    def clear(self) -> None:
        """Turn every fault off."""
        self.latency = self.error_rate = self.rate_limit_rate = self.drop_rate = 0.0
        self.scripted.clear()

    def draw(self, operation: str) -> Fault | None:
        """The fault to apply to one request, if any (scripted ones first)."""
        for fault in self.scripted:
            if operation in fault.operations:
                self.scripted.remove(fault)
                return fault
        if operation not in CALLBACK_OPERATIONS:
            return None
        roll = self._rng.random()
        if roll < self.error_rate:
            return Fault(status=500)
        roll -= self.error_rate
        if roll < self.rate_limit_rate:
            return Fault(status=429, retry_after=self.retry_after)
        roll -= self.rate_limit_rate
        if roll < self.drop_rate:
            return Fault(drop="after")
        return None


def fault_reply(status: int, retry_after: float | None) -> Reply:
    """The answer a fault gives instead of serving: a ThingSpace error body with its status."""
    extra = (("retry-after", f"{retry_after:g}"),) if retry_after is not None else ()
    if status == 429:
        return cm_error(status, Code.TOO_MANY_REQUESTS, "Too many requests. Try again later.", extra)
    return cm_error(status, Code.UNEXPECTED, "An unexpected error occurred.", extra)
