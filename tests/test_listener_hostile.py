"""The listener against hostile and malformed input, slow and many connections, and a failing store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import eventually
from tskit.cli import main
from tskit.listener import (
    VERIZON_SOURCE_ADDRESSES,
    Listener,
    MessageRefused,
    MessageStore,
    StoreFailed,
    StoreUnavailable,
)
from tskit.listener import _store as store_module
from tskit.listener._writer import Writer
from tskit.simulator import build_message

pytestmark = pytest.mark.server
PASSWORD = "hostile-pw-31"


def message(**changes: Any) -> dict[str, Any]:
    body = build_message("CarrierService", account_name="0000123456-00001", username="tsuser", password=PASSWORD)
    return {**body, **changes}


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    with Listener(
        username="tsuser", password=PASSWORD, store=tmp_path / "hostile.db", port=0, header_timeout=1, body_timeout=1
    ) as running:
        yield running


@pytest.fixture
def patient_listener(tmp_path: Path) -> Iterator[Listener]:
    """A listener with its default header and body timeouts: a loaded machine's slow client is not refused."""
    with Listener(username="tsuser", password=PASSWORD, store=tmp_path / "hostile.db", port=0) as running:
        yield running


HOSTILE: list[tuple[str, bytes]] = [
    ("huge callbackCount", json.dumps(message(callbackCount=10**20)).encode()),
    ("lone surrogate in requestId", json.dumps(message(requestId="\ud800abc")).encode()),
    ("lone surrogate in a nested key", json.dumps(message(deviceResponse={"\udfff": 1})).encode()),
    ("objects nested 150,000 deep", b'{"a":' * 150_000 + b"1" + b"}" * 150_000),
    ("lists nested 200,000 deep", b"[" * 200_000 + b"]" * 200_000),
    ("nested 40 deep", json.dumps(message(deep=json.loads('{"a":' * 40 + "1" + "}" * 40))).encode()),
    ("a 5,000-digit number", json.dumps(message(extra=0)).encode().replace(b'"extra": 0', b'"extra": ' + b"9" * 5000)),
    ("1e999 (infinite)", json.dumps(message(extra=0)).encode().replace(b'"extra": 0', b'"extra": 1e999')),
    ("NaN", json.dumps(message(extra=0)).encode().replace(b'"extra": 0', b'"extra": NaN')),
    ("negative callbackCount", json.dumps(message(callbackCount=-1)).encode()),
    ("boolean callbackCount", json.dumps(message(callbackCount=True)).encode()),
    ("not UTF-8", b'{"requestId": "\xff\xfe"}'),
    ("a JSON string", b'"x"'),
    ("empty", b""),
]
BAD_CREDENTIALS: list[tuple[str, bytes]] = [
    ("lone surrogate password", json.dumps(message(password="\ud800")).encode()),
    ("lone surrogate username", json.dumps(message(username="ts\udc00user")).encode()),
    ("password is a list", json.dumps(message(password=[PASSWORD])).encode()),
    ("username is an object", json.dumps(message(username={"a": 1})).encode()),
]


@pytest.mark.parametrize(("name", "body"), HOSTILE, ids=[n for n, _ in HOSTILE])
def test_hostile_bodies_get_400_naming_the_problem(listener: Listener, name: str, body: bytes) -> None:
    answer = httpx2.post(listener.url_for("CarrierService"), content=body, timeout=10)
    assert answer.status_code == 400, (name, answer.text)
    assert answer.json()["error"]
    assert listener.count() == 0


@pytest.mark.parametrize(("name", "body"), BAD_CREDENTIALS, ids=[n for n, _ in BAD_CREDENTIALS])
def test_hostile_credentials_get_401(listener: Listener, name: str, body: bytes) -> None:
    assert httpx2.post(listener.url, content=body).status_code == 401
    assert listener.count() == 0


