"""The widgets as a person meets them: when problems show, what is confirmed, Enter, tables, filters."""

from __future__ import annotations

from typing import Any

import pytest

import tskit
from tests.test_widgets import EMPTY, all_state, click, press_enter, shown
from tskit.simulator import Simulator, seed_fleet

pytest.importorskip("ipywidgets")
from tskit.widgets import AuditDashboard, CallbackManager, LoginPanel
from tskit.widgets._elements import LogView, StatusLine

pytestmark = pytest.mark.anyio
LISTED = "0000123456-00001"  # CarrierService with a password, DeviceUsage without


def rows(dashboard: AuditDashboard) -> Any:
    """The findings the dashboard's table holds now."""
    assert dashboard.findings.df is not None
    return dashboard.findings.df


@pytest.fixture
def manager(ts: tskit.ThingSpace) -> CallbackManager:
    return CallbackManager(ts)


async def test_a_new_form_shows_no_problem_until_a_field_is_touched(manager: CallbackManager) -> None:
    assert manager.problem.value == "" and manager.register.disabled  # disabled, but not shouting
    manager.account.value = EMPTY
    assert manager.problem.value == ""  # the URL was not touched yet
    manager.url.value = "https://listener.example.com:8443/x"
    assert "URL: port 8443" in manager.problem.value


async def test_errors_speak_of_the_form_not_of_parameters(manager: CallbackManager, sim: Simulator) -> None:
    manager.account.value, manager.url.value = EMPTY, "https://listener.example.com:8443/x"
    assert "tick “Allow any port”" in manager.problem.value and "allow_any_port" not in manager.problem.value
    manager.submit()
    assert "allow_any_port" not in manager.status.value and manager.status.kind == "error"
    manager.any_port.value = True  # the checkbox, not a parameter
    sim.config.enforce_listener_ports = False  # as a proxy or simulator that accepts other ports
    assert manager.problem.value == "" and not manager.register.disabled
    await click(manager, manager.register)
    await click(manager, manager.replace_confirm)  # example.com: ThingSpace cannot reach it, confirmed
    assert [r["url"] for r in sim.registrations(EMPTY)] == ["https://listener.example.com:8443/x"], manager.status.value


async def test_a_failed_list_clears_the_previous_rows(manager: CallbackManager) -> None:
    manager.account.value = LISTED
    await click(manager, manager.refresh)
    assert "CarrierService" in shown(manager.table) and not manager.deregister.disabled
    manager.account.value = "9999999999-00001"
    await click(manager, manager.refresh)
    assert manager.status.kind == "error" and "AccountNotFound" in manager.status.value
    assert shown(manager.table) == "" and manager.frame is None
    assert list(manager.registered.options) == [] and manager.deregister.disabled
    assert "Could not list the callbacks of 9999999999-00001" in manager.listing.value


async def test_replacing_a_listener_shows_what_is_replaced_and_waits(manager: CallbackManager, sim: Simulator) -> None:
    manager.account.value, manager.service.value = LISTED, "CarrierService"
    manager.url.value, manager.password.value = "https://new.example.com/carrier", "new-pw-1"
    await click(manager, manager.register)
    assert sim.count("register") == 0  # nothing sent yet
    text = manager.replace_text.value
    assert "already sends to" in text and "https://listener.example.com/thingspace/carrier" in text
    assert "https://new.example.com/carrier" in text and manager.replace_box.layout.display is None
    assert "new-pw-1" not in all_state(manager) and manager.password.value == ""
    assert manager.keep_no_password.layout.display == "none"  # a password was given: nothing to choose
    await click(manager, manager.replace_confirm)
    [carrier] = [r for r in sim.registrations(LISTED) if r["serviceName"] == "CarrierService"]
    assert (carrier["url"], carrier["password"]) == ("https://new.example.com/carrier", "new-pw-1")


async def test_an_empty_password_on_a_replace_is_an_explicit_choice(manager: CallbackManager, sim: Simulator) -> None:
    manager.account.value, manager.service.value = LISTED, "CarrierService"
    manager.url.value = "https://new.example.com/carrier"
    await click(manager, manager.register)
    assert "password <b>none</b>" in manager.replace_text.value
    assert manager.keep_no_password.layout.display is None and manager.replace_confirm.disabled
    manager.replace_confirm.click()  # even from code: refused until the choice is made
    assert sim.count("register") == 0
    manager.keep_no_password.value = True
    assert not manager.replace_confirm.disabled
    await click(manager, manager.replace_confirm)
    [carrier] = [r for r in sim.registrations(LISTED) if r["serviceName"] == "CarrierService"]
    assert carrier["password"] == ""


