"""One writer per account: a cross-process lock per (ThingSpace server, account), and a record of its holder.

Apply and rotate hold the lock of every account they change, whatever journal they write, so two
runs never send the same change twice: the second waits (at most ``lock_wait`` seconds), then reads
the accounts again under the lock before deciding anything. Locks are taken in sorted order, so two
runs cannot deadlock, and they are ``filelock`` locks on files in tskit's config folder
(``locks/``): the OS frees the lock of a process that died, so a crash never blocks the next run.

Next to each lock, a small JSON record names its holder (pid, host, command, since, journal).
A clean release removes it; a record found on taking a lock was left by a holder that died, and
names the journal whose unfinished steps the new holder settles.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import os
import resource
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from filelock import FileLock, Timeout

from tskit._errors import Reason, ThingSpaceError
from tskit._fingerprint import config_dir
from tskit.auth import server

logger = logging.getLogger("tskit")

#: Default longest wait, in seconds, for another apply or rotation of the same accounts.
LOCK_WAIT: Final = 60.0
_POLL: Final = 0.1
_RECORD_MAX: Final = 16 * 1024
#: Journals of dead holders a record keeps until they are settled.
_MAX_PREVIOUS: Final = 8

_held: contextvars.ContextVar[AccountLocks | None] = contextvars.ContextVar("tskit_account_locks", default=None)


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or held) an account's lock, as its record says.

    Attributes:
        pid: Its process id.
        host: The machine it runs on.
        command: What it is (``tskit apply``, or the script's name).
        since: When it took the lock (UTC, ISO 8601).
        journal: The journal it writes.
    """

    pid: int
    host: str
    command: str
    since: str
    journal: str

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host} ({self.command}) since {self.since}"


class AccountLockedError(ThingSpaceError):
    """Another apply or rotation holds an account for longer than the wait allowed: nothing was sent.

    Attributes:
        reason: ``"locked"``.
        account_name: The account.
        server: The ThingSpace server.
        holder: Who holds it (:class:`Holder`), or ``None`` when its record cannot be read.
        waited: Seconds waited.
    """

    reason: str = Reason.LOCKED

    def __init__(self, account_name: str, server_: str, holder: Holder | None, waited: float) -> None:
        self.account_name = account_name
        self.server = server_
        self.holder = holder
        self.waited = waited
        who = f"by {holder}" if holder else "by another process"
        wait = f"after waiting {waited:.0f} s" if waited >= 1 else "at once (no wait allowed)"
        super().__init__(
            f"account {account_name} is held {who}: another apply or rotation is changing it; refused {wait}, "
            "nothing was sent. Run again once it is done (it re-reads what the other one did), or allow a "
            "longer wait (lock_wait=, --lock-wait)"
        )


def command_name(argv: list[str] | None = None) -> str:
    """What this process is, for a lock record: ``tskit apply`` for the CLI, else the script's name.

    Only the command and subcommand: any further argument could be something private.
    """
    args = sys.argv if argv is None else argv
    program = Path(args[0]).name if args and args[0] else "python"
    if program in ("tskit", "__main__.py") and len(args) > 1 and args[1].isidentifier():
        return f"tskit {args[1]}"
    return "python -c" if program == "-c" else program


def _key(base_url: str, account: str) -> str:
    return hashlib.sha256(f"{server(base_url)}\0{account}".encode()).hexdigest()[:32]


def read_holder(record: Path) -> tuple[Holder | None, list[str]]:
    """The holder a record names, and the journals of earlier holders it still names (``None``, [] if unreadable)."""
    try:
        with record.open("rb") as handle:
            data = json.loads(handle.read(_RECORD_MAX))
        holder = Holder(
            int(data["pid"]), str(data["host"]), str(data["command"]), str(data["since"]), str(data["journal"])
        )
        previous = data.get("previous", [])
        return holder, [str(p) for p in previous[:_MAX_PREVIOUS]] if isinstance(previous, list) else []
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None, []


