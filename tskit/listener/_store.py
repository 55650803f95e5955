"""Durable storage of callback messages in SQLite, with group commit.

One writer thread owns the connection. Each accepted message is queued with a future; the writer
takes everything queued, writes it in one transaction, commits (``synchronous=FULL``: the commit
is on disk), and only then resolves the futures. The listener answers 2xx after its future
resolves, so an acknowledged message survives the process being killed, and under load many
messages share one fsync.

Redeliveries (same ``requestId`` and same payload, ignoring ``callbackCount`` and credentials)
are stored once; their ``attempts`` counter goes up.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import queue
import sqlite3
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def digest(body: Mapping[str, Any]) -> str:
    """A digest of what makes a message itself, for recognising redeliveries."""
    core = {k: v for k, v in body.items() if k not in _VOLATILE}
    return hashlib.sha256(json.dumps(core, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def row(body: Mapping[str, Any], service: str) -> tuple[Any, ...]:
    """The columns of one message; the password is dropped before anything is written."""
    kept = {k: v for k, v in body.items() if k != "password"}
    found = body.get("faultResponse")
    fault: Mapping[str, Any] = found if isinstance(found, dict) else {}
    devices = body.get("deviceIds") if isinstance(body.get("deviceIds"), list) else []
    count = body.get("callbackCount")
    now = datetime.now(UTC).isoformat()
    return (
        now,
        now,
        _text(body.get("requestId")),
        digest(body),
        service,
        _text(body.get("status")),
        json.dumps(devices),
        _text(fault.get("faultcode")),
        _text(fault.get("faultstring")),
        count if isinstance(count, int) and not isinstance(count, bool) else None,
        json.dumps(kept),
    )


def _settle(outcomes: list[tuple[asyncio.Future[Stored], Stored | BaseException]]) -> None:
    for future, outcome in outcomes:
        if future.done():  # the request was cancelled (client gone): nothing to tell
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _resolve(outcomes: list[tuple[Future[Stored] | asyncio.Future[Stored], Stored | BaseException]]) -> None:
    """Hand each committed write's outcome back; one wake-up per event loop for a whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Stored], Stored | BaseException]]] = {}
    for future, outcome in outcomes:
        if isinstance(future, asyncio.Future):
            by_loop.setdefault(future.get_loop(), []).append((future, outcome))
        elif isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    for loop, settled in by_loop.items():
        if not loop.is_closed():
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


class MessageStore:
    """SQLite storage of callback messages, written by one thread with group commit.

    Args:
        path: The database file; ``":memory:"`` for a store that lives as long as this object.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._queue: queue.Queue[_Read | _Write | None] = queue.Queue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._writer = threading.Thread(target=self._work, name="tskit-listener-store", daemon=True)
        self._writer.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None)
        if self.path != ":memory:":
            connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the 2xx goes out
        connection.execute(_SCHEMA)
        return connection

    def _work(self) -> None:
        try:
            db = self._connect()
        except BaseException as error:  # reported by __init__
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        stop = False
        while not stop:
            item = self._queue.get()
            batch: list[_Write] = []
            while item is not None:
                if isinstance(item, _Read):
                    self._flush(db, batch)  # reads see every write queued before them
                    batch = []
                    try:
                        item.future.set_result(db.execute(item.sql, item.params).fetchall())
                    except BaseException as error:
                        item.future.set_exception(error)
                else:
                    batch.append(item)
                if len(batch) >= _BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            else:
                stop = True
            self._flush(db, batch)
        db.close()

    @staticmethod
    def _flush(db: sqlite3.Connection, batch: list[_Write]) -> None:
        if not batch:
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            results = [Stored(*db.execute(_INSERT, w.values).fetchone()) for w in batch]
            db.execute("COMMIT")
        except BaseException as error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            _resolve([(w.future, error) for w in batch])
            return
        _resolve([(w.future, r) for w, r in zip(batch, results, strict=True)])

    def put(self, body: Mapping[str, Any], service: str) -> Future[Stored]:
        """Queue a message for storage; the future resolves once it is committed."""
        self._check_open()
        future: Future[Stored] = Future()
        self._queue.put(_Write(row(body, service), future))
        return future

    async def store(self, body: Mapping[str, Any], service: str) -> Stored:
        """Store a message and wait until it is committed."""
        self._check_open()
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queue.put(_Write(row(body, service), future))
        return await future

    @property
    def closed(self) -> bool:
        """Whether the store was closed (it cannot be used again)."""
        return not self._writer.is_alive()

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"the message store {self.path} is closed; open a new one on the same file")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read rows, after every write queued before this call."""
        self._check_open()
        future: Future[list[tuple[Any, ...]]] = Future()
        self._queue.put(_Read(sql, params, future))
        return future.result(timeout=60)

    def close(self) -> None:
        """Write what is queued, then close the database."""
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join(timeout=60)
