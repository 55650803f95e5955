"""The runtime: what a process keeps after connections close, at exit and in a forked child.

Each case runs in a process of its own, so that what it counts is what tskit keeps, not what
earlier tests left. Counts, not times: objects (``gc``), weak references to simulators and
clients, threads, and open file descriptors (``/proc/self/fd``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc/self/fd")

_CYCLES = """
import gc, json, os, sys, threading, weakref
import tskit
from tskit import _runtime as runtime_module
from tskit._runtime import runtime
from tskit.simulator import Simulator

fresh = sys.argv[1] == "fresh"
shared = Simulator()
simulators = weakref.WeakSet()
clients = weakref.WeakSet()

def cycles(n):
    for _ in range(n):
        sim = Simulator() if fresh else shared
        with tskit.connect(simulator=sim) as ts:
            assert len(ts.list_callbacks("0000123456-00001")) == 2
        simulators.add(sim)
        clients.add(ts.client)
    del sim, ts

def counts():
    shared.requests.clear()  # the simulator's own log of requests (bounded), not tskit's
    gc.collect()
    return {
        "objects": len(gc.get_objects()),
        "simulators": len(simulators),
        "clients": len(clients),
        "registered": runtime.registered(),
        "threads": sum(not t.name.startswith(runtime_module.WORKER_NAME) for t in threading.enumerate()),
        "workers": sum(t.name.startswith(runtime_module.WORKER_NAME) for t in threading.enumerate()),
        "most_workers": runtime_module.WORKERS,
        "fds": len(os.listdir("/proc/self/fd")),
    }

cycles(10)
after_10 = counts()
cycles(990)
print(json.dumps({"after_10": after_10, "after_1000": counts()}))
"""


def _cycles(kind: str, tmp_path: Path) -> tuple[dict[str, int], dict[str, int]]:
    env = {**os.environ, "TSKIT_CONFIG_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _CYCLES, kind], capture_output=True, text=True, env=env, check=False, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    counted: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return counted["after_10"], counted["after_1000"]


def test_a_thousand_connect_close_cycles_keep_no_more_than_ten(tmp_path: Path) -> None:
    """One simulator, 1,000 connections opened, used and closed: nothing of them stays."""
    after_10, after_1000 = _cycles("shared", tmp_path)
    assert after_1000["clients"] == after_10["clients"] == 0
    assert after_1000["registered"] == after_10["registered"] == 0  # none waits to be closed at exit
    assert after_1000["threads"] + after_1000["workers"] <= after_10["threads"] + after_10["workers"]
    assert after_1000["fds"] <= after_10["fds"]
    assert after_1000["objects"] <= after_10["objects"], (after_10, after_1000)


@pytest.fixture(scope="module")
def fresh_cycles(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, int], dict[str, int]]:
    """The counts of 1,000 cycles with a simulator each, made once for the two tests that read them."""
    return _cycles("fresh", tmp_path_factory.mktemp("fresh"))


def test_closed_connections_to_simulators_of_their_own_release_their_clients_threads_and_files(
    fresh_cycles: tuple[dict[str, int], dict[str, int]],
) -> None:
    """``connect(simulator=Simulator())`` 1,000 times: the runtime holds no client, closer or thread of them."""
    after_10, after_1000 = fresh_cycles
    assert after_1000["clients"] == after_10["clients"] == 0
    assert after_1000["registered"] == after_10["registered"] == 0
    assert after_1000["threads"] <= after_10["threads"]
    assert after_1000["workers"] <= after_1000["most_workers"]  # the I/O loop's pool, reused
    assert after_1000["fds"] <= after_10["fds"]
    # The simulators themselves: see the next test.
    assert after_1000["simulators"] <= after_10["simulators"]


def test_closed_connections_to_simulators_of_their_own_keep_no_simulator(
    fresh_cycles: tuple[dict[str, int], dict[str, int]],
) -> None:
    after_10, after_1000 = fresh_cycles
    assert after_1000["simulators"] <= after_10["simulators"]
    # Each simulator is another ThingSpace, with a login of its own: bounded caches of the process
    # (compiled patterns, scrubbed secrets' forms) may still fill, but nothing is kept per connection.
    assert after_1000["objects"] - after_10["objects"] < 990 // 5, (after_10, after_1000)


_FORK = """
import os, threading
from tskit._runtime import process_lock, runtime

