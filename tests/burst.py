"""Bursts of simultaneous HTTP requests, and idle sockets held open, against a server on loopback.

Written on raw asyncio streams so that a thousand connections cost the sender little: each
connection carries one request (``Connection: close``), as a burst of separate deliveries does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Outcome:
    """What a burst got back: statuses counted, and how many 503s said when to come back."""

    statuses: Counter[int] = field(default_factory=Counter)
    retry_after: int = 0  # 503s with a Retry-After header
    answers: dict[int, int] = field(default_factory=dict)  # request's index -> status (0: no answer)

    def add(self, index: int, status: int, retry: bool) -> None:
        self.answers[index] = status
        self.statuses[status] += 1
        self.retry_after += status == 503 and retry


async def _one(host: str, port: int, index: int, request: bytes, outcome: Outcome, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
            finally:
                writer.close()
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        outcome.add(index, 0, False)  # no answer at all: reset, refused or timed out
        return
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    outcome.add(index, status, any(line.lower().startswith("retry-after:") for line in lines[1:]))


def post(path: str, body: bytes, port: int) -> bytes:
    """One HTTP/1.1 POST of ``body``, closing the connection after the answer."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def aburst(port: int, requests: list[bytes], *, timeout: float = 60.0) -> Outcome:
    """Send every request at once, each on a connection of its own; what came back."""
    outcome = Outcome()
    await asyncio.gather(*(_one("127.0.0.1", port, i, r, outcome, timeout) for i, r in enumerate(requests)))
    return outcome


def burst(port: int, requests: list[bytes], *, timeout: float = 60.0) -> Outcome:
    """:func:`aburst`, blocking."""
    return asyncio.run(aburst(port, requests, timeout=timeout))


@contextlib.contextmanager
def idle_sockets(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that connect and then send nothing, held open until the block ends."""
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        yield held
    finally:
        for sock in held:
            sock.close()
