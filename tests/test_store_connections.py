"""Every SQLite connection the listener's store opens is closed, on every path.

Python 3.13 reports a connection left to the garbage collector as a ``ResourceWarning``, which
the suite turns into an error; these tests check the closing itself, so they fail on any Python.
"""

from __future__ import annotations

import gc
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tskit.listener import MessageStore, StoreOpenError
from tskit.listener._store import read_only_query
from tskit.simulator import build_message


class Tracked(sqlite3.Connection):
    """A connection that remembers being closed (by ``close()``, not by the garbage collector)."""

    was_closed = False

    def close(self) -> None:
        self.was_closed = True
        super().close()


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Tracked]]:
    """Every connection ``sqlite3.connect`` makes while the test runs."""
    connections: list[Tracked] = []
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = real(*args, factory=Tracked, **kwargs)
        assert isinstance(connection, Tracked)
        connections.append(connection)
        return connection

    monkeypatch.setattr(sqlite3, "connect", connect)
    yield connections


def is_closed(connection: Tracked) -> bool:
    return connection.was_closed


def test_a_file_store_closes_its_connection(tmp_path: Path, opened: list[Tracked]) -> None:
    store = MessageStore(tmp_path / "m.db")
    store.put(build_message("CarrierService", account_name="0000123456-00001"), "CarrierService").result(timeout=30)
    store.close()
    assert store.query("SELECT count(*) FROM messages") == [(1,)]  # read from the file, read-only
    assert len(opened) >= 2 and all(is_closed(c) for c in opened)


def test_an_in_memory_stores_rows_are_closed_with_it(opened: list[Tracked]) -> None:
    store = MessageStore()
    store.put(build_message("CarrierService", account_name="0000123456-00001"), "CarrierService").result(timeout=30)
    store.close()
    assert store.query("SELECT count(*) FROM messages") == [(1,)]  # its rows, kept once closed
    [writer, snapshot] = opened
    assert is_closed(writer) and not is_closed(snapshot)
    del store
    gc.collect()
    assert is_closed(snapshot)


def test_a_file_that_is_not_a_database_leaves_no_connection_open(tmp_path: Path, opened: list[Tracked]) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are not the rows you are looking for\n" * 100)
    with pytest.raises(StoreOpenError):
        MessageStore(path)
    with pytest.raises(StoreOpenError):
        read_only_query(path, "SELECT count(*) FROM messages")
    assert len(opened) == 2 and all(is_closed(c) for c in opened)


def test_a_plain_listener_leaks_nothing_with_resource_warnings_as_errors(tmp_path: Path) -> None:
    """What a user sees with ``-W error::ResourceWarning``: nothing (Python 3.13 checks SQLite too)."""
    code = (
        "import gc, tskit\n"
        f"for store in (':memory:', {str(tmp_path / 'l.db')!r}):\n"
        "    listener = tskit.Listener(store=store, port=0, password='pw-for-test').start()\n"
        "    listener.stop()\n"
        "    print(len(listener.messages))\n"
        "    del listener\n"
        "    gc.collect()\n"
    )
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (0, "0\n0\n"), done.stderr[-3000:]
    assert "ResourceWarning" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr[-3000:]
