"""Run a coroutine to completion from blocking code, even inside a running event loop.

Outside any loop (scripts, cron, the CLI) each thread keeps one private loop, so the connection
pool made on it is reused from call to call. Inside a running loop (a notebook cell) the loop is
patched with nest-asyncio2 so that it can be re-entered; that happens once per loop, only then,
never at import. Loops that cannot be patched (uvloop) get a clear error instead.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_local = threading.local()
_private_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_patched: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_patch_lock = threading.Lock()
_closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[Callable[[], Awaitable[None]]]] = (
    weakref.WeakKeyDictionary()
)


def close_at_exit(loop: asyncio.AbstractEventLoop, closer: Callable[[], Awaitable[None]]) -> None:
    """Have ``closer`` run on ``loop`` at interpreter exit, if the loop is one of tskit's own.

    Scripts that never close a connection would otherwise leave aiohttp sessions open, which it
    reports on stderr at exit.
    """
    if loop in _private_loops:
        _closers.setdefault(loop, []).append(closer)


def _private_loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
        _private_loops.add(loop)
    return loop


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

        nest_asyncio2.apply(loop)
        _patched.add(loop)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` and return its result, blocking the caller."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        private = _private_loop()
        try:
            return private.run_until_complete(coro)
        except KeyboardInterrupt:
            _cancel_all(private)
            raise
    try:
        _patch(loop)
    except BaseException:
        coro.close()
        raise
    return loop.run_until_complete(coro)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what Ctrl-C left running on ``loop`` and let it finish, so nothing is reported as destroyed."""
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    with contextlib.suppress(BaseException):  # a second Ctrl-C, or a task failing as it ends: exiting anyway
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def is_patched(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether nest-asyncio2 has been applied to ``loop`` by tskit."""
    return loop in _patched


@atexit.register
def _close_private_loops() -> None:
    for loop in list(_private_loops):
        if not loop.is_running() and not loop.is_closed():
            for closer in _closers.pop(loop, []):
                with contextlib.suppress(Exception):  # exiting: a failed close is not worth a traceback
                    loop.run_until_complete(closer())
            loop.close()
