"""A simulator whose callbacks calls can be held at the door: a test acts while one is in flight."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx2

from tskit.simulator import Simulator


class Gate:
    """The next callbacks request with ``method`` waits here until :attr:`release` is set.

    :attr:`arrived` is set once it waits: the call is then in flight, whatever the machine's load.
    """

    def __init__(self, method: str) -> None:
        self.method = method
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def wait_arrived(self, seconds: float = 30.0) -> None:
        """Wait (without blocking the loop) until the request is held; fail after ``seconds``."""
        assert await asyncio.to_thread(self.arrived.wait, seconds), f"no {self.method} request came"


class GatedTransport(httpx2.AsyncBaseTransport):
    """The simulator's in-process transport, with the doors of :meth:`GatedSimulator.hold`."""

    def __init__(self, sim: GatedSimulator) -> None:
        self.sim = sim
        self.inner = Simulator.transport(sim)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        gate = self.sim.gate_for(request)
        if gate is not None:
            gate.arrived.set()
            while not gate.release.is_set():  # (an Event of threading: the loop may be any thread's)
                await asyncio.sleep(0.005)
        response: httpx2.Response = await self.inner.handle_async_request(request)
        return response


class GatedSimulator(Simulator):
    """A :class:`Simulator` whose in-process callbacks requests can be held one at a time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gates: list[Gate] = []
        self._gates_lock = threading.Lock()

    def hold(self, method: str) -> Gate:
        """Hold the next callbacks request with ``method`` (``"GET"``, ``"POST"``, ``"DELETE"``)."""
        gate = Gate(method)
        with self._gates_lock:
            self._gates.append(gate)
        return gate

    def gate_for(self, request: httpx2.Request) -> Gate | None:
        """The gate that holds ``request``, taken off the list; ``None`` when it may pass."""
        if "/m2m/v1/callbacks/" not in request.url.path:
            return None
        with self._gates_lock:
            for gate in self._gates:
                if gate.method == request.method:
                    self._gates.remove(gate)
                    return gate
        return None

    def transport(self) -> Any:
        """The in-process transport, gated."""
        return GatedTransport(self)
