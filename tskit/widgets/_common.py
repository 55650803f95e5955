"""What the widgets share: one operation at a time, status line, log, GUI words, layouts, tables, the connection badge.

Layouts use the width they get and wrap on narrow pages; errors name form fields, not parameters.
"""

from __future__ import annotations

import asyncio
import base64
import html
import traceback
import warnings
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import ipywidgets as widgets
from itables.widget import ITable

from tskit._errors import (
    ApiError,
    Reason,
    RequestTimeout,
    ThingSpaceError,
    TransportError,
    UnexpectedResponseError,
    ValidationError,
    Vocabulary,
    sentence,
)
from tskit.widgets._elements import LogView, StatusLine

if TYPE_CHECKING:
    import pandas as pd

    from tskit._facade import ThingSpace

KINDS = ("info", "ok", "error", "busy")
#: Width of the labels in front of fields: long enough for "Concurrency" or "Expected services".
LABEL_WIDTH = "9em"

# The library's field names, as the forms label them.
FIELD_LABELS = {
    "account_name": "Account",
    "accounts": "Accounts",
    "service_name": "Service",
    "url": "URL",
    "username": "Username",
    "password": "Password",
    "client_id": "App key",
    "client_secret": "App secret",
    "base_url": "Base URL",
}
# The options a form has a control for, as a person sets it.
_CONTROLS = {"allow_any_port": "tick “Allow any port”"}


def _control(option: str, value: str) -> str | None:
    return _CONTROLS.get(option) if value == "True" else None


#: The widgets' words for an error's fields: control labels and what a person at a form does.
GUI_WORDS = Vocabulary(
    fields=FIELD_LABELS,
    option=_control,
    actions={
        "set-variable": "fill it in",
        "choose-from": "choose one from the list",
        "reset-login": "fix the credentials and log in again (`tskit reset-login` lifts a recorded refusal)",
        "unlock-user": "have Verizon support unlock the user, then run `tskit reset-login`",
        "clear-failed-logins": "check the username and password, then run `tskit reset-login` (a user ThingSpace "
        "already locked needs Verizon support first)",
        "fix-credentials": "check the username and password, then log in again",
        "fix-app-credentials": "check the application key and secret, then log in again",
        "listener-credentials": "give them in the Username and Password fields",
        "wait": "wait {seconds} s",
        "longer-timeout": "try again with a longer timeout",
        "plan-again": "plan again",
        "new-journal": "start a new journal",
        "run-again": "try again later",
    },
    lists={"services": "the list"},
)


def gui_words(error: ThingSpaceError) -> str:
    """An error in the words of a form: its labels and controls, rendered from the error's fields."""
    return error.render(GUI_WORDS)


def field_problem(error: ValidationError) -> str:
    """A validation error as a form shows it: the field's label, the problem, what is allowed."""
    return gui_words(error)


def field_layout(**more: Any) -> widgets.Layout:
    """A field that takes the width it is given, up to a readable measure, and shrinks to fit."""
    return widgets.Layout(**{"width": "100%", "max_width": "46em", "min_width": "16em", **more})


def field_style() -> dict[str, str]:
    """Labels wide enough for their words, the same for every field so the fields line up."""
    return {"description_width": LABEL_WIDTH}


def row(children: list[widgets.Widget], **more: Any) -> widgets.HBox:
    """A row that wraps onto more lines on a narrow page instead of cutting or hiding things."""
    layout = {"flex_flow": "row wrap", "align_items": "center", "grid_gap": "4px 8px", **more}
    return widgets.HBox(children, layout=widgets.Layout(**layout))


def connection_badge(ts: ThingSpace) -> str:
    """A badge that says plainly whether this is the simulator or a real ThingSpace."""
    if ts.is_simulator:
        return (
            '<span style="background:#6a1b9a;color:#fff;border-radius:3px;padding:2px 8px">'
            "SIMULATOR</span> embedded ThingSpace simulator — nothing reaches Verizon"
        )
    return (
        '<span style="background:#2e7d32;color:#fff;border-radius:3px;padding:2px 8px">ThingSpace</span> '
        f"{html.escape(ts.client.base_url)} as {html.escape(ts.client.auth.username)}"
    )


