"""MessagesView: the messages a Listener received, updating live in the notebook."""

from __future__ import annotations

import asyncio
import contextlib
import html
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

if TYPE_CHECKING:
    from tskit.listener import Listener

_STYLE = (
    "<style>table.tskit-messages{border-collapse:collapse}table.tskit-messages th,table.tskit-messages td"
    "{text-align:left;padding:2px 10px;border-bottom:1px solid #ddd}</style>"
)


class MessagesView(widgets.VBox):
    """A table of a listener's messages that refreshes itself while *Live* is ticked.

    Args:
        listener: The listener to show.
        interval: Seconds between looks for new messages.
        live: Start refreshing at once (needs a running event loop, as in Jupyter).

    Attributes:
        header: The listener's URL and the message count.
        table: The messages (newest last), passwords never among them.
        refresh: Look now.
        live: Keep looking every ``interval`` seconds.
        pending: The refreshing task, while live.
    """

    def __init__(self, listener: Listener, *, interval: float = 1.0, live: bool = True) -> None:
        self.listener = listener
        self.interval = interval
        self.header = widgets.HTML()
        self.table = widgets.HTML()
        self.refresh = widgets.Button(description="Refresh", icon="refresh")
        self.live = widgets.Checkbox(value=live, description="Live")
        self.pending: asyncio.Task[None] | None = None
        self._shown = -1
        super().__init__([widgets.HBox([self.header, self.refresh, self.live]), self.table])
        self.refresh.on_click(lambda _: self.update(force=True))
        self.live.observe(lambda change: self._follow(bool(change["new"])), names="value")
        self.update(force=True)
        self._follow(live)

    def update(self, *, force: bool = False) -> None:
        """Show the messages now (only when their count changed, unless ``force``)."""
        count = self.listener.count()
        if count == self._shown and not force:
            return
        self._shown = count
        self.header.value = f"<b>{html.escape(self.listener.url)}</b> — {count} message(s)"
        frame = self.listener.messages
        self.table.value = (
            _STYLE + frame.to_html(index=False, escape=True, border=0, classes="tskit-messages", na_rep="")
            if len(frame)
            else "<i>No messages yet.</i>"
        )

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
            with contextlib.suppress(Exception):  # a failed look is retried at the next tick
                self.update()
            await asyncio.sleep(self.interval)

    def close(self, *args: Any, **kwargs: Any) -> None:
        """Stop refreshing, then close the widget."""
        self._follow(False)
        super().close(*args, **kwargs)
