"""The apply journal: an append-only JSON Lines file, each line on disk (fsync) before the next move.

Lines: ``{"event": "apply", ...}`` when an apply starts; ``{"event": "step", ...}`` before a step is
sent (account, service, action, URL, username and the password's keyed fingerprint, never the
password); ``{"event": "outcome", "step": ..., "outcome": ..., "reason": ...}`` once its outcome is known
(one of :data:`~tskit.state._outcomes.OUTCOMES`). A step with no outcome line was interrupted. A step whose
answer was lost may get a second outcome line (``confirmed``) when a later listing shows its change:
the last outcome line of a step is its outcome. ``{"event": "calls", "step": ..., "calls": [...],
"reason": ...}`` before a step is sent as more than one call (deregister, then register, where
ThingSpace refuses to register a service again).
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from filelock import FileLock, Timeout

from tskit._errors import FileReason, Reason, Remedy, ThingSpaceError
from tskit._fingerprint import config_dir
from tskit._frames import frame
from tskit.state._files import FileError, json_too_deep, read_regular
from tskit.state._outcomes import OUTCOMES

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


#: Largest journal read (a step takes about 400 bytes: some 150,000 steps); start a new one beyond.
MAX_JOURNAL_SIZE: Final = 64 * 2**20
#: Longest journal line read; tskit writes lines of a few hundred bytes.
MAX_LINE: Final = 64 * 2**10
_ACTIONS: Final = frozenset({"create", "update", "delete"})
_OUTCOMES: Final = frozenset(OUTCOMES)
_TEXT_FIELDS: Final = (
    "apply",
    "step",
    "account_name",
    "service_name",
    "url",
    "username",
    "password_fingerprint",
    "reason",
    "source",
    "server",
    "action",
    "outcome",
)


class JournalError(ThingSpaceError):
    """A journal that cannot be read, written, or used now (another apply holds it).

    Attributes:
        path: The journal file.
        reason: What is wrong, as a stable :class:`~tskit.FileReason`: ``missing``, ``not-a-file``,
            ``too-large``, ``unreadable``, ``not-a-journal``, ``in-use``, ``disk-full``, ``unwritable``,
            or a line's problem (``too-deep``, ``wrong-type``, ...).
        line: The line (from 1) it is about, or ``None``.
        field: The field of that line, or ``""``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] = "",
        reason: str = "",
        line: int | None = None,
        field: str = "",
        remedy: Remedy | None = None,
    ) -> None:
        super().__init__(message)
        self.remedy = remedy
        self.path = os.fspath(path)
        self.reason = FileReason(reason) if reason else Reason.ERROR
        self.line = line
        self.field = field


@dataclass(frozen=True, slots=True)
class JournalProblem:
    """A journal line that was skipped, and why.

    Attributes:
        line: The line number, from 1.
        field: The field at fault, or ``""`` for the whole line.
        reason: A stable :class:`~tskit.FileReason`: ``torn`` (not JSON: a crash cut it short, or damage),
            ``too-deep``, ``line-too-long``, ``not-an-event``, ``wrong-type``, ``not-utf8``.
        problem: The same in plain words.
    """

    line: int
    field: str
    reason: str
    problem: str