lock = process_lock()
held, release = threading.Event(), threading.Event()

def holder():
    with lock:
        held.set()
        release.wait()

threading.Thread(target=holder, daemon=True).start()
held.wait()
assert runtime.run(__import__("asyncio").sleep(0, result=1)) == 1  # the parent's I/O loop runs
pid = os.fork()
if pid == 0:
    free = lock.acquire(timeout=5)  # the holder thread does not exist here
    result = runtime.run(__import__("asyncio").sleep(0, result=2))  # a loop of the child's own
    os._exit(0 if free and result == 2 else 1)
release.set()
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_child_forked_while_a_thread_holds_a_process_lock_gets_it_free_and_its_own_io_loop(tmp_path: Path) -> None:
    env = {**os.environ, "TSKIT_CONFIG_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", _FORK], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "0"


def _python(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter; a hang fails as a timeout (generous: a hang, not a speed)."""
    env = {**os.environ, "TSKIT_CONFIG_DIR": str(tmp_path)}
    command = [sys.executable, "-c", script]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=120)


_CTRL_C_TWICE_AS_A_WORKER_STARTS = """
import asyncio, signal, sys, threading
from tskit._runtime import WORKER_NAME, runtime

def trace(frame, event, arg):
    # Ctrl-C twice while Thread.start waits for the pool's first worker to run (as a real one lands
    # in that wait): the first cancels the call, the second raises.
    caller = frame.f_back
    if event == "call" and frame.f_code.co_name == "wait" and caller is not None and caller.f_code.co_name == "start":
        starting = caller.f_locals.get("self")
        if isinstance(starting, threading.Thread) and starting.name.startswith(WORKER_NAME):
            sys.settrace(None)
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)

sys.settrace(trace)
try:
    runtime.run(asyncio.to_thread(int, "1"))
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted")
sys.settrace(None)
print(runtime.run(asyncio.sleep(0, "next")))  # the next call works (and starts no other worker)
"""


def test_ctrl_c_twice_as_the_pool_starts_a_worker_leaves_the_interpreter_free_to_exit(tmp_path: Path) -> None:
    # Raised inside Thread.start, the KeyboardInterrupt left the worker running but unknown to the
    # exit's join of the pool's threads: the interpreter then waited for it forever.
    done = _python(_CTRL_C_TWICE_AS_A_WORKER_STARTS, tmp_path)  # the old code never exited: a timeout
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["interrupted", "next"]
    assert "Traceback" not in done.stderr, done.stderr


_FORK_DURING_A_MAIN_THREAD_CALL = """
import asyncio, os, signal, threading
from tskit._runtime import runtime

calling = threading.Event()
child = {}

