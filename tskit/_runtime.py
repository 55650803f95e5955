"""The process's runtime: ONE object that owns tskit's process-wide state, and resets it in a forked child.

:data:`runtime` owns the I/O loop and its thread, the clients to close at exit (held weakly), and
the process-wide locks (made with :func:`process_lock`). Modules that keep other process-wide
state register, once, how to start it afresh with :func:`on_fork_in_child`; one
``os.register_at_fork`` handler resets the runtime, then calls them all, in the order they registered.

Blocking calls. Outside any running loop, a blocking call of the main thread (a script, cron, a
notebook-less REPL) runs on a loop of that thread's own, kept for the whole process like
``asyncio.Runner`` keeps one: no hop to another thread and back, which cost a tenth of a call over
loopback, and Ctrl-C cancels the call as ``asyncio.run`` does. Every other thread's blocking call
runs on ONE event loop that tskit keeps in a daemon thread (as dask's ``LoopRunner`` or anyio's
blocking portal do): 20 threads calling at once share one loop and one connection pool, and no
thread leaves a loop or sockets behind. Both loops start with the first blocking call that needs
them, never at import; both are closed at exit, and started anew in a child after ``fork``.

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
import functools
import inspect
import os
import signal
import threading
import weakref
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from tskit._loops import (
    CALL_TASK_NAME,
    EXIT_WAIT,
    Call,
    Interrupt,
    SharedWorkers,
    close_loop,
    forget_interrupts_after_fork,
    serve,
)

T = TypeVar("T")
S = TypeVar("S")
P = ParamSpec("P")

#: Seconds between checks that the I/O loop's thread still runs, while a blocking call waits.
_CHECK_EVERY = 0.5
#: Most threads the I/O loop runs blocking work on (``asyncio.to_thread``): Python's own default.
WORKERS = min(32, (os.cpu_count() or 1) + 4)
#: The name of those threads, then a number.
WORKER_NAME = "tskit-io-worker"

_resets: list[Callable[[], None]] = []
_resets_lock = threading.Lock()


def on_fork_in_child(reset: Callable[[], None]) -> Callable[[], None]:
    """Have ``reset`` called in every child forked from now on, before any other code of the child runs.

    ``reset`` must not take a lock that another thread may hold at fork time: it replaces such locks.
    Usable as a decorator; returns ``reset``.
    """
    with _resets_lock:
        _resets.append(reset)
    return reset


class ProcessLock:
    """A process-wide lock that a forked child gets free, whoever held it in the parent at fork time.

    A ``threading.Lock`` held by another thread at ``fork`` stays held forever in the child (that
    thread does not exist there). The runtime gives every lock made here a new inner lock in the child.
    """

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        _locks.add(self)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock, as :meth:`threading.Lock.acquire` does."""
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        """Release the lock."""
        self._lock.release()

    def locked(self) -> bool:
        """Whether some thread holds the lock."""
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()

    def _renew(self) -> None:
        self._lock = threading.Lock()


_locks: weakref.WeakSet[ProcessLock] = weakref.WeakSet()


def process_lock() -> ProcessLock:
    """A lock for process-wide state, released in every forked child (see :class:`ProcessLock`)."""
    return ProcessLock()


#: What closes a client's connections on the I/O loop (its pool's ``aclose``).
Closer = Callable[[], Coroutine[Any, Any, None]]


