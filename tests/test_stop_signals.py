"""Ctrl-C and SIGTERM stop the foreground servers, even when Python would drop the KeyboardInterrupt.

Python runs a signal's handler wherever the main thread is; inside a weakref callback (which the
garbage collector runs at any allocation) the KeyboardInterrupt it raises is printed and dropped.
``tskit listen`` then served on after Ctrl-C, once in ~200 starts on a loaded machine.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tskit._stop_signals import StopRequest, stop_signals
from tskit.listener import Listener
from tskit.simulator import Simulator, SimulatorServer


def _signal_inside_a_weakref_callback(signum: int) -> None:
    """Deliver ``signum`` while a weakref callback runs, where a raised exception is dropped."""

    class Thing:
        pass

    thing = Thing()
    ref = weakref.ref(thing, lambda _: signal.raise_signal(signum))
    del thing  # the callback runs here; raise_signal runs the Python handler before it returns
    assert ref() is None


def test_a_signal_inside_a_weakref_callback_is_kept() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with stop_signals() as request:
        _signal_inside_a_weakref_callback(signal.SIGINT)
        assert request.requested and request.signal == signal.SIGINT and request.count == 1
        with pytest.raises(KeyboardInterrupt):
            request.raise_if_requested()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_sigterm_means_exit_143() -> None:
    with stop_signals() as request:
        signal.raise_signal(signal.SIGTERM)
        with pytest.raises(SystemExit) as exit_:
            request.raise_if_requested()
    assert exit_.value.code == 143


def test_nested_uses_share_one_request_and_listeners_hear_each_signal() -> None:
    heard: list[int] = []
    with stop_signals() as outer:
        signal.raise_signal(signal.SIGINT)  # before the inner one: not lost
        with stop_signals() as inner, inner.telling(heard.append):
            assert inner is outer
            assert heard == [1]  # told at once of the one that came before
            signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)  # no longer listening
    assert heard == [1, 2] and outer.count == 3


def test_an_ignored_signal_stays_ignored() -> None:
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with stop_signals() as request:
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            signal.raise_signal(signal.SIGTERM)
            assert not request.requested
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_ctrl_c_while_the_handlers_are_put_back_leaves_none_of_ours(monkeypatch) -> None:
    """A Ctrl-C raising as soon as SIGINT's handler is back must not leave SIGTERM to a finished request."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    put_back = signal.signal

    def then_ctrl_c(signum: int, handler: object) -> object:
        previous = put_back(signum, handler)  # type: ignore[arg-type]
        if signum == signal.SIGINT and handler is before[0]:
            signal.raise_signal(signal.SIGINT)  # Python's handler again: KeyboardInterrupt here
        return previous

    with pytest.raises(KeyboardInterrupt), stop_signals():
        monkeypatch.setattr(signal, "signal", then_ctrl_c)
    monkeypatch.undo()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    with stop_signals() as request:
        assert not request.requested  # a later use starts afresh, not with the finished request


def test_outside_the_main_thread_nothing_changes() -> None:
    seen: list[tuple[StopRequest, object]] = []

    def work() -> None:
        with stop_signals() as request:
            seen.append((request, signal.getsignal(signal.SIGINT)))

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    ((request, handler),) = seen
    assert handler is before and not request.requested


# The servers, as processes: Ctrl-C lands where Python would drop it, at start-up and as uvicorn starts.
_AT_START_UP = """
import signal, sys, weakref
from tskit.cli import main
from {module} import {owner} as command

announce = command.{function}
def announce_then_interrupt(*args, **kwargs):
    result = announce(*args, **kwargs)
    class Thing: pass
    thing = Thing()
    ref = weakref.ref(thing, lambda _: signal.raise_signal(signal.SIGINT))
    del thing
    return result
command.{function} = announce_then_interrupt
sys.exit(main({argv!r}))
"""

