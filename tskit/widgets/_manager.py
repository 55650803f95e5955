"""CallbackManager: one panel to pick an account, see its callbacks, register and deregister."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from tskit import _validate as check
from tskit._errors import ValidationError
from tskit._models import SERVICE_CATALOGUE
from tskit.widgets._common import Panel

if TYPE_CHECKING:
    import pandas as pd

    from tskit._facade import ThingSpace

_HIDDEN = "none"
_TABLE_STYLE = (
    "<style>table.tskit-table{border-collapse:collapse;margin:4px 0}"
    "table.tskit-table th,table.tskit-table td{text-align:left;padding:3px 12px;border-bottom:1px solid #ddd}"
    "</style>"
)


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


class CallbackManager(Panel):
    """Pick an account, see its callback listeners, register and deregister them.

    A thin view over ``ts.alist_callbacks``, ``ts.aregister_callback`` and
    ``ts.aderegister_callback``: every sub-widget is public, so code and tests can drive it
    (set ``.value``, call ``.click()``, then ``await manager.pending``).

    Args:
        ts: The connection to use; default ``tskit.connect()`` (the simulator without credentials).
        accounts: Account names to offer; default the simulator's accounts. Free text is allowed.

    Attributes:
        ts: The connection in use.
        frame: The last listing, as a DataFrame (password masked).
    """

    def __init__(self, ts: ThingSpace | None = None, *, accounts: Sequence[str] | None = None) -> None:
        if ts is None:
            import tskit

            ts = tskit.connect()
        self.ts = ts
        self.frame: pd.DataFrame | None = None
        self.badge = widgets.HTML(connection_badge(ts))
        offered = list(accounts) if accounts is not None else (ts.simulator.accounts if ts.simulator else [])
        self.account = widgets.Combobox(
            options=offered, placeholder="0000123456-00001", description="Account", ensure_option=False
        )
        self.refresh = widgets.Button(description="List callbacks", button_style="primary", icon="refresh")
        self.table = widgets.HTML("<i>Choose an account and list its callbacks.</i>")

        labels = [(f"{name} — {info.description}", name) for name, info in SERVICE_CATALOGUE.items()]
        self.service = widgets.Dropdown(options=labels, value="CarrierService", description="Service")
        self.service_help = widgets.HTML()
        self.url = widgets.Text(placeholder="https://listener.example.com/carrier", description="URL")
        self.username = widgets.Text(placeholder="optional, 40 characters at most", description="Username")
        self.password = widgets.Password(placeholder="optional, never shown", description="Password")
        self.register = widgets.Button(description="Register", button_style="success", icon="plus", disabled=True)
        self.problem = widgets.HTML()

        self.registered = widgets.Dropdown(options=[], description="Registered")
        self.deregister = widgets.Button(description="Deregister…", button_style="warning", icon="trash", disabled=True)
        self.confirm_text = widgets.HTML()
        self.confirm = widgets.Button(description="Yes, deregister", button_style="danger")
        self.cancel = widgets.Button(description="Cancel")
        self.confirm_box = widgets.VBox(
            [self.confirm_text, widgets.HBox([self.confirm, self.cancel])], layout=widgets.Layout(display=_HIDDEN)
        )
        self._to_deregister: tuple[str, str] | None = None

        register_box = widgets.VBox(
            [self.service, self.service_help, self.url, self.username, self.password, self.register, self.problem]
        )
        deregister_box = widgets.VBox([self.registered, self.deregister, self.confirm_box])
        self.actions = widgets.Tab(children=[register_box, deregister_box], titles=("Register", "Deregister"))
        super().__init__([self.badge, widgets.HBox([self.account, self.refresh]), self.table, self.actions])

        self.refresh.on_click(lambda _: self.list())
        self.register.on_click(lambda _: self.submit())
        self.deregister.on_click(lambda _: self.ask_to_deregister())
        self.confirm.on_click(lambda _: self.confirm_deregister())
        self.cancel.on_click(lambda _: self.cancel_deregister())
        for field in (self.account, self.service, self.url, self.username, self.password):
            field.observe(self._validate, names="value")
        self.registered.observe(lambda _: self._update_buttons(), names="value")
        self._validate()

    # -- what the buttons do ----------------------------------------------------------------

    def list(self) -> None:
        """List the callbacks of the chosen account into the table."""
        try:
            account = check.account_name(self.account.value)
        except ValidationError as error:
            self.say(f"Please check the account: {error.problem}", "error")
            return
        self.run(f"Listing the callbacks of {account}", lambda: self._list(account))

    async def _list(self, account: str) -> None:
        frame = await self.ts.alist_callbacks(account)
        self._show(account, frame)
        self.say(f"{account}: {len(frame)} callback(s) registered.", "ok")

    def _show(self, account: str, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._listed_account = account
        self.table.value = (
            _TABLE_STYLE + frame.to_html(index=False, escape=True, border=0, classes="tskit-table")
            if len(frame)
            else f"<i>No callbacks are registered for {html.escape(account)}.</i>"
        )
        previous, options = self.registered.value, list(frame["service_name"])
        self.registered.options = options
        # a Dropdown keeps no value when its options change: choose one, so Deregister is usable
        self.registered.value = previous if previous in options else (options[0] if options else None)
        self._update_buttons()

    def submit(self) -> None:
        """Register the form's listener, then list the account again."""
        problem = self._problem()
        if problem:
            self.say(problem, "error")
            return
        account = self.account.value.strip()
        service, url, username = self.service.value, self.url.value.strip(), self.username.value
        password = self.password.value
        self.password.value = ""  # used once, then gone from the widget's state

        async def register() -> None:
            result = await self.ts.aregister_callback(
                account, service, url, username=username or None, password=password or None
            )
            self._show(account, await self.ts.alist_callbacks(account))
            self.say(f"Registered {result.service_name} for {result.account_name}.", "ok")

        self.run(f"Registering {service} for {account}", register)

    def ask_to_deregister(self) -> None:
        """Show the confirmation step, naming account and service; nothing is sent yet."""
        account, service = getattr(self, "_listed_account", ""), self.registered.value
        if not account or not service:
            self.say("List an account's callbacks and choose one to deregister.", "error")
            return
        self._to_deregister = (account, service)
        self.confirm_text.value = (
            f"Deregister <b>{html.escape(service)}</b> of account <b>{html.escape(account)}</b>? "
            "ThingSpace will stop sending its messages."
        )
        self.confirm_box.layout.display = None
        self.say(f"Confirm to deregister {service} of {account}.", "info")

    def cancel_deregister(self) -> None:
        """Close the confirmation step without sending anything."""
        self._to_deregister = None
        self.confirm_box.layout.display = _HIDDEN
        self.say("Nothing was changed.", "info")

    def confirm_deregister(self) -> None:
        """Deregister what the confirmation step named, then list the account again."""
        if self._to_deregister is None:
            return
        account, service = self._to_deregister
        self._to_deregister = None
        self.confirm_box.layout.display = _HIDDEN

        async def deregister() -> None:
            result = await self.ts.aderegister_callback(account, service, allow_unknown_service=True)
            self._show(account, await self.ts.alist_callbacks(account))
            self.say(f"Deregistered {result.service_name} for {result.account_name}.", "ok")

        self.run(f"Deregistering {service} of {account}", deregister)

    def use(self, ts: ThingSpace) -> None:
        """Switch to another connection (e.g. from a :class:`LoginPanel`)."""
        self.ts = ts
        self.badge.value = connection_badge(ts)
        self.account.options = ts.simulator.accounts if ts.simulator else []
        self.table.value = "<i>Choose an account and list its callbacks.</i>"
        self.registered.options = []
        self.say("Connection changed.", "info")

    # -- live validation ----------------------------------------------------------------------

    def _problem(self) -> str:
        """What is wrong with the register form, in plain words, or ``""``."""
        try:
            check.account_name(self.account.value)
            check.service_name(self.service.value)
            if not self.url.value.strip():
                return "Enter the listener URL."
            check.listener_url(self.url.value)
            check.credential("username", self.username.value)
            check.credential("password", self.password.value)
        except ValidationError as error:
            return f"{error.field}: {error.problem}" + (f" ({error.allowed})" if error.allowed else "")
        return ""

    def _validate(self, change: Any = None) -> None:
        info = SERVICE_CATALOGUE.get(self.service.value)
        self.service_help.value = f"<small>{html.escape(info.description)}</small>" if info else ""
        problem = self._problem() if self.account.value or self.url.value else ""
        self.problem.value = f'<span style="color:#c62828">{html.escape(problem)}</span>' if problem else ""
        self._update_buttons()

    def _update_buttons(self) -> None:
        busy = self.busy
        self.register.disabled = busy or bool(self._problem())
        self.deregister.disabled = busy or not self.registered.value
        self.refresh.disabled = busy
        self.confirm.disabled = busy
