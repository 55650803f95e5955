"""Durable storage of callback messages in SQLite: what the listener and readers call.

Each accepted message is queued for the store's one writer thread (``tskit.listener._writer``),
which commits in groups and only then resolves the message's future. The listener answers 2xx
after its future resolves, so an acknowledged message survives the process being killed, and
under load many messages share one fsync. What a message becomes in the database, secrets
dropped, is ``tskit.listener._rows``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tskit.listener._outcomes import Stored, StoreFailed, StoreOpenError
from tskit.listener._rows import storable_row
from tskit.listener._writer import Read, Write, Writer, database_files


class MessageStore:
    """SQLite storage of callback messages, written by one supervised thread with group commit.

    Args:
        path: The database file; ``":memory:"`` for a store that lives as long as this object.
            A missing folder is created 0700; the files are 0600.

    Raises:
        StoreOpenError: The database cannot be opened or created.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._closing = False
        self._writer = Writer(self.path)

    @property
    def files(self) -> list[Path]:
        """The database's files on disk (none for an in-memory store)."""
        return database_files(self.path)

    def put(self, body: Mapping[str, Any], service: str) -> Future[Stored]:
        """Queue a message for storage; the future resolves once it is committed.

        Raises:
            MessageRefused: The message cannot be turned into a row.
            StoreFailed: The store stopped.
        """
        self._check_open()
        future: Future[Stored] = Future()
        self._writer.submit(Write(storable_row(body, service), future))
        return future

    async def store(self, body: Mapping[str, Any], service: str) -> Stored:
        """Store a message and wait until it is committed.

        Raises:
            MessageRefused: This message cannot be stored (others are not affected).
            StoreUnavailable: The store cannot write now; :class:`StoreFailed` if it stopped.
        """
        self._check_open()
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._writer.submit(Write(storable_row(body, service), future))
        return await future

    @property
    def closed(self) -> bool:
        """Whether the store was closed (it cannot be used again)."""
        return self._closing or not self._writer.alive

    @property
    def failure(self) -> StoreFailed | None:
        """Why the store stopped writing, if it did."""
        return self._writer.failed

    @property
    def problem(self) -> str:
        """Why messages would not be stored now (stopped, file deleted or replaced, last write failed), or ``""``.

        Says what happened without file paths or database error texts (those are logged).
        """
        if self._writer.failed is not None:
            return "the message store stopped"
        if self.closed:
            return "the message store is closed"
        return self._writer.file_problem() or self._writer.trouble

    def _check_open(self) -> None:
        if self._writer.failed is not None:
            raise self._writer.failed
        if self.closed:
            raise RuntimeError(f"the message store {self.path} is closed; open a new one on the same file")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read rows, after every write queued before this call; once closed, what it held."""
        if self._writer.failed is None and self.closed:
            rows = self._writer.snapshot_query(sql, params)
            if rows is not None:
                return rows
            if self.path != ":memory:":
                return read_only_query(self.path, sql, params)
        self._check_open()
        future: Future[list[tuple[Any, ...]]] = Future()
        self._writer.submit(Read(sql, params, future))
        return future.result(timeout=60)

    def close(self) -> None:
        """Write what is queued, then close the database."""
        self._closing = True
        self._writer.stop()


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
