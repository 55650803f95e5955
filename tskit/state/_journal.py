"""The apply journal: an append-only JSON Lines file, each line on disk (fsync) before the next move.

Lines: ``{"event": "apply", ...}`` when an apply starts; ``{"event": "step", ...}`` before a step is
sent (account, service, action, URL, username and the password's keyed fingerprint, never the
password); ``{"event": "outcome", "step": ..., "outcome": "done" | "confirmed" | "failed",
"reason": ...}`` once its outcome is known. A step with no outcome line was interrupted. A step whose
answer was lost may get a second outcome line (``confirmed``) when a later listing shows its change:
the last outcome line of a step is its outcome. ``{"event": "calls", "step": ..., "calls": [...],
"reason": ...}`` before a step is sent as more than one call (deregister, then register, where
ThingSpace refuses to register a service again).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tskit._errors import ThingSpaceError

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


class JournalError(ThingSpaceError):
    """A journal that cannot be read, written, or used now (another apply holds it)."""


def default_path() -> Path:
    """A new journal file in tskit's config folder (the folder is made if missing)."""
    from tskit._fingerprint import config_dir

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    folder = config_dir() / "journals"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"apply-{stamp}.jsonl"


class Journal:
    """An apply journal on disk: read it back as a DataFrame, or append to it.

    Examples:
        >>> tskit.Journal("apply.jsonl").frame  # doctest: +SKIP

    Args:
        path: An existing journal file. :meth:`for_writing` opens one to append to (made on the
            first write).

    Raises:
        JournalError: The file is missing, unreadable, or holds no journal line.

    Attributes:
        path: The file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        if not self.path.exists():
            raise JournalError(f"{self.path}: no such journal")
        try:
            if not self.entries():
                raise JournalError(f"{self.path} holds no journal line: it is not an apply journal")
        except (OSError, UnicodeDecodeError) as exc:
            raise JournalError(f"cannot read the journal {self.path}: {_reason(exc)}") from None

    @classmethod
    def for_writing(cls, path: str | os.PathLike[str]) -> Journal:
        """A journal to append to: a new file in an existing folder, or an existing journal.

        Nothing is written yet; the folder is not made (a mistyped folder is an error, not a
        new tree of folders).

        Raises:
            JournalError: The path is a folder, its folder does not exist, or the file exists
                and is not a journal.
        """
        target = Path(path)
        if target.is_dir():
            raise JournalError(f"cannot write the journal {target}: it is a folder")
        if not target.parent.is_dir():
            raise JournalError(f"cannot write the journal {target}: the folder {target.parent} does not exist")
        if target.exists() and target.stat().st_size:
            return cls(target)
        journal = cls.__new__(cls)
        journal.path = target
        journal._lock = threading.Lock()
        return journal

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the journal for one apply: a second apply on the same file is refused at once.

        Only a journal nobody holds may have its unfinished steps closed: a step another apply
        has in flight is not interrupted.

        Raises:
            JournalError: Another apply (thread or process) holds the journal.
        """
        from filelock import FileLock, Timeout

        lock = FileLock(f"{self.path}.lock", timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise JournalError(
                f"the journal {self.path} is in use by another apply; wait for it to finish, or use another journal"
            ) from None
        except OSError as exc:
            raise JournalError(f"cannot write the journal {self.path}: {_reason(exc)}") from None
        try:
            yield
        finally:
            lock.release()

    def __repr__(self) -> str:
        count = len(self.entries())
        return f"<Journal {self.path}: {count} line{'' if count == 1 else 's'}>"

    def _repr_html_(self) -> str:
        from html import escape

        return f"<p>Journal <code>{escape(str(self.path))}</code></p>" + str(self.frame.to_html(index=False))

    # -- writing ----------------------------------------------------------------------------

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one line and wait until it is on disk; returns what was written."""
        entry = {"event": event, "at": datetime.now(UTC).isoformat(), **fields}
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            try:
                self._append(line)
            except OSError as exc:
                raise JournalError(f"cannot write the journal {self.path}: {_reason(exc)}") from None
        return entry

    def _append(self, line: bytes) -> None:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a line torn by a crash: end it, so it cannot swallow this one
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

    # -- reading ----------------------------------------------------------------------------

    def entries(self) -> list[dict[str, Any]]:
        """Every complete line, in order; a line cut short by a crash is skipped."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []  # a journal opened for writing, before its first line
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
        """One dict per step line, with the outcome and reason of its last outcome line merged in."""
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


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