def fork():
    calling.wait()
    pid = os.fork()
    if pid == 0:  # the child's first Ctrl-C raises, as in any script; then its own calls work
        try:
            signal.raise_signal(signal.SIGINT)  # its handler runs before this returns
            code = 1  # swallowed: the parent's handler of its call cancelled that call instead
        except KeyboardInterrupt:
            code = 0 if runtime.run(asyncio.sleep(0, "child")) == "child" else 2
        os._exit(code)
    child["code"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

async def call():
    calling.set()
    while "code" not in child:
        await asyncio.sleep(0.01)
    return "parent"

thread = threading.Thread(target=fork)
thread.start()
print(runtime.run(call()), child["code"], signal.getsignal(signal.SIGINT) is signal.default_int_handler)
thread.join()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_child_forked_during_a_main_thread_call_has_pythons_own_ctrl_c(tmp_path: Path) -> None:
    done = _python(_FORK_DURING_A_MAIN_THREAD_CALL, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["parent", "0", "True"]


_FORK_MAIN_LOOP = """
import asyncio, os
from tskit._runtime import runtime

assert runtime.run(asyncio.to_thread(int, "1")) == 1  # the parent's main-thread loop exists
pid = os.fork()
if pid == 0:
    os._exit(0 if runtime.run(asyncio.to_thread(int, "2")) == 2 else 1)  # a loop of the child's own
_, status = os.waitpid(pid, 0)

async def woken_by_the_thread():
    # The parent's loop still wakes when another thread's work ends: not only when a timer would.
    work, timer = asyncio.ensure_future(asyncio.to_thread(int, "3")), asyncio.ensure_future(asyncio.sleep(30))
    await asyncio.wait([work, timer], return_when=asyncio.FIRST_COMPLETED)
    woken = work.done() and not timer.done()
    timer.cancel()
    return woken

print(os.waitstatus_to_exitcode(status), runtime.run(woken_by_the_thread()))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_leaves_the_parents_main_thread_loop_working(tmp_path: Path) -> None:
    env = {**os.environ, "TSKIT_CONFIG_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _FORK_MAIN_LOOP], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["0", "True"]


_UNCLOSED = """
import threading
import tskit
from tskit._runtime import runtime
from tskit.simulator import Simulator

ts = tskit.connect(simulator=Simulator())
ts.list_callbacks("0000123456-00001")  # the main thread: on its own loop
worker = threading.Thread(target=ts.list_callbacks, args=("0000123456-00001",))
worker.start()  # another thread: on the I/O loop
worker.join()
assert runtime.registered() == 1  # the I/O loop's; the main thread's loop closes its own at its end
https = list(ts.client._http.values())
assert len(https) == 2
runtime.close()  # what the interpreter's exit does
print(all(http.is_closed for http in https))
"""


def test_a_connection_left_open_is_closed_at_exit(tmp_path: Path) -> None:
    env = {**os.environ, "TSKIT_CONFIG_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", _UNCLOSED], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "True"
    assert "ResourceWarning" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr


_CLOSE_EVERY_THREAD = """
import threading
import tskit
from tskit._runtime import runtime
from tskit.simulator import Simulator

with tskit.connect(simulator=Simulator()) as ts:
    ts.list_callbacks("0000123456-00001")  # the main thread: on its own loop
    worker = threading.Thread(target=ts.list_callbacks, args=("0000123456-00001",))
    worker.start()  # another thread: on the I/O loop
    worker.join()
    https = list(ts.client._http.values())
print(len(https), all(http.is_closed for http in https), runtime.registered(), len(ts.client._http))
"""


def test_close_in_the_main_thread_closes_the_connections_of_every_thread(tmp_path: Path) -> None:
    env = {**os.environ, "TSKIT_CONFIG_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", _CLOSE_EVERY_THREAD], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["2", "True", "0", "0"]
    assert "ResourceWarning" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr


_LAZY_START = """
import json, threading
import tskit
from tskit._runtime import runtime

def names():
    return sorted(t.name for t in threading.enumerate() if not t.name.startswith("tskit-io-worker"))

ts = tskit.connect(simulator=True)
before = names()
ts.list_callbacks("0000123456-00001")
after_main = names()
worker = threading.Thread(target=ts.list_callbacks, args=("0000123456-00001",), name="worker")
worker.start()
worker.join()
after_worker = names()
loop = runtime.io_loop()
worker = threading.Thread(target=ts.list_callbacks, args=("0000123456-00002",), name="worker")
worker.start()
worker.join()
print(json.dumps([before, after_main, after_worker, runtime.io_loop() is loop, runtime.is_patched(loop)]))
"""


def test_the_io_loop_starts_at_the_first_blocking_call_never_at_import_and_is_never_patched(tmp_path: Path) -> None:
    env = {**os.environ, "TSKIT_CONFIG_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", _LAZY_START], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    before, after_main, after_worker, same_loop, patched = json.loads(done.stdout)
    assert before == ["MainThread"]  # import and connect() start no thread
    assert after_main == ["MainThread"]  # the main thread's call runs on a loop of its own, in that thread
    assert after_worker == ["MainThread", "tskit-io"]  # another thread's, on the I/O loop
    assert same_loop and not patched  # one I/O loop for every other thread; nest-asyncio2 never touches it