def on_enter(field: widgets.Text, action: Any) -> None:
    """Run ``action`` when Enter is pressed in ``field``.

    ipywidgets still sends Enter as a 'submit' event; its ``on_submit`` is only marked deprecated
    in favour of ``continuous_update=False``, which cannot tell Enter from leaving the field.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        field.on_submit(lambda _: action())


# itables over ipydatagrid, tried side by side in Voilà: itables renders a real HTML table
# (screen readers and the browser tests read it; columns sized to their text) with search, sort,
# pages and CSV/Excel export built in and offline; ipydatagrid draws on a canvas in fixed-width
# columns that cut names and URLs, and exports nothing.
TABLE_OPTIONS: dict[str, Any] = {
    "buttons": ["pageLength", {"extend": "csvHtml5", "text": "CSV"}, {"extend": "excelHtml5", "text": "Excel"}],
    "lengthMenu": [10, 25, 50, 100, -1],
    "pageLength": 10,
    "showIndex": False,
    "classes": "display compact",
    "style": "width:100%;margin:0",
    "autoWidth": False,
    "allow_html": False,
    "language": {"emptyTable": "Nothing to show."},
}


#: Columns of long text that may wrap inside their cells; every other column stays on one line.
WRAPPED_COLUMNS = frozenset({"url", "detail", "message", "description", "old", "new", "body", "error", "error_code"})


def data_table(frame: pd.DataFrame | None = None, *, shown: bool = True, **options: Any) -> ITable:
    """An interactive table: sort by any column, search, pages, export to CSV or Excel."""
    table = ITable(frame, **{**TABLE_OPTIONS, **options})
    # (``layout`` is DataTables' own option: the widget's layout is set apart)
    table.layout = widgets.Layout(width="100%", display=None if shown else "none")
    table.tskit_options = {**TABLE_OPTIONS, **options}
    return table


def show_frame(table: ITable, frame: pd.DataFrame, **options: Any) -> None:
    """Put ``frame`` in a table of :func:`data_table`, keeping its options (or changing some).

    ``ITable.update`` computes DataTables' arguments afresh: options not given again, such as
    the export buttons, would be lost.
    """
    kept: dict[str, Any] = getattr(table, "tskit_options", {})
    kept.update(options)
    # names and ids stay on one line; only long texts (URLs, details) wrap
    wrap = [i for i, column in enumerate(frame.columns) if column in WRAPPED_COLUMNS]
    table.update(frame, **kept, columnDefs=[{"targets": wrap, "className": "tskit-wrap"}])


def export_name(stem: str) -> dict[str, Any]:
    """Table options that name the exported CSV and Excel files ``stem``."""
    return {
        "buttons": [
            "pageLength",
            {"extend": "csvHtml5", "text": "CSV", "filename": stem, "title": None},
            {"extend": "excelHtml5", "text": "Excel", "filename": stem, "title": None},
        ]
    }


def plain_words(error: BaseException) -> str:
    """One line a person understands, for the status line, from the error's fields. The log gets the full text."""
    if not isinstance(error, ThingSpaceError):
        return f"Something went wrong inside tskit: {type(error).__name__}: {error}"
    text = _plain(error)
    if error.may_have_applied:  # a change that failed may still have reached ThingSpace
        text = sentence(text, "the change may have reached ThingSpace: list again to check")
    return text


# What a login's failure means, by its reason (never by its class: a throttle is an AuthenticationError too).
_LOGIN_PLAIN: Final[Mapping[str, str]] = {
    Reason.LOGIN_REFUSED: "ThingSpace refused the login",
    Reason.USER_LOCKED: "ThingSpace refused the login: the user is locked",
    Reason.LOGIN_UNCERTAIN: "The login failed, perhaps for a wrong password",
    Reason.TOO_MANY_FAILED_LOGINS: "No login sent: too many failed logins in a row for this user",
    Reason.LOGIN_FAILED: "The login failed for a passing reason",
    Reason.LOGIN_COOLDOWN: "No login sent: a login has just failed",
    Reason.THROTTLED: "ThingSpace is throttling logins",
    Reason.THROTTLE_OUTLASTS_DEADLINE: "ThingSpace is throttling logins",
}


def _plain(error: ThingSpaceError) -> str:
    if isinstance(error, ValidationError):
        return f"Please check {field_problem(error)}"
    remedy = GUI_WORDS.remedy_words(error.remedy) if error.remedy is not None else ""
    if isinstance(error, ApiError) and error.reason in _LOGIN_PLAIN:
        said = [part for part in ((error.error_message or error.error_code).rstrip("."), error.status_code) if part]
        detail = f" ({', '.join(map(str, said))})" if said else ""
        return sentence(f"{_LOGIN_PLAIN[error.reason]}{detail}", remedy)
    if error.reason == Reason.RATE_LIMITED:
        return "ThingSpace says there are too many requests; try again in a minute."
    if error.reason == Reason.UNEXPECTED_ANSWER:
        return f"ThingSpace answered something unexpected: {error}"
    if isinstance(error, ApiError):
        code = f" [{error.error_code}]" if error.error_code else ""
        return f"ThingSpace said no ({error.status_code}): {error.error_message or 'no reason given'}{code}"
    if isinstance(error, RequestTimeout):
        return "ThingSpace did not answer in time."
    if isinstance(error, TransportError):
        return f"Could not reach ThingSpace: {error}"
    if isinstance(error, UnexpectedResponseError):
        return f"ThingSpace answered something unexpected: {error}"
    return gui_words(error)


