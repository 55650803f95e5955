"""Ctrl-C and SIGTERM as a request to stop that is never lost, for the servers run in the foreground.

Python's own Ctrl-C raises ``KeyboardInterrupt`` wherever the main thread happens to be when the
handler runs. When that is inside a weakref callback or a ``__del__`` (the garbage collector runs
them at any allocation), the exception is printed as "ignored" and dropped: a server still starting
then serves on, and a script waiting for it to end waits forever. Here a signal only sets a flag and
asks the server to exit; the exception is raised afterwards, from ordinary code, where it cannot be
dropped.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

#: The signals that mean "stop": Ctrl-C, and what service managers and ``kill`` send.
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Which stop signal arrived (first), and who is to be told of each one.

    Attributes:
        signal: The first stop signal received, or ``None``.
        count: How many arrived (a second Ctrl-C may skip a graceful wait).
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self.count = 0
        self._listeners: list[Callable[[int], None]] = []

    @property
    def requested(self) -> bool:
        """Whether a stop signal arrived."""
        return self.signal is not None

    def handle(self, signum: int, frame: Any) -> None:
        """The signal handler: record, then tell each listener; never raises."""
        if self.signal is None:
            self.signal = signum
        self.count += 1
        for listener in list(self._listeners):
            listener(self.count)

    @contextlib.contextmanager
    def telling(self, listener: Callable[[int], None]) -> Iterator[None]:
        """Call ``listener(count)`` for each stop signal while inside; at once if one already came."""
        self._listeners.append(listener)
        try:
            if self.count:
                listener(self.count)
            yield
        finally:
            self._listeners.remove(listener)

    def raise_if_requested(self) -> None:
        """Raise what the signal means to Python: ``KeyboardInterrupt``, or ``SystemExit(143)``.

        Raises:
            KeyboardInterrupt: Ctrl-C (SIGINT) arrived.
            SystemExit: SIGTERM arrived (code 143, as the shell reports a process it ended).
        """
        if self.signal == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signal is not None:
            raise SystemExit(128 + self.signal)


@contextlib.contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """While inside, SIGINT and SIGTERM set a :class:`StopRequest` instead of raising.

    Nested uses share the outermost request (a signal between them is not lost). Outside the main
    thread, or for a signal the process ignores (a job started with ``nohup`` or ``&``), nothing is
    changed: the request then never fills.
    """
    if threading.current_thread() is not threading.main_thread():
        yield StopRequest()
        return
    for signum in SIGNALS:
        owner = getattr(signal.getsignal(signum), "__self__", None)
        if isinstance(owner, StopRequest):
            yield owner
            return
    request = StopRequest()
    previous: dict[int, Any] = {}
    try:
        for signum in SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, request.handle)
        yield request
    finally:
        # SIGINT last: once Python's own handler is back, a Ctrl-C raises at once, and would leave
        # any handler not yet put back to this finished request (later signals ignored, or reused)
        for taken, handler in reversed(previous.items()):
            signal.signal(taken, handler)
