"""Run a coroutine to completion from blocking code: on tskit's I/O loop, or nested in a notebook's loop.

Outside any running loop (scripts, cron, threads, the CLI) every blocking call runs on ONE event
loop that tskit keeps in a daemon thread for the whole process (as dask's ``LoopRunner`` or
anyio's blocking portal do): 20 threads calling at once share one loop and one connection pool,
and no thread leaves a loop or sockets behind. The loop starts with the first blocking call,
never at import, and is started anew in a child after ``fork``.

Inside a running loop (a notebook cell calling ``ts.list_callbacks`` without ``await``) the call
must run on that loop, so that widgets' tasks and awaited calls of the same kernel go on. That
loop, and only that loop, is made re-entrant with nest-asyncio2: ``nest_asyncio2.apply`` would
also replace ``asyncio.Task``, ``asyncio.Future``, ``asyncio.run`` and the policy's
``get_event_loop`` for the whole process, and its loop patch is set on the loop's *class*; so
tskit gives that one loop a subclass of its own and patches only the subclass. Loops that cannot
be patched (uvloop) get a clear error instead.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: Seconds between checks that the I/O loop's thread still runs, while a blocking call waits.
_CHECK_EVERY = 0.5
#: Seconds tskit waits at exit for its I/O loop to close its connections.
_EXIT_WAIT = 5.0

_io_lock = threading.Lock()
_io_loop: asyncio.AbstractEventLoop | None = None
_io_thread: threading.Thread | None = None
_patched: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_patch_lock = threading.Lock()
_closers: list[Callable[[], Awaitable[None]]] = []


def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    loop.run_forever()


def io_loop() -> asyncio.AbstractEventLoop:
    """The I/O loop of tskit, running in its daemon thread (started on first use)."""
    global _io_loop, _io_thread
    with _io_lock:
        if _io_loop is None or _io_thread is None or not _io_thread.is_alive() or _io_loop.is_closed():
            if _io_loop is not None and not _io_loop.is_closed() and not _io_loop.is_running():
                _io_loop.close()  # its thread ended: a new loop and thread take over
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(target=_serve, args=(loop, ready), name="tskit-io", daemon=True)
            thread.start()
            ready.wait()
            _io_loop, _io_thread = loop, thread
            _closers.clear()
        return _io_loop


def _forget_after_fork() -> None:
    # The child has the parent's loop object but not its thread: the next call starts both anew.
    global _io_loop, _io_thread
    _io_loop = _io_thread = None
    _closers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def close_at_exit(loop: asyncio.AbstractEventLoop, closer: Callable[[], Awaitable[None]]) -> None:
    """Have ``closer`` run at interpreter exit if ``loop`` is tskit's I/O loop.

    Scripts that never close a connection would otherwise leave its sockets open until exit,
    which Python reports as ResourceWarnings.
    """
    if loop is _io_loop:
        _closers.append(closer)


def _patch(loop: asyncio.AbstractEventLoop) -> None:
    with _patch_lock:
        if loop in _patched:
            return
        if not isinstance(loop, asyncio.BaseEventLoop):
            raise RuntimeError(
                f"cannot make a blocking call inside a running {type(loop).__name__}: it cannot be "
                "re-entered. Use the async twin instead, e.g. `await ts.alist_callbacks(...)`"
            )
        import nest_asyncio2

        patch_loop = getattr(nest_asyncio2, "_patch_loop", None)
        if patch_loop is None:  # a nest-asyncio2 without it: its public, process-wide patch
            nest_asyncio2.apply(loop)
        else:
            base = type(loop)
            # nest-asyncio2 sets its methods on the class: a class of this loop's own keeps every
            # other loop of the process as it was. The subclass adds no slots: the switch is allowed.
            loop.__class__ = type(f"Reentrant{base.__name__}", (base,), {"__module__": __name__})
            patch_loop(loop)
        _patched.add(loop)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` and return its result, blocking the caller.

    Raises:
        RuntimeError: Called on tskit's own I/O loop (a callback or task of it), or the I/O loop
            stopped before the call ended.
    """
    if threading.current_thread() is _io_thread:  # first: that loop is running, but must never nest
        coro.close()
        raise RuntimeError(
            "a blocking tskit call cannot run on tskit's own I/O loop (in a task or callback of it): "
            "use the async twin instead, e.g. `await ts.alist_callbacks(...)`"
        )
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is None:
        loop = io_loop()
        thread = _io_thread
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            while True:  # in slices: a loop whose thread died would otherwise be waited for forever
                try:
                    return future.result(timeout=_CHECK_EVERY)
                except concurrent.futures.TimeoutError:
                    if thread is None or not thread.is_alive() or loop.is_closed():
                        raise RuntimeError("tskit's I/O loop stopped before the call ended; call again") from None
        except BaseException:  # Ctrl-C in the waiting thread: stop the call too
            future.cancel()
            raise
    try:
        _patch(running)
    except BaseException:
        coro.close()
        raise
    return running.run_until_complete(coro)


def is_patched(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether tskit made ``loop`` re-entrant (nest-asyncio2), as after a blocking call inside it."""
    return loop in _patched


@atexit.register
def _close_io_loop() -> None:
    loop, thread = _io_loop, _io_thread
    if loop is None or thread is None or not thread.is_alive() or loop.is_closed():
        return

    async def close_all() -> None:
        # Calls still in flight (a Ctrl-C left them) end first, as asyncio.run ends its tasks:
        # a task destroyed pending would print "Task was destroyed but it is pending!" at exit.
        me = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not me]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=_EXIT_WAIT / 2)
        for closer in list(_closers):
            with contextlib.suppress(Exception):  # exiting: a failed close is not worth a traceback
                await closer()

    with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
        asyncio.run_coroutine_threadsafe(close_all(), loop).result(_EXIT_WAIT)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(_EXIT_WAIT)
    if not thread.is_alive():
        loop.close()