class Runtime:
    """The I/O loop and its thread, the clients to close at exit, and the locks guarding them.

    One per process (:data:`runtime`); a forked child starts with a fresh state (no loop, no
    clients, free locks), and its first blocking call starts its own loop.
    """

    def __init__(self) -> None:
        self._start_lock = process_lock()
        self._patch_lock = process_lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._patched: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        # Held weakly: a client its user dropped must not be kept (with its pool, its transport
        # and an embedded simulator) until exit; its finalizer closes its pool then.
        self._clients: weakref.WeakKeyDictionary[object, weakref.finalize[Any, Any]] = weakref.WeakKeyDictionary()
        self._closing: set[concurrent.futures.Future[None]] = set()
        # The main thread's own loop for its blocking calls (made on first use; only that thread uses it).
        self._main_loop: asyncio.AbstractEventLoop | None = None
        self._main_clients: weakref.WeakKeyDictionary[object, weakref.finalize[Any, Any]] = weakref.WeakKeyDictionary()
        self._main_dropped: list[Closer] = []  # closers of clients dropped since the main loop last ran
        self._main_closing: set[asyncio.Task[None]] = set()
        self._workers: SharedWorkers | None = None
        self._workers_lock = process_lock()

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        """A loop whose blocking work (``asyncio.to_thread``) goes to the runtime's one pool of workers."""
        loop = asyncio.new_event_loop()
        with self._workers_lock:
            if self._workers is None:
                # Named and counted: the pool grows to WORKERS threads at most, then reuses them.
                self._workers = SharedWorkers(WORKERS, thread_name_prefix=WORKER_NAME)
            loop.set_default_executor(self._workers)
        return loop

    # -- the I/O loop -------------------------------------------------------------------

    def io_loop(self) -> asyncio.AbstractEventLoop:
        """The I/O loop of tskit, running in its daemon thread (started on first use)."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive() and not loop.is_closed():
            return loop  # the common case: no lock on the path of every blocking call
        with self._start_lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None or not thread.is_alive() or loop.is_closed():
                if loop is not None and not loop.is_closed() and not loop.is_running():
                    loop.close()  # its thread ended: a new loop and thread take over
                loop = self._new_loop()
                ready = threading.Event()
                thread = threading.Thread(target=serve, args=(loop, ready), name="tskit-io", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
                self._clients = weakref.WeakKeyDictionary()
            return loop

    def running_io_loop(self) -> asyncio.AbstractEventLoop | None:
        """The I/O loop if it runs now, else ``None`` (never starts it)."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive() and not loop.is_closed():
            return loop
        return None

    def is_io_loop(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether ``loop`` is tskit's I/O loop."""
        return loop is self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` and return its result, blocking the caller.

        Raises:
            RuntimeError: Called on tskit's own I/O loop (a callback or task of it), or the I/O loop
                stopped before the call ended.
        """
        current = threading.current_thread()
        if current is self._thread:  # first: that loop is running, but must never nest
            coro.close()
            raise RuntimeError(
                "a blocking tskit call cannot run on tskit's own I/O loop (in a task or callback of it): "
                "use the async twin instead, e.g. `await ts.alist_callbacks(...)`"
            )
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is None:  # outside the except block: the call's own errors carry no "no running loop"
            if current is threading.main_thread():
                return self._run_on_main_loop(coro)
            return self._run_on_io_loop(coro)
        if running is self._main_loop:  # a callback of a blocking call (on_progress) calling again
            coro.close()
            raise RuntimeError(
                "a blocking tskit call cannot run inside another one (in a callback it calls): "
                "use the async twin instead, e.g. `await ts.alist_callbacks(...)`"
            )
        try:
            self._patch(running)
        except BaseException:
            coro.close()
            raise
        return running.run_until_complete(coro)

    def _run_on_main_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._main_loop
        if loop is None or loop.is_closed():
            loop = self._main_loop = self._new_loop()
        self._close_dropped_on_main_loop(loop)
        task = loop.create_task(coro, name=CALL_TASK_NAME)  # a copy of the caller's context vars
        # Ctrl-C cancels the call, as asyncio.run does: a KeyboardInterrupt raised wherever the loop
        # happens to be could be taken for a failed connection by the code it lands in.
        interrupt = Interrupt(task, loop) if signal.getsignal(signal.SIGINT) is signal.default_int_handler else None
        if interrupt is not None:
            signal.signal(signal.SIGINT, interrupt.handle)
        try:
            result = loop.run_until_complete(task)
        except asyncio.CancelledError:
            if interrupt is not None and interrupt.count:
                raise KeyboardInterrupt from None
            raise concurrent.futures.CancelledError() from None  # as a call on the I/O loop says it
        except BaseException:  # a second Ctrl-C: the call ends (cancelled) before it is raised
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(task)
            raise
        finally:
            if interrupt is not None and signal.getsignal(signal.SIGINT) == interrupt.handle:
                signal.signal(signal.SIGINT, signal.default_int_handler)
        if interrupt is not None and interrupt.count:  # the call ended anyway: Ctrl-C still means stop
            raise KeyboardInterrupt
        return result

    def _close_dropped_on_main_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start closing the connections of the clients dropped since the main loop last ran."""
        while self._main_dropped:
            closer = self._main_dropped.pop()
            closing = loop.create_task(closer())
            self._main_closing.add(closing)  # held until done: the loop keeps only weak references
            closing.add_done_callback(self._main_closing.discard)

    def is_main_loop(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether ``loop`` is the main thread's loop for its blocking calls."""
        return loop is self._main_loop

    def _run_on_io_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self.io_loop()
        thread = self._thread
        call = Call(coro)
        done = call.done
        try:
            loop.call_soon_threadsafe(call.start, loop)
        except BaseException:  # the loop closed meanwhile: the coroutine is still only ours
            coro.close()
            raise
        try:
            # In slices: a loop whose thread died would otherwise be waited for forever. A plain
            # lock is the cheapest signal there is (a concurrent Future adds a Condition per wait).
            while not done.acquire(timeout=_CHECK_EVERY):
                if thread is None or not thread.is_alive() or loop.is_closed():
                    raise RuntimeError("tskit's I/O loop stopped before the call ended; call again")
        except BaseException:  # Ctrl-C in the waiting thread: stop the call too
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs there any more
                loop.call_soon_threadsafe(call.cancel)  # after call.start: a loop runs its callbacks in order
            raise
        return call.outcome()

    # -- notebooks' loops ---------------------------------------------------------------

    def _patch(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop in self._patched:
            return
        with self._patch_lock:
            if loop in self._patched:
                return
            if not isinstance(loop, asyncio.BaseEventLoop):
                raise RuntimeError(
                    f"cannot make a blocking call inside a running {type(loop).__name__}: it cannot be "
                    "re-entered. Use the async twin instead, e.g. `await ts.alist_callbacks(...)`"
                )
            import nest_asyncio2  # only where a notebook makes a blocking call inside its loop

            patch_loop = getattr(nest_asyncio2, "_patch_loop", None)
            if patch_loop is None:  # a nest-asyncio2 without it: its public, process-wide patch
                nest_asyncio2.apply(loop)
            else:
                base = type(loop)
                # nest-asyncio2 sets its methods on the class: a class of this loop's own keeps every
                # other loop of the process as it was. The subclass adds no slots: the switch is allowed.
                loop.__class__ = type(f"Reentrant{base.__name__}", (base,), {"__module__": __name__})
                patch_loop(loop)
            self._patched.add(loop)

    def is_patched(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether tskit made ``loop`` re-entrant (nest-asyncio2), as after a blocking call inside it."""
        return loop in self._patched

    # -- clients ------------------------------------------------------------------------

    def register(self, loop: asyncio.AbstractEventLoop, client: object, closer: Closer) -> None:
        """Have ``closer`` close ``client``'s connections on ``loop`` when the client is dropped, or at exit.

        Only for connections on tskit's own loops (the I/O loop, the main thread's): a loop of the
        user's closes its own. Scripts that never close a connection would otherwise leave its
        sockets open until exit, which Python reports as ResourceWarnings. ``closer`` must not
        refer to ``client``.
        """
        if loop is self._loop:
            finalizer = weakref.finalize(client, self._close_dropped, loop, closer)
            finalizer.atexit = False  # close() does it, on the loop, before the loop stops
            self._clients[client] = finalizer
        elif loop is self._main_loop:
            # Dropped on any thread, at any time: closed on the main thread's loop when it next runs
            # (its next blocking call, or the exit); the closer keeps the sockets until then.
            dropped = weakref.finalize(client, self._main_dropped.append, closer)
            dropped.atexit = False
            self._main_clients[client] = dropped

    def unregister(self, loop: asyncio.AbstractEventLoop, client: object) -> None:
        """Forget ``client`` on ``loop``: it closed its connections there."""
        clients = self._clients if loop is self._loop else self._main_clients if loop is self._main_loop else None
        finalizer = clients.pop(client, None) if clients is not None else None
        if finalizer is not None:
            finalizer.detach()

    def registered(self) -> int:
        """How many clients have connections open on the I/O loop."""
        return len(self._clients)

    def _close_dropped(self, loop: asyncio.AbstractEventLoop, closer: Closer) -> None:
        # The garbage collector may call this on any thread, the I/O loop's own included.
        if loop is not self._loop or loop.is_closed():
            return
        closing = asyncio.run_coroutine_threadsafe(closer(), loop)
        self._closing.add(closing)  # held until done: a task only the loop refers to may be collected
        closing.add_done_callback(self._closing.discard)

    # -- exit and fork ------------------------------------------------------------------

    def close(self) -> None:
        """At exit: close the main thread's loop; end calls in flight, close the clients, stop the I/O loop."""
        main_loop = self._main_loop
        if main_loop is not None and not main_loop.is_running() and not main_loop.is_closed():
            for finalizer in list(self._main_clients.values()):
                detached = finalizer.detach()  # (client, append, (closer,), {}) while the client lives
                if detached is not None:
                    self._main_dropped.append(detached[2][0])
            self._close_dropped_on_main_loop(main_loop)
            with contextlib.suppress(Exception):
                if self._main_closing:  # the connections first, then as asyncio.run ends its loop
                    main_loop.run_until_complete(asyncio.wait(set(self._main_closing), timeout=EXIT_WAIT / 2))
                close_loop(main_loop)
        self._main_loop = None
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive() or loop.is_closed():
            return
        closers: list[Closer] = []
        for finalizer in list(self._clients.values()):
            detached = finalizer.detach()  # (client, function, (loop, closer), {}) while the client lives
            if detached is not None:
                closers.append(detached[2][1])

        async def close_all() -> None:
            # Calls still in flight (a Ctrl-C left them) end first, as asyncio.run ends its tasks:
            # a task destroyed pending would print "Task was destroyed but it is pending!" at exit.
            me = asyncio.current_task()
            pending = [task for task in asyncio.all_tasks() if task is not me]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=EXIT_WAIT / 2)
            for closer in closers:
                with contextlib.suppress(Exception):  # exiting: a failed close is not worth a traceback
                    await closer()

        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(EXIT_WAIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(EXIT_WAIT)
        if not thread.is_alive():
            loop.close()

    def _forget_after_fork(self) -> None:
        # The child has the parent's loop object but not its thread: the next call starts both anew.
        self._loop = self._thread = None
        self._workers = None  # its threads are the parent's: the child's first loop makes a pool anew
        # The main thread's loop is the parent's: never closed here, as closing it would remove its
        # wake-up pipe from the epoll instance the parent shares with this child (the parent's loop
        # would then sleep through every wake-up), and its connections are the parent's too. Kept,
        # so that its collection does not close it either; the child's first call makes its own.
        if self._main_loop is not None:
            _ABANDONED.append(self._main_loop)
        self._main_loop = None
        self._clients = weakref.WeakKeyDictionary()  # their finalizers would close the parent's sockets
        self._main_clients = weakref.WeakKeyDictionary()
        self._main_dropped = []
        self._main_closing = set()
        self._closing = set()
        forget_interrupts_after_fork()


def _after_fork_in_child() -> None:
    global _resets_lock
    _resets_lock = threading.Lock()  # another thread may have held it while registering
    for lock in list(_locks):
        lock._renew()
    runtime._forget_after_fork()
    for reset in list(_resets):
        reset()


#: The loops a forked child inherited from its parent: never closed nor collected in the child.
_ABANDONED: list[asyncio.AbstractEventLoop] = []

#: The runtime of this process.
runtime = Runtime()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(runtime.close)


def blocking(operation: Callable[Concatenate[S, P], Coroutine[Any, Any, T]]) -> Callable[Concatenate[S, P], T]:
    """The blocking twin of an async method ``aname``: ``name``, same parameters and defaults, run by :data:`runtime`.

    Written once, async; the twin is generated (as dask.distributed's ``sync`` does), so the two
    cannot drift: :func:`inspect.signature` of the twin is the operation's (through ``__wrapped__``),
    and its docstring is the operation's, saying that it blocks and naming the async twin.

    Usage, in a class body: ``list_callbacks = blocking(alist_callbacks)``.
    """
    name = operation.__name__.removeprefix("a")
    run = runtime.run

    @functools.wraps(operation)
    def twin(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return run(operation(self, *args, **kwargs))

    twin.__name__ = name
    twin.__qualname__ = operation.__qualname__.removesuffix(operation.__name__) + name
    twin.__doc__ = twin_docstring(operation.__doc__, operation.__name__)
    return twin


def twin_docstring(doc: str | None, operation: str) -> str:
    """The docstring of the blocking twin of ``operation`` (``"alist_callbacks"``) whose docstring is ``doc``."""
    summary, _, rest = inspect.cleandoc(doc or "").partition("\n")
    note = f"Blocks until done; ``await {operation}(...)`` is its async twin, for running event loops."
    return f"{summary}\n\n{note}\n{rest}".rstrip() + "\n"
