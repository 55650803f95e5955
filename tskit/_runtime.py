"""The process's runtime: the one place that owns process-wide state and resets it in a forked child.

A child forked while another thread held a lock, or while tskit's I/O loop ran, inherits that lock
held and that loop's thread gone. Each module that keeps process-wide state registers, once, how to
start it afresh with :func:`on_fork_in_child`; one ``os.register_at_fork`` handler calls them all,
in the order they registered.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

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


def _after_fork_in_child() -> None:
    global _resets_lock
    _resets_lock = threading.Lock()  # another thread may have held it while registering
    for reset in list(_resets):
        reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