def default_path() -> Path:
    """A new journal file in tskit's config folder (the folder is made if missing)."""
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
        entries, problems = self._scan(missing_ok=False)
        if not entries:
            first = problems[0] if problems else None
            why = f" (line {first.line}: {first.problem})" if first else ""
            raise JournalError(
                f"{self.path} holds no journal line{why}: it is not an apply journal",
                path=self.path,
                reason="not-a-journal",
                line=first.line if first else None,
                field=first.field if first else "",
            )

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
            raise JournalError(f"cannot write the journal {target}: it is a folder", path=target, reason="not-a-file")
        if not target.parent.is_dir():
            raise JournalError(
                f"cannot write the journal {target}: the folder {target.parent} does not exist",
                path=target,
                reason="unwritable",
            )
        if target.exists() and not target.is_file():
            raise JournalError(
                f"cannot write the journal {target}: it is not a regular file", path=target, reason="not-a-file"
            )
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
        lock = FileLock(f"{self.path}.lock", timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise JournalError(
                f"the journal {self.path} is in use by another apply; wait for it to finish, or use another journal",
                path=self.path,
                reason="in-use",
            ) from None
        except OSError as exc:
            raise _write_error(self.path, exc) from None
        try:
            yield
        finally:
            lock.release()

    def __repr__(self) -> str:
        count = len(self.entries())
        return f"<Journal {self.path}: {count} line{'' if count == 1 else 's'}>"

    def _repr_html_(self) -> str:
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
                raise _write_error(self.path, exc) from None
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
        """Every sound line, in order; a line cut short by a crash, or damaged, is skipped (see :attr:`problems`)."""
        return self._scan()[0]

    @property
    def problems(self) -> list[JournalProblem]:
        """The lines skipped, each with its line number, field and reason: a journal is read whatever it holds."""
        return self._scan()[1]

    def _scan(self, *, missing_ok: bool = True) -> tuple[list[dict[str, Any]], list[JournalProblem]]:
        try:
            raw = read_regular(self.path, MAX_JOURNAL_SIZE)
        except FileError as exc:
            if exc.reason == "missing" and missing_ok:
                return [], []  # a journal opened for writing, before its first line
            words = "no such journal" if exc.reason == "missing" else exc.problem
            raise JournalError(
                f"cannot read the journal {self.path}: {words}",
                path=self.path,
                reason=exc.reason,
                remedy=Remedy("new-journal") if exc.reason == FileReason.TOO_LARGE else None,
            ) from None
        entries: list[dict[str, Any]] = []
        problems: list[JournalProblem] = []
        for number, data in enumerate(raw.split(b"\n"), 1):
            if not data.strip():
                continue
            entry = _entry(number, data, problems)
            if entry is not None:
                entries.append(entry)
        return entries, problems

    def steps(self) -> list[dict[str, Any]]:
        """One dict per step line, with the outcome and reason of its last outcome line merged in."""
        return _steps(self.entries())

    def unfinished(self, server: str | None = None, accounts: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Steps journaled as started with no outcome: their apply was interrupted.

        Args:
            server: Only steps of applies to this server (as the lock names it); an apply line
                that names none counts as any.
            accounts: Only steps of these accounts.
        """
        entries = self.entries()
        servers = {str(e.get("apply", "")): e.get("server") for e in entries if e["event"] == "apply"}
        names = None if accounts is None else set(accounts)
        return [
            step
            for step in _steps(entries)
            if not step["outcome"]
            and (server is None or servers.get(str(step["apply"])) in (None, server))
            and (names is None or step["account_name"] in names)
        ]

    @property
    def frame(self) -> pd.DataFrame:
        """One row per step: the columns of :data:`JOURNAL_COLUMNS`; ``outcome`` empty if interrupted."""
        return frame([tuple(str(s[c]) for c in JOURNAL_COLUMNS) for s in self.steps()], JOURNAL_COLUMNS)


def _steps(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per step line, with its last outcome line merged in."""
    steps: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in entries:
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


def _entry(number: int, data: bytes, problems: list[JournalProblem]) -> dict[str, Any] | None:
    """The entry of one line, or ``None`` with its problem added: no parser sees an unbounded line."""

    def skip(reason: str, problem: str, field: str = "") -> None:
        problems.append(JournalProblem(number, field, FileReason(reason), problem))

    if len(data) > MAX_LINE:
        skip("line-too-long", f"is longer than {MAX_LINE // 1024} KB")
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        skip("not-utf8", "is not UTF-8 text")
        return None
    if json_too_deep(text):
        skip("too-deep", "nests objects or arrays too deep")
        return None
    try:
        entry = json.loads(text)
    except ValueError:
        skip("torn", "is not JSON (cut short by a crash, or damaged)")
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("event"), str):
        skip("not-an-event", "is not a journal event", "event")
        return None
    for name in _TEXT_FIELDS:
        if name in entry and not isinstance(entry[name], str):
            skip("wrong-type", f"{name} is a {type(entry[name]).__name__}, not text", name)
            return None
    if entry["event"] == "step" and entry.get("action", "create") not in _ACTIONS:
        skip("wrong-type", "action is not create, update or delete", "action")
        return None
    if entry["event"] == "outcome" and entry.get("outcome", "failed") not in _OUTCOMES:
        skip("wrong-type", f"outcome is not one of {', '.join(OUTCOMES)}", "outcome")
        return None
    return entry


def _write_error(path: Path, exc: OSError) -> JournalError:
    """One sentence for a journal that cannot be written: a full disk above all."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return JournalError(
            f"cannot write the journal {path}: the disk is full (nothing more is sent: free some space, then "
            "plan and apply again)",
            path=path,
            reason="disk-full",
        )
    return JournalError(f"cannot write the journal {path}: {exc.strerror or exc}", path=path, reason="unwritable")
