"""Durable storage of callback messages in SQLite, with group commit.

One writer thread owns the connection. Each accepted message is queued with a future; the writer
takes everything queued, writes it in one transaction, commits (``synchronous=FULL``: the commit
is on disk), and only then resolves the futures. The listener answers 2xx after its future
resolves, so an acknowledged message survives the process being killed, and under load many
messages share one fsync.

Each message is written under its own savepoint inside the batch: one that cannot be stored fails
alone (:class:`MessageRefused`) and the others commit. A batch that cannot be written at all (disk
full, I/O error) fails with :class:`StoreUnavailable`, and the writer goes on. The writer survives
cancelled callers and failed writes; only when its database cannot be used or reopened does it
stop, and then every pending and later call fails at once with :class:`StoreFailed`.

Database files are created 0600, and a folder made for them 0700: they hold device ids and
usernames. Fields named like a password or secret are dropped, at any depth, before storing.

Redeliveries (same service, ``requestId`` and payload, ignoring ``callbackCount`` and credentials)
are stored once; their ``attempts`` counter goes up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import queue
import sqlite3
import threading
import weakref
from collections.abc import Mapping
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tskit._errors import Reason
from tskit.listener._checks import scrub

log = logging.getLogger("tskit.listener")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    last_received_at TEXT NOT NULL,
    request_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    service TEXT NOT NULL,
    status TEXT NOT NULL,
    device_ids TEXT NOT NULL,
    fault_code TEXT NOT NULL,
    fault_string TEXT NOT NULL,
    callback_count INTEGER,
    attempts INTEGER NOT NULL DEFAULT 1,
    body TEXT NOT NULL,
    UNIQUE (request_id, digest)
)
"""
_INSERT = """
INSERT INTO messages (received_at, last_received_at, request_id, digest, service, status, device_ids,
                      fault_code, fault_string, callback_count, body)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (request_id, digest) DO UPDATE SET
    attempts = attempts + 1,
    last_received_at = excluded.last_received_at,
    callback_count = max(coalesce(callback_count, 0), coalesce(excluded.callback_count, 0))
RETURNING id, attempts
"""
#: Fields that differ between redeliveries of the same message, left out of its digest.
_VOLATILE = frozenset({"username", "password", "callbackCount"})
_BATCH = 512


@dataclass(frozen=True, slots=True)
class Stored:
    """The outcome of storing one message: its row id and how many times it has arrived."""

    id: int
    attempts: int

    @property
    def duplicate(self) -> bool:
        """Whether this arrival was a redelivery of a stored message."""
        return self.attempts > 1


class MessageRefused(ValueError):
    """This message cannot be stored (the listener answers 400); other messages are not affected."""

    reason: str = Reason.MESSAGE_REFUSED


class StoreUnavailable(RuntimeError):
    """The store cannot write now (the listener answers 503, so ThingSpace sends again)."""

    reason: str = Reason.STORE_UNAVAILABLE


class StoreOpenError(OSError):
    """The store's file cannot be opened or created (the message names the file and why)."""

    reason: str = Reason.STORE_UNOPENED


class StoreFailed(StoreUnavailable):
    """The store's writer cannot go on; every call fails at once until a new store is opened."""

    reason: str = Reason.STORE_FAILED


