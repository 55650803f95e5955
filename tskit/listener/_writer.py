"""The store's one writer thread: it owns the SQLite connection and commits queued messages in groups.

The writer takes everything queued, writes it in one transaction, commits (``synchronous=FULL``:
the commit is on disk), and only then resolves the futures: under load many messages share one
fsync. Each message is written under its own savepoint: one that cannot be stored fails alone
(:class:`MessageRefused`) and the others commit. A batch that cannot be written at all (disk full,
I/O error) fails with :class:`StoreUnavailable`, and the writer goes on. Only when its database
cannot be used or reopened does it stop; then every pending and later item fails at once with
:class:`StoreFailed`.

Database files are created 0600, and a folder made for them 0700: they hold device ids and usernames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import weakref
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tskit.listener._outcomes import MessageRefused, Stored, StoreFailed, StoreOpenError, StoreUnavailable
from tskit.listener._rows import INSERT, SCHEMA

log = logging.getLogger("tskit.listener")

_BATCH = 512
#: Errors of one message's values (not of the database): that message alone is refused.
_VALUE_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, OverflowError, UnicodeError, TypeError, ValueError)


@dataclass(frozen=True, slots=True)
class Read:
    """A query to run after every write queued before it."""

    sql: str
    params: tuple[Any, ...]
    future: Future[list[tuple[Any, ...]]]


@dataclass(frozen=True, slots=True)
class Write:
    """One message's row to store."""

    values: tuple[Any, ...]
    future: Future[Stored] | asyncio.Future[Stored]


def database_files(path: str) -> list[Path]:
    """The files on disk of the database at ``path`` (none for an in-memory one)."""
    if path == ":memory:":
        return []
    return [p for p in (Path(path + s) for s in ("", "-wal", "-shm")) if p.exists()]


class Writer:
    """The thread that owns a store's connection: started at once, it raises if the database cannot be opened.

    Args:
        path: The database file, or ``":memory:"``.

    Raises:
        StoreOpenError: The database cannot be opened or created.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        #: Why the writer stopped, once it did.
        self.failed: StoreFailed | None = None
        #: Why the last batch could not be written; ``""`` once one is.
        self.trouble = ""
        self._queue: queue.Queue[Read | Write | None] = queue.Queue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file opened
        self._snapshot: sqlite3.Connection | None = None  # an in-memory database's rows, once closed
        self._snapshot_lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="tskit-listener-store", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    @property
    def alive(self) -> bool:
        """Whether the thread still runs."""
        return self._thread.is_alive()

    def submit(self, item: Read | Write) -> None:
        """Queue ``item``; its future resolves once it is done."""
        self._queue.put(item)

    def stop(self) -> None:
        """Write what is queued, then close the database."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=60)

    def snapshot_query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        """Rows of what an in-memory database held when the writer stopped; ``None`` if none was kept."""
        if self._snapshot is None:
            return None
        with self._snapshot_lock:
            return self._snapshot.execute(sql, params).fetchall()

    def file_problem(self) -> str:
        """Why the file opened is no longer the one at the store's path (deleted, replaced), or ``""``."""
        if self._identity is None:
            return ""
        try:
            now = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return "its database file was deleted"
        if (now.st_dev, now.st_ino) != self._identity:
            return "its database file was replaced"
        return ""

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            _private_file(Path(self.path))
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            if self.path != ":memory:":
                connection.execute("PRAGMA journal_mode=WAL")  # SQLite gives -wal and -shm the file's mode
            connection.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the 2xx goes out
            connection.execute(SCHEMA)
            for file in database_files(self.path)[1:]:  # -wal and -shm
                _private_file(file, create=False)
            if self.path != ":memory:":
                opened = os.stat(self.path, follow_symlinks=False)
                self._identity = (opened.st_dev, opened.st_ino)
        except BaseException:
            connection.close()  # a store that could not be opened holds no connection
            raise
        return connection

    def _work(self) -> None:
        try:
            db = self._connect()
        except StoreOpenError as error:  # raised by __init__
            self._error = error
            self._ready.set()
            return
        except sqlite3.Error as error:
            self._error = StoreOpenError(f"cannot open the message store {self.path}: {error}")
            self._ready.set()
            return
        except BaseException as error:
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        running = True
        while running:
            items, running = self._take()
            try:
                self._handle(db, items)
            except Exception as error:  # the batch as a whole could not be written
                log.warning("could not store %d message(s) in %s: %s", len(items), self.path, error)
                self.trouble = _summary(error)
                recovered = self._recover(db)
                if recovered is None:
                    self._fail(error, items)
                    return
                db = recovered
                unavailable = StoreUnavailable(f"the message store could not write ({self.trouble})")
                resolve([(item.future, unavailable) for item in items])
        if self.path == ":memory:":  # keep its rows readable once closed: they exist nowhere else
            snapshot = sqlite3.connect(":memory:", check_same_thread=False)
            # closed with the writer, not left to the garbage collector (a ResourceWarning)
            weakref.finalize(self, snapshot.close)
            with contextlib.suppress(Exception):
                db.backup(snapshot)
                self._snapshot = snapshot
        with contextlib.suppress(Exception):
            db.close()

    def _take(self) -> tuple[list[Read | Write], bool]:
        """The next items, waiting for the first; ``False`` once the store is closing."""
        items: list[Read | Write] = []
        item = self._queue.get()
        writes = 0
        while item is not None:
            items.append(item)
            writes += isinstance(item, Write)
            if writes >= _BATCH:
                return items, True
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items, True
        return items, False

    def _handle(self, db: sqlite3.Connection, items: list[Read | Write]) -> None:
        batch: list[Write] = []
        for item in items:
            if isinstance(item, Write):
                batch.append(item)
                continue
            self._flush(db, batch)  # reads see every write queued before them
            batch = []
            try:
                outcome: Any = db.execute(item.sql, item.params).fetchall()
            except Exception as error:  # the reader's mistake, not the store's
                outcome = error
            resolve([(item.future, outcome)])
        self._flush(db, batch)

    def _flush(self, db: sqlite3.Connection, batch: list[Write]) -> None:
        batch = [w for w in batch if not w.future.done()]  # callers that gave up: nothing to write
        if not batch:
            return
        outcomes: list[Stored | BaseException] = []
        problem = self.file_problem()  # writing to a deleted or replaced file would lose every message
        if problem:
            raise _FileGone(problem)
        db.execute("BEGIN IMMEDIATE")
        try:
            for write in batch:
                outcomes.append(_insert(db, write))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(Exception):
                    db.execute("ROLLBACK")
            raise
        problem = self.file_problem()  # gone while this batch was written: it is not where readers look
        if problem:
            raise _FileGone(problem)
        self.trouble = ""
        resolve([(w.future, o) for w, o in zip(batch, outcomes, strict=True)])

    def _recover(self, db: sqlite3.Connection) -> sqlite3.Connection | None:
        """The connection to go on with after a failed batch, or ``None`` if there is none."""
        try:
            db.execute("SELECT count(*) FROM messages").fetchone()
            if not self.file_problem():
                return db  # the database still answers: the failure was the batch's (e.g. disk full)
            log.warning("the message store %s: %s; opening it again", self.path, self.file_problem())
        except Exception as error:
            log.warning("the message store %s stopped answering: %s", self.path, error)
        with contextlib.suppress(Exception):
            db.close()
        if self.path == ":memory:":
            return None  # a new in-memory database would silently have lost every message
        try:
            return self._connect()
        except Exception as error:
            log.error("could not reopen the message store %s: %s", self.path, error)
            return None

    def _fail(self, error: BaseException, pending: list[Read | Write]) -> None:
        """Stop writing: fail every pending and later item at once, until the store is closed."""
        self.failed = failed = StoreFailed(
            f"the message store stopped ({_summary(error)}). Messages are refused with 503 (ThingSpace "
            "sends them again); restart the listener once the database can be written."
        )
        log.error("the message store %s stopped: %s", self.path, error)
        resolve([(item.future, failed) for item in pending])
        while True:
            item = self._queue.get()
            if item is None:
                return
            resolve([(item.future, failed)])