@pytest.mark.anyio
async def test_hostile_messages_among_valid_ones_lose_nothing(patient_listener: Listener) -> None:
    listener = patient_listener
    valid = [json.dumps(message()).encode() for _ in range(400)]
    hostile = [body for _, body in HOSTILE + BAD_CREDENTIALS] * 4
    bodies = [(b, True) for b in valid] + [(b, False) for b in hostile]
    bodies.sort(key=lambda item: hash(item[0]))  # interleaved, so they share batches
    limits = httpx2.Limits(max_connections=40)
    async with httpx2.AsyncClient(limits=limits, timeout=30) as http:
        answers = await asyncio.gather(*(http.post(listener.url_for("CarrierService"), content=b) for b, _ in bodies))
    statuses = [a.status_code for a, (_, ok) in zip(answers, bodies, strict=True) if ok]
    refused = [a.status_code for a, (_, ok) in zip(answers, bodies, strict=True) if not ok]
    assert statuses == [200] * 400  # valid messages lost: 0
    assert set(refused) <= {400, 401, 429} and 500 not in refused  # 429: wrong credentials, slowed
    assert listener.count() == 400


def test_a_bad_message_fails_alone_inside_its_batch(tmp_path: Path) -> None:
    store = MessageStore(tmp_path / "batch.db")
    try:
        futures: list[Future[Any]] = [store.put(message(), "CarrierService") for _ in range(100)]
        bad = store.put(message(callbackCount=10**20), "CarrierService")  # values SQLite cannot hold
        futures += [store.put(message(), "CarrierService") for _ in range(100)]
        assert [f.result(timeout=10).attempts for f in futures] == [1] * 200
        with pytest.raises(MessageRefused, match="cannot be stored"):
            bad.result(timeout=10)
        assert store.query("SELECT count(*) FROM messages") == [(200,)]
    finally:
        store.close()


def raw_connection(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed the connection within ``seconds``, and what it sent first."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        return False, received
    return True, received


def test_half_sent_bodies_get_408_and_are_closed(listener: Listener) -> None:
    head = b"POST /callbacks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    socks = [raw_connection(listener.port) for _ in range(20)]
    for sock in socks:
        sock.sendall(head + b'{"requestId": "')
    outcomes = [closed_within(sock, 5) for sock in socks]  # body_timeout=1 s; without one, never
    for sock in socks:
        sock.close()
    assert all(closed for closed, _ in outcomes)  # 20 of 20 closed
    assert all(first.startswith(b"HTTP/1.1 408") for _, first in outcomes)


def test_trickled_headers_are_closed(listener: Listener) -> None:
    socks = [raw_connection(listener.port) for _ in range(20)]
    for sock in socks:
        sock.sendall(b"POST /callbacks HTTP/1.1\r\nHost: x\r\n")  # never ends its headers
    outcomes = [closed_within(sock, 5) for sock in socks]  # header_timeout=1 s; without one, never
    for sock in socks:
        sock.close()
    assert all(closed for closed, _ in outcomes)
    silent = raw_connection(listener.port)  # connects and sends nothing at all
    assert closed_within(silent, 5)[0]
    silent.close()
    assert httpx2.post(listener.url, json=message()).status_code == 200  # the listener still serves


@pytest.mark.usefixtures("patient_gate")
def test_connections_beyond_the_cap_get_503(tmp_path: Path) -> None:
    with Listener(username="tsuser", password=PASSWORD, port=0, max_connections=4, header_timeout=30) as capped:
        held = [raw_connection(capped.port) for _ in range(4)]
        for sock in held:  # accepted in the order they came, before the fifth below
            sock.sendall(b"POST /callbacks HTTP/1.1\r\nHost: x\r\n")
        assert httpx2.post(capped.url, json=message()).status_code == 503
        for sock in held:
            sock.close()
        eventually(lambda: httpx2.post(capped.url, json=message()).status_code == 200)  # once it saw them go


def test_files_are_0600_in_a_0700_folder(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "made" / "here" / "callbacks.db"
        with Listener(username="tsuser", password=PASSWORD, store=path, port=0) as running:
            assert httpx2.post(running.url, json=message()).status_code == 200
            files = running.store.files
            assert {f.name for f in files} >= {"callbacks.db", "callbacks.db-wal", "callbacks.db-shm"}
            modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
        assert set(modes.values()) == {0o600}
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "made").stat().st_mode) == 0o700
    finally:
        os.umask(old)