class Panel(widgets.VBox):
    """A box with a status line, a log area and one operation at a time.

    Attributes:
        status: One line saying what happened last, in plain words.
        details: The full detail of every operation and error.
        pending: The operation running now, if any (await it in tests and notebooks).
    """

    def __init__(self, children: list[widgets.Widget], *, details_title: str = "Details", **kwargs: Any) -> None:
        self.status = StatusLine()
        self.details = LogView(label=f"{details_title}: the full story of every operation")
        # a title of its own where two panels share a page (the login panel under the manager)
        self._log_box = widgets.Accordion(children=[self.details], titles=(details_title,))
        self._log_box.selected_index = None
        self.pending: asyncio.Task[None] | None = None
        self._busy = False
        # the whole width of the page: tables get room; fields keep their own readable measure
        kwargs.setdefault("layout", widgets.Layout(width="100%", grid_gap="6px"))
        super().__init__([*children, self.status, self._log_box], **kwargs)
        self.add_class("tskit-panel")

    @property
    def busy(self) -> bool:
        """Whether an operation is running."""
        return self._busy

    def say(self, text: str, kind: str = "info") -> None:
        """Show one line in the status line (as text: never read as HTML)."""
        self.status.kind = kind if kind in KINDS else "info"
        self.status.value = text

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

    def cancel_pending(self) -> bool:
        """Stop the operation running now, if any; returns whether there was one to stop.

        The task is cancelled where it waits: requests not yet sent are never sent.
        """
        if self.pending is None or self.pending.done() or not self.busy:
            return False
        self.pending.cancel()
        return True

    def cancelled_words(self, what: str) -> str:
        """The status line after :meth:`cancel_pending` stopped ``what``; panels say how far it got."""
        return f"Cancelled: {what[:1].lower()}{what[1:]} stopped."

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
            except asyncio.CancelledError:  # cancel_pending() stopped it: said, and the task ends quietly
                self.say(self.cancelled_words(what), "info")
                self.note(f"cancelled: {what}")
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
            asyncio.run(guarded())
            return None
        self.pending = loop.create_task(guarded())
        return self.pending


class Progress(widgets.HBox):
    """A progress bar with its count in words beside it ("37/100"), which the bar alone lacks.

    Attributes:
        bar: The bar.
        count: The count, as text.
        total: How many there are.
    """

    def __init__(self, description: str, **layout: Any) -> None:
        self.bar = widgets.IntProgress(
            value=0, min=0, max=1, description=description, style=field_style(), layout=field_layout(**layout)
        )
        self.count = widgets.Label("", layout=widgets.Layout(width="auto", min_width="5em"))
        self.total = 0
        super().__init__([self.bar, self.count], layout=widgets.Layout(align_items="center", width="auto"))

    @property
    def value(self) -> int:
        """How many are done."""
        return int(self.bar.value)

    @property
    def max(self) -> int:
        """How many there are."""
        return int(self.bar.max)

    def show(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` on the bar and in words."""
        self.total = total
        self.bar.max, self.bar.value = max(1, total), done
        self.count.value = f"{done}/{total}"


def plural(count: int, noun: str) -> str:
    """``"1 change"``, ``"2 changes"``."""
    return f"{count} {noun if count == 1 else noun + 's'}"


def download_link(name: str, content: bytes, kind: str) -> str:
    """HTML for a link that downloads ``content`` as a file called ``name``, styled as a button.

    The browser gets the file itself: a server path would mean nothing where the kernel runs
    elsewhere (Binder, JupyterHub).
    """
    data = base64.b64encode(content).decode()
    return (
        f'<a class="tskit-download" download="{html.escape(name)}" href="data:{kind};base64,{data}">'
        f"Download {html.escape(name)}</a>"
    )


def close_later(connection: ThingSpace, after: asyncio.Task[None] | None = None) -> None:
    """Close a connection no longer used: on the running loop if there is one, else now.

    With ``after``, once that operation (still using the connection) is done.
    """
    if after is not None and not after.done():
        after.add_done_callback(lambda _: close_later(connection))
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        connection.close()
        return
    task = loop.create_task(connection.aclose())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()  # kept referenced until done
