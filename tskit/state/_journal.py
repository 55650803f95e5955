"""The apply journal: an append-only JSON Lines file, each line on disk (fsync) before the next move.

Lines: ``{"event": "apply", ...}`` when an apply starts; ``{"event": "step", ...}`` before a step is
sent (account, service, action, URL, username and the password's keyed fingerprint, never the
password); ``{"event": "outcome", "step": ..., "outcome": "done" | "confirmed" | "failed",
"reason": ...}`` once its outcome is known. A step with no outcome line was interrupted.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import pandas as pd

FORMAT: Final = "tskit-journal/1"
JOURNAL_COLUMNS: Final = (
    "apply",
    "step",
    "account_name",
    "service_name",
    "action",
    "url",
    "username",
    "password_fingerprint",
    "outcome",
    "reason",
    "started_at",
    "finished_at",
)


def default_path() -> Path:
    """A new journal file in tskit's config folder."""
    from tskit._fingerprint import config_dir

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return config_dir() / "journals" / f"apply-{stamp}.jsonl"


class Journal:
    """An apply journal on disk: read it back as a DataFrame, or append to it.

    Example:
        >>> tskit.Journal("apply.jsonl").frame  # doctest: +SKIP

    Args:
        path: The JSON Lines file (made on the first write).

    Attributes:
        path: The file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Journal {self.path}: {len(self.entries())} lines>"

    def _repr_html_(self) -> str:
        from html import escape

        return f"<p>Journal <code>{escape(str(self.path))}</code></p>" + str(self.frame.to_html(index=False))

    # -- writing ----------------------------------------------------------------------------

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one line and wait until it is on disk; returns what was written."""
        entry = {"event": event, "at": datetime.now(UTC).isoformat(), **fields}
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)  # one write of one line: concurrent writers never interleave inside it
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:  # the new file's name must survive a crash too
                folder = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(folder)
                finally:
                    os.close(folder)
        return entry

    # -- reading ----------------------------------------------------------------------------

    def entries(self) -> list[dict[str, Any]]:
        """Every complete line, in order; a line cut short by a crash is skipped."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        entries = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("event"), str):
                entries.append(entry)
        return entries

    def steps(self) -> list[dict[str, Any]]:
        """One dict per step line, with the outcome and reason of its outcome line merged in."""
        steps: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in self.entries():
            key = (str(entry.get("apply", "")), str(entry.get("step", "")))
            if entry["event"] == "step":
                row = {column: entry.get(column, "") for column in JOURNAL_COLUMNS}
                row.update(started_at=entry.get("at", ""), outcome="", reason="", finished_at="")
                steps[key] = row
            elif entry["event"] == "outcome" and key in steps:
                steps[key].update(
                    outcome=entry.get("outcome", ""), reason=entry.get("reason", ""), finished_at=entry.get("at", "")
                )
        return list(steps.values())

    def unfinished(self) -> list[dict[str, Any]]:
        """Steps journaled as started with no outcome: their apply was interrupted."""
        return [step for step in self.steps() if not step["outcome"]]

    @property
    def frame(self) -> pd.DataFrame:
        """One row per step: the columns of :data:`JOURNAL_COLUMNS`; ``outcome`` empty if interrupted."""
        from tskit._frames import frame

        return frame([tuple(str(s[c]) for c in JOURNAL_COLUMNS) for s in self.steps()], JOURNAL_COLUMNS)