def _insert(db: sqlite3.Connection, write: Write) -> Stored | BaseException:
    """One message under its own savepoint: if its values cannot be stored, it alone fails."""
    db.execute("SAVEPOINT message")
    try:
        stored = Stored(*db.execute(INSERT, write.values).fetchone())
    except _VALUE_ERRORS as error:
        db.execute("ROLLBACK TO message")
        db.execute("RELEASE message")
        log.info("a message could not be stored: %s", error)
        return MessageRefused("this message cannot be stored")
    db.execute("RELEASE message")
    return stored


def _set(future: Future[Any] | asyncio.Future[Any], outcome: Any) -> None:
    """Give a future its outcome, unless its caller gave up on it (cancelled): nothing to tell then."""
    if future.done():
        return
    with contextlib.suppress(InvalidStateError, asyncio.InvalidStateError):
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, outcome in outcomes:
        _set(future, outcome)


def resolve(outcomes: list[tuple[Future[Any] | asyncio.Future[Any], Any]]) -> None:
    """Hand each outcome back; one wake-up per event loop for a whole batch. Never raises."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for future, outcome in outcomes:
        if isinstance(future, asyncio.Future):
            by_loop.setdefault(future.get_loop(), []).append((future, outcome))
        else:
            _set(future, outcome)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
            loop.call_soon_threadsafe(_settle, settled)


def _private_file(path: Path, *, create: bool = True) -> None:
    """Create ``path`` (and a missing folder, 0700) so that only its owner can read it: 0600.

    A symbolic link is refused (``O_NOFOLLOW``): the store would write, and chmod, whatever it
    points to.
    """
    if create:
        missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
        for folder in reversed(missing):  # each made 0700, not only the last
            try:
                folder.mkdir(mode=0o700, exist_ok=True)
            except OSError as error:  # the store's path is the problem, not the socket
                raise StoreOpenError(
                    f"cannot create the folder {folder} of the message store {path}: {error.strerror or error}"
                ) from None
    flags = os.O_RDWR | os.O_NOFOLLOW | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as error:
        if path.is_symlink():
            raise StoreOpenError(f"cannot open the message store {path}: it is a symbolic link") from None
        raise StoreOpenError(f"cannot open the message store {path}: {error.strerror or error}") from None
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class _FileGone(sqlite3.OperationalError):
    """The database file was deleted or replaced under the open connection."""


def _summary(error: BaseException) -> str:
    """What went wrong, without paths or database texts: for answers and ``problem``."""
    if isinstance(error, _FileGone):
        return str(error)
    if isinstance(error, sqlite3.OperationalError) and "full" in str(error).lower():
        return "the disk is full"
    return "the database could not be written"
