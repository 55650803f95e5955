"""Delivering callback messages to registered listeners, retrying as ThingSpace does.

Two retry policies, because Verizon's documentation and what was observed in production differ
(``thingspace-api.md`` section 4.1): *documented* — three more attempts at 5-minute intervals;
*observed* — one retry about 1.3 s after a non-2xx answer, and a retry when the first attempt is
not answered within about 4 s (even if it later succeeds, so the listener sees a duplicate).

Deliveries run on daemon threads: a pending one (the documented policy waits 5 minutes between
attempts) never holds up the interpreter's exit, and :meth:`Deliverer.close` cuts the waits short.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx2

from tskit.simulator._facts import host_address, is_documentation_host, is_private_address
from tskit.simulator._messages import wire

USER_AGENT = "Verizon's callback service"
log = logging.getLogger("tskit.simulator")


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
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return "not sent: the URL cannot be read"
    if is_documentation_host(host):
        kind = "name" if host_address(host) is None else "address"
        return f"not sent: {host} is a documentation {kind}, nothing listens there"
    if is_private_address(host):
        # the seed's own examples point at a private LAN: not the simulator's to reach
        return f"not sent: {host} is a private address; the simulator sends only to loopback and public hosts"
    return ""


def url_problem(url: str) -> str:
    """Why ``url`` cannot be sent to at all (not a valid URL for an HTTP client), or ``""``."""
    try:
        httpx2.URL(url).host.encode("idna")
    except (httpx2.InvalidURL, ValueError, UnicodeError) as error:
        return f"url is not a valid URL: {type(error).__name__}"
    return ""


def _describe(error: httpx2.HTTPError) -> str:
    if isinstance(error, httpx2.TimeoutException):
        return "no answer in time"
    if isinstance(error, httpx2.ConnectError):
        return "connection refused"
    return f"connection failed: {type(error).__name__}"


DELIVERY_COLUMNS = (
    "delivery",
    "account_name",
    "service_name",
    "url",
    "request_id",
    "attempt",
    "callback_count",
    "status_code",
    "outcome",
    "sent_at",
    "elapsed_ms",
    "state",
)


def delivery_frame(deliveries: list[Delivery]) -> Any:
    """Every attempt of the deliveries as a DataFrame with :data:`DELIVERY_COLUMNS`, oldest first.

    Numbers are numbers (``status_code`` is ``<NA>`` without an answer), ``sent_at`` a UTC
    datetime, names categoricals.
    """
    import pandas as pd

    pairs = [(d, a) for d in deliveries for a in list(d.attempts)]

    def numbers(values: list[int | None]) -> Any:
        return pd.array(values, dtype="Int64")

    # text is "string" on every pandas, as tskit._frames.TEXT makes it (the simulator keeps to itself)
    def names(values: list[str]) -> Any:
        return pd.Categorical(values, categories=pd.Index(list(dict.fromkeys(values)), dtype="string"))

    return pd.DataFrame(
        {
            "delivery": numbers([d.id for d, _ in pairs]),
            "account_name": names([d.account_name for d, _ in pairs]),
            "service_name": names([d.service_name for d, _ in pairs]),
            "url": pd.array([d.url for d, _ in pairs], dtype="string"),
            "request_id": pd.array([d.request_id for d, _ in pairs], dtype="string"),
            "attempt": numbers([a.number for _, a in pairs]),
            "callback_count": numbers([a.callback_count for _, a in pairs]),
            "status_code": numbers([a.status_code for _, a in pairs]),
            "outcome": names([a.outcome for _, a in pairs]),
            "sent_at": pd.to_datetime([a.sent_at for _, a in pairs], unit="s", utc=True).as_unit("us"),
            "elapsed_ms": pd.array([round(a.elapsed * 1000, 1) for _, a in pairs], dtype="float64"),
            "state": names([d.state for d, _ in pairs]),
        },
        columns=list(DELIVERY_COLUMNS),
    )


class Deliverer:
    """Sends deliveries from a few daemon threads, so that triggering never blocks nor exit waits."""

    def __init__(self, workers: int = 8) -> None:
        self._jobs: queue.Queue[tuple[Delivery, dict[str, Any], float] | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, name=f"tskit-delivery-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, delivery: Delivery, body: dict[str, Any], scale: float) -> None:
        """Start delivering; the body carries the real password, the record does not."""
        self._jobs.put((delivery, body, scale))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            delivery, body, scale = job
            if self._stop.is_set():
                delivery.attempts.append(DeliveryAttempt(1, 1, time.time(), None, "not sent: simulator closed", 0.0))
                _finish(delivery)
                continue
            try:
                self._run(delivery, body, scale)
            except Exception:  # a bug in one delivery must not stop the worker
                log.exception("delivery %d failed", delivery.id)

    def _run(self, delivery: Delivery, body: dict[str, Any], scale: float) -> None:
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
                    started = time.time()
                    try:
                        response = http.post(delivery.url, content=wire(dict(body, callbackCount=number)))
                        code: int | None = response.status_code
                        outcome = "delivered" if response.is_success else "rejected"
                    except httpx2.HTTPError as error:
                        code, outcome = None, _describe(error)
                    except Exception as error:  # a URL the HTTP client cannot use: no attempt will do
                        code, outcome = None, f"not sent: the URL cannot be used ({type(error).__name__})"
                        delivery.attempts.append(DeliveryAttempt(number, number, started, code, outcome, 0.0))
                        return
                    delivery.attempts.append(
                        DeliveryAttempt(number, number, started, code, outcome, time.time() - started)
                    )
                    if outcome == "delivered":
                        delivery.state = "delivered"
                        return
                    if number > len(policy.delays):
                        break
                    # after a timeout the next attempt follows at once; close() cuts a wait short
                    if outcome != "no answer in time" and self._stop.wait(policy.delays[number - 1] * scale):
                        break
        finally:
            _finish(delivery)

    def close(self, timeout: float = 10.0) -> None:
        """Stop: deliveries waiting to resend give up, those not started are not sent."""
        self._stop.set()
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _finish(delivery: Delivery) -> None:
    if delivery.state == "pending":
        delivery.state = "given up"
    delivery._done.set()
