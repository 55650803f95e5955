"""The simulator's settings: undocumented ThingSpace behaviours, timings, and fault knobs."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

Operation = Literal["token", "login", "list", "register", "deregister"]
CALLBACK_OPERATIONS: tuple[Operation, ...] = ("list", "register", "deregister")


@dataclass
class SimulatorConfig:
    """How the simulator behaves where Verizon documents nothing, and its timings.

    Attributes:
        reregister: Registering a service that already has a listener: ``"replace"`` overwrites
            it and answers 200; ``"error"`` answers 400 ``REQUEST_FAILED.CallbackAlreadyRegistered``.
        deregister_missing: Deregistering a service with no listener: ``"error"`` answers 400
            ``REQUEST_FAILED.CallbackNotRegistered``; ``"ok"`` answers 200 as if it had one.
        empty_list: What listing an account with no callbacks returns: ``"empty-body"`` (Verizon's
            documentation) or ``"json-array"`` (``[]``).
        enforce_listener_ports: Refuse listener URLs on ports ThingSpace does not deliver to.
        session_expired_status: HTTP status for an expired or unknown session token.
        login_failure_status: HTTP status for a refused login.
        token_lifetime: Seconds an OAuth token is valid; a new request within it returns the same token.
        session_idle_timeout: Seconds without use after which a session token expires.
        lockout_after: Failed logins in a row after which a user is locked.
        max_body: Largest request body accepted, in bytes.
        delivery_policy: How callback messages are resent: ``"observed"`` (one retry after ~1.3 s,
            and one when the first attempt is not answered in ~4 s: what production did) or
            ``"documented"`` (three more attempts at 5-minute intervals: what Verizon's docs say).
        delivery_time_scale: Multiplies every delivery wait and timeout (e.g. 0.01 in tests).
    """

    reregister: Literal["replace", "error"] = "replace"
    deregister_missing: Literal["error", "ok"] = "error"
    empty_list: Literal["empty-body", "json-array"] = "empty-body"
    enforce_listener_ports: bool = True
    session_expired_status: int = 400
    login_failure_status: int = 400
    token_lifetime: float = 3600.0
    session_idle_timeout: float = 1200.0
    lockout_after: int = 5
    max_body: int = 64 * 1024
    delivery_policy: Literal["observed", "documented"] = "observed"
    delivery_time_scale: float = 1.0


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
