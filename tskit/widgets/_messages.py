"""MessagesView: the messages a Listener received, updating live in the notebook."""

from __future__ import annotations

import asyncio
import html
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from tskit.listener import MESSAGE_COLUMNS as _COLUMNS
from tskit.widgets._common import data_table, export_name, row, show_frame
from tskit.widgets._elements import StatusLine

if TYPE_CHECKING:
    import pandas as pd

    from tskit.listener import Listener


class MessagesView(widgets.VBox):
    """A table of a listener's messages that refreshes itself while *Live* is ticked.

    Each look reads only what changed since the last one (new messages, and redeliveries of shown
    ones), in a worker thread so the notebook's event loop never waits on the database, and
    shows the table again only when something changed: the same sortable, searchable, paged table
    with CSV and Excel export as the other panels. A look that fails says why in :attr:`error`;
    the next tick tries again.

    Args:
        listener: The listener to show.
        interval: Seconds between looks for new messages.
        live: Start refreshing at once (needs a running event loop, as in Jupyter).

    Attributes:
        header: The listener's URL and the message count.
        table: The messages (newest last), passwords never among them: an interactive table.
        empty: "No messages yet.", shown instead of the table until the first message.
        frame: The messages shown, as a DataFrame.
        error: Why the last look failed, if it did (empty otherwise).
        refresh: Look now.
        live: Keep looking every ``interval`` seconds.
        pending: The refreshing task, while live.
    """

    def __init__(self, listener: Listener, *, interval: float = 1.0, live: bool = True) -> None:
        self.listener = listener
        self.interval = interval
        self.header = widgets.HTML()
        self.empty = widgets.HTML("<i>No messages yet.</i>")
        self.table = data_table(shown=False, **export_name("listener-messages"))
        # a status line: announced to screen readers, no bar while empty, and it brings tskit's CSS
        self.error = StatusLine(kind="error")
        self.refresh = widgets.Button(description="Refresh", icon="refresh")
        self.live = widgets.Checkbox(value=live, description="Live", indent=False, layout={"width": "auto"})
        self.pending: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._rows: dict[int, dict[str, Any]] = {}  # row id -> its values
        self._last_id = 0
        self._last_time = ""
        super().__init__(
            [row([self.header, self.refresh, self.live]), self.error, self.empty, self.table],
            layout=widgets.Layout(width="100%"),
        )
        self.add_class("tskit-panel")  # the panels' table and text colours
        self.refresh.on_click(lambda _: self._refresh_now())
        self.live.observe(lambda change: self._follow(bool(change["new"])), names="value")
        self._show()
        self.update()
        self._follow(live)

    def _read(self) -> Any:
        """The rows changed since the last look (runs in a worker thread when live)."""
        return self.listener.changes(self._last_id, self._last_time)

    @property
    def frame(self) -> pd.DataFrame:
        """The messages shown, oldest first, with the listener's message columns."""
        import pandas as pd

        rows = [self._rows[k] for k in sorted(self._rows)]
        return pd.DataFrame(rows, columns=list(_COLUMNS)) if rows else pd.DataFrame(columns=list(_COLUMNS))

    def _apply(self, changed: Any) -> None:
        """Keep the changed rows; show the table again only when something changed."""
        for values in changed.to_dict("records"):
            row_id = int(values["id"])
            self._rows[row_id] = {c: values[c] for c in _COLUMNS}
            self._last_id = max(self._last_id, row_id)
            self._last_time = max(self._last_time, str(values["last_received_at"]))
        if len(changed) or not self.header.value:
            self._show()

    def _show(self) -> None:
        self.header.value = f"<b>{html.escape(self.listener.url)}</b> — {len(self._rows)} message(s)"
        self.empty.layout.display = "none" if self._rows else None
        self.table.layout.display = None if self._rows else "none"
        if self._rows:
            shown = self.frame
            for column in shown.columns:  # times as text in the table: the page shows them as read
                if str(shown[column].dtype).startswith("datetime64"):
                    shown[column] = shown[column].dt.strftime("%Y-%m-%d %H:%M:%S UTC")
            show_frame(self.table, shown)

    def _failed(self, error: Exception) -> None:
        self.error.value = f"Could not read the messages: {error}"  # as text, never as HTML

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