def test_secrets_are_removed_at_any_depth(listener: Listener, tmp_path: Path) -> None:
    nested = {
        "deviceResponse": {
            "activateResponse": {"password": "deep-pw-1", "nested": [{"clientSecret": "deep-secret-2"}]},
            "sessionToken": "deep-token-3",
        },
        "deviceIds": [{"id": "1", "kind": "IMEI", "userPassword": "deep-pw-4"}],
    }
    assert httpx2.post(listener.url, json=message(**nested)).status_code == 200
    [raw] = listener.raw()
    assert raw["deviceResponse"] == {"activateResponse": {"nested": [{}]}}
    assert raw["deviceIds"] == [{"id": "1", "kind": "IMEI"}]
    listener.stop()
    data = b"".join(p.read_bytes() for p in tmp_path.glob("hostile.db*"))
    for secret in (PASSWORD, "deep-pw-1", "deep-secret-2", "deep-token-3", "deep-pw-4"):
        assert secret.encode() not in data


def test_allowlist_of_source_networks(tmp_path: Path) -> None:
    with Listener(port=0, allow_from=["10.0.0.0/8", "verizon"]) as closed:
        answer = httpx2.post(closed.url, json=message())
        assert answer.status_code == 403 and closed.count() == 0
        # a health check from this machine passes: monitors run next to the listener
        assert httpx2.get(closed.url.rsplit("/", 1)[0] + "/healthz").json() == {"status": "ok"}
        assert httpx2.get(closed.url).status_code == 403
    with Listener(port=0, allow_from=["127.0.0.1/32"]) as opened:
        assert httpx2.post(opened.url, json=message()).status_code == 200
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300' is not an address or network"):
        Listener(port=0, allow_from=["10.0.0.300"])


# -- the writer thread --------------------------------------------------------------------


@pytest.mark.anyio
async def test_cancelled_stores_do_not_stop_the_writer(tmp_path: Path) -> None:
    store = MessageStore(tmp_path / "cancel.db")
    try:
        cancelled = [store.put(message(), "CarrierService") for _ in range(50)]
        for future in cancelled:
            future.cancel()
        assert store.put(message(), "CarrierService").result(timeout=10).attempts >= 1
        task = asyncio.ensure_future(store.store(message(), "CarrierService"))
        await asyncio.sleep(0)
        task.cancel()  # the caller gives up while its message is queued
        # queued behind the cancelled one: the writer meets that one first
        assert (await store.store(message(), "CarrierService")).attempts >= 1
        assert not store.closed
    finally:
        store.close()


def test_a_full_disk_answers_503_then_recovers(tmp_path: Path) -> None:
    with Listener(username="tsuser", password=PASSWORD, store=tmp_path / "full.db", port=0) as running:
        assert httpx2.post(running.url, json=message()).status_code == 200
        pages = running.store.query("PRAGMA page_count")[0][0]
        running.store.query(f"PRAGMA max_page_count={pages}")  # a real SQLITE_FULL on the next growth
        big = message(extra="x" * 200_000)
        full = httpx2.post(running.url, json=big)
        assert full.status_code == 503
        assert full.json()["error"] == "the message store could not write (the disk is full)"
        assert full.headers["retry-after"] == "1"
        health = httpx2.get(running.url.rsplit("/", 1)[0] + "/health")
        assert health.status_code == 503 and health.json()["error"] == "the disk is full"
        running.store.query("PRAGMA max_page_count=1073741823")
        assert httpx2.post(running.url, json=big).status_code == 200  # same writer, going on
        assert running.count() == 2


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_deleted_or_replaced_file_answers_503_then_a_new_file_holds_the_messages(tmp_path: Path, how: str) -> None:
    path = tmp_path / "gone.db"
    with Listener(username="tsuser", password=PASSWORD, store=path, port=0) as running:
        health = running.url.rsplit("/", 1)[0] + "/health"
        assert httpx2.post(running.url, json=message()).status_code == 200
        for file in tmp_path.glob("gone.db*"):
            file.unlink()
        if how == "replaced":
            path.write_bytes(b"")
        answer = httpx2.get(health)
        assert answer.status_code == 503 and answer.json()["error"] == f"its database file was {how}"
        assert str(tmp_path) not in answer.text
        refused = httpx2.post(running.url, json=message(requestId="after-1"))
        assert refused.status_code == 503 and str(tmp_path) not in refused.text  # ThingSpace sends again
        again = httpx2.post(running.url, json=message(requestId="after-1"))
        assert again.status_code == 200
        assert httpx2.get(health).json() == {"status": "ok"}
    with contextlib.closing(sqlite3.connect(path)) as db:  # `with connect()` alone leaves it open
        assert db.execute("SELECT request_id FROM messages").fetchall() == [("after-1",)]


