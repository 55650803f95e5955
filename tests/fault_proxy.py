"""A small HTTP proxy on loopback that misbehaves on purpose, between a client and a served simulator.

It forwards each request to the upstream server and can, per request: drop the answer after the
upstream applied the request, answer 500 without forwarding, corrupt or replace a 2xx body, hold
the answer past the client's timeout, or change a listing's answer: ``empty`` it (an empty 200, as
ThingSpace answers for "none registered"), ``cut`` items from it or ``reorder`` it. Scripted actions
come first; random rates apply after. Only the callbacks calls are touched (the paths under
``/api/m2m/v1/callbacks``), and logins only as far as ``throttle_logins`` says: the first ones are
answered 429 with the API gateway's throttle fault (``900800``) and a ``Retry-After``, as
ThingSpace's gateway throttles. Every login is counted in ``logins``, and one that arrives while a
throttle's wait, as this proxy announced it, is not over counts as ``"inside a throttle"``: a count,
not a timing (a client cannot have heard of the wait before the proxy sent it).

Every connection carries one request (``Connection: close``), so a dropped answer is a closed socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Self

import httpx2

Action = Literal[
    "pass", "drop-before", "drop-after", "500", "400", "corrupt", "empty", "replace", "stall", "cut", "reorder"
]
CALLBACKS = re.compile(r"^/api/m2m/v1/callbacks/")
LOGIN = "/api/m2m/v1/session/login"
#: The API gateway's answer to a throttled request.
THROTTLE_FAULT = json.dumps(
    {"fault": {"code": 900800, "message": "Message throttled out", "description": "You have exceeded your quota"}}
).encode()
_HOP_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding", "keep-alive"})


@dataclass
class Rule:
    """One scripted misbehaviour for the next request that matches ``method`` (``""``: any)."""

    action: Action
    method: str = ""
    body: bytes = b""  # the body of "replace", the error message of "400", the kind of "corrupt", the
    # service names "cut" drops (comma-separated; none: one item, at random)
    then: Callable[[], object] | None = None  # run once the upstream answered (e.g. another caller's write)
    path: str = ""  # only a request whose path contains this (e.g. one account's name)


@dataclass
class FaultProxy:
    """A loopback proxy in a thread of its own; use as a context manager.

    Attributes:
        upstream: Base URL of the server to forward to, e.g. a served simulator's.
        drop_after_rate: Share of callbacks calls forwarded, then left unanswered.
        error_rate: Share answered 500 without forwarding.
        corrupt_rate: Share forwarded whose 2xx body is then corrupted.
        stall_seconds: How long a "stall" holds the answer.
        empty_list_rate: Share of listings (``GET``) answered with an empty body.
        cut_list_rate: Share of listings answered without one of their items.
        reorder_list_rate: Share of listings answered with their items in another order.
        seed: Seed of the random draws.
        throttle_logins: How many of the first logins are answered 429 with the gateway's throttle fault.
        throttle_retry_after: The ``Retry-After`` of those answers.
        logins: Logins that reached the proxy: ``"throttled"``, ``"forwarded"``, ``"worked"`` (the
            upstream answered 2xx) and ``"inside a throttle"`` (sent before an announced wait was over).
    """

    upstream: str
    drop_after_rate: float = 0.0
    error_rate: float = 0.0
    corrupt_rate: float = 0.0
    stall_seconds: float = 3.0
    empty_list_rate: float = 0.0
    cut_list_rate: float = 0.0
    reorder_list_rate: float = 0.0
    seed: int | None = None
    scripted: deque[Rule] = field(default_factory=deque)
    applied: Counter[str] = field(default_factory=Counter)
    throttle_logins: int = 0
    throttle_retry_after: float = 1.0
    logins: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._throttled_until = 0.0  # time.monotonic() at which the last announced wait ends
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(
        self,
        action: Action,
        method: str = "",
        body: bytes = b"",
        then: Callable[[], object] | None = None,
        path: str = "",
    ) -> None:
        """Apply ``action`` to the next callbacks call with ``method`` (and ``path`` in its path).

        ``then`` runs after forwarding.
        """
        with self._lock:
            self.scripted.append(Rule(action, method.upper(), body, then, path))

    def _login(self) -> bool:
        """Count a login; whether it is to be throttled."""
        with self._lock:
            now = time.monotonic()
            if now < self._throttled_until:
                self.logins["inside a throttle"] += 1
            if self.logins["throttled"] < self.throttle_logins:
                self.logins["throttled"] += 1
                self._throttled_until = now + self.throttle_retry_after
                return True
            self.logins["forwarded"] += 1
            return False

    def _choose(self, method: str, path: str) -> Rule:
        if not CALLBACKS.match(path):
            return Rule("pass")
        with self._lock:
            for rule in self.scripted:
                if rule.method in ("", method) and rule.path in path:
                    self.scripted.remove(rule)
                    self.applied[rule.action] += 1
                    return rule
            roll = self._rng.random()
            for action, rate in (("drop-after", self.drop_after_rate), ("500", self.error_rate)):
                if roll < rate:
                    self.applied[action] += 1
                    return Rule(action)  # type: ignore[arg-type]
                roll -= rate
            if roll < self.corrupt_rate:
                self.applied["corrupt"] += 1
                return Rule("corrupt")
            if method == "GET":
                roll = self._rng.random()
                listing: tuple[tuple[Action, float], ...] = (
                    ("empty", self.empty_list_rate),
                    ("cut", self.cut_list_rate),
                    ("reorder", self.reorder_list_rate),
                )
                for action, rate in listing:
                    if roll < rate:
                        self.applied[action] += 1
                        return Rule(action)
                    roll -= rate
        return Rule("pass")

    # -- serving ------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _shutdown(self) -> None:
        """Stop accepting, then end the connections still open (e.g. a stalled answer)."""
        assert self._server is not None
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._http.aclose()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._http = httpx2.AsyncClient(base_url=self.upstream, timeout=30)
        self._server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:] if ":" in line]
            length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
            body = await reader.readexactly(length) if length else b""
            path = target.split("?", 1)[0]
            if path == LOGIN and self._login():
                await _answer(writer, 429, THROTTLE_FAULT, f"{self.throttle_retry_after:g}")
                return
            rule = self._choose(method, path)
            if rule.action == "drop-before":
                return
            if rule.action == "500":
                payload = b'{"errorCode":"UnifiedWebService.REQUEST_FAILED.UnexpectedError","errorMessage":"proxy"}'
                await _answer(writer, 500, payload)
                return
            if rule.action == "400":  # a refusal whose message quotes something (servers echo input)
                message = rule.body.decode("utf-8", "replace").replace('"', "'")
                await _answer(writer, 400, f'{{"errorCode":"INPUT_INVALID","errorMessage":"{message}"}}'.encode())
                return
            forwarded = {k: v for k, v in headers if k.lower() not in _HOP_HEADERS}
            response = await self._http.request(method, target, headers=forwarded, content=body)
            if rule.then is not None:
                rule.then()
            if rule.action == "drop-after":
                return  # the upstream applied it; the answer is lost
            if rule.action == "stall":
                await asyncio.sleep(self.stall_seconds)
            payload = response.content
            if path == LOGIN and response.is_success:
                with self._lock:
                    self.logins["worked"] += 1
            if response.is_success:
                if rule.action == "corrupt":
                    payload = self._corrupt(payload, rule.body.decode())
                elif rule.action == "empty":
                    payload = b""
                elif rule.action == "replace":
                    payload = rule.body
                elif rule.action in ("cut", "reorder"):
                    payload = self._relist(payload, rule)
            await _answer(writer, response.status_code, payload, response.headers.get("retry-after", ""))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    def _relist(self, payload: bytes, rule: Rule) -> bytes:
        """A listing's answer with items dropped (``cut``) or in reverse order (``reorder``)."""
        try:
            items = json.loads(payload)
        except ValueError:
            return payload
        if not isinstance(items, list) or not items:
            return payload
        if rule.action == "reorder":
            return json.dumps(items[::-1]).encode()
        names = [n for n in rule.body.decode().split(",") if n]
        if names:
            kept = [item for item in items if item.get("serviceName", item.get("name")) not in names]
        else:
            with self._lock:
                drop = self._rng.randrange(len(items))
            kept = items[:drop] + items[drop + 1 :]
        return json.dumps(kept).encode()

    def _corrupt(self, payload: bytes, kind: str = "") -> bytes:
        """A broken body: ``cut`` short, ``bytes`` that are not UTF-8, or ``prefix``ed so it is not JSON."""
        if not kind:
            with self._lock:
                kind = self._rng.choice(["cut", "bytes", "prefix"])
        if kind == "cut":
            return payload[: max(1, len(payload) - 3)]
        if kind == "bytes":
            return b"\xff\xfe" + payload
        return b"<html>upstream error</html>" + payload


_REASONS = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error"}


async def _answer(writer: asyncio.StreamWriter, status: int, payload: bytes, retry_after: str = "") -> None:
    reason = _REASONS.get(status, "Status")
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n"
    head += "Content-Type: application/json\r\n"
    if retry_after:
        head += f"Retry-After: {retry_after}\r\n"
    writer.write(head.encode("latin-1") + b"\r\n" + payload)
    await writer.drain()
