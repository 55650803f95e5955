"""A blocking call, on the main thread's loop or by a hop to tskit's I/O loop: what comes back, what Ctrl-C stops.

Events, not times: each case waits for the coroutine to say it started before it interrupts it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from tskit._runtime import runtime

T = TypeVar("T")

_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="none")


def _in_a_thread(call: Callable[[], T]) -> T:
    """``call()`` run by another thread than the main one (whose blocking calls have a loop of their own)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


@pytest.mark.parametrize("thread", ["main", "other"])
def test_the_result_and_the_callers_context_vars_come_through(thread: str) -> None:
    async def read_var() -> str:
        loop = asyncio.get_running_loop()
        assert runtime.is_main_loop(loop) if thread == "main" else runtime.is_io_loop(loop)
        return _CALLER.get()

    def call() -> str:
        token = _CALLER.set("this thread")
        try:
            return runtime.run(read_var())
        finally:
            _CALLER.reset(token)

    assert (call() if thread == "main" else _in_a_thread(call)) == "this thread"


def test_a_blocking_call_inside_a_callback_of_another_fails_clearly() -> None:
    async def callback_calling_again() -> None:
        inner = asyncio.sleep(0)
        runtime.run(inner)  # e.g. an on_progress callback making a blocking call

    with pytest.raises(RuntimeError) as caught:
        runtime.run(callback_calling_again())
    assert "use the async twin" in str(caught.value)
    assert runtime.run(asyncio.sleep(0, result="next")) == "next"


@pytest.mark.parametrize("thread", ["main", "other"])
def test_the_coroutines_own_exception_is_raised_in_the_calling_thread(thread: str) -> None:
    raised = ValueError("the very one")

    async def fail() -> None:
        raise raised

    def call() -> BaseException:
        with pytest.raises(ValueError) as caught:
            runtime.run(fail())
        return caught.value

    assert (call() if thread == "main" else _in_a_thread(call)) is raised


@pytest.mark.parametrize("thread", ["main", "other"])
def test_a_cancelled_call_is_a_cancelled_error_of_concurrent_futures(thread: str) -> None:
    async def cancelled() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)

    def call() -> str:
        with pytest.raises(concurrent.futures.CancelledError):
            runtime.run(cancelled())
        return runtime.run(asyncio.sleep(0, result="next"))

    assert (call() if thread == "main" else _in_a_thread(call)) == "next"


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


def test_ctrl_c_in_the_main_thread_cancels_its_call() -> None:
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