def test_forwarded_headers_do_not_pass_the_allowlist() -> None:
    with Listener(port=0, allow_from=["203.0.113.0/24"]) as running:
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
            value = "for=203.0.113.5" if header == "Forwarded" else "203.0.113.5"
            answer = httpx2.post(running.url, json=message(), headers={header: value})
            assert answer.status_code == 403, header
        assert running.count() == 0


def test_a_websocket_upgrade_is_refused_cleanly(listener: Listener) -> None:
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    answer = httpx2.get(listener.url, headers=headers)
    assert answer.status_code == 405


class BrokenWriter(Writer):
    """A store's writer whose database stops working for good after ``healthy`` batches."""

    healthy = 1

    def _flush(self, db: sqlite3.Connection, batch: list[Any]) -> None:
        if self.healthy <= 0:
            db.close()  # the connection is gone, and reopening fails below
            raise sqlite3.OperationalError("disk I/O error")
        self.healthy -= 1
        super()._flush(db, batch)

    def _connect(self) -> sqlite3.Connection:
        if getattr(self, "started", False):
            raise sqlite3.OperationalError("unable to open database file")
        self.started = True
        return super()._connect()


def test_a_store_that_cannot_go_on_fails_every_call_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "Writer", BrokenWriter)
    store = MessageStore(tmp_path / "broken.db")
    store.put(message(), "CarrierService").result(timeout=10)
    failed = 0
    for _ in range(20):  # each fails when queued, or as soon as the writer finds it cannot go on
        with pytest.raises(StoreFailed, match=r"stopped \(the database could not be written\)"):
            store.put(message(), "CarrierService").result(timeout=10)
        failed += 1
    assert failed == 20
    with pytest.raises(StoreFailed):  # raised by put itself: at once, no future to wait on
        store.put(message(), "CarrierService")
    assert isinstance(store.failure, StoreUnavailable)
    store.close()


def test_the_listener_answers_503_when_its_store_stopped(tmp_path: Path) -> None:
    with Listener(username="tsuser", password=PASSWORD, port=0) as running:
        running.store.close()
        running.store._writer.failed = StoreFailed("the message store stopped: test")  # as the writer does
        answer = httpx2.post(running.url, json=message())
        assert answer.status_code == 503 and "stopped" in answer.json()["error"]
        assert httpx2.get(running.url.rsplit("/", 1)[0] + "/healthz").status_code == 503


# -- tskit listen ---------------------------------------------------------------------------


def test_listen_refuses_to_start_without_credentials(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["listen", "--port", "0", "--store", str(tmp_path / "x.db")]) == 2
    assert "refusing to listen without credentials" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()


def test_the_processes_the_tests_start_take_ctrl_c() -> None:
    """Under pytest-xdist too (its workers ignore SIGINT): else a listener sent Ctrl-C early never stops."""
    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"


def test_listen_with_no_auth_warns_on_start(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tskit", "listen", "--port", "0", "--no-auth", "--store", str(tmp_path / "n.db")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            assert proc.stdout.readline().startswith("Listening for ThingSpace callbacks")
            assert proc.stderr.readline().startswith("WARNING: --no-auth: this listener stores any message")
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)


