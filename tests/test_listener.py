"""The callback listener over real loopback HTTP: what it accepts, refuses, stores and never keeps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tskit.listener import MESSAGE_COLUMNS, Listener
from tskit.simulator import build_message

pytestmark = pytest.mark.server
PASSWORD = "listener-pw-77"


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    with Listener(
        username="tsuser",
        password=PASSWORD,
        previous_password="old-pw-66",
        store=tmp_path / "callbacks.db",
        max_body=4096,
    ) as running:
        yield running


def message(**changes: object) -> dict[str, object]:
    body = build_message("CarrierService", account_name="0000123456-00001", username="tsuser", password=PASSWORD)
    return {**body, **changes}


def post(listener: Listener, body: object, path: str = "/CarrierService", **kwargs: object) -> httpx2.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx2.post(listener.url + path, content=content, headers={"Content-Type": "application/json"}, **kwargs)  # type: ignore[arg-type]


def test_accepts_stores_and_never_keeps_the_password(listener: Listener, tmp_path: Path) -> None:
    body = message()
    answer = post(listener, body)
    assert answer.status_code == 200 and answer.json() == {"stored": 1, "attempts": 1}
    frame = listener.messages
    assert list(frame.columns) == list(MESSAGE_COLUMNS)
    row = frame.iloc[0]
    assert (row["request_id"], row["service"], row["status"], row["attempts"]) == (
        body["requestId"],
        "CarrierService",
        "Success",
        1,
    )
    assert row["device_ids"].startswith("Iccid:8914")
    [raw] = listener.raw()
    assert "password" not in raw and raw["deviceResponse"] == body["deviceResponse"]
    listener.stop()
    data = b"".join(p.read_bytes() for p in tmp_path.glob("callbacks.db*"))
    assert PASSWORD.encode() not in data and b"tsuser" in data


def test_the_port_is_one_thingspace_delivers_to(listener: Listener) -> None:
    assert listener.allowed_by_thingspace and listener.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"password": "wrong"}, 401),
        ({"username": "someone"}, 401),
        ({"password": None}, 401),
        ({"password": "old-pw-66"}, 200),
    ],
)
def test_credentials_inside_the_body(listener: Listener, changes: dict[str, object], status: int) -> None:
    assert post(listener, message(**changes)).status_code == status
    assert listener.count() == (1 if status == 200 else 0)


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b""])
def test_malformed_bodies_are_refused_and_not_stored(listener: Listener, body: bytes) -> None:
    assert post(listener, body).status_code == 400
    assert listener.count() == 0


def test_oversized_bodies_are_refused(listener: Listener) -> None:
    big = message(extra="x" * 5000)
    assert post(listener, big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is found while reading
        yield json.dumps(big).encode()

    assert httpx2.post(listener.url, content=chunks()).status_code == 413
    assert listener.count() == 0 and listener.app.rejected == 2


def test_redelivery_is_stored_once_and_counted(listener: Listener) -> None:
    body = message()
    assert post(listener, body).json()["attempts"] == 1
    assert post(listener, {**body, "callbackCount": 2}).json() == {"stored": 1, "attempts": 2}
    assert post(listener, {**body, "password": "old-pw-66", "callbackCount": 3}).json()["attempts"] == 3
    other_device = {**body, "deviceIds": [{"id": "1", "kind": "IMEI"}]}  # same request id, another device
    assert post(listener, other_device).json() == {"stored": 2, "attempts": 1}
    frame = listener.messages
    assert frame["attempts"].tolist() == [3, 1] and frame["callback_count"].tolist() == [3, 1]


def test_service_from_the_path_or_the_body(listener: Listener) -> None:
    nidd = build_message("NiddService", account_name="0000123456-00001", username="tsuser", password=PASSWORD)
    post(listener, nidd, path="")  # the generic URL: the body says it is NIDD
    post(listener, message(), path="/DeviceUsage")  # a per-service URL wins
    assert listener.messages["service"].tolist() == ["NiddService", "DeviceUsage"]


def test_health_and_methods(listener: Listener) -> None:
    assert httpx2.get(listener.url.rsplit("/", 1)[0] + "/healthz").json() == {"status": "ok"}
    assert httpx2.get(listener.url).status_code == 405


def test_messages_survive_a_restart_from_the_same_store(tmp_path: Path) -> None:
    store = tmp_path / "kept.db"
    with Listener(store=store) as first:
        post(first, message())
    with Listener(store=store, port=0) as second:
        assert second.count() == 1


def test_fault_columns() -> None:
    with Listener(port=0) as listener:
        body = build_message("CarrierService", "fault", account_name="0000123456-00001")
        post(listener, body)
        row = listener.messages.iloc[0]
    assert (row["status"], row["fault_code"]) == ("Failed", "UnifiedWebService.REQUEST_FAILED.DeviceAlreadyActive")
    assert row["fault_string"] == "REQUEST_FAILED. Device is already active"


def test_a_stopped_listener_says_so() -> None:
    listener = Listener(port=0)
    listener.stop()
    assert listener.count() == 0 and "stopped" in repr(listener)
    with pytest.raises(RuntimeError, match="cannot start again"):
        listener.start()
    assert listener.messages.empty  # still readable once stopped


def test_messages_stay_readable_after_an_in_memory_listener_stops() -> None:
    with Listener(username="tsuser", password="pw-9", port=0) as running:
        body = {"username": "tsuser", "password": "pw-9", "requestId": "kept-1", "deviceIds": []}
        assert httpx2.post(running.url, json=body).status_code == 200
    assert running.count() == 1 and list(running.messages["request_id"]) == ["kept-1"]
    assert running.raw()[0]["requestId"] == "kept-1"
    assert repr(running).endswith("stopped, 1 messages>")


def test_read_messages_reads_a_file_written_by_a_listener(tmp_path: Path) -> None:
    from tskit.listener import read_messages

    path = tmp_path / "cli.db"
    with Listener(username="tsuser", password="pw-9", port=0, store=path) as running:
        body = {"username": "tsuser", "password": "pw-9", "requestId": "file-1", "deviceIds": []}
        assert httpx2.post(running.url, json=body).status_code == 200
        assert list(read_messages(path)["request_id"]) == ["file-1"]  # while it runs
    assert list(read_messages(path)["request_id"]) == ["file-1"]
    assert list(running.messages["request_id"]) == ["file-1"]


def test_a_listener_without_credentials_warns_and_says_so() -> None:
    from tskit.listener import NoAuthWarning

    with pytest.warns(NoAuthWarning, match="checks no username or password"):
        open_listener = Listener(port=0, start=False)
    assert "auth off" in repr(open_listener)
    open_listener.stop()
