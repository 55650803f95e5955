"""Shared fixtures: simulators in-process and on loopback, clients wired to them, a fake clock."""

from __future__ import annotations

import asyncio
import functools
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx2
import pytest

import tskit
from tskit.simulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_USERNAME,
    Simulator,
    SimulatorServer,
)

# pytest-xdist's workers (and a run started with nohup or `&` from a script) ignore Ctrl-C, and the
# processes the tests start inherit that: a `tskit listen` sent SIGINT before it set its own handler
# would then never stop. The tests that send Ctrl-C need it to mean what it means on a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

IN_PROCESS_URL = "https://simulator.tskit.invalid"


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_thingspace_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never pick up a developer's real credentials, nor write to their config folder."""
    for name in ("CLIENT_ID", "CLIENT_SECRET", "USERNAME", "PASSWORD", "BASE_URL"):
        monkeypatch.delenv(f"THINGSPACE_{name}", raising=False)
    monkeypatch.delenv("TSKIT_FINGERPRINT_KEY", raising=False)
    monkeypatch.setenv("TSKIT_CONFIG_DIR", str(tmp_path_factory.mktemp("tskit-config")))


@pytest.fixture(autouse=True)
def _fresh_sessions() -> None:
    """Each test starts with no session of any identity (loopback ports get reused)."""
    from tskit.auth import coordinator

    coordinator.forget_all()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The seconds of every ``asyncio.sleep`` awaited in the test's own thread, in order (sleeps of 0 left out).

    How long a client waited, read from what it asked for rather than from a clock: a loaded
    machine stretches the clock, never these figures. The sleeps still happen.
    """
    asked: list[float] = []
    real_sleep = asyncio.sleep
    here = threading.get_ident()

    async def recorded(delay: float, result: object = None) -> object:
        if delay and threading.get_ident() == here:
            asked.append(delay)
        return await real_sleep(delay, result)

    monkeypatch.setattr(asyncio, "sleep", recorded)
    return asked


def eventually(condition: Callable[[], object], seconds: float = 30.0) -> None:
    """Wait until ``condition()`` holds, checking every 10 ms; fail after ``seconds`` (a bound on a hang)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"still not so after {seconds} s"
        time.sleep(0.01)


async def aeventually(condition: Callable[[], object], seconds: float = 30.0) -> None:
    """:func:`eventually` for a coroutine: the loop runs on between the checks."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"still not so after {seconds} s"
        await asyncio.sleep(0.01)


@pytest.fixture
def patient_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers started in the test never close an idle connection to make room for a new one.

    A held connection stays held however long a loaded machine takes between two lines of the
    test, so that a connection beyond the limit is refused, not let in in place of an idle one.
    """
    from tskit import _serving

    monkeypatch.setattr(_serving.Gate, "__init__", functools.partialmethod(_serving.Gate.__init__, idle_grace=3600.0))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim() -> Simulator:
    """A fresh simulator with the demo data, on a clock of its own (moved by ``sim.advance``)."""
    return Simulator(clock=FakeClock())


@pytest.fixture
def demo_credentials() -> tskit.Credentials:
    return tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, DEMO_PASSWORD)


@pytest.fixture
def server(sim: Simulator) -> Iterator[SimulatorServer]:
    with sim.serve() as running:
        yield running


def make_client(
    sim: Simulator,
    clock: FakeClock,
    *,
    credentials: tskit.Credentials | None = None,
    base_url: str | None = None,
    retry: tskit.RetryPolicy | None = None,
    timeout: float = 10.0,
    transport: httpx2.AsyncBaseTransport | None = None,
) -> tskit.ThingSpaceClient:
    """A client of ``sim``: in-process unless ``base_url`` points at its loopback server."""
    credentials = credentials or tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, DEMO_PASSWORD)
    url = base_url or IN_PROCESS_URL
    auth = tskit.ThingSpaceAuth(credentials, base_url=url, clock=clock)
    if transport is None and base_url is None:
        transport = sim.transport()
    return tskit.ThingSpaceClient(
        auth=auth,
        base_url=url,
        transport=transport,
        retry=retry or tskit.RetryPolicy(backoff=0.01),
        timeout=timeout,
    )


@pytest.fixture(params=["in-process", "loopback"])
async def client(
    request: pytest.FixtureRequest, sim: Simulator, clock: FakeClock
) -> AsyncIterator[tskit.ThingSpaceClient]:
    """A client of ``sim``, once in-process and once over real HTTP on 127.0.0.1."""
    if request.param == "in-process":
        async with make_client(sim, clock) as c:
            yield c
    else:
        with sim.serve() as running:
            async with make_client(sim, clock, base_url=running.base_url) as c:
                yield c


@pytest.fixture
def ts(sim: Simulator) -> Iterator[tskit.ThingSpace]:
    connection = tskit.connect(simulator=sim)
    yield connection
    connection.close()


@pytest.fixture
def cli_simulator(monkeypatch: pytest.MonkeyPatch) -> Simulator:
    """One simulator shared by the commands of a test, as if they ran against one server."""
    shared = Simulator()
    real_connect = tskit.connect
    monkeypatch.setattr(tskit, "connect", lambda **kw: real_connect(simulator=shared))
    return shared
