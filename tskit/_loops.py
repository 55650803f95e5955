"""The loops of blocking calls: one call's coroutine on tskit's I/O loop or the main thread's loop, and their ends.

:mod:`tskit._runtime` owns the loops; this module holds what runs on them: the I/O loop's thread
(:func:`serve`), a call made from another thread (:class:`Call`), Ctrl-C during a call of the main
thread (:class:`Interrupt`), the one pool of worker threads (:class:`SharedWorkers`), and a loop's
end as ``asyncio.run`` ends its own (:func:`close_loop`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Seconds tskit waits at exit for a loop's calls and connections to end.
EXIT_WAIT = 5.0


def serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    loop.run_forever()


#: The name of the I/O loop's task of every blocking call: a constant, so that no call formats one.
CALL_TASK_NAME = "tskit-blocking-call"


class Call(Generic[T]):
    """One blocking call's coroutine on the I/O loop, and the lock its caller waits on until it ends.

    Cheaper than ``asyncio.run_coroutine_threadsafe``: no concurrent Future (with its Condition and a
    waiter lock per wait), no done-callback round through the loop; the coroutine's end releases
    :attr:`done` directly.
    """

    __slots__ = ("_error", "_result", "coro", "done", "task")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self.coro = coro
        self.done = threading.Lock()
        self.done.acquire()
        self.task: asyncio.Task[None] | None = None
        self._result: Any = None
        self._error: BaseException | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the coroutine as a task of ``loop`` (on the loop's thread)."""
        # Held here, by the waiting caller: the loop itself keeps only weak references to tasks.
        self.task = loop.create_task(self._drive(), name=CALL_TASK_NAME)

    def cancel(self) -> None:
        """Cancel the call (on the loop's thread): its caller stopped waiting."""
        if self.task is not None:
            self.task.cancel()

    async def _drive(self) -> None:
        try:
            self._result = await self.coro
        except (KeyboardInterrupt, SystemExit) as exc:  # as a task's would: they stop the loop too
            self._error = exc
            raise
        except BaseException as exc:
            self._error = exc
        finally:
            self.done.release()

    def outcome(self) -> T:
        """The coroutine's result, or its exception raised (once ``done`` was acquired)."""
        error = self._error
        if error is None:
            result: T = self._result
            return result
        self._error = None  # no cycle through the traceback's frames
        if isinstance(error, asyncio.CancelledError):  # as a concurrent Future says it
            raise concurrent.futures.CancelledError() from None
        raise error


class _Held:
    """A second Ctrl-C held back while the main thread is inside the pool's own bookkeeping."""

    __slots__ = ("depth", "pending")

    def __init__(self) -> None:
        self.depth = 0
        self.pending = False


_HELD = _Held()


class SharedWorkers(concurrent.futures.ThreadPoolExecutor):
    """The runtime's one pool of worker threads, the default executor of both its loops.

    A loop's ``close()`` shuts its default executor down: this one stays up for the other loop and
    the next (its threads end at exit, when ``concurrent.futures`` joins every pool's).
    """

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """Submit as the pool does; on the main thread, a second Ctrl-C raises only once it is done.

        Raised inside, while ``Thread.start`` waits for a new worker, it would leave that worker
        running but unknown to the exit's join: the interpreter would then wait for it forever.
        """
        if threading.current_thread() is not threading.main_thread():
            return super().submit(fn, *args, **kwargs)
        _HELD.depth += 1
        try:
            return super().submit(fn, *args, **kwargs)
        finally:
            _HELD.depth -= 1
            if not _HELD.depth and _HELD.pending:
                _HELD.pending = False
                raise KeyboardInterrupt  # the Ctrl-C held back while the pool was inside

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Keep the pool: it is the process's, not one loop's."""


class Interrupt:
    """Ctrl-C during a blocking call of the main thread: the first cancels the call, a second raises."""

    __slots__ = ("count", "loop", "task")

    def __init__(self, task: asyncio.Task[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.task = task
        self.loop = loop
        self.count = 0

    def handle(self, signum: int, frame: Any) -> None:
        """The SIGINT handler while the call runs."""
        self.count += 1
        if self.count == 1 and not self.task.done():
            self.task.cancel()
            self.loop.call_soon_threadsafe(_nothing)  # wakes the loop if it waits in select()
            return
        if _HELD.depth:  # inside the pool's bookkeeping: raised as soon as it is done
            _HELD.pending = True
            return
        raise KeyboardInterrupt


def _nothing() -> None:
    pass


def forget_interrupts_after_fork() -> None:
    """In a forked child: drop the parent's Ctrl-C handling of the main-thread call it was making.

    A thread forked while the main thread waited in a call: the child has the parent's
    :class:`Interrupt` as its SIGINT handler (whose first Ctrl-C would cancel the parent's task, and
    be swallowed) but not the call that would put Python's own back.
    """
    _HELD.depth, _HELD.pending = 0, False
    if isinstance(getattr(signal.getsignal(signal.SIGINT), "__self__", None), Interrupt):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """End ``loop`` as ``asyncio.run`` ends its own: cancel its tasks, close its async generators, close it."""
    try:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=EXIT_WAIT / 2))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:  # not its executor: the runtime's pool, shared with the I/O loop (its threads end at exit)
        loop.close()
