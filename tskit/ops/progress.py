"""A progress bar for fan-outs: tqdm's notebook bar in Jupyter, a text bar in a terminal, else none."""

from __future__ import annotations

import os
import sys
import weakref
from typing import Any

# Every bar made, to end their lines when a run is interrupted (see close_open_bars).
_bars: weakref.WeakSet[Any] = weakref.WeakSet()


def _in_jupyter() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ipython = getattr(shell, "get_ipython", lambda: None)()
    return ipython is not None and hasattr(ipython, "kernel")


def progress_bar(total: int, *, enabled: bool | None, description: str, unit: str = "account") -> Any | None:
    """A tqdm bar, or ``None`` when there should be none.

    Args:
        total: Steps to count.
        enabled: ``True`` always, ``False`` never, ``None`` only in Jupyter or when stderr is a terminal.
        description: Text in front of the bar.
        unit: What one step is, e.g. ``"account"`` or ``"change"``.
    """
    if enabled is False:
        return None
    notebook = _in_jupyter()
    if enabled is None and not (notebook or sys.stderr.isatty()):
        return None
    if notebook:
        try:
            import ipywidgets  # noqa: F401  (tqdm's notebook bar needs it; fall back to text without)
            from tqdm.notebook import tqdm as notebook_tqdm

            bar = notebook_tqdm(total=total, desc=description, unit=unit)
            _bars.add(bar)
            return bar
        except ImportError:
            pass
    from tqdm import tqdm

    # a terminal that reports no size (a bare pty, some CI runners) would make tqdm hide the bar
    columns, lines = _stderr_size()
    bar = tqdm(total=total, desc=description, unit=unit, file=sys.stderr, ncols=columns, nrows=lines, leave=True)
    _bars.add(bar)
    return bar


def close_open_bars() -> None:
    """Close every bar still drawing, e.g. after Ctrl-C, so that its line ends (once: a closed bar is disabled)."""
    for bar in list(_bars):
        if not getattr(bar, "disable", True):
            bar.close()


def _stderr_size() -> tuple[int, int]:
    """Columns and lines of the terminal stderr writes to; 80 by 24 when it reports none."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
        columns, lines = size.columns, size.lines
    except (OSError, ValueError, AttributeError):
        columns = lines = 0
    return columns or 80, lines or 24