_AS_UVICORN_STARTS = """
import signal, sys, weakref
import uvicorn.server
from tskit.cli import main

serve = uvicorn.server.Server.serve
async def interrupted_serve(self, *args, **kwargs):
    class Thing: pass
    thing = Thing()
    ref = weakref.ref(thing, lambda _: signal.raise_signal(signal.SIGINT))
    del thing
    return await serve(self, *args, **kwargs)
uvicorn.server.Server.serve = interrupted_serve
sys.exit(main({argv!r}))
"""


def _listen_argv(tmp_path: Path) -> list[str]:
    return ["listen", "--port", "0", "--no-auth", "--store", str(tmp_path / "m.db")]


@pytest.mark.server
@pytest.mark.parametrize("moment", ["at start-up", "as uvicorn starts"])
@pytest.mark.parametrize("command", ["listen", "simulator"])
def test_ctrl_c_where_python_drops_it_still_stops_the_server(tmp_path, command: str, moment: str) -> None:
    argv = _listen_argv(tmp_path) if command == "listen" else ["simulator", "--port", "0"]
    if moment == "at start-up":  # after the start-up lines, before serving
        if command == "listen":
            where = {"module": "tskit.cli", "owner": "_listen", "function": "_announce"}
        else:
            where = {"module": "tskit.simulator._server", "owner": "SimulatorServer", "function": "bind"}
        script = _AT_START_UP.format(**where, argv=argv)
    else:
        script = _AS_UVICORN_STARTS.format(argv=argv)
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"tskit {command} did not stop after Ctrl-C {moment}") from exc
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.server
@pytest.mark.parametrize("server", ["listener", "simulator"])
def test_serving_in_a_thread_stops_cleanly_from_another(server: str) -> None:
    """``serve_forever()``/``run()`` in a worker thread, ``stop()`` from the main one: no error in either."""
    failures: list[BaseException] = []
    target: Listener | SimulatorServer
    if server == "listener":
        with pytest.warns(UserWarning):
            listener = Listener(start=False)
        target, serve, port = listener, listener.serve_forever, listener.port
    else:
        simulator = SimulatorServer(Simulator())
        target, serve, port = simulator, simulator.run, simulator.bind()

    def serving() -> None:
        try:
            serve()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=serving)
    thread.start()
    _wait_until_accepting(port)
    target.stop()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # released once stop() returns
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert failures == []


def _wait_until_accepting(port: int) -> None:
    for _ in range(1000):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)
    raise AssertionError(f"nothing accepted on port {port}")


def _served_port(proc: subprocess.Popen[str]) -> int:
    """The port in the first URL the command prints (the listener's, or the simulator's base URL)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        for word in line.replace("=", " ").split():
            if word.startswith("http://"):
                port = urlsplit(word).port
                assert port is not None
                return port
    raise AssertionError("the command printed no URL")


@pytest.mark.server
@pytest.mark.parametrize("command", ["listen", "simulator"])
def test_ctrl_c_with_a_request_half_sent_answers_it_503_without_a_traceback(tmp_path, command: str) -> None:
    """uvicorn cancels what still runs after its graceful wait: that is no error, and the sender may retry."""
    argv = _listen_argv(tmp_path) if command == "listen" else ["simulator", "--port", "0"]
    with subprocess.Popen(
        [sys.executable, "-m", "tskit", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    ) as proc:
        try:
            port = _served_port(proc)
            _wait_until_accepting(port)
            with socket.create_connection(("127.0.0.1", port), timeout=60) as sender:
                path = b"/callbacks/DeviceConnectivity" if command == "listen" else b"/api/m2m/v1/session/login"
                sender.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
                sender.sendall(b'Content-Length: 100\r\n\r\n{"requestId": "half')  # the rest never comes
                time.sleep(0.2)  # the request reaches the app
                proc.send_signal(signal.SIGINT)
                answer = sender.recv(4096)
            _, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert answer.startswith(b"HTTP/1.1 503 "), answer
    assert b"retry-after: 1" in answer.lower()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Exception in ASGI application" not in stderr, stderr
