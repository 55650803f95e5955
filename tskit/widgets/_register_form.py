"""The register form of the callback manager: its fields, their live check, and the confirmation step.

A field's problem shows once that field was touched, never on a form just opened. Registering a
service that already has a listener, or a listener the audit would rate serious, first shows
what will be replaced or what the audit says; leaving the password empty on a replace is a
choice to tick, not an accident.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

import ipywidgets as widgets

from tskit import _validate as check
from tskit._errors import ValidationError
from tskit._models import SERVICE_CATALOGUE
from tskit._secret import Secret
from tskit.ops.preflight import check_register
from tskit.widgets._common import field_layout, field_problem, field_style, row
from tskit.widgets._elements import SecretField

if TYPE_CHECKING:
    import pandas as pd

HIDDEN = "none"
SHOWN = None
#: Which form field each validation error belongs to, so it shows once that field was touched.
FIELD_OF = {"account_name": "account", "service_name": "service", "url": "url", "username": "username"}


def audit_warnings(
    account: str, service: str, url: str, username: str, has_password: bool, any_port: bool
) -> tuple[list[str], list[str]]:
    """What an audit would say of this registration: (serious findings, other warnings).

    Serious (high) ones, such as a private address ThingSpace cannot reach, need a confirmation
    before anything is sent; a port the user chose to allow is not asked about twice.
    """
    found = check_register(account, service, url, username=username, has_password=has_password, allow_any_port=any_port)
    return [f.detail for f in found.serious], [f.detail for f in found.warnings]


class RegisterForm:
    """The register tab's controls (all public, so code and tests can drive them) and their checks.

    Attributes:
        box: The tab's content.
        touched: The fields a person has changed: only their problems are shown.
    """

    def __init__(self) -> None:
        self.touched: set[str] = set()
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
            layout=widgets.Layout(display=HIDDEN),
        )
        self.box = widgets.VBox(
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

    def error(self, account: str) -> ValidationError | None:
        """What is wrong with the form for ``account``, or ``None``."""
        try:
            check.account_name(account)
            check.service_name(self.service.value)
            if not self.url.value.strip():
                raise ValidationError("url", "is empty", "the address ThingSpace will send its messages to")
            check.listener_url(self.url.value, allow_any_port=self.any_port.value)
            check.credential("username", self.username.value)
            check.credential("password", self.password.value)
        except ValidationError as error:
            return error
        return None

    def problem_text(self, account: str) -> str:
        """What is wrong with the form for ``account``, in plain words, or ``""``."""
        error = self.error(account)
        return field_problem(error) if error else ""

    def show_check(self, account: str) -> None:
        """Show the chosen service's description, the problem of a touched field, and the audit's warnings."""
        info = SERVICE_CATALOGUE.get(self.service.value)
        self.service_help.value = f'<span class="tskit-help">{html.escape(info.description)}</span>' if info else ""
        error = self.error(account)
        # a field's problem shows once that field was touched, never on a form just opened
        shown = error is not None and FIELD_OF.get(error.field, error.field) in self.touched
        self.problem.value = (
            f'<div class="tskit-problem" role="alert">{html.escape(field_problem(error))}</div>'
            if shown and error
            else ""
        )
        warnings_: Sequence[str] = ()
        if error is None:
            serious, other = audit_warnings(
                account.strip(),
                self.service.value,
                self.url.value.strip(),
                self.username.value,
                bool(self.password.value),
                self.any_port.value,
            )
            warnings_ = [*serious, *other]
        self.warning.value = "".join(f'<div class="tskit-warning">{html.escape(w)}</div>' for w in warnings_)

    def ask(
        self,
        account: str,
        service: str,
        url: str,
        username: str,
        password: Secret,
        existing: pd.DataFrame,
        warnings_: Sequence[str],
    ) -> str:
        """Show the confirmation step: what will be replaced, and the audit's serious findings.

        Returns:
            What the person confirms, in words ("replace the listener", ...).
        """
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
        self.keep_no_password.layout.display = SHOWN if needs_choice else HIDDEN
        self.replace_box.layout.display = SHOWN
        return "replace the listener" if len(existing) else "register despite the warning"

    def needs_password_choice(self) -> bool:
        """Whether the confirmation waits for "register it without a password" to be ticked."""
        return self.keep_no_password.layout.display != HIDDEN and not self.keep_no_password.value
