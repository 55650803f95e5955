"""The widgets driven as a person would, without a browser: set values, click, await, look."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

import tskit
from tests.conftest import aeventually
from tskit.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, Simulator

widgets = pytest.importorskip("ipywidgets")
from tskit.widgets import AuditDashboard, CallbackManager, LoginPanel  # noqa: E402

pytestmark = pytest.mark.anyio
EMPTY = "0000123456-00003"


@pytest.fixture
def manager(ts: tskit.ThingSpace) -> CallbackManager:
    return CallbackManager(ts)


async def click(panel: Any, button: Any) -> None:
    button.click()
    if panel.pending is not None:
        await panel.pending


def shown(table: Any) -> str:
    """The rows an interactive table shows, as CSV ("" while it is hidden)."""
    if table.layout.display == "none" or table.df is None:
        return ""
    return str(table.df.to_csv(index=False))


def press_enter(field: Any) -> None:
    """What the browser sends when Enter is pressed in a text field."""
    field._handle_custom_msg({"event": "submit"}, [])


def all_state(widget: Any) -> str:
    """Every trait value of a widget and its children, as the front end would receive them."""
    parts = [repr(widget.get_state())]
    for child in getattr(widget, "children", ()):
        parts.append(all_state(child))
    return "\n".join(parts)


async def test_list_shows_the_table_with_passwords_masked(manager: CallbackManager, sim: Simulator) -> None:
    manager.account.value = "0000123456-00001"
    manager.refresh.click()
    assert manager.refresh.disabled and manager.busy  # at once, before the answer
    assert manager.pending is not None
    await manager.pending
    assert not manager.refresh.disabled
    assert "CarrierService" in shown(manager.table) and "DeviceUsage" in shown(manager.table)
    assert "********" in shown(manager.table) and "demo-pass-1" not in shown(manager.table)
    assert "2 callback(s)" in manager.status.value
    assert list(manager.registered.options) == ["CarrierService", "DeviceUsage"]
    assert manager.frame is not None and len(manager.frame) == 2
    assert sim.count("list") == 1


async def test_register_valid_input(manager: CallbackManager, sim: Simulator) -> None:
    manager.account.value = EMPTY
    manager.service.value = "NiddService"
    manager.url.value = "https://listener.example.com/nidd"
    manager.username.value = "tsuser"
    manager.password.value = "s3cret-widget"
    assert not manager.register.disabled and manager.problem.value == ""
    await click(manager, manager.register)
    # example.com is a documentation name ThingSpace cannot reach: the audit's warning is confirmed first
    assert sim.registrations(EMPTY) == [] and "reserved for documentation" in manager.replace_text.value
    await click(manager, manager.replace_confirm)
    assert sim.registrations(EMPTY) == [
        {
            "serviceName": "NiddService",
            "url": "https://listener.example.com/nidd",
            "username": "tsuser",
            "password": "s3cret-widget",
        }
    ]
    assert manager.password.value == ""  # used once, gone from the widget state
    assert "s3cret-widget" not in all_state(manager)
    assert "NiddService" in shown(manager.table)  # the table refreshed after the change
    assert manager.registered.value == "NiddService" and not manager.deregister.disabled
    assert "Registered NiddService for 0000123456-00003" in manager.status.value


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("url", "https://listener.example.com:8443/x", "port 8443"),
        ("url", "ftp://listener.example.com/x", "scheme"),
        ("username", "u" * 41, "Username: is 41 characters long"),
        ("account", "../etc", "is not an account name"),
    ],
)
async def test_register_invalid_input_is_explained_live_and_sends_nothing(
    manager: CallbackManager, sim: Simulator, field: str, value: str, words: str
) -> None:
    manager.account.value, manager.url.value = EMPTY, "https://listener.example.com/ok"
    assert not manager.register.disabled
    getattr(manager, field).value = value
    assert manager.register.disabled
    assert words in manager.problem.value
    manager.submit()  # even if called from code
    assert words in manager.status.value
    assert list(sim.requests) == []


async def test_deregister_needs_confirmation(manager: CallbackManager, sim: Simulator) -> None:
    manager.account.value = "0000123456-00001"
    await click(manager, manager.refresh)
    manager.registered.value = "DeviceUsage"
    manager.deregister.click()
    assert manager.confirm_box.layout.display is None  # shown
    assert (
        "<b>DeviceUsage</b>" in manager.confirm_text.value and "<b>0000123456-00001</b>" in manager.confirm_text.value
    )
    assert sim.count("deregister") == 0  # nothing sent before confirming
    await click(manager, manager.confirm)
    assert [r["serviceName"] for r in sim.registrations("0000123456-00001")] == ["CarrierService"]
    assert "DeviceUsage" not in shown(manager.table)
    assert manager.confirm_box.layout.display == "none"
    assert "Deregistered DeviceUsage" in manager.status.value


async def test_deregister_cancelled_sends_nothing(manager: CallbackManager, sim: Simulator) -> None:
    manager.account.value = "0000123456-00001"
    await click(manager, manager.refresh)
    manager.deregister.click()
    manager.cancel.click()
    assert manager.confirm_box.layout.display == "none"
    manager.confirm.click()  # a stale confirm after cancelling does nothing either
    assert sim.count("deregister") == 0 and len(sim.registrations("0000123456-00001")) == 2
    assert "Nothing was changed" in manager.status.value


async def test_thingspace_errors_in_plain_words(manager: CallbackManager, sim: Simulator) -> None:
    manager.account.value = "9999999999-00001"
    await click(manager, manager.refresh)
    assert "ThingSpace said no (400)" in manager.status.value
    assert "UnifiedWebService.REQUEST_FAILED.AccountNotFound" in manager.status.value
    assert "GET /api/m2m/v1/callbacks/9999999999-00001" in manager.details.value  # the full story
    sim.config.reregister = "error"
    manager.account.value, manager.url.value = "0000123456-00001", "https://listener.example.com/again"
    manager.password.value = "again-pw"
    await click(manager, manager.register)
    await click(manager, manager.replace_confirm)  # it replaces a listener: confirmed
    assert "CallbackAlreadyRegistered" in manager.status.value


async def test_two_quick_clicks_send_one_request(manager: CallbackManager, sim: Simulator) -> None:
    sim.faults.latency = 0.05
    manager.account.value = "0000123456-00001"
    manager.refresh.click()
    first = manager.pending
    manager.refresh.click()
    assert manager.pending is first and first is not None
    assert not first.done()  # the click returned at once: the kernel is not blocked
    await first
    assert sim.count("list") == 1
    assert "ignored" in manager.details.value


async def test_simulator_badge(manager: CallbackManager) -> None:
    assert "SIMULATOR" in manager.badge.value
    assert list(manager.account.options) == ["0000123456-00001", "0000123456-00002", EMPTY]


async def test_login_panel_clears_secrets_and_switches_the_manager(sim: Simulator, manager: CallbackManager) -> None:
    with sim.serve() as server:
        panel = LoginPanel(on_connect=manager.use)
        panel.client_id.value, panel.client_secret.value = DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
        panel.username.value, panel.password.value = DEMO_USERNAME, "wrong-password-1"
        panel.base_url.value = server.base_url
        panel.connect.click()
        assert panel.client_secret.value == "" and panel.password.value == ""
        state = all_state(panel) + all_state(manager)
        assert DEMO_CLIENT_SECRET not in state and "wrong-password-1" not in state
        assert manager.ts is panel.connection and server.base_url in manager.badge.value
        manager.account.value = "0000123456-00001"
        await click(manager, manager.refresh)
        assert "ThingSpace refused the login" in manager.status.value
        await click(manager, manager.refresh)  # clicking again does not try to log in again
        assert sim.count("login") == 1 and not sim.is_locked(DEMO_USERNAME)
        await manager.ts.aclose()


async def test_login_panel_incomplete_credentials(sim: Simulator) -> None:
    panel = LoginPanel()
    assert panel.connect.disabled  # nothing filled in: nothing to click
    panel.client_id.value = "only-the-key"
    assert panel.connect.disabled
    panel.connect.click()  # even from code: the empty fields are named, in the form's words
    assert panel.status.value == "Please fill in: App secret, UWS user, UWS password."
    assert panel.connection is None and panel.status.kind == "error"
    assert "simulator=False" not in panel.status.value and "THINGSPACE_" not in panel.status.value
    panel.client_secret.value, panel.username.value, panel.password.value = "s", "u", "p"
    assert not panel.connect.disabled


async def test_audit_dashboard(ts: tskit.ThingSpace, sim: Simulator, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    dashboard = AuditDashboard(ts, snapshot_dir=tmp_path)
    dashboard.accounts.value += "\n9999999999-00001"
    dashboard.expect.value = ["CarrierService"]
    assert dashboard.save_button.disabled
    await click(dashboard, dashboard.run_button)
    assert (dashboard.progress.value, dashboard.progress.max) == (4, 4)
    assert dashboard.audit is not None and len(dashboard.audit.error_list) == 1
    assert "Findings by rule" in dashboard.summary.value and "<svg" in dashboard.summary.value
    assert "1 unreadable" in dashboard.status.value
    assert not dashboard.save_button.disabled
    dashboard.save_button.click()
    saved = (tmp_path / "audit.json").read_text()
    assert "demo-pass" not in saved and '"format": "tskit-audit/1"' in saved
    assert 'download="audit.json"' in dashboard.download.value
    assert sim.count("list") == 6  # one listing per account, and two more confirming the empty one


async def test_audit_dashboard_loads_a_file(ts: tskit.ThingSpace) -> None:
    dashboard = AuditDashboard(ts, accounts=[])
    content = b"# my fleet\n0000123456-00001, 0000123456-00002\n"
    dashboard.upload.value = (
        {
            "name": "fleet.txt",
            "type": "text/plain",
            "size": len(content),
            "content": memoryview(content),
            "last_modified": datetime.datetime.now(),
        },
    )
    assert dashboard.accounts.value == "0000123456-00001\n0000123456-00002"
    dashboard.accounts.value = ""
    dashboard.run_button.click()
    assert "Paste or load some account names first" in dashboard.status.value


async def test_messages_view_updates_live(sim: Simulator, ts: tskit.ThingSpace) -> None:
    import asyncio

    from tskit.listener import Listener
    from tskit.widgets import MessagesView

    sim.config.delivery_time_scale = 0.05
    with Listener(username="tsuser", password="view-pw-1") as listener:
        view = MessagesView(listener, interval=0.05)
        assert "No messages yet" in view.empty.value and view.empty.layout.display is None
        assert view.table.layout.display == "none" and view.pending is not None
        await ts.aregister_callback(
            EMPTY, "CarrierService", listener.url_for("CarrierService"), username="tsuser", password="view-pw-1"
        )
        delivery = sim.trigger(EMPTY, "CarrierService")
        await asyncio.to_thread(delivery.wait)
        await aeventually(lambda: delivery.request_id in set(view.frame["request_id"]))  # no click: by itself
        assert delivery.request_id in set(view.frame["request_id"]) and "1 message(s)" in view.header.value
        assert view.table.layout.display is None and view.empty.layout.display == "none"
        assert "view-pw-1" not in str(view.table._dt_args)
        view.live.value = False
        assert view.pending is None
        view.close()
    sim.close()