def test_listen_names_a_bad_allowlist_entry(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LISTEN_PW", PASSWORD)
    code = main(["listen", "--port", "0", "--password-env", "LISTEN_PW", "--allow-from", "verizon,10.1.2.0/33"])
    assert code == 2 and "'10.1.2.0/33' is not an address or network" in capsys.readouterr().err


def test_every_refused_message_is_logged_without_its_credentials(
    listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="tskit.listener"):
        assert httpx2.post(listener.url, json=message(password="wrong-pw-77")).status_code == 401
        assert httpx2.post(listener.url, content=b"{").status_code == 400
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused")]
    assert refusals[0] == "refused a message from 127.0.0.1 with 401: wrong username or password"
    assert refusals[1] == "refused a message from 127.0.0.1 with 400: the body is not valid JSON (line 1, column 2)"
    assert "wrong-pw-77" not in caplog.text and PASSWORD not in caplog.text


SECRET_NAMES = [
    "password", "pass_word", "pass-word", "pass.word", "pass word", "pass_phrase", "passcode", "userPass",
    "pwd", "x-api-key", "api-key", "API-KEY", "api.key", "api__key", "apiKey", "privateKey", "private_key",
    "accessKey", "access_key", "authorization", "Authorization", "bearer", "auth", "x-auth", "sharedKey",
    "hmacKey", "signature", "sig", "cookie", "Set-Cookie", "pin", "userPin", "otp", "clientSecret",
    "sessionToken", "credentials", "p@ssword", "pa$$word", "paßword", "ＰＡＳＳＷＯＲＤ", "Pass\u00adword",
]  # fmt: skip
KEPT_NAMES = ["username", "requestId", "deviceIds", "kind", "id", "status", "ipAddress", "signal", "description"]


def test_every_name_of_a_secret_is_removed_and_thingspace_fields_are_kept() -> None:
    from tskit.listener._checks import scrub

    body = {name: "s3cret-value" for name in SECRET_NAMES} | {name: "kept" for name in KEPT_NAMES}
    assert scrub({"outer": [body]}) == {"outer": [{name: "kept" for name in KEPT_NAMES}]}


def test_secrets_under_any_name_never_reach_the_file(listener: Listener, tmp_path: Path) -> None:
    secrets = {name: f"secret-{i}-value" for i, name in enumerate(SECRET_NAMES) if name != "password"}
    assert httpx2.post(listener.url, json=message(deviceResponse=secrets, **secrets)).status_code == 200
    listener.stop()
    data = b"".join(p.read_bytes() for p in tmp_path.glob("hostile.db*"))
    assert [s for s in secrets.values() if s.encode() in data] == []


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["--max-connections", "0"], "--max-connections: 0 is not allowed; give a whole number of 1 or more"),
        (["--max-body", "-1"], "--max-body: -1 is not allowed; give a whole number of 1 or more"),
        (["--header-timeout", "0"], "--header-timeout: 0 is not allowed; give a number of seconds above 0"),
        (["--body-timeout", "nan"], "--body-timeout: nan is not allowed; give a number of seconds above 0"),
        (["--keep-alive", "0"], "--keep-alive: 0 is not allowed; give a whole number of seconds, 1 or more"),
        (["--max-delay", "inf"], "--max-delay: inf is not allowed; give a number of seconds above 0"),
        (
            ["--max-connections", "100000000"],
            "--max-connections: 100000000 is not allowed; give a whole number of 1 or more, at most 65536",
        ),
        (
            ["--keep-alive", "99999"],
            "--keep-alive: 99999 is not allowed; give a whole number of seconds, 1 or more, at most 3600",
        ),
        (["--max-delay", "1000"], "--max-delay: 1000 is not allowed; give a number of seconds above 0, at most 60"),
        (["--port", "70000"], "--port: 70000 is not a port; give 0 to 65535"),
        (["--allow-from", "10.0.0.1/8"], "'10.0.0.1/8' has host bits set; write the network (10.0.0.0/8)"),
        (["--password-env", "LONG_PW"], "--password-env: ThingSpace accepts at most 40 characters"),
        (["--password-env", "EMPTY_PW"], "--password-env: the variable EMPTY_PW is empty"),
    ],
)
def test_listen_refuses_options_it_cannot_work_with(
    options: list[str], error: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LISTEN_PW", PASSWORD)
    monkeypatch.setenv("LONG_PW", "x" * 41)
    monkeypatch.setenv("EMPTY_PW", "")
    base = ["listen", "--port", "0", "--password-env", "LISTEN_PW", "--store", str(tmp_path / "o.db")]
    assert main(base + options) == 2
    err = capsys.readouterr().err
    assert error in err and "Traceback" not in err


def test_listen_names_store_errors_and_refuses_symlinks(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LISTEN_PW", PASSWORD)
    target = tmp_path / "target.db"
    target.write_bytes(b"")
    target.chmod(0o644)
    (tmp_path / "link.db").symlink_to(target)
    base = ["listen", "--port", "0", "--password-env", "LISTEN_PW", "--store"]
    assert main([*base, str(tmp_path / "link.db")]) == 2
    assert "cannot open the message store" in capsys.readouterr().err
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # the link's target is left alone
    (tmp_path / "file").write_text("")
    assert main([*base, str(tmp_path / "file" / "x.db")]) == 2
    err = capsys.readouterr().err
    assert "cannot open the message store" in err and "cannot listen" not in err


@pytest.mark.usefixtures("patient_gate")
def test_the_connection_cap_serves_exactly_max_connections(tmp_path: Path) -> None:
    with Listener(username="tsuser", password=PASSWORD, port=0, max_connections=4, header_timeout=30) as capped:
        held = [raw_connection(capped.port) for _ in range(3)]
        for sock in held:  # accepted in the order they came, before the fourth below
            sock.sendall(b"POST /callbacks HTTP/1.1\r\nHost: x\r\n")
        assert httpx2.post(capped.url, json=message()).status_code == 200  # the 4th of 4
        for sock in held:
            sock.close()


def test_sigterm_closes_the_store_like_ctrl_c(tmp_path: Path) -> None:
    store = tmp_path / "term.db"
    env = dict(os.environ, LISTEN_PW=PASSWORD)
    command = [sys.executable, "-m", "tskit", "listen", "--port", "0", "--password-env", "LISTEN_PW"]
    with subprocess.Popen(
        [*command, "--username", "tsuser", "--store", str(store), "--allow-from", "127.0.0.0/8,verizon"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        url = proc.stdout.readline().split()[5]
        start = [proc.stdout.readline().strip() for _ in range(3)]
        count = len(VERIZON_SOURCE_ADDRESSES)
        assert start[1:] == [
            f"Accepting messages from: 127.0.0.0/8,verizon (verizon: the {count} addresses Verizon publishes)",
            "Previous password accepted: no",
        ]
        assert httpx2.post(url, json=message()).status_code == 200
        assert httpx2.post(url, json=message(password="wrong-pw-5")).status_code == 401
        refused = httpx2.post(url, content=b"not json")
        assert refused.status_code == 400 and refused.json() == {
            "error": "the body is not valid JSON (line 1, column 1)"
        }
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 143
        log = proc.stderr.read()
    assert "refused a message from 127.0.0.1 with 401: wrong username or password" in log
    assert len([line for line in log.splitlines() if "refused" in line]) == 2, log  # one line per refusal
    assert "tskit: warning" not in log and "Expecting value" not in log
    assert "wrong-pw-5" not in log and PASSWORD not in log
    assert sorted(p.name for p in tmp_path.iterdir()) == ["term.db"]  # no -wal nor -shm left
    with contextlib.closing(sqlite3.connect(store)) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (1,)


def test_the_same_message_to_two_services_is_two_messages_and_a_numeric_request_id_is_kept(
    listener: Listener,
) -> None:
    body = message(requestId=12345)
    for service in ("CarrierService", "DeviceUsage", "CarrierService"):
        assert httpx2.post(listener.url_for(service), json=body).status_code == 200
    assert sorted(zip(listener.messages["service"], listener.messages["attempts"], strict=True)) == [
        ("CarrierService", 2),
        ("DeviceUsage", 1),
    ]
    assert set(listener.messages["request_id"]) == {"12345"}


def test_a_bracketed_ipv6_host_binds_and_its_url_has_one_pair_of_brackets() -> None:
    if not socket.has_ipv6:
        pytest.fail("this machine has no IPv6")  # never a silent skip
    with Listener(username="tsuser", password=PASSWORD, host="[::1]", port=0) as running:
        assert running.url.startswith("http://[::1]:")
        assert httpx2.post(running.url, json=message()).status_code == 200
