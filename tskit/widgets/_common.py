"""What the widgets share: running an operation as a task, a status line, a log, errors in plain words."""

from __future__ import annotations

import asyncio
import html
import traceback
from collections.abc import Awaitable, Callable
from datetime import datetime

import ipywidgets as widgets

from tskit import _runner
from tskit._errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    RateLimitError,
    RequestTimeout,
    ThingSpaceError,
    TransportError,
    UnexpectedResponseError,
    ValidationError,
)

COLOURS = {"info": "#1565c0", "ok": "#2e7d32", "error": "#c62828", "busy": "#6d4c41"}


def plain_words(error: BaseException) -> str:
    """One line a person understands, for the status line. The log gets the full text."""
    if isinstance(error, ConfigurationError | ValidationError):
        return f"Please check {error.field}: {error.problem}" + (f" ({error.allowed})" if error.allowed else "")
    if isinstance(error, AuthenticationError):
        return f"ThingSpace refused the login: {error.error_message or error.error_code} ({error.status_code})"
    if isinstance(error, RateLimitError):
        return "ThingSpace says there are too many requests; try again in a minute."
    if isinstance(error, ApiError):
        code = f" [{error.error_code}]" if error.error_code else ""
        return f"ThingSpace said no ({error.status_code}): {error.error_message or 'no reason given'}{code}"
    if isinstance(error, RequestTimeout):
        return "ThingSpace did not answer in time; a change may or may not have happened. List again to check."
    if isinstance(error, TransportError):
        return f"Could not reach ThingSpace: {error}"
    if isinstance(error, UnexpectedResponseError):
        return f"ThingSpace answered something unexpected: {error}"
    if isinstance(error, ThingSpaceError):
        return str(error)
    return f"Something went wrong inside tskit: {type(error).__name__}: {error}"


class Panel(widgets.VBox):
    """A box with a status line, a log area and one operation at a time.

    Attributes:
        status: One line saying what happened last, in plain words.
        details: The full detail of every operation and error.
        pending: The operation running now, if any (await it in tests and notebooks).
    """

    def __init__(self, children: list[widgets.Widget], **kwargs: object) -> None:
        self.status = widgets.HTML(value="")
        self.details = widgets.Textarea(value="", disabled=True, rows=6, layout=widgets.Layout(width="100%"))
        self._log_box = widgets.Accordion(children=[self.details], titles=("Details",))
        self._log_box.selected_index = None
        self.pending: asyncio.Task[None] | None = None
        self._busy = False
        super().__init__([*children, self.status, self._log_box], **kwargs)

    @property
    def busy(self) -> bool:
        """Whether an operation is running."""
        return self._busy

    def say(self, text: str, kind: str = "info") -> None:
        """Show one line in the status line (escaped)."""
        self.status.value = f'<span style="color:{COLOURS[kind]}">{html.escape(text)}</span>'

    def note(self, text: str) -> None:
        """Add a line to the details area."""
        line = f"{datetime.now():%H:%M:%S} {text}"
        lines = [*self.details.value.splitlines(), line][-200:]
        self.details.value = "\n".join(lines)

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self._update_buttons()

    def _update_buttons(self) -> None:
        """Subclasses enable and disable their buttons here, from their state and :attr:`busy`."""

    def run(self, what: str, operation: Callable[[], Awaitable[None]]) -> asyncio.Task[None] | None:
        """Run ``operation`` as a task on the running loop, unless one is already running.

        Two quick clicks therefore never send two requests. Errors never vanish: the status
        line says what happened in plain words and the log keeps the whole story.
        """
        if self.busy:
            self.note(f"ignored {what}: busy with another operation")
            return None

        async def guarded() -> None:
            try:
                await operation()
            except Exception as error:  # shown to the user, never swallowed
                self.say(plain_words(error), "error")
                self.note(f"failed: {error}")
                if not isinstance(error, ThingSpaceError):
                    self.note("".join(traceback.format_exception(error)))
            finally:
                self._set_busy(False)

        self._set_busy(True)  # at once, so the buttons are disabled before the task starts
        self.say(f"{what}…", "busy")
        self.note(what)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (plain Python): do it now
            _runner.run(guarded())
            return None
        self.pending = loop.create_task(guarded())
        return self.pending
