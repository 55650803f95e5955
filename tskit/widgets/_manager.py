"""CallbackManager: one panel to pick an account, see its callbacks, register and deregister."""

from __future__ import annotations

import html
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

import tskit
from tskit import _validate as check
from tskit._errors import ValidationError
from tskit._models import SERVICE_CATALOGUE
from tskit._secret import Secret
from tskit.ops.preflight import check_register
from tskit.widgets._common import (
    Panel,
    close_later,
    data_table,
    export_name,
    field_layout,
    field_problem,
    field_style,
    row,
    show_frame,
)
from tskit.widgets._elements import SecretField

if TYPE_CHECKING:
    import pandas as pd

    from tskit._facade import ThingSpace

_HIDDEN = "none"
_SHOWN = None
# which form field each validation error belongs to, so it shows once that field was touched
_FIELD_OF = {"account_name": "account", "service_name": "service", "url": "url", "username": "username"}


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


def audit_warnings(
    account: str, service: str, url: str, username: str, has_password: bool, any_port: bool
) -> tuple[list[str], list[str]]:
    """What an audit would say of this registration: (serious findings, other warnings).

    Serious (high) ones, such as a private address ThingSpace cannot reach, need a confirmation
    before anything is sent; a port the user chose to allow is not asked about twice.
    """
    found = check_register(account, service, url, username=username, has_password=has_password, allow_any_port=any_port)
    return [f.detail for f in found.serious], [f.detail for f in found.warnings]


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
        self._touched: set[str] = set()
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

        # names only, so no label is cut; the chosen service's description shows in full below
        self.service = widgets.Dropdown(
            options=list(SERVICE_CATALOGUE),
            value="CarrierService",
            description="Service",
            layout=field_layout(max_width="28em"),
            style=field_style(),
        )
        self.service_help = widgets.HTML()
        self.url = widgets.Text(
            placeholder="https://listener.example.com/carrier",
            description="URL",
            layout=field_layout(),
            style=field_style(),
        )
        self.any_port = widgets.Checkbox(
            value=False,
            description="Allow any port (a proxy or simulator that ThingSpace does not deliver to)",
            indent=False,
            layout=widgets.Layout(width="auto", margin=f"0 0 0 {field_style()['description_width']}"),
        )
        self.username = widgets.Text(
            placeholder="optional, 40 characters at most",
            description="Username",
            layout=field_layout(max_width="28em"),
            style=field_style(),
        )
        self.password = SecretField(
            placeholder="optional, never shown",
            description="Password",
            layout=field_layout(max_width="28em"),
            style=field_style(),
        )
        self.register = widgets.Button(description="Register", button_style="success", icon="plus", disabled=True)
        self.problem = widgets.HTML()
        self.warning = widgets.HTML()

        # confirming a register that replaces a listener, or that the audit would rate serious
        self.replace_text = widgets.HTML()
        self.keep_no_password = widgets.Checkbox(
            value=False, description="Yes, register it without a password", indent=False, layout={"width": "auto"}
        )
        self.replace_confirm = widgets.Button(description="Yes, register", button_style="danger")
        self.replace_cancel = widgets.Button(description="Cancel")
        self.replace_box = widgets.VBox(
            [self.replace_text, self.keep_no_password, row([self.replace_confirm, self.replace_cancel])],
            layout=widgets.Layout(display=_HIDDEN),
        )
        self._to_register: tuple[str, str, str, str, Secret, bool] | None = None

        self.registered = widgets.Dropdown(
            options=[], description="Registered", layout=field_layout(max_width="28em"), style=field_style()
        )
        self.deregister = widgets.Button(description="Deregister…", button_style="warning", icon="trash", disabled=True)
        self.confirm_text = widgets.HTML()
        self.confirm = widgets.Button(description="Yes, deregister", button_style="danger")
        self.cancel = widgets.Button(description="Cancel")
        self.confirm_box = widgets.VBox(
            [self.confirm_text, row([self.confirm, self.cancel])], layout=widgets.Layout(display=_HIDDEN)
        )
        self._to_deregister: tuple[str, str] | None = None

        register_box = widgets.VBox(
            [
                self.service,
                self.service_help,
                self.url,
                self.any_port,
                self.username,
                self.password,
                self.problem,
                self.warning,
                self.register,
                self.replace_box,
            ],
            layout=widgets.Layout(width="100%", grid_gap="4px"),
        )
        deregister_box = widgets.VBox(
            [self.registered, self.deregister, self.confirm_box], layout=widgets.Layout(width="100%", grid_gap="4px")
        )
        self.actions = widgets.Tab(
            children=[register_box, deregister_box], titles=("Register", "Deregister"), layout={"width": "auto"}
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
        self.replace_box.layout.display = self.confirm_box.layout.display = _HIDDEN
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
            self._touched.add("account")
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
        self.table.layout.display = _HIDDEN
        self.registered.options = []
        self.registered.value = None
        self._update_buttons()

    def _show(self, account: str, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._listed_account = account
        if len(frame):
            self.listing.value = f"<b>{html.escape(account)}</b>: {len(frame)} callback(s)"
            show_frame(self.table, frame, **export_name(f"callbacks-{account}"))
            self.table.layout.display = _SHOWN
        else:
            self.listing.value = f"<i>No callbacks are registered for {html.escape(account)}.</i>"
            self.table.layout.display = _HIDDEN
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
        self._touched.update(_FIELD_OF.values())
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
        parts = []
        if len(existing):
            old = existing.iloc[0]
            parts.append(
                f"<b>{html.escape(service)}</b> of account <b>{html.escape(account)}</b> already sends to "
                f"<code>{html.escape(str(old['url']))}</code> (username {html.escape(str(old['username'])) or 'none'}, "
                f"password {'set' if old['password'] else 'none'}). Registering replaces it with "
                f"<code>{html.escape(url)}</code> (username {html.escape(username) or 'none'}, "
                f"password {'set' if password else '<b>none</b>'})."
            )
        parts += [f'<div class="tskit-warning">{html.escape(w)}</div>' for w in warnings_]
        self.replace_text.value = "<br>".join(parts)
        # an empty password on a replace is a choice to make, not a field forgotten
        needs_choice = bool(len(existing)) and not password
        self.keep_no_password.value = False
        self.keep_no_password.layout.display = _SHOWN if needs_choice else _HIDDEN
        self.replace_box.layout.display = _SHOWN
        what = "replace the listener" if len(existing) else "register despite the warning"
        self.say(f"Nothing sent yet: confirm to {what}, or cancel.", "info")
        self._update_buttons()

    def confirm_register(self) -> None:
        """Send the registration the confirmation step showed."""
        if self._to_register is None or self._needs_password_choice():
            return
        if self._refused_while_busy("register"):
            return
        account, service, url, username, password, any_port = self._to_register
        self._to_register = None
        self.replace_box.layout.display = _HIDDEN
        ts, generation = self.ts, self._generation
        self.run(
            f"Registering {service} for {account}",
            lambda: self._register(ts, generation, account, service, url, username, password, any_port),
        )

    def cancel_register(self) -> None:
        """Close the confirmation step without sending anything (the password is forgotten)."""
        self._to_register = None
        self.replace_box.layout.display = _HIDDEN
        self.say("Nothing was changed; type the password again to register.", "info")
        self._update_buttons()

    def _needs_password_choice(self) -> bool:
        return self.keep_no_password.layout.display != _HIDDEN and not self.keep_no_password.value

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
        self.confirm_box.layout.display = _SHOWN
        self.say(f"Confirm to deregister {service} of {account}.", "info")

    def cancel_deregister(self) -> None:
        """Close the confirmation step without sending anything."""
        self._to_deregister = None
        self.confirm_box.layout.display = _HIDDEN
        self.say("Nothing was changed.", "info")

    def confirm_deregister(self) -> None:
        """Deregister what the confirmation step named, then list the account again."""
        if self._to_deregister is None or self._refused_while_busy("deregister"):
            return
        account, service = self._to_deregister
        self._to_deregister = None
        self.confirm_box.layout.display = _HIDDEN
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
        self._touched.add(name)
        if name == "account":
            pending = self._to_register[0] if self._to_register else (self._to_deregister or ("",))[0]
            if pending and self.account.value.strip() != pending:
                self._invalidate("the account changed")
                self.say("The account changed: nothing was sent.", "info")
        self._validate()

    def _error(self) -> ValidationError | None:
        """What is wrong with the register form, or ``None``."""
        try:
            check.account_name(self.account.value)
            check.service_name(self.service.value)
            if not self.url.value.strip():
                raise ValidationError("url", "is empty", "the address ThingSpace will send its messages to")
            check.listener_url(self.url.value, allow_any_port=self.any_port.value)
            check.credential("username", self.username.value)
            check.credential("password", self.password.value)
        except ValidationError as error:
            return error
        return None

    def _problem(self) -> str:
        """What is wrong with the register form, in plain words, or ``""``."""
        error = self._error()
        return field_problem(error) if error else ""

    def _validate(self, change: Any = None) -> None:
        info = SERVICE_CATALOGUE.get(self.service.value)
        self.service_help.value = f'<span class="tskit-help">{html.escape(info.description)}</span>' if info else ""
        error = self._error()
        # a field's problem shows once that field was touched, never on a form just opened
        shown = error is not None and _FIELD_OF.get(error.field, error.field) in self._touched
        self.problem.value = (
            f'<div class="tskit-problem" role="alert">{html.escape(field_problem(error))}</div>'
            if shown and error
            else ""
        )
        warnings_: Sequence[str] = ()
        if error is None:
            serious, other = audit_warnings(
                self.account.value.strip(),
                self.service.value,
                self.url.value.strip(),
                self.username.value,
                bool(self.password.value),
                self.any_port.value,
            )
            warnings_ = [*serious, *other]
        self.warning.value = "".join(f'<div class="tskit-warning">{html.escape(w)}</div>' for w in warnings_)
        self._update_buttons()

    def _update_buttons(self) -> None:
        busy = self.busy
        self.register.disabled = busy or bool(self._problem()) or self._to_register is not None
        self.replace_confirm.disabled = busy or self._needs_password_choice()
        self.deregister.disabled = busy or not self._listed_account or not self.registered.value
        self.refresh.disabled = busy
        self.confirm.disabled = busy
