"""MessagesView: reads changes off the event loop, renders only them, and shows errors."""

from __future__ import annotations

import threading
from typing import Any

import httpx2
import pytest

from tests.conftest import aeventually
from tskit.listener import Listener, StoreFailed
from tskit.simulator import build_message

pytestmark = [pytest.mark.anyio, pytest.mark.server]


def post(listener: Listener, body: dict[str, Any] | None = None) -> dict[str, Any]:
    body = body or build_message("CarrierService", account_name="0000123456-00001")
    assert httpx2.post(listener.url, json=body).status_code == 200
    return body


async def test_reads_off_the_loop_and_only_what_changed() -> None:
    from tskit.widgets import MessagesView

    with Listener(port=0) as listener:
        reads: list[tuple[str, int]] = []
        original = listener.changes

        def spy(after_id: int = 0, after_time: str = "") -> Any:
            changed = original(after_id, after_time)
            reads.append((threading.current_thread().name, len(changed)))
            return changed

        listener.changes = spy  # type: ignore[method-assign]
        first = post(listener)
        view = MessagesView(listener, interval=0.02)
        assert first["requestId"] in set(view.frame["request_id"])
        await aeventually(lambda: len(reads) >= 3)  # two polls after the first read
        loop_thread = threading.current_thread().name
        polled = reads[1:]
        assert polled and all(name != loop_thread for name, _ in polled)  # never on the loop's thread
        assert all(count == 0 for _, count in polled)  # nothing new: nothing read again
        second = post(listener)
        post(listener, {**first, "callbackCount": 2})  # a redelivery of the first
        await aeventually(
            lambda: second["requestId"] in set(view.frame["request_id"]) and 2 in set(view.frame["attempts"])
        )
        shown = view.frame
        assert second["requestId"] in set(shown["request_id"]) and "2 message(s)" in view.header.value
        again = shown[shown["request_id"] == first["requestId"]].iloc[0]
        assert (again["attempts"], again["callback_count"]) == (2, 2)  # the first one, delivered again
        assert max(count for _, count in reads[2:]) <= 2  # the changed rows only, never the whole table
        assert len(shown) == 2
        assert first["requestId"] in str(view.table._dt_args)  # what the browser gets: the interactive table
        view.close()


async def test_errors_are_shown_not_swallowed() -> None:
    from tskit.widgets import MessagesView

    with Listener(port=0) as listener:
        view = MessagesView(listener, live=False)
        listener.store.close()
        listener.store._writer.failed = StoreFailed("the message store stopped (test)")  # as its writer does
        await view.aupdate()
        assert "Could not read the messages" in view.error.value and "stopped (test)" in view.error.value
        # a status line in the theme's colours (dark red text did not read on the dark theme), as text
        assert view.error.kind == "error" and "<" not in view.error.value
        view.close()
