"""MessagesView: the messages a Listener received, updating live in the notebook."""

from __future__ import annotations

import asyncio
import html
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from tskit.listener import MESSAGE_COLUMNS as _COLUMNS

if TYPE_CHECKING:
    from tskit.listener import Listener

_STYLE = (
    "<style>table.tskit-messages{border-collapse:collapse}table.tskit-messages th,table.tskit-messages td"
    "{text-align:left;padding:2px 10px;border-bottom:1px solid #ddd}</style>"
)


def _row_html(values: dict[str, Any]) -> str:
    cells = "".join(f"<td>{html.escape('' if values[c] is None else str(values[c]))}</td>" for c in _COLUMNS)
    return f"<tr>{cells}</tr>"


class MessagesView(widgets.VBox):
    """A table of a listener's messages that refreshes itself while *Live* is ticked.

    Each look reads only what changed since the last one (new messages, and redeliveries of shown
    ones), in a worker thread so the notebook's event loop never waits on the database, and
    renders only those rows. A look that fails says why in :attr:`error`; the next tick tries again.

    Args:
        listener: The listener to show.
        interval: Seconds between looks for new messages.
        live: Start refreshing at once (needs a running event loop, as in Jupyter).

    Attributes:
        header: The listener's URL and the message count.
        table: The messages (newest last), passwords never among them.
        error: Why the last look failed, if it did (empty otherwise).
        refresh: Look now.
        live: Keep looking every ``interval`` seconds.
        pending: The refreshing task, while live.
    """

    def __init__(self, listener: Listener, *, interval: float = 1.0, live: bool = True) -> None:
        self.listener = listener
        self.interval = interval
        self.header = widgets.HTML()
        self.table = widgets.HTML()
        self.error = widgets.HTML()
        self.refresh = widgets.Button(description="Refresh", icon="refresh")
        self.live = widgets.Checkbox(value=live, description="Live")
        self.pending: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._rows: dict[int, str] = {}  # row id -> its <tr>, in id order
        self._last_id = 0
        self._last_time = ""
        super().__init__([widgets.HBox([self.header, self.refresh, self.live]), self.error, self.table])
        self.refresh.on_click(lambda _: self._refresh_now())
        self.live.observe(lambda change: self._follow(bool(change["new"])), names="value")
        self._show()
        self.update()
        self._follow(live)

    def _read(self) -> Any:
        """The rows changed since the last look (runs in a worker thread when live)."""
        return self.listener.changes(self._last_id, self._last_time)

    def _apply(self, changed: Any) -> None:
        """Render the changed rows only; the others keep their HTML."""
        for values in changed.to_dict("records"):
            row_id = int(values["id"])
            self._rows[row_id] = _row_html(values)
            self._last_id = max(self._last_id, row_id)
            self._last_time = max(self._last_time, str(values["last_received_at"]))
        if len(changed) or not self.header.value:
            self._show()

    def _show(self) -> None:
        self.header.value = f"<b>{html.escape(self.listener.url)}</b> — {len(self._rows)} message(s)"
        if not self._rows:
            self.table.value = "<i>No messages yet.</i>"
            return
        head = "".join(f"<th>{c}</th>" for c in _COLUMNS)
        body = "".join(self._rows[k] for k in sorted(self._rows))
        self.table.value = (
            f'{_STYLE}<table class="tskit-messages"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        )

    def _failed(self, error: Exception) -> None:
        self.error.value = f'<span style="color:#b00">Could not read the messages: {html.escape(str(error))}</span>'

    def update(self) -> None:
        """Look now, in this thread, and show what changed."""
        try:
            changed = self._read()
        except Exception as error:  # shown, not swallowed; the next look tries again
            self._failed(error)
            return
        self.error.value = ""
        self._apply(changed)

    async def aupdate(self) -> None:
        """Look now without blocking the event loop (the database is read in a worker thread)."""
        try:
            changed = await asyncio.to_thread(self._read)
        except Exception as error:
            self._failed(error)
            return
        self.error.value = ""
        self._apply(changed)

    def _refresh_now(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.update()
            return
        self._refreshing = loop.create_task(self.aupdate())  # kept: a task nobody holds may be collected

    def _follow(self, live: bool) -> None:
        if not live:
            if self.pending is not None:
                self.pending.cancel()
                self.pending = None
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop to poll on: Refresh still works
        if self.pending is None or self.pending.done():
            self.pending = loop.create_task(self._poll())

    async def _poll(self) -> None:
        while self.listener.running:
            await self.aupdate()
            await asyncio.sleep(self.interval)

    def close(self, *args: Any, **kwargs: Any) -> None:
        """Stop refreshing, then close the widget."""
        self._follow(False)
        super().close(*args, **kwargs)
