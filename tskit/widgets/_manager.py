"""CallbackManager: one panel to pick an account, see its callbacks, register and deregister.

The register tab's fields and their checks are `tskit.widgets._register_form`; this module holds the
listing, the deregister tab and what each button does.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

import ipywidgets as widgets

import tskit
from tskit import _validate as check
from tskit._errors import ValidationError
from tskit._secret import Secret
from tskit.widgets._common import (
    Panel,
    close_later,
    connection_badge,
    data_table,
    export_name,
    field_layout,
    field_problem,
    field_style,
    on_enter,
    row,
    show_frame,
)
from tskit.widgets._register_form import FIELD_OF, HIDDEN, SHOWN, RegisterForm, audit_warnings

if TYPE_CHECKING:
    import pandas as pd

    from tskit._facade import ThingSpace


class CallbackManager(Panel):
    """Pick an account, see its callback listeners, register and deregister them.

    A thin view over ``ts.alist_callbacks``, ``ts.aregister_callback`` and
    ``ts.aderegister_callback``: every sub-widget is public, so code and tests can drive it
    (set ``.value``, call ``.click()``, then ``await manager.pending``).

    Registering a service that already has a listener first shows what will be replaced and asks
    to confirm; leaving the password empty then is a choice to tick, not an accident.

    Args:
        ts: The connection to use; default ``tskit.connect()`` (the simulator without credentials).
        accounts: Account names to offer; default the simulator's accounts. Free text is allowed.

    Attributes:
        ts: The connection in use.
        frame: The last listing, as a DataFrame (password masked), or ``None`` when none is shown.
        table: The listing as an interactive table (sort, search, pages, CSV and Excel export).
    """

    def __init__(self, ts: ThingSpace | None = None, *, accounts: Sequence[str] | None = None) -> None:
        self._owns_ts = ts is None  # a connection it made itself, it also closes
        if ts is None:
            ts = tskit.connect()
        self.ts = ts
        self.frame: pd.DataFrame | None = None
        self._listed_account = ""
        # bumped whenever the account or connection changes: results of older operations are dropped
        self._generation = 0
        self.badge = widgets.HTML(connection_badge(ts))
        offered = list(accounts) if accounts is not None else (ts.simulator.accounts if ts.simulator else [])
        self.account = widgets.Combobox(
            options=offered,
            placeholder="0000123456-00001",
            description="Account",
            ensure_option=False,
            layout=field_layout(max_width="28em"),
            style=field_style(),
        )
        self.refresh = widgets.Button(description="List callbacks", button_style="primary", icon="refresh")
        self.listing = widgets.HTML("<i>Choose an account and list its callbacks.</i>")
        self.table = data_table(shown=False)

        self.form = form = RegisterForm()
        # the form's controls are the manager's too: code and tests drive them as every sub-widget
        self.service = form.service
        self.service_help = form.service_help
        self.url = form.url
        self.any_port = form.any_port
        self.username = form.username
        self.password = form.password
        self.register = form.register
        self.problem = form.problem
        self.warning = form.warning
        self.replace_text = form.replace_text
        self.keep_no_password = form.keep_no_password
        self.replace_confirm = form.replace_confirm
        self.replace_cancel = form.replace_cancel
        self.replace_box = form.replace_box
        self._to_register: tuple[str, str, str, str, Secret, bool] | None = None

        self.registered = widgets.Dropdown(
            options=[], description="Registered", layout=field_layout(max_width="28em"), style=field_style()
        )
        self.deregister = widgets.Button(description="Deregister…", button_style="warning", icon="trash", disabled=True)
        self.confirm_text = widgets.HTML()
        self.confirm = widgets.Button(description="Yes, deregister", button_style="danger")
        self.cancel = widgets.Button(description="Cancel")
        self.confirm_box = widgets.VBox(
            [self.confirm_text, row([self.confirm, self.cancel])], layout=widgets.Layout(display=HIDDEN)
        )
        self._to_deregister: tuple[str, str] | None = None

        deregister_box = widgets.VBox(
            [self.registered, self.deregister, self.confirm_box], layout=widgets.Layout(width="100%", grid_gap="4px")
        )
        self.actions = widgets.Tab(
            children=[form.box, deregister_box], titles=("Register", "Deregister"), layout={"width": "auto"}
        )
        super().__init__([self.badge, row([self.account, self.refresh]), self.listing, self.table, self.actions])

        self.refresh.on_click(lambda _: self.list())
        # Enter goes through the same checks as the button it stands for (busy, pending confirmation)
        on_enter(self.account, self.list)
        for field in (self.url, self.username, self.password):
            on_enter(field, self.submit)
        self.register.on_click(lambda _: self.submit())
        self.replace_confirm.on_click(lambda _: self.confirm_register())
        self.replace_cancel.on_click(lambda _: self.cancel_register())
        self.keep_no_password.observe(lambda _: self._update_buttons(), names="value")
        self.deregister.on_click(lambda _: self.ask_to_deregister())
        self.confirm.on_click(lambda _: self.confirm_deregister())
        self.cancel.on_click(lambda _: self.cancel_deregister())
        for name in ("account", "service", "url", "username", "password", "any_port"):
            getattr(self, name).observe(lambda change, name=name: self._touch(name), names="value")
        self.registered.observe(lambda _: self._update_buttons(), names="value")
        self._validate()

    # -- what the buttons do ----------------------------------------------------------------

    def _refused_while_busy(self, what: str) -> bool:
        """Whether ``what`` must wait: another operation runs (its button is disabled too)."""
        if self.busy:
            self.note(f"ignored {what}: busy with another operation")
            return True
        return False

    def _invalidate(self, why: str = "") -> None:
        """Forget every confirmation shown and every result still on its way.

        Called when the account listed or the connection changes, so a "Yes" or a late answer
        never acts on, or shows, what the person no longer sees.
        """
        self._generation += 1
        open_before = self._to_register is not None or self._to_deregister is not None
        self._to_register = self._to_deregister = None
        self.replace_box.layout.display = self.confirm_box.layout.display = HIDDEN
        if open_before and why:
            self.note(f"confirmation closed, nothing sent: {why}")
        self._update_buttons()

    def _current(self, generation: int) -> bool:
        """Whether an operation started at ``generation`` still belongs to what is shown."""
        if generation == self._generation:
            return True
        self.note("a result arrived after the account or connection changed: not shown")
        return False

    def list(self) -> None:
        """List the callbacks of the chosen account into the table."""
        if self._refused_while_busy("listing"):
            return
        try:
            account = check.account_name(self.account.value)
        except ValidationError as error:
            self.form.touched.add("account")
            self._validate()
            # what was listed before belongs to another account: the summary must not name it still
            self._invalidate("the account is not valid")
            self._clear("<i>No account listed: check the account name above.</i>")
            self.say(f"Please check {field_problem(error)}", "error")
            return
        self._invalidate(f"listing {account}")
        self._clear(f"Listing the callbacks of {html.escape(account)}…")  # no stale rows, whatever happens
        ts, generation = self.ts, self._generation
        self.run(f"Listing the callbacks of {account}", lambda: self._list(ts, generation, account))

    async def _list(self, ts: ThingSpace, generation: int, account: str) -> None:
        try:
            frame = await ts.alist_callbacks(account)
        except Exception:
            if not self._current(generation):
                return
            self._clear(f"<i>Could not list the callbacks of {html.escape(account)}: see the line below.</i>")
            raise
        if not self._current(generation):
            return
        self._show(account, frame)
        self.say(f"{account}: {len(frame)} callback(s) registered.", "ok")

    def _clear(self, message: str) -> None:
        """Show no listing: no rows of another account, nothing to deregister."""
        self.frame = None
        self._listed_account = ""
        self.listing.value = message
        self.table.layout.display = HIDDEN
        self.registered.options = []
        self.registered.value = None
        self._update_buttons()

    def _show(self, account: str, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._listed_account = account
        if len(frame):
            self.listing.value = f"<b>{html.escape(account)}</b>: {len(frame)} callback(s)"
            show_frame(self.table, frame, **export_name(f"callbacks-{account}"))
            self.table.layout.display = SHOWN
        else:
            self.listing.value = f"<i>No callbacks are registered for {html.escape(account)}.</i>"
            self.table.layout.display = HIDDEN
        previous, options = self.registered.value, [str(s) for s in frame["service_name"]]
        self.registered.options = options
        # a Dropdown keeps no value when its options change: choose one, so Deregister is usable
        self.registered.value = previous if previous in options else (options[0] if options else None)
        self._update_buttons()

    def submit(self) -> None:
        """Register the form's listener, after a look at what is registered now.

        When the service already has a listener, or the audit would rate the new one serious
        (a host ThingSpace cannot reach, credentials in clear text), nothing is sent until
        :meth:`confirm_register`; the confirmation shows what will be replaced.
        """
        if self._refused_while_busy("register"):
            return  # before the password is read: it stays in its field for the next try
        if self._to_register is not None:
            self.say("Confirm or cancel the registration shown below first.", "error")
            return
        self.form.touched.update(FIELD_OF.values())
        problem = self._problem()
        if problem:
            self._validate()
            self.say(problem, "error")
            return
        account = self.account.value.strip()
        service, url, username = self.service.value, self.url.value.strip(), self.username.value
        password = Secret(self.password.value)
        self.password.value = ""  # read once; kept out of the widget's state from now on
        any_port = self.any_port.value
        if account != self._listed_account:
            self._invalidate(f"registering for {account}")
        ts, generation = self.ts, self._generation

        async def look_then_register() -> None:
            current = await ts.alist_callbacks(account)  # when unsure, look
            if not self._current(generation):
                return  # the connection or account changed meanwhile: send nothing
            self._show(account, current)
            existing = current[current["service_name"] == service]
            warnings_, _ = audit_warnings(account, service, url, username, bool(password), any_port)
            if len(existing) or warnings_:
                self._ask_to_register(account, service, url, username, password, any_port, existing, warnings_)
                return
            self.note(f"Registering {service} for {account}")
            await self._register(ts, generation, account, service, url, username, password, any_port)

        self.run(f"Checking what {account} has registered for {service}", look_then_register)

    def _ask_to_register(
        self,
        account: str,
        service: str,
        url: str,
        username: str,
        password: Secret,
        any_port: bool,
        existing: pd.DataFrame,
        warnings_: Sequence[str],
    ) -> None:
        self._to_register = (account, service, url, username, password, any_port)
        what = self.form.ask(account, service, url, username, password, existing, warnings_)
        self.say(f"Nothing sent yet: confirm to {what}, or cancel.", "info")
        self._update_buttons()

    def confirm_register(self) -> None:
        """Send the registration the confirmation step showed."""
        if self._to_register is None or self.form.needs_password_choice():
            return
        if self._refused_while_busy("register"):
            return
        account, service, url, username, password, any_port = self._to_register
        self._to_register = None
        self.replace_box.layout.display = HIDDEN
        ts, generation = self.ts, self._generation
        self.run(
            f"Registering {service} for {account}",
            lambda: self._register(ts, generation, account, service, url, username, password, any_port),
        )

    def cancel_register(self) -> None:
        """Close the confirmation step without sending anything (the password is forgotten)."""
        self._to_register = None
        self.replace_box.layout.display = HIDDEN
        self.say("Nothing was changed; type the password again to register.", "info")
        self._update_buttons()

    async def _register(
        self,
        ts: ThingSpace,
        generation: int,
        account: str,
        service: str,
        url: str,
        username: str,
        password: Secret,
        any_port: bool,
    ) -> None:
        result = await ts.aregister_callback(
            account,
            service,
            url,
            username=username or None,
            password=password.reveal() if password else None,
            allow_any_port=any_port,
        )
        self.note(f"registered {result.service_name} for {result.account_name}")
        listed = await ts.alist_callbacks(account)
        if self._current(generation):
            self._show(account, listed)
            self.say(f"Registered {result.service_name} for {result.account_name}.", "ok")

    def ask_to_deregister(self) -> None:
        """Show the confirmation step, naming account and service; nothing is sent yet."""
        if self._refused_while_busy("deregister"):
            return
        account, service = self._listed_account, self.registered.value
        if not account or not service:
            self.say("List an account's callbacks and choose one to deregister.", "error")
            return
        self._to_deregister = (account, service)
        self.confirm_text.value = (
            f"Deregister <b>{html.escape(service)}</b> of account <b>{html.escape(account)}</b>? "
            "ThingSpace will stop sending its messages."
        )
        self.confirm_box.layout.display = SHOWN
        self.say(f"Confirm to deregister {service} of {account}.", "info")

    def cancel_deregister(self) -> None:
        """Close the confirmation step without sending anything."""
        self._to_deregister = None
        self.confirm_box.layout.display = HIDDEN
        self.say("Nothing was changed.", "info")

    def confirm_deregister(self) -> None:
        """Deregister what the confirmation step named, then list the account again."""
        if self._to_deregister is None or self._refused_while_busy("deregister"):
            return
        account, service = self._to_deregister
        self._to_deregister = None
        self.confirm_box.layout.display = HIDDEN
        ts, generation = self.ts, self._generation

        async def deregister() -> None:
            result = await ts.aderegister_callback(account, service, allow_unknown_service=True)
            self.note(f"deregistered {result.service_name} for {result.account_name}")
            listed = await ts.alist_callbacks(account)
            if self._current(generation):
                self._show(account, listed)
                self.say(f"Deregistered {result.service_name} for {result.account_name}.", "ok")

        self.run(f"Deregistering {service} of {account}", deregister)

    def use(self, ts: ThingSpace) -> None:
        """Switch to another connection (e.g. from a :class:`LoginPanel`).

        Confirmations shown are closed and answers still on their way are dropped: nothing
        meant for the previous connection acts on, or shows under, the new one. An operation
        already sent finishes on the connection it started on.
        """
        self._invalidate("the connection changed")
        if self._owns_ts and ts is not self.ts:
            close_later(self.ts, after=self.pending)  # an operation still on it finishes first
        self._owns_ts = False
        self.ts = ts
        self.badge.value = connection_badge(ts)
        self.account.options = ts.simulator.accounts if ts.simulator else []
        self._clear("<i>Choose an account and list its callbacks.</i>")
        self.say("Connection changed.", "info")

    # -- live validation ----------------------------------------------------------------------

    def _touch(self, name: str) -> None:
        self.form.touched.add(name)
        if name == "account":
            pending = self._to_register[0] if self._to_register else (self._to_deregister or ("",))[0]
            if pending and self.account.value.strip() != pending:
                self._invalidate("the account changed")
                self.say("The account changed: nothing was sent.", "info")
        self._validate()

    def _problem(self) -> str:
        """What is wrong with the register form, in plain words, or ``""``."""
        return self.form.problem_text(self.account.value)

    def _validate(self) -> None:
        self.form.show_check(self.account.value)
        self._update_buttons()

    def _update_buttons(self) -> None:
        busy = self.busy
        self.register.disabled = busy or bool(self._problem()) or self._to_register is not None
        self.replace_confirm.disabled = busy or self.form.needs_password_choice()
        self.deregister.disabled = busy or not self._listed_account or not self.registered.value
        self.refresh.disabled = busy
        self.confirm.disabled = busy