async def test_cancelling_a_replace_sends_nothing(manager: CallbackManager, sim: Simulator) -> None:
    manager.account.value, manager.url.value = LISTED, "https://new.example.com/carrier"
    await click(manager, manager.register)
    manager.replace_cancel.click()
    manager.replace_confirm.click()
    assert sim.count("register") == 0 and manager.replace_box.layout.display == "none"
    assert "Nothing was changed" in manager.status.value


async def test_a_private_address_is_warned_about_and_confirmed(manager: CallbackManager, sim: Simulator) -> None:
    manager.account.value, manager.url.value = EMPTY, "http://10.0.0.5/cb"
    assert "private address" in manager.warning.value
    await click(manager, manager.register)
    assert sim.count("register") == 0 and "private address" in manager.replace_text.value
    await click(manager, manager.replace_confirm)
    assert [r["url"] for r in sim.registrations(EMPTY)] == ["http://10.0.0.5/cb"]


async def test_enter_lists_and_registers(manager: CallbackManager, sim: Simulator) -> None:
    manager.account.value = LISTED
    press_enter(manager.account)
    assert manager.pending is not None
    await manager.pending
    assert sim.count("list") == 1 and "DeviceUsage" in shown(manager.table)
    manager.account.value, manager.service.value = EMPTY, "NiddService"
    manager.url.value, manager.username.value = "https://listener.example.com/nidd", "u"
    manager.password.value = "enter-pw"
    press_enter(manager.password)
    await manager.pending
    await click(manager, manager.replace_confirm)  # example.com: ThingSpace cannot reach it, confirmed
    assert [r["serviceName"] for r in sim.registrations(EMPTY)] == ["NiddService"]


async def test_the_table_is_interactive_and_exports(manager: CallbackManager) -> None:
    manager.account.value = LISTED
    await click(manager, manager.refresh)
    args = manager.table._dt_args
    buttons = [b["extend"] for b in args["buttons"] if isinstance(b, dict)]
    assert buttons == ["csvHtml5", "excelHtml5"]
    assert {b["filename"] for b in args["buttons"] if isinstance(b, dict)} == {f"callbacks-{LISTED}"}
    assert args["pageLength"] == 10 and "demo-pass-1" not in all_state(manager)


async def test_status_line_and_log() -> None:
    status, log = StatusLine(), LogView()
    assert 'aria-live", "polite"' in StatusLine._esm and 'role", "status"' in StatusLine._esm
    assert "scrollTop = log.scrollHeight" in LogView._esm
    assert "--jp-ui-font-color1" in StatusLine._css  # the theme's colours
    panel = LoginPanel()
    for i in range(250):
        panel.note(f"line {i}")
    lines = panel.details.value.splitlines()
    assert len(lines) == 200 and lines[-1].endswith("line 249")
    panel.say("<b>not html</b>", "ok")
    assert panel.status.value == "<b>not html</b>" and panel.status.kind == "ok"
    assert status.value == "" and log.value == ""


async def test_dashboard_filters_findings_by_severity_and_rule(sim: Simulator) -> None:
    fleet = seed_fleet(sim, 40)
    dashboard = AuditDashboard(tskit.connect(simulator=sim), accounts=fleet)
    dashboard.expect.value = ["CarrierService", "DeviceUsage"]
    await click(dashboard, dashboard.run_button)
    # 40 findings, and 60 that only say a listener's host is reserved for documentation: set apart
    assert dashboard.audit is not None and len(rows(dashboard)) == 40
    assert dashboard.shown.value == "40 of 100 finding(s) (60 on documentation hosts hidden)"
    dashboard.documentation.value = True
    assert len(rows(dashboard)) == 100 and "100 of 100" in dashboard.shown.value
    dashboard.severity.value = "high"
    assert set(rows(dashboard)["severity"]) == {"high"}
    high = len(rows(dashboard))
    dashboard.severity.value = "medium"
    assert set(rows(dashboard)["severity"]) == {"high", "medium"} and len(rows(dashboard)) > high
    dashboard.rule.value = "not-https"
    assert set(rows(dashboard)["rule"]) == {"not-https"}
    assert f"{len(rows(dashboard))} of 100" in dashboard.shown.value
    assert "missing-service" in [value for _, value in dashboard.rule.options]
    args = dashboard.findings._dt_args
    assert [b["extend"] for b in args["buttons"] if isinstance(b, dict)] == ["csvHtml5", "excelHtml5"]
    # the table pages: Save is not pushed below the fold by 100 rows
    assert args["pageLength"] == 10
