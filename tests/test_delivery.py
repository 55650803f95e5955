"""End to end over loopback: register a listener, make the simulator deliver, see what arrived."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

import tskit
from tskit.listener import Listener
from tskit.simulator import DeliveryPolicy, Simulator

pytestmark = pytest.mark.server
ACCOUNT = "0000123456-00003"
PASSWORD = "cb-secret-91"


@pytest.fixture
def quick_sim(sim: Simulator) -> Iterator[Simulator]:
    sim.config.delivery_time_scale = 0.05  # the observed policy's 1.3 s retry takes 65 ms
    yield sim
    sim.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener(username="tsuser", password=PASSWORD) as running:
        yield running


def register(sim: Simulator, url: str, password: str = PASSWORD, *, any_port: bool = False) -> None:
    ts = tskit.connect(simulator=sim)
    ts.register_callback(ACCOUNT, "CarrierService", url, username="tsuser", password=password, allow_any_port=any_port)
    ts.close()


def test_register_trigger_message_arrives(quick_sim: Simulator, listener: Listener) -> None:
    register(quick_sim, listener.url_for("CarrierService"))
    delivery = quick_sim.trigger(ACCOUNT, "CarrierService").wait()
    assert delivery.delivered and [a.status_code for a in delivery.attempts] == [200]
    frame = listener.messages
    assert frame["request_id"].tolist() == [delivery.request_id]
    assert frame.iloc[0]["service"] == "CarrierService" and frame.iloc[0]["status"] == "Success"
    [raw] = listener.raw()
    assert raw["username"] == "tsuser" and "password" not in raw
    assert raw["maxCallbackThreshold"] == 2 and raw["callbackCount"] == 1  # the observed policy: 2 attempts
    assert delivery.message["password"] == "********"  # the simulator's record hides it too


def test_every_service_kind_is_accepted(quick_sim: Simulator, listener: Listener) -> None:
    ts = tskit.connect(simulator=quick_sim)
    for service, kinds in tskit.simulator.KINDS.items():
        ts.register_callback(ACCOUNT, service, listener.url_for(service), username="tsuser", password=PASSWORD)
        for kind in kinds:
            assert quick_sim.trigger(ACCOUNT, service, kind).wait().delivered
    frame = listener.messages
    assert len(frame) == sum(len(k) for k in tskit.simulator.KINDS.values())
    # uploads (NIDD MO) carry no status; NIDD reports say Delivered, Queued, DeliveryFailed, ConfigCreated
    assert set(frame["status"]) == {"", "Success", "Failed", "Delivered", "Queued", "DeliveryFailed", "ConfigCreated"}


def test_wrong_password_is_rejected_retried_and_logged(quick_sim: Simulator, listener: Listener) -> None:
    register(quick_sim, listener.url_for("CarrierService"), password="not-what-the-listener-wants")
    delivery = quick_sim.trigger(ACCOUNT, "CarrierService").wait()
    assert delivery.state == "given up"
    assert [(a.callback_count, a.status_code, a.outcome) for a in delivery.attempts] == [
        (1, 401, "rejected"),
        (2, 401, "rejected"),
    ]
    assert 0.04 < delivery.attempts[1].sent_at - delivery.attempts[0].sent_at < 1  # ~1.3 s, scaled by 0.05
    log = quick_sim.delivery_log()
    assert log["status_code"].tolist() == [401, 401] and set(log["state"]) == {"given up"}
    assert listener.count() == 0


def test_documented_policy_sends_four_times(quick_sim: Simulator, listener: Listener) -> None:
    register(quick_sim, listener.url_for("CarrierService"), password="wrong-again")
    quick_sim.config.delivery_time_scale = 0.0005  # 300 s -> 0.15 s
    delivery = quick_sim.trigger(ACCOUNT, "CarrierService", policy="documented").wait()
    assert [a.callback_count for a in delivery.attempts] == [1, 2, 3, 4]
    assert delivery.state == "given up" and delivery.message["maxCallbackThreshold"] == 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_listener_down_is_retried_then_given_up(quick_sim: Simulator) -> None:
    quick_sim.config.enforce_listener_ports = False
    register(quick_sim, f"http://127.0.0.1:{free_port()}/callbacks", any_port=True)
    delivery = quick_sim.trigger(ACCOUNT, "CarrierService").wait()
    assert [a.outcome for a in delivery.attempts] == ["connection refused", "connection refused"]
    assert delivery.state == "given up"
    assert quick_sim.delivery_log()["outcome"].tolist() == ["connection refused"] * 2


def test_slow_listener_gets_a_duplicate_stored_once(quick_sim: Simulator) -> None:
    # The listener stores at once but answers after 0.5 s; ThingSpace waits ~4 s (here 0.2 s), then resends.
    with Listener(username="tsuser", password=PASSWORD, delay=0.5) as slow:
        register(quick_sim, slow.url_for("CarrierService"))
        policy = DeliveryPolicy("observed", delays=(1.3,), timeout=4.0)
        delivery = quick_sim.trigger(ACCOUNT, "CarrierService", policy=policy).wait()
        assert [(a.callback_count, a.outcome) for a in delivery.attempts] == [
            (1, "no answer in time"),
            (2, "no answer in time"),
        ]
        assert slow.wait_for(1)
        frame = slow.messages
        assert len(frame) == 1  # one message ...
        assert frame.iloc[0]["attempts"] == 2 and frame.iloc[0]["callback_count"] == 2  # ... that arrived twice


def test_trigger_needs_a_registration(quick_sim: Simulator) -> None:
    with pytest.raises(LookupError, match="no CarrierService listener is registered for account 0000123456-00003"):
        quick_sim.trigger(ACCOUNT, "CarrierService")
    quick_sim.register(ACCOUNT, "CarrierService", "https://l.example.com/c")
    with pytest.raises(ValueError, match="not 'sms'"):
        quick_sim.trigger(ACCOUNT, "CarrierService", "sms")


def test_message_is_kept_when_the_listener_is_killed_right_after_answering(
    quick_sim: Simulator, tmp_path: Path
) -> None:
    store, port = tmp_path / "callbacks.db", free_port()
    env = {**os.environ, "LISTENER_PW": PASSWORD}
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
        "LISTENER_PW",
    ]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx2.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                assert time.monotonic() < deadline and proc.poll() is None, "the listener did not start"
                time.sleep(0.05)
            quick_sim.config.enforce_listener_ports = False
            register(quick_sim, f"http://127.0.0.1:{port}/callbacks/CarrierService", any_port=True)
            delivery = quick_sim.trigger(ACCOUNT, "CarrierService").wait()
            proc.send_signal(signal.SIGKILL)  # the moment the 200 came back: no clean shutdown
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert delivery.delivered and proc.returncode == -signal.SIGKILL
    with Listener(store=store, port=0) as restarted:
        assert restarted.messages["request_id"].tolist() == [delivery.request_id]


def test_nothing_is_sent_to_documentation_addresses(quick_sim: Simulator) -> None:
    # the demo data's listeners live on example.com and 203.0.113.0/24: nobody's hosts
    for account, service in (("0000123456-00001", "CarrierService"), ("0000123456-00002", "CarrierService")):
        delivery = quick_sim.trigger(account, service).wait()
        assert delivery.state == "given up"
        [attempt] = delivery.attempts
        assert attempt.status_code is None and attempt.outcome.startswith("not sent:")
