"""Serve a simulator to httpx2 in-process: no sockets, same answers as the loopback server."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx2

if TYPE_CHECKING:
    from tskit.simulator._core import Reply, Simulator


class SimulatorTransport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """An httpx2 transport, for both ``httpx2.Client`` and ``httpx2.AsyncClient``, backed by a simulator."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator

    @property
    def realm(self) -> Simulator:
        """The server this transport reaches: clients of one simulator share their login."""
        return self.simulator

    def _reply(self, request: httpx2.Request) -> Reply:
        raw_path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers.raw}
        return self.simulator.handle(request.method, raw_path, headers, request.content)

    @staticmethod
    def _response(reply: Reply, request: httpx2.Request) -> httpx2.Response:
        if reply.drop:
            raise httpx2.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return httpx2.Response(reply.status, headers=list(reply.headers), content=reply.body, request=request)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Answer a request of ``httpx2.Client``."""
        request.read()
        reply = self._reply(request)
        if reply.delay:
            time.sleep(reply.delay)
        return self._response(reply, request)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Answer a request of ``httpx2.AsyncClient``."""
        await request.aread()
        reply = self._reply(request)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return self._response(reply, request)
