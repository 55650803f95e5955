"""The listener under bursts, held idle sockets and repeated wrong credentials: it keeps serving.

Counts, not wall-clock: how many messages were answered 200 and stored, how many refused 503 (each
with ``Retry-After``), how many log lines a flood of wrong passwords left.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path

import pytest

from tests.burst import burst, idle_sockets, post
from tests.conftest import FakeClock
from tskit._serving import enough_open_files
from tskit.listener import Listener
from tskit.listener._throttle import RefusalLog, Throttle
from tskit.simulator import build_message

pytestmark = pytest.mark.server
PASSWORD = "burst-pw-17"
LIMIT = 256  # the listener's default max_connections


def messages(count: int, password: str = PASSWORD) -> list[bytes]:
    path = "/callbacks/CarrierService"
    return [
        post(path, json.dumps(build_message("CarrierService", account_name="0000123456-00001",
                                            username="tsuser", password=password)).encode(), 0)
        for _ in range(count)
    ]  # fmt: skip


@pytest.fixture(autouse=True)
def _files() -> None:
    enough_open_files(8192)  # both ends of each connection are in this process


@pytest.mark.parametrize("size", [300, 1000])
def test_a_burst_beyond_the_limit_stores_the_limits_worth_and_refuses_the_rest_one_by_one(
    tmp_path: Path, size: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tskit.listener")
    with Listener(username="tsuser", password=PASSWORD, port=0, store=tmp_path / "burst.db") as listener:
        outcome = burst(listener.port, messages(size))
        stored = listener.count()
        assert set(outcome.statuses) <= {200, 503}, outcome.statuses  # every connection got an answer
        assert outcome.statuses[200] == stored >= LIMIT  # each 200 is a stored message
        assert outcome.statuses[503] == size - stored
        assert outcome.retry_after == outcome.statuses[503]  # each 503 says when to send again
        gate = listener._server.gate if listener._server is not None else None
        # refused at once, or (a connection still silent after a second, this loaded machine) closed for room
        assert gate is not None and gate.refused + gate.evicted == outcome.statuses[503]
        assert listener.app.rejected == 0
    # one line says the limit was met; the counts follow once per 10 s, never a line per connection
    assert [r.getMessage() for r in caplog.records] == [
        "at the limit of 256 connections: refusing new ones with 503, closing idle ones"
    ]


def test_held_idle_sockets_do_not_starve_deliveries(tmp_path: Path) -> None:
    # header_timeout far beyond the test: the idle sockets are not closed by a timeout but to make room
    with (
        Listener(
            username="tsuser", password=PASSWORD, port=0, store=tmp_path / "idle.db", header_timeout=60
        ) as listener,
        idle_sockets(listener.port, 300),
    ):
        time.sleep(1.5)  # idle longer than the grace a connection gets before it may be closed for room
        outcome = burst(listener.port, messages(40))
        assert outcome.statuses[200] == listener.count() >= 38  # >= 95% stored
        assert listener.count() == 40
        assert listener._server is not None and listener._server.gate.evicted >= 40


def test_repeated_wrong_credentials_from_one_source_are_slowed_and_logged_in_aggregate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tskit.listener")
    with Listener(username="tsuser", password=PASSWORD, port=0, store=tmp_path / "wrong.db") as listener:
        outcome = burst(listener.port, messages(200, password="guess-pw-1"))  # within the connection limit
        throttle = listener.app.throttle
        # all checked; a few answered at once, a few slowly; the rest answered 429 at once
        assert outcome.statuses[401] <= throttle.free + 1 + throttle.max_waiting
        assert outcome.statuses[429] == throttle.turned_away >= 200 - throttle.free - 1 - throttle.max_waiting
        assert outcome.statuses[401] + outcome.statuses[429] == 200
        refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused")]
        assert refusals[0] == "refused a message from 127.0.0.1 with 401: wrong username or password"
        assert len(refusals) == 2  # the first 401 and the first 429; the rest are counted for later
        # the right password from the same source is stored at once; the source stays slowed for wrong ones
        assert burst(listener.port, messages(1)).statuses == {200: 1}
        assert throttle.delay("127.0.0.1") > 0
        assert listener.count() == 1


def test_a_flood_of_wrong_passwords_never_keeps_the_right_ones_out(tmp_path: Path) -> None:
    # Behind a reverse proxy every sender has one address: a guesser's flood must not cost a delivery.
    with Listener(username="tsuser", password=PASSWORD, port=0, store=tmp_path / "flood.db") as listener:
        flooded: list[int] = []

        def flood() -> None:
            for _ in range(3):
                flooded.append(sum(burst(listener.port, messages(150, password="guess-pw-2")).statuses.values()))

        flooding = threading.Thread(target=flood)
        flooding.start()
        valid = [burst(listener.port, messages(1)).statuses for _ in range(20)]
        flooding.join(timeout=120)
        assert valid == [{200: 1}] * 20 and listener.count() == 20
        assert flooded == [150, 150, 150] and listener.app.throttle.turned_away > 0  # the flood was met


def test_the_throttle_doubles_the_wait_leaks_and_forgets_sources_beyond_its_size(clock: FakeClock) -> None:
    throttle = Throttle(free=2, leak=1.0, max_delay=2.0, max_sources=3, clock=clock)
    waits = []
    for _ in range(8):
        waits.append(throttle.delay("198.51.100.7"))
        throttle.failed("198.51.100.7")
    assert waits == [0, 0, 0, 0.1, 0.2, 0.4, 0.8, 1.6]
    throttle.failed("198.51.100.7")
    assert throttle.delay("198.51.100.7") == 2.0  # capped
    clock.advance(6.5)  # 6.5 failures forgotten of 9
    assert throttle.delay("198.51.100.7") == pytest.approx(0.05 * 2**0.5)
    for n in range(10):
        throttle.failed(f"203.0.113.{n}")
    assert len(throttle) == 3  # bounded: the least recently seen are dropped
    clock.advance(100)
    assert throttle.delay("203.0.113.9") == 0 and len(throttle) == 2  # an emptied bucket is dropped


@pytest.mark.anyio
async def test_refusals_are_logged_once_then_one_line_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tskit.test")
    refusals = RefusalLog(logging.getLogger("tskit.test"), interval=0.05, max_kinds=2)
    for _ in range(500):
        refusals.refused("198.51.100.7", 401, "wrong username or password")
    for n in range(5):  # more kinds than it tallies: the others are tallied together
        refusals.refused(f"203.0.113.{n}", 401, "wrong username or password")
    while refusals.lines < 5:
        await asyncio.sleep(0.01)
    assert [r.getMessage() for r in caplog.records] == [
        "refused a message from 198.51.100.7 with 401: wrong username or password",
        "refused a message from 203.0.113.0 with 401: wrong username or password",
        "refused a message from other sources with 401: wrong username or password",
        "refused 499 more messages from 198.51.100.7 with 401 in the last 0.05 s: wrong username or password",
        "refused 3 more messages from other sources with 401 in the last 0.05 s: wrong username or password",
    ]


def test_at_the_limit_the_longest_idle_slow_head_is_answered_503_and_closed_for_a_delivery(tmp_path: Path) -> None:
    with Listener(username="tsuser", password=PASSWORD, port=0, max_connections=4, header_timeout=60) as capped:
        with idle_sockets(capped.port, 4) as held:
            for sock in held:
                sock.sendall(b"POST /callbacks HTTP/1.1\r\nHost: x\r\n")  # heads that never end (slowloris)
            time.sleep(1.5)  # past the grace
            assert burst(capped.port, messages(2)).statuses == {200: 2}
            for sock in held:
                sock.settimeout(10)
            first = [sock.recv(100).split(b"\r\n", 1)[0] for sock in held[:2]]
            assert first == [b"HTTP/1.1 503 Service Unavailable"] * 2  # the two oldest made room
        assert capped.count() == 2
        assert capped._server is not None and (capped._server.gate.evicted, capped._server.gate.refused) == (2, 0)


def test_at_the_limit_the_longest_slow_body_is_answered_503_and_closed_for_a_delivery(tmp_path: Path) -> None:
    head = b"POST /callbacks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    with Listener(
        username="tsuser", password=PASSWORD, port=0, max_connections=4, header_timeout=60, body_timeout=60
    ) as capped:
        with idle_sockets(capped.port, 4) as held:
            for sock in held:
                sock.sendall(head + b'{"requestId": "')  # bodies that never end
            time.sleep(1.5)  # past the grace
            assert burst(capped.port, messages(2)).statuses == {200: 2}
            for sock in held:
                sock.settimeout(10)
            first = [sock.recv(100).split(b"\r\n", 1)[0] for sock in held[:2]]
            assert first == [b"HTTP/1.1 503 Service Unavailable"] * 2  # the two oldest made room
        assert capped.count() == 2 and capped.app.rejected == 0  # the closed ones are not refusals
        assert capped._server is not None and (capped._server.gate.evicted, capped._server.gate.refused) == (2, 0)
