"""What the client does with a hostile wire: malformed answers, lost answers, proxies set in the environment."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import httpx2
import pytest

import tskit
from tskit.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME, Simulator

pytestmark = pytest.mark.server
ACCOUNT = "0000123456-00001"

#: What the raw server sends for a request: bytes to send, or None to close without an answer.
Answer = Callable[[str, str], bytes | None]


def ok(body: object) -> bytes:
    data = json.dumps(body).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data)


def thingspace(call: Answer) -> Answer:
    """Token and login as ThingSpace answers them; every other request as ``call`` says."""

    def answer(method: str, path: str) -> bytes | None:
        if path.endswith("/oauth2/token"):
            return ok({"access_token": "t" * 32, "token_type": "Bearer", "expires_in": 3600})
        if path.endswith("/session/login"):
            return ok({"sessionToken": "0f8fad5b-d9cb-469f-a165-70867728950e"})
        return call(method, path)

    return answer


class RawServer:
    """An HTTP/1.1 server on 127.0.0.1 written on sockets, answering each request as told (keep-alive)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: Counter[tuple[str, str]] = Counter()
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                length = next((int(h.split(":")[1]) for h in lines[1:] if h.lower().startswith("content-length")), 0)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                self.requests[(method, target)] += 1
                reply = self.answer(method, target)
                if reply is None:
                    return  # close: the answer is lost
                conn.sendall(reply)

    def count(self, method: str) -> int:
        return sum(n for (m, _), n in self.requests.items() if m == method)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw() -> Iterator[Callable[[Answer], RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Answer) -> RawServer:
        servers.append(RawServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def client_of(server: RawServer, **options: object) -> tskit.ThingSpaceClient:
    creds = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, DEMO_PASSWORD)
    return tskit.ThingSpaceClient(creds, base_url=server.url, retry=tskit.RetryPolicy(backoff=0.01), **options)  # type: ignore[arg-type]


MALFORMED = {
    "bad Content-Length": b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n[]",
    "two Content-Lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n[]",
    "body cut short": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[{",
    "garbage status line": b"HTTP/1.1 abc nonsense\r\n\r\n",
    "not HTTP at all": b"\x16\x03\x01\x00\xa5hello\r\n\r\n",
    "bad gzip": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope",
    "bad chunking": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n[]\r\n0\r\n\r\n",
}


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(MALFORMED))
async def test_a_malformed_answer_is_a_tskit_error_never_a_library_one(raw, name: str) -> None:
    answer = MALFORMED[name]
    server = raw(thingspace(lambda method, path: answer))
    async with client_of(server, timeout=2.0) as client:  # a body cut short waits for the rest
        with pytest.raises(Exception) as caught:
            await client.list_callbacks(ACCOUNT)
    assert isinstance(caught.value, tskit.ThingSpaceError), repr(caught.value)
    assert type(caught.value).__module__.startswith("tskit")
    assert f"GET /api/m2m/v1/callbacks/{ACCOUNT}" in str(caught.value)


@pytest.mark.anyio
async def test_a_malformed_login_answer_is_a_tskit_error_too(raw) -> None:
    def answer(method: str, path: str) -> bytes | None:
        return b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}"

    server = raw(answer)
    async with client_of(server) as client:
        with pytest.raises(tskit.ThingSpaceError, match="oauth2/token"):
            await client.list_callbacks(ACCOUNT)
    assert server.count("POST") == 1  # and the failed token request is not sent again by anyone


@pytest.mark.anyio
async def test_a_delete_whose_answer_is_lost_is_sent_once_on_a_reused_connection(raw) -> None:
    deleted = threading.Event()

    def call(method: str, path: str) -> bytes | None:
        if method == "DELETE":
            deleted.set()
            return None  # it took effect, the answer is lost
        return ok(
            []
            if deleted.is_set()
            else [{"accountName": ACCOUNT, "serviceName": "CarrierService", "url": "https://l.example.com/c"}]
        )

    server = raw(thingspace(call))
    async with client_of(server) as client:
        assert len(await client.list_callbacks(ACCOUNT)) == 1  # the connection is now kept alive
        result = await client.deregister_callback(ACCOUNT, "CarrierService")
    assert result.confirmed_by_listing  # tskit looked, instead of resending
    assert server.count("DELETE") == 1
    assert server.count("GET") == 3  # the first listing, then two that must agree the callback is gone


@pytest.mark.anyio
async def test_a_loopback_base_url_never_goes_through_the_environment_s_proxy(
    raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = raw(lambda method, path: b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    sim = Simulator()
    with sim.serve() as server:
        async with httpx2.AsyncClient() as plain:  # the environment is in force: httpx2 alone uses the proxy
            assert (await plain.get(server.base_url + "/healthz")).status_code == 502
        assert proxy.connections == 1
        ts = tskit.connect(
            client_id=DEMO_CLIENT_ID,
            client_secret=DEMO_CLIENT_SECRET,
            username=DEMO_USERNAME,
            password=DEMO_PASSWORD,
            base_url=server.base_url,
        )
        assert len(await ts.alist_callbacks(ACCOUNT)) == 2
        await ts.aclose()
    assert proxy.connections == 1  # the client secret never went to the proxy
    assert sim.count("login") == 1


@pytest.mark.server
@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1", "::garbage::", "ftp://proxy.invalid"])
def test_an_unusable_proxy_variable_is_a_configuration_error_and_loopback_ignores_it(
    monkeypatch: pytest.MonkeyPatch, proxy: str
) -> None:
    monkeypatch.setenv("ALL_PROXY", proxy)
    ts = tskit.connect(
        client_id="a", client_secret="b", username="c", password="d", base_url="https://ts.example.invalid", timeout=3
    )
    with pytest.raises(tskit.ConfigurationError, match="ALL_PROXY"):
        ts.list_callbacks("0000123456-00001")
    with Simulator().serve() as server:  # a loopback base URL does not even read the proxy variables
        local = tskit.connect(
            client_id=DEMO_CLIENT_ID,
            client_secret=DEMO_CLIENT_SECRET,
            username=DEMO_USERNAME,
            password=DEMO_PASSWORD,
            base_url=server.base_url,
        )
        assert len(local.list_callbacks("0000123456-00001")) == 2
        local.close()
