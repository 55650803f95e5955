"""Frames as a command shows them: a table, CSV or JSON; colours only where they are wanted."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def rows_json(frame: pd.DataFrame) -> object:
    """Plain JSON values of a frame's rows: times as ISO text, missing values as null."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def colour_wanted(stream: object) -> bool:
    """Colours on a terminal or with FORCE_COLOR set, never when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    isatty = getattr(stream, "isatty", None)
    return callable(isatty) and bool(isatty())


def show(frame: pd.DataFrame, fmt: str = "table", limit: int | None = None) -> str:
    """A frame as text: a table (at most ``limit`` rows, then how many more), CSV or JSON."""
    if fmt == "csv":
        return str(frame.to_csv(index=False))
    if fmt == "json":
        return json.dumps(rows_json(frame), indent=2, ensure_ascii=False) + "\n"
    if not len(frame):
        return "(none)\n"
    shown = frame if limit is None else frame.head(limit)
    left = len(frame) - len(shown)
    more = f"... {left} more {'row' if left == 1 else 'rows'} (--limit)\n" if left else ""
    return shown.to_string(index=False) + "\n" + more
