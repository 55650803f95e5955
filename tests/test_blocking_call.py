"""The hop of a blocking call to tskit's I/O loop and back: what comes back, and what a Ctrl-C stops.

Events, not times: each case waits for the coroutine to say it started before it interrupts it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import subprocess
import sys
import threading

import pytest

from tskit._runtime import runtime

_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="none")


def test_the_result_and_the_callers_context_vars_come_through() -> None:
    async def read_var() -> str:
        assert runtime.is_io_loop(asyncio.get_running_loop())
        return _CALLER.get()

    token = _CALLER.set("this thread")
    try:
        assert runtime.run(read_var()) == "this thread"
    finally:
        _CALLER.reset(token)


def test_the_coroutines_own_exception_is_raised_in_the_calling_thread() -> None:
    raised = ValueError("the very one")

    async def fail() -> None:
        raise raised

    with pytest.raises(ValueError) as caught:
        runtime.run(fail())
    assert caught.value is raised


def test_a_call_cancelled_on_the_io_loop_is_a_cancelled_error_of_concurrent_futures() -> None:
    async def cancelled() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)

    with pytest.raises(concurrent.futures.CancelledError):
        runtime.run(cancelled())
    assert runtime.run(asyncio.sleep(0, result="next")) == "next"


def test_threads_calling_at_once_each_get_their_own_answer() -> None:
    gate = threading.Barrier(8)
    answers: dict[int, list[int]] = {}

    async def echo(n: int) -> int:
        await asyncio.sleep(0)
        return n

    def caller(me: int) -> None:
        gate.wait()
        answers[me] = [runtime.run(echo(me * 1000 + i)) for i in range(200)]

    threads = [threading.Thread(target=caller, args=(me,)) for me in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == {me: [me * 1000 + i for i in range(200)] for me in range(8)}


_CTRL_C = """
import asyncio, os, signal, threading
from tskit._runtime import runtime

started = threading.Event()
ended = []

async def forever():
    started.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        ended.append("cancelled")
        raise

def interrupt():
    started.wait()
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

threading.Thread(target=interrupt).start()
try:
    runtime.run(forever())
except KeyboardInterrupt:
    pass
else:
    raise SystemExit("no KeyboardInterrupt")
# The cancel reaches the loop after the interrupt: a call through the same loop comes after it.
assert runtime.run(asyncio.sleep(0, result=7)) == 7
assert ended == ["cancelled"], ended

async def others():
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

assert runtime.run(others()) == []
print("ok")
"""


def test_ctrl_c_in_the_calling_thread_cancels_the_call_on_the_io_loop() -> None:
    # In a process of its own: the signal goes to that process's main thread.
    done = subprocess.run([sys.executable, "-c", _CTRL_C], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_an_error_of_a_blocking_call_carries_no_unrelated_context() -> None:
    """A script's traceback shows the call's error only, not "no running event loop" before it."""
    import tskit

    with tskit.connect() as ts, pytest.raises(tskit.ApiError) as caught:
        ts.list_callbacks("9999999999-00001")
    assert caught.value.__context__ is None or not isinstance(caught.value.__context__, RuntimeError)
    assert "importlib" not in dir(tskit)
