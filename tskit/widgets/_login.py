"""LoginPanel: real ThingSpace credentials typed into the notebook, used once, then cleared."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import ipywidgets as widgets

import tskit
from tskit._config import DEFAULT_BASE_URL
from tskit.widgets._common import Panel, close_later, field_layout, field_style, on_enter, plain_words
from tskit.widgets._elements import SecretField

if TYPE_CHECKING:
    from tskit._facade import ThingSpace


class LoginPanel(Panel):
    """Connect to a real ThingSpace with credentials typed in the notebook.

    The secret and the password are read once, when *Connect* is clicked, then cleared from the
    widgets, so they do not stay in widget state or reach a saved notebook. Nothing is sent to
    ThingSpace until the connection is first used; a refused login is never retried.

    Args:
        on_connect: Called with the new connection, e.g. ``manager.use``.

    Attributes:
        connection: The last connection made, or ``None``.
    """

    def __init__(self, on_connect: Callable[[ThingSpace], None] | None = None) -> None:
        sized = {"layout": field_layout(max_width="34em"), "style": field_style()}
        self.client_id = widgets.Text(description="App key", placeholder="THINGSPACE_CLIENT_ID", **sized)
        self.client_secret = SecretField(description="App secret", placeholder="never shown or kept", **sized)
        self.username = widgets.Text(description="UWS user", placeholder="THINGSPACE_USERNAME", **sized)
        self.password = SecretField(description="UWS password", placeholder="never shown or kept", **sized)
        self.base_url = widgets.Text(description="Base URL", value=DEFAULT_BASE_URL, **sized)
        self.connect = widgets.Button(description="Connect", button_style="primary", icon="sign-in", disabled=True)
        self.connection: ThingSpace | None = None
        self._on_connect = on_connect
        super().__init__(
            [self.client_id, self.client_secret, self.username, self.password, self.base_url, self.connect],
            details_title="Login details",
        )
        self.connect.on_click(lambda _: self.submit())
        for field in (self.client_id, self.client_secret, self.username, self.password, self.base_url):
            on_enter(field, self.submit)
            field.observe(lambda _: self._update_buttons(), names="value")

    def _empty(self) -> list[str]:
        """The labels of the fields still empty; Connect waits for all of them."""
        fields = (self.client_id, self.client_secret, self.username, self.password, self.base_url)
        return [str(field.description) for field in fields if not field.value.strip()]

    def submit(self) -> None:
        """Make the connection from the fields, then clear the secret fields whatever happens.

        The previous connection, if any, is closed once the new one is made.
        """
        if self.busy:
            return
        empty = self._empty()
        if empty:
            self.say(f"Please fill in: {', '.join(empty)}.", "error")
            return
        secret, password = self.client_secret.value, self.password.value
        self.client_secret.value = self.password.value = ""
        try:
            connection = tskit.connect(
                client_id=self.client_id.value,
                client_secret=secret,
                username=self.username.value,
                password=password,
                base_url=self.base_url.value,
                simulator=False,
            )
        except tskit.ThingSpaceError as error:
            self.say(plain_words(error), "error")
            self.note(f"not connected: {error}")
            return
        previous, self.connection = self.connection, connection
        if previous is not None:
            close_later(previous)
        self.say(
            f"Connected to {connection.client.base_url} as {connection.client.auth.username}. "
            "The login happens on first use.",
            "ok",
        )
        self.note(f"connection made: {connection!r}")
        if self._on_connect is not None:
            self._on_connect(connection)

    def _update_buttons(self) -> None:
        self.connect.disabled = self.busy or bool(self._empty())
