"""Listener throughput: messages accepted and durably stored per second, beside a bare uvicorn app.

Both servers run in their own process with the same uvicorn settings; a load generator in this
process POSTs N distinct ThingSpace messages (default 20,000) with C requests in flight (default
64) over loopback, first to the bare app (answers 200, stores nothing), then to ``tskit listen``
(checks the credentials in each body, commits each message to SQLite with synchronous=FULL
before answering). Rounds alternate. After the listener runs, the store is opened and every
message is looked for: nothing may be lost.

With ``--burst``, instead: bursts of simultaneous messages (default 300, 1,000 and 3,000), each on a
connection of its own, against ``tskit listen`` at its default limits; then 300 idle sockets held
while 40 valid messages arrive; then 3,000 wrong passwords from one source. Counts: answered 200
and stored, refused 503 (with ``Retry-After``), acknowledged but not stored, log lines.

Run: ``.venv/bin/python -m benchmarks.bench_listener [--messages 20000] [--concurrency 64] [--rounds 3]``
or ``.venv/bin/python -m benchmarks.bench_listener --burst [--sizes 300,1000,3000]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.burst import Outcome, burst, idle_sockets, post
from tskit._serving import enough_open_files
from tskit.simulator import build_message

GOAL_RATE = 2000
GOAL_SHARE = 0.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                time.sleep(0.5)  # the server sees this probe closed before it is measured
                return
        time.sleep(0.05)
    raise RuntimeError("the server did not start")


async def load(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, int]:
    """Seconds to POST every body, and how many were answered 2xx.

    Written on asyncio streams (one kept-alive HTTP/1.1 connection per worker) so that the load
    generator costs as little CPU as possible and the server under test is what gets measured.
    """
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        "User-Agent: Verizon's callback service\r\nContent-Length: "
    ).encode()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    ok = 0

    async def worker() -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while not queue.empty():
                body = queue.get_nowait()
                writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                ok += status_line.split(b" ", 2)[1].startswith(b"2")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, ok


def run_server(command: list[str], port: int, url: str, bodies: list[bytes], concurrency: int) -> tuple[float, int]:
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        try:
            wait_until_up(port, proc)
            return asyncio.run(load(url, bodies, concurrency))
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main(messages: int, concurrency: int, rounds: int) -> None:
    password = "bench-pw-1"
    bodies = [
        json.dumps(
            build_message("CarrierService", account_name="0000123456-00001", username="tsuser", password=password)
        ).encode()
        for _ in range(messages)
    ]
    ids = {json.loads(b)["requestId"] for b in bodies}
    env_password = {**os.environ, "BENCH_PW": password}
    bare_rates, listener_rates = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for round_number in range(rounds):
            port = free_port()
            seconds, ok = run_server(
                [sys.executable, "-m", "benchmarks._bare_app", str(port)],
                port,
                f"http://127.0.0.1:{port}/callbacks",
                bodies,
                concurrency,
            )
            assert ok == messages, f"bare app answered {ok} of {messages}"
            bare_rates.append(messages / seconds)

            port, store = free_port(), Path(scratch) / f"round{round_number}.db"
            command = [
                sys.executable,
                "-m",
                "tskit",
                "listen",
                "--port",
                str(port),
                "--store",
                str(store),
                "--username",
                "tsuser",
                "--password-env",
                "BENCH_PW",
            ]
            os.environ["BENCH_PW"] = password
            seconds, ok = run_server(
                command, port, f"http://127.0.0.1:{port}/callbacks/CarrierService", bodies, concurrency
            )
            assert ok == messages, f"listener acknowledged {ok} of {messages}"
            with contextlib.closing(sqlite3.connect(store)) as db:
                stored = {r for (r,) in db.execute("SELECT request_id FROM messages")}
            lost = ids - stored
            assert not lost, f"{len(lost)} acknowledged messages are not in the store"
            listener_rates.append(messages / seconds)
            print(
                f"  round {round_number + 1}: bare {bare_rates[-1]:7.0f} msg/s, listener {listener_rates[-1]:7.0f} "
                f"msg/s, {len(stored)} stored, 0 lost"
            )
    del env_password
    bare, listener = statistics.median(bare_rates), statistics.median(listener_rates)
    share = statistics.median(lr / br for lr, br in zip(listener_rates, bare_rates, strict=True))
    print(f"{messages} messages, {concurrency} in flight, {rounds} rounds (medians):")
    print(f"  bare uvicorn app: {bare:.0f} msg/s")
    print(
        f"  tskit listener:   {listener:.0f} msg/s accepted and committed "
        f"(goal >= {GOAL_RATE}: {'OK' if listener >= GOAL_RATE else 'UNDER'})"
    )
    print(f"  listener / bare:  {share:.2f} (goal >= {GOAL_SHARE}: {'OK' if share >= GOAL_SHARE else 'UNDER'})")


# -- bursts, held sockets and wrong passwords ----------------------------------------------------

LIMIT = 256  # tskit listen's default --max-connections


@dataclass
class BurstFigures:
    """What one scenario got: answers counted, and what the store holds of the messages sent."""

    kind: str  # "burst", "idle" or "wrong"
    name: str
    sent: int
    outcome: Outcome
    stored: int  # of the messages sent, how many the store holds
    acknowledged_not_stored: int
    log_lines: int = 0


def bodies(count: int, password: str) -> list[tuple[str, bytes]]:
    """``count`` distinct messages: (request id, the POST on the wire)."""
    out = []
    for _ in range(count):
        body = build_message("CarrierService", account_name="0000123456-00001", username="tsuser", password=password)
        out.append((str(body["requestId"]), post("/callbacks/CarrierService", json.dumps(body).encode(), 0)))
    return out


@contextlib.contextmanager
def listening(scratch: Path, name: str, password: str) -> Iterator[tuple[int, Path, Path]]:
    """``tskit listen`` in its own process at its default limits: (port, store, stderr file)."""
    port, store, log = free_port(), scratch / f"{name}.db", scratch / f"{name}.log"
    command = [sys.executable, "-m", "tskit", "listen", "--port", str(port), "--store", str(store),
               "--username", "tsuser", "--password-env", "BENCH_PW"]  # fmt: skip
    with (
        log.open("wb") as err,
        subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "BENCH_PW": password}
        ) as proc,
    ):
        try:
            wait_until_up(port, proc)
            yield port, store, log
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def stored_of(store: Path, ids: Sequence[str]) -> set[str]:
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        held = {r for (r,) in db.execute("SELECT request_id FROM messages")}
    return held & set(ids)


def scenario(kind: str, name: str, port: int, store: Path, messages: list[tuple[str, bytes]]) -> BurstFigures:
    outcome = burst(port, [wire for _, wire in messages], timeout=120)
    ids = [request_id for request_id, _ in messages]
    held = stored_of(store, ids)
    lost = sum(1 for i, status in outcome.answers.items() if status == 200 and ids[i] not in held)
    return BurstFigures(kind, name, len(messages), outcome, len(held), lost)


def burst_figures(scratch: Path, sizes: Sequence[int], *, idle: int = 300, valid: int = 40, wrong: int = 3000,
                  password: str = "bench-pw-1") -> list[BurstFigures]:  # fmt: skip
    """Every scenario against a fresh ``tskit listen`` each; the sender's open-files limit raised for it."""
    enough_open_files(max(sizes, default=0) + idle + 1024)
    figures = []
    for size in sizes:
        with listening(scratch, f"burst{size}", password) as (port, store, _):
            figures.append(scenario("burst", f"burst of {size:,}", port, store, bodies(size, password)))
    with listening(scratch, "idle", password) as (port, store, _), idle_sockets(port, idle):
        time.sleep(1.5)  # the held sockets are idle past the grace a connection gets
        figures.append(
            scenario("idle", f"{valid} valid, {idle} idle sockets held", port, store, bodies(valid, password))
        )
    if not wrong:
        return figures
    with listening(scratch, "wrong", password) as (port, store, log):
        outcome, guesses = Outcome(), bodies(wrong, "wrong-pw-1")
        for start in range(0, wrong, 200):  # 200 at a time: below the connection limit, as fast as answered
            part = burst(port, [w for _, w in guesses[start : start + 200]], timeout=120)
            outcome.statuses.update(part.statuses)
        time.sleep(11)  # the aggregated log line of the last interval
        lines = sum(1 for line in log.read_text().splitlines() if "refused" in line)
        figures.append(BurstFigures("wrong", f"{wrong:,} wrong passwords, one source", wrong, outcome, 0, 0, lines))
    return figures


def print_burst(figures: list[BurstFigures]) -> None:
    print(f"tskit listen at its defaults (max_connections {LIMIT}):")
    for f in figures:
        answers = ", ".join(f"{status or 'no answer'}: {n:,}" for status, n in sorted(f.outcome.statuses.items()))
        line = f"  {f.name}: {answers}; stored {f.stored:,}, 503 with Retry-After {f.outcome.retry_after:,}"
        line += f", acknowledged but not stored {f.acknowledged_not_stored}"
        if f.log_lines:
            line += f"; {f.log_lines} log lines"
        print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burst", action="store_true", help="bursts, held sockets and wrong passwords instead")
    parser.add_argument("--sizes", default="300,1000,3000", help="burst sizes, comma-separated (with --burst)")
    options = parser.parse_args()
    if options.burst:
        with tempfile.TemporaryDirectory() as scratch:
            print_burst(burst_figures(Path(scratch), [int(n) for n in options.sizes.split(",")]))
    else:
        main(options.messages, options.concurrency, options.rounds)