def _write_record(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(temporary, path)


def _room_for(count: int) -> None:
    """Raise this process's limit of open files (to the hard limit at most): each held lock keeps one open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 256  # and room for the connections and files of the run itself
    if soft != resource.RLIM_INFINITY and soft < wanted:
        top = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))
        except (OSError, ValueError) as exc:  # the OS says no: a lock that cannot open says why
            logger.warning("cannot raise the limit of open files to %d: %s", top, exc)


class AccountLocks:
    """The locks of some accounts of one server, held for one apply or rotation (``async with``).

    Args:
        base_url: The ThingSpace server.
        accounts: The accounts to hold.
        journal: The journal this run writes, named in each record.
        wait: Longest wait, in seconds, for one held by another run (0: refuse at once).
        on_wait: Called once per account found held, before waiting, with the account and its holder.

    Attributes:
        previous: Per account, the journals named by records of holders that died holding it.
        acquired_at: ``time.monotonic()`` once every lock is held.
    """

    def __init__(
        self,
        base_url: str,
        accounts: Iterable[str],
        *,
        journal: str | os.PathLike[str],
        wait: float = LOCK_WAIT,
        on_wait: Callable[[str, Holder | None], None] | None = None,
    ) -> None:
        self.base_url = base_url
        self.server = server(base_url)
        self.accounts = sorted(set(accounts))  # one order for every run: no two can deadlock
        self.journal = os.path.abspath(os.fspath(journal))
        self.wait = max(0.0, float(wait))
        self.on_wait = on_wait
        self.previous: dict[str, list[str]] = {}
        self.acquired_at = 0.0
        self._locks: list[tuple[str, FileLock, Path]] = []
        self._token: contextvars.Token[AccountLocks | None] | None = None
        self._since = ""

    @staticmethod
    def current() -> AccountLocks | None:
        """The locks this task (or its caller) holds, if any."""
        return _held.get()

    def covers(self, base_url: str, accounts: Iterable[str]) -> bool:
        """Whether these locks include every account named, on that server."""
        return server(base_url) == self.server and set(accounts) <= set(self.accounts)

    @staticmethod
    def recorded(base_url: str, accounts: Iterable[str]) -> set[str]:
        """The accounts with a holder's record: held now, or left by a run that died holding them."""
        folder = config_dir() / "locks"
        return {a for a in accounts if (folder / f"{_key(base_url, a)}.json").exists()}

    async def __aenter__(self) -> Self:
        folder = config_dir() / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        _room_for(len(self.accounts))
        self._since = datetime.now(UTC).isoformat(timespec="seconds")
        started = time.monotonic()
        try:
            for account in self.accounts:
                await self._take(folder, account, started)
        except BaseException:
            self._release()
            raise
        self.acquired_at = time.monotonic()
        self._token = _held.set(self)
        return self

    async def _take(self, folder: Path, account: str, started: float) -> None:
        key = _key(self.base_url, account)
        lock = FileLock(folder / f"{key}.lock", thread_local=False)
        record = folder / f"{key}.json"
        told = False
        while True:
            try:
                lock.acquire(timeout=0)
                break
            except Timeout:
                waited = time.monotonic() - started
                holder, _ = read_holder(record)
                if waited >= self.wait:
                    raise AccountLockedError(account, self.server, holder, waited) from None
                if not told:
                    told = True
                    logger.info("waiting for account %s, held by %s", account, holder or "another process")
                    if self.on_wait is not None:
                        self.on_wait(account, holder)
                await asyncio.sleep(min(_POLL, self.wait - waited))
            except OSError as exc:
                raise ThingSpaceError(f"cannot lock account {account} in {folder}: {exc.strerror or exc}") from None
        self._locks.append((account, lock, record))
        # A record left behind: its holder died holding the lock; its journal may have unfinished steps.
        dead, earlier = read_holder(record) if record.exists() else (None, [])
        journals = [*earlier, *([dead.journal] if dead else [])]
        journals = [j for j in dict.fromkeys(journals) if j != self.journal][-_MAX_PREVIOUS:]
        if journals:
            self.previous[account] = journals
        self._record(account, record, journals)

    def _record(self, account: str, record: Path, previous: list[str]) -> None:
        data: dict[str, Any] = {
            "server": self.server,
            "account": account,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command_name(),
            "since": self._since,
            "journal": self.journal,
        }
        if previous:
            data["previous"] = previous
        try:
            _write_record(record, data)
        except OSError as exc:
            logger.warning("cannot write the lock record %s: %s", record, exc.strerror or exc)

    def settled(self, account: str) -> None:
        """The journals of dead holders of ``account`` are settled: its record stops naming them."""
        if self.previous.pop(account, None) is None:
            return
        for name, _lock, record in self._locks:
            if name == account:
                self._record(account, record, [])

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            _held.reset(self._token)
            self._token = None
        self._release(keep_records=exc is not None)

    def _release(self, *, keep_records: bool = False) -> None:
        """Release every lock; a record stays where a journal may hold unfinished steps (a failed run)."""
        for account, lock, record in reversed(self._locks):
            if not keep_records and account not in self.previous:  # else the next holder settles them
                try:
                    record.unlink(missing_ok=True)
                except OSError as exc:
                    logger.warning("cannot remove the lock record %s: %s", record, exc.strerror or exc)
            lock.release()
        self._locks.clear()