def digest(body: Mapping[str, Any], service: str = "") -> str:
    """A digest of what makes a message itself (its service included), for recognising redeliveries."""
    core = {k: v for k, v in scrub(body).items() if k not in _VOLATILE}
    if service:  # the same body POSTed to another service's URL is another message
        core = {"": service, **core}
    return hashlib.sha256(json.dumps(core, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def _text(value: Any) -> str:
    """A column's text: strings as they are, numbers as written (a numeric ``requestId``), else ``""``."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return json.dumps(value)
    return ""


def row(body: Mapping[str, Any], service: str) -> tuple[Any, ...]:
    """The columns of one message; secrets are dropped, at any depth, before anything is written."""
    kept = scrub(body)
    found = body.get("faultResponse")
    fault: Mapping[str, Any] = found if isinstance(found, dict) else {}
    devices = body.get("deviceIds") if isinstance(body.get("deviceIds"), list) else []
    count = body.get("callbackCount")
    now = datetime.now(UTC).isoformat()
    return (
        now,
        now,
        _text(body.get("requestId")),
        digest(body, service),
        service,
        _text(body.get("status")),
        json.dumps(scrub(devices)),
        _text(fault.get("faultcode")),
        _text(fault.get("faultstring")),
        count if isinstance(count, int) and not isinstance(count, bool) else None,
        json.dumps(kept),
    )


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


def _resolve(outcomes: list[tuple[Future[Any] | asyncio.Future[Any], Any]]) -> None:
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


@dataclass(frozen=True, slots=True)
class _Read:
    sql: str
    params: tuple[Any, ...]
    future: Future[list[tuple[Any, ...]]]


@dataclass(frozen=True, slots=True)
class _Write:
    values: tuple[Any, ...]
    future: Future[Stored] | asyncio.Future[Stored]


#: Errors of one message's values (not of the database): that message alone is refused.
_VALUE_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, OverflowError, UnicodeError, TypeError, ValueError)


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


class MessageStore:
    """SQLite storage of callback messages, written by one supervised thread with group commit.

    Args:
        path: The database file; ``":memory:"`` for a store that lives as long as this object.
            A missing folder is created 0700; the files are 0600.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._queue: queue.Queue[_Read | _Write | None] = queue.Queue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._failed: StoreFailed | None = None
        self._trouble = ""  # why the last batch could not be written; "" once one is
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file opened
        self._snapshot: sqlite3.Connection | None = None  # an in-memory store's rows, once closed
        self._snapshot_lock = threading.Lock()
        self._closing = False
        self._writer = threading.Thread(target=self._work, name="tskit-listener-store", daemon=True)
        self._writer.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    @property
    def files(self) -> list[Path]:
        """The database's files on disk (none for an in-memory store)."""
        if self.path == ":memory:":
            return []
        return [p for p in (Path(self.path + s) for s in ("", "-wal", "-shm")) if p.exists()]

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            _private_file(Path(self.path))
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            if self.path != ":memory:":
                connection.execute("PRAGMA journal_mode=WAL")  # SQLite gives -wal and -shm the file's mode
            connection.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the 2xx goes out
            connection.execute(_SCHEMA)
            for file in self.files[1:]:  # -wal and -shm
                _private_file(file, create=False)
            if self.path != ":memory:":
                opened = os.stat(self.path, follow_symlinks=False)
                self._identity = (opened.st_dev, opened.st_ino)
        except BaseException:
            connection.close()  # a store that could not be opened holds no connection
            raise
        return connection

    def _file_problem(self) -> str:
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

    # -- the writer thread -----------------------------------------------------------------

    def _work(self) -> None:
        try:
            db = self._connect()
        except StoreOpenError as error:  # reported by __init__
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
                self._trouble = _summary(error)
                recovered = self._recover(db)
                if recovered is None:
                    self._fail(error, items)
                    return
                db = recovered
                unavailable = StoreUnavailable(f"the message store could not write ({self._trouble})")
                _resolve([(item.future, unavailable) for item in items])
        if self.path == ":memory:":  # keep its rows readable once closed: they exist nowhere else
            snapshot = sqlite3.connect(":memory:", check_same_thread=False)
            # closed with the store object, not left to the garbage collector (a ResourceWarning)
            weakref.finalize(self, snapshot.close)
            with contextlib.suppress(Exception):
                db.backup(snapshot)
                self._snapshot = snapshot
        with contextlib.suppress(Exception):
            db.close()

    def _take(self) -> tuple[list[_Read | _Write], bool]:
        """The next items, waiting for the first; ``False`` once the store is closing."""
        items: list[_Read | _Write] = []
        item = self._queue.get()
        writes = 0
        while item is not None:
            items.append(item)
            writes += isinstance(item, _Write)
            if writes >= _BATCH:
                return items, True
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items, True
        return items, False

    def _handle(self, db: sqlite3.Connection, items: list[_Read | _Write]) -> None:
        batch: list[_Write] = []
        for item in items:
            if isinstance(item, _Write):
                batch.append(item)
                continue
            self._flush(db, batch)  # reads see every write queued before them
            batch = []
            try:
                outcome: Any = db.execute(item.sql, item.params).fetchall()
            except Exception as error:  # the reader's mistake, not the store's
                outcome = error
            _resolve([(item.future, outcome)])
        self._flush(db, batch)

    def _flush(self, db: sqlite3.Connection, batch: list[_Write]) -> None:
        batch = [w for w in batch if not w.future.done()]  # callers that gave up: nothing to write
        if not batch:
            return
        outcomes: list[Stored | BaseException] = []
        problem = self._file_problem()  # writing to a deleted or replaced file would lose every message
        if problem:
            raise _FileGone(problem)
        db.execute("BEGIN IMMEDIATE")
        try:
            for write in batch:
                outcomes.append(self._insert(db, write))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(Exception):
                    db.execute("ROLLBACK")
            raise
        problem = self._file_problem()  # gone while this batch was written: it is not where readers look
        if problem:
            raise _FileGone(problem)
        self._trouble = ""
        _resolve([(w.future, o) for w, o in zip(batch, outcomes, strict=True)])

    @staticmethod
    def _insert(db: sqlite3.Connection, write: _Write) -> Stored | BaseException:
        """One message under its own savepoint: if its values cannot be stored, it alone fails."""
        db.execute("SAVEPOINT message")
        try:
            stored = Stored(*db.execute(_INSERT, write.values).fetchone())
        except _VALUE_ERRORS as error:
            db.execute("ROLLBACK TO message")
            db.execute("RELEASE message")
            log.info("a message could not be stored: %s", error)
            return MessageRefused("this message cannot be stored")
        db.execute("RELEASE message")
        return stored

    def _recover(self, db: sqlite3.Connection) -> sqlite3.Connection | None:
        """The connection to go on with after a failed batch, or ``None`` if there is none."""
        try:
            db.execute("SELECT count(*) FROM messages").fetchone()
            if not self._file_problem():
                return db  # the database still answers: the failure was the batch's (e.g. disk full)
            log.warning("the message store %s: %s; opening it again", self.path, self._file_problem())
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

    def _fail(self, error: BaseException, pending: list[_Read | _Write]) -> None:
        """Stop writing: fail every pending and later call at once, until the store is closed."""
        self._failed = StoreFailed(
            f"the message store stopped ({_summary(error)}). Messages are refused with 503 (ThingSpace "
            "sends them again); restart the listener once the database can be written."
        )
        log.error("the message store %s stopped: %s", self.path, error)
        _resolve([(item.future, self._failed) for item in pending])
        while True:
            item = self._queue.get()
            if item is None:
                return
            _resolve([(item.future, self._failed)])

    # -- the callers' side -------------------------------------------------------------------

    def put(self, body: Mapping[str, Any], service: str) -> Future[Stored]:
        """Queue a message for storage; the future resolves once it is committed.

        Raises:
            MessageRefused: The message cannot be turned into a row.
            StoreFailed: The store stopped.
        """
        self._check_open()
        future: Future[Stored] = Future()
        self._queue.put(_Write(_row(body, service), future))
        return future

    async def store(self, body: Mapping[str, Any], service: str) -> Stored:
        """Store a message and wait until it is committed.

        Raises:
            MessageRefused: This message cannot be stored (others are not affected).
            StoreUnavailable: The store cannot write now; :class:`StoreFailed` if it stopped.
        """
        self._check_open()
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queue.put(_Write(_row(body, service), future))
        return await future

    @property
    def closed(self) -> bool:
        """Whether the store was closed (it cannot be used again)."""
        return self._closing or not self._writer.is_alive()

    @property
    def failure(self) -> StoreFailed | None:
        """Why the store stopped writing, if it did."""
        return self._failed

    @property
    def problem(self) -> str:
        """Why messages would not be stored now (stopped, file deleted or replaced, last write failed), or ``""``.

        Says what happened without file paths or database error texts (those are logged).
        """
        if self._failed is not None:
            return "the message store stopped"
        if self.closed:
            return "the message store is closed"
        return self._file_problem() or self._trouble

    def _check_open(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self.closed:
            raise RuntimeError(f"the message store {self.path} is closed; open a new one on the same file")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read rows, after every write queued before this call; once closed, what it held."""
        if self._failed is None and self.closed:
            if self._snapshot is not None:
                with self._snapshot_lock:
                    return self._snapshot.execute(sql, params).fetchall()
            if self.path != ":memory:":
                return read_only_query(self.path, sql, params)
        self._check_open()
        future: Future[list[tuple[Any, ...]]] = Future()
        self._queue.put(_Read(sql, params, future))
        return future.result(timeout=60)

    def close(self) -> None:
        """Write what is queued, then close the database."""
        self._closing = True
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join(timeout=60)


def read_only_query(path: str | Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a message database file, opened read-only (it may be in use by a running listener).

    Raises:
        StoreOpenError: The file cannot be opened as a message database.
    """
    uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            return db.execute(sql, params).fetchall()
    except sqlite3.Error as error:
        raise StoreOpenError(f"cannot read the message store {path}: {error}") from None


class _FileGone(sqlite3.OperationalError):
    """The database file was deleted or replaced under the open connection."""


def _summary(error: BaseException) -> str:
    """What went wrong, without paths or database texts: for answers and ``problem``."""
    if isinstance(error, _FileGone):
        return str(error)
    if isinstance(error, sqlite3.OperationalError) and "full" in str(error).lower():
        return "the disk is full"
    return "the database could not be written"


def _row(body: Mapping[str, Any], service: str) -> tuple[Any, ...]:
    try:
        return row(body, service)
    except (ValueError, TypeError, RecursionError) as error:
        log.info("a message could not be stored: %s", error)
        raise MessageRefused("this message cannot be stored") from None
