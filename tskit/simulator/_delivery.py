"""Delivering callback messages to registered listeners, retrying as ThingSpace does.

Two retry policies, because Verizon's documentation and what was observed in production differ
(``thingspace-api.md`` section 4.1): *documented* — three more attempts at 5-minute intervals;
*observed* — one retry about 1.3 s after a non-2xx answer, and a retry when the first attempt is
not answered within about 4 s (even if it later succeeds, so the listener sees a duplicate).
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx2

from tskit._addresses import is_documentation_address, is_documentation_name

USER_AGENT = "Verizon's callback service"


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """When a message is sent again.

    Attributes:
        name: ``"documented"`` or ``"observed"``, or your own.
        delays: Seconds to wait before each resend after a non-2xx answer or a refused connection.
        timeout: Seconds to wait for an answer; no answer in time counts as a failed attempt, and
            the next attempt follows at once.
    """

    name: str
    delays: tuple[float, ...]
    timeout: float


DOCUMENTED = DeliveryPolicy("documented", delays=(300.0, 300.0, 300.0), timeout=30.0)
OBSERVED = DeliveryPolicy("observed", delays=(1.3,), timeout=4.0)
POLICIES = {"documented": DOCUMENTED, "observed": OBSERVED}


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One POST of a message to a listener.

    Attributes:
        number: 1 for the first attempt.
        callback_count: The ``callbackCount`` sent.
        sent_at: Seconds since the epoch.
        status_code: The listener's HTTP status, or ``None`` without an answer.
        outcome: ``"delivered"``, ``"rejected"``, ``"no answer in time"`` or the connection error.
        elapsed: Seconds until the answer (or the failure).
    """

    number: int
    callback_count: int
    sent_at: float
    status_code: int | None
    outcome: str
    elapsed: float


@dataclass
class Delivery:
    """One message on its way to a listener, and every attempt made.

    Attributes:
        id: Sequence number within the simulator.
        account_name: The account.
        service_name: The service.
        url: The registered URL it goes to.
        request_id: The message's ``requestId``.
        message: The message as first sent, with its password replaced by ``"********"``.
        policy: The retry policy.
        attempts: Every attempt so far.
        state: ``"pending"``, ``"delivered"`` or ``"given up"``.
    """

    id: int
    account_name: str
    service_name: str
    url: str
    request_id: str
    message: dict[str, Any]
    policy: DeliveryPolicy
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    state: Literal["pending", "delivered", "given up"] = "pending"
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def delivered(self) -> bool:
        """Whether a listener acknowledged it with a 2xx."""
        return self.state == "delivered"

    def wait(self, timeout: float | None = 30.0) -> Delivery:
        """Block until delivered or given up.

        Raises:
            TimeoutError: Still pending after ``timeout`` seconds.
        """
        if not self._done.wait(timeout):
            raise TimeoutError(f"delivery {self.id} still pending after {timeout} s")
        return self


def undeliverable(url: str) -> str:
    """Why a message to ``url`` is not sent at all (a documentation address), or ``""``.

    The demo data uses example.com and 203.0.113.0/24: nothing listens there, and the simulator
    sends no traffic to hosts that are not anybody's.
    """
    host = (urlsplit(url).hostname or "").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if is_documentation_name(host):
            return f"not sent: {host} is a documentation name, nothing listens there"
        return ""
    if is_documentation_address(address):
        return f"not sent: {host} is a documentation address, nothing listens there"
    return ""


def _describe(error: httpx2.HTTPError) -> str:
    if isinstance(error, httpx2.TimeoutException):
        return "no answer in time"
    if isinstance(error, httpx2.ConnectError):
        return "connection refused"
    return f"connection failed: {type(error).__name__}"


class Deliverer:
    """Sends deliveries from a small thread pool, so that triggering never blocks."""

    def __init__(self, workers: int = 8) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tskit-delivery")

    def submit(self, delivery: Delivery, body: dict[str, Any], scale: float) -> None:
        """Start delivering; the body carries the real password, the record does not."""
        self._pool.submit(self._run, delivery, body, scale)

    @staticmethod
    def _run(delivery: Delivery, body: dict[str, Any], scale: float) -> None:
        policy = delivery.policy
        headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
        try:
            reason = undeliverable(delivery.url)
            if reason:
                delivery.attempts.append(DeliveryAttempt(1, 1, time.time(), None, reason, 0.0))
                return
            # straight to the listener, as ThingSpace would: no proxy from the environment
            with httpx2.Client(timeout=policy.timeout * scale, headers=headers, trust_env=False) as http:
                for number in range(1, len(policy.delays) + 2):
                    sent = dict(body, callbackCount=number)
                    started = time.time()
                    try:
                        response = http.post(delivery.url, content=json.dumps(sent).encode())
                        code: int | None = response.status_code
                        outcome = "delivered" if response.is_success else "rejected"
                    except httpx2.HTTPError as error:
                        code, outcome = None, _describe(error)
                    delivery.attempts.append(
                        DeliveryAttempt(number, number, started, code, outcome, time.time() - started)
                    )
                    if outcome == "delivered":
                        delivery.state = "delivered"
                        return
                    if number > len(policy.delays):
                        break
                    if outcome != "no answer in time":  # after a timeout the next attempt follows at once
                        time.sleep(policy.delays[number - 1] * scale)
            delivery.state = "given up"
        finally:
            if delivery.state == "pending":
                delivery.state = "given up"
            delivery._done.set()

    def close(self) -> None:
        """Stop taking deliveries; wait for those under way."""
        self._pool.shutdown(wait=True, cancel_futures=False)
