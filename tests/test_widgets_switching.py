"""The callback manager acts only on the account and connection a person sees and confirmed."""

from __future__ import annotations

import asyncio

import pytest

import tskit
from tests.conftest import FakeClock
from tests.gates import GatedSimulator
from tests.test_widgets import EMPTY, click, press_enter
from tskit.simulator import Simulator

pytest.importorskip("ipywidgets")
from tskit.widgets import CallbackManager

pytestmark = pytest.mark.anyio
LISTED = "0000123456-00001"  # CarrierService with a password, DeviceUsage without
OTHER = "0000123456-00002"


@pytest.fixture
def sim() -> GatedSimulator:
    """The simulator of ``ts``: its callbacks calls can be held while the test acts."""
    return GatedSimulator(clock=FakeClock())


@pytest.fixture
def manager(ts: tskit.ThingSpace) -> CallbackManager:
    return CallbackManager(ts)


@pytest.fixture
def other() -> tskit.ThingSpace:
    return tskit.connect(simulator=Simulator())


async def open_deregister(manager: CallbackManager) -> None:
    manager.account.value = LISTED
    await click(manager, manager.refresh)
    manager.registered.value = "CarrierService"
    manager.deregister.click()
    assert manager.confirm_box.layout.display is None


async def open_replace(manager: CallbackManager, url: str = "https://one.example.com/cb") -> None:
    manager.account.value, manager.service.value = LISTED, "CarrierService"
    manager.url.value, manager.password.value = url, "pw-1"
    await click(manager, manager.register)
    assert manager.replace_box.layout.display is None


def closed(manager: CallbackManager) -> bool:
    return (
        manager.confirm_box.layout.display == "none"
        and manager.replace_box.layout.display == "none"
        and manager._to_register is None
        and manager._to_deregister is None
    )


async def test_switching_connection_closes_a_deregister_confirmation(
    manager: CallbackManager, sim: Simulator, other: tskit.ThingSpace
) -> None:
    await open_deregister(manager)
    manager.use(other)
    assert closed(manager)
    manager.confirm.click()
    assert manager.pending is None or manager.pending.done()
    assert sim.count("deregister") == 0 and other.simulator is not None
    assert other.simulator.count("deregister") == 0


async def test_listing_another_account_closes_the_confirmations(manager: CallbackManager, sim: Simulator) -> None:
    await open_deregister(manager)
    manager.account.value = OTHER
    await click(manager, manager.refresh)
    assert closed(manager)
    manager.confirm.click()
    await open_replace(manager)
    manager.account.value = OTHER
    press_enter(manager.account)
    if manager.pending is not None:
        await manager.pending
    assert closed(manager)
    manager.replace_confirm.click()
    assert sim.count("deregister") == 0 and sim.count("register") == 0


async def test_switching_connection_closes_a_replace_confirmation(
    manager: CallbackManager, sim: Simulator, other: tskit.ThingSpace
) -> None:
    await open_replace(manager)
    manager.use(other)
    assert closed(manager)
    manager.replace_confirm.click()
    assert other.simulator is not None and other.simulator.count("register") == 0
    assert sim.count("register") == 0


async def test_a_register_in_flight_is_not_sent_to_a_new_connection(
    manager: CallbackManager, sim: GatedSimulator, other: tskit.ThingSpace
) -> None:
    manager.account.value, manager.service.value = EMPTY, "NiddService"
    manager.url.value, manager.password.value = "https://new.example.com/cb", "pw"
    look = sim.hold("GET")  # the listing a register looks at first
    manager.register.click()
    task = manager.pending
    assert task is not None
    await look.wait_arrived()
    manager.use(other)
    look.release.set()
    await task
    assert other.simulator is not None and other.simulator.count("register") == 0
    # the look happened on the old connection: nothing was sent once the connection changed
    assert sim.count("register") == 0
    assert manager.frame is None and manager._listed_account == ""


async def test_a_list_in_flight_does_not_land_under_a_new_connection(
    manager: CallbackManager, sim: GatedSimulator, other: tskit.ThingSpace
) -> None:
    manager.account.value = LISTED
    listing = sim.hold("GET")
    manager.refresh.click()
    task = manager.pending
    assert task is not None
    await listing.wait_arrived()
    manager.use(other)
    listing.release.set()
    await task
    assert manager.frame is None and manager._listed_account == ""
    assert LISTED not in manager.listing.value
    assert "callback(s) registered" not in manager.status.value


async def test_enter_while_busy_keeps_the_view_and_the_password(manager: CallbackManager, sim: GatedSimulator) -> None:
    manager.account.value = LISTED
    await click(manager, manager.refresh)
    listing = sim.hold("GET")
    manager.refresh.click()
    task = manager.pending
    await listing.wait_arrived()  # busy: the listing is in flight
    manager.account.value = OTHER
    press_enter(manager.account)  # the button is disabled: Enter must be too
    shown = manager.listing.value
    manager.url.value, manager.password.value = "https://new.example.com/cb", "pw-kept"
    press_enter(manager.password)
    assert manager.password.value == "pw-kept" and manager.listing.value == shown
    assert task is not None
    listing.release.set()
    await task
    assert manager._listed_account == LISTED and sim.count("list") == 2


async def test_enter_while_a_confirmation_is_open_does_not_swap_it(manager: CallbackManager, sim: Simulator) -> None:
    await open_replace(manager, "https://one.example.com/cb")
    manager.url.value, manager.password.value = "https://two.example.com/cb", ""
    press_enter(manager.url)
    if manager.pending is not None:
        await manager.pending
    assert manager._to_register is not None and manager._to_register[2] == "https://one.example.com/cb"
    assert "one.example.com" in manager.replace_text.value


async def test_opening_a_confirmation_is_not_logged_as_registering(manager: CallbackManager) -> None:
    await open_replace(manager)
    assert "Registering" not in manager.details.value


async def test_a_new_login_closes_the_previous_connection(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from tskit.widgets import LoginPanel

    closed_connections: list[object] = []
    panel = LoginPanel()
    for attempt in range(2):
        panel.client_id.value, panel.client_secret.value = "key", "secret"
        panel.username.value, panel.password.value = "user", f"pw-{attempt}"
        panel.connect.click()
        assert panel.connection is not None
        connection = panel.connection

        async def record(connection: object = connection) -> None:
            closed_connections.append(connection)

        monkeypatch.setattr(connection, "aclose", record)
    first, second = closed_connections and closed_connections[0], panel.connection
    await asyncio.sleep(0)
    assert len(closed_connections) == 1 and first is not second


async def test_a_manager_closes_the_connection_it_made_when_switched(
    other: tskit.ThingSpace, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = CallbackManager()
    made = manager.ts
    closed_connections: list[object] = []

    async def record() -> None:
        closed_connections.append(made)

    monkeypatch.setattr(made, "aclose", record)
    manager.use(other)
    await asyncio.sleep(0)
    assert closed_connections == [made]
    manager.use(made)  # not made by the manager: never closed by it
    await asyncio.sleep(0)
    assert closed_connections == [made]


def test_password_fields_are_not_echoed_back() -> None:
    from tskit.widgets import LoginPanel

    manager, panel = CallbackManager(tskit.connect(simulator=True)), LoginPanel()
    for field in (manager.password, panel.password, panel.client_secret):
        sent: list[dict[str, object]] = []
        field._send = lambda message, buffers=None, sent=sent: sent.append(message)
        field.set_state({"value": "typed-secret-1"})  # what the browser sends on each keystroke
        assert field.value == "typed-secret-1"
        assert "typed-secret-1" not in repr(sent), sent
    sent = []
    manager.url._send = lambda message, buffers=None: sent.append(message)
    manager.url.set_state({"value": "https://x.example.com/"})
    assert "echo_update" in repr(sent)  # the switch is off for secrets only; echo itself is on


@pytest.mark.parametrize("name", ["../../../escape.json", "/tmp/x.json", "sub/a.json", "a.py", ".hidden.json"])
async def test_a_snapshot_is_saved_by_name_in_its_folder_only(
    ts: tskit.ThingSpace, tmp_path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    from tskit.widgets import AuditDashboard

    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    dashboard = AuditDashboard(ts, snapshot_dir=work / "snapshots")
    await click(dashboard, dashboard.run_button)
    dashboard.snapshot_path.value = name
    dashboard.save_button.click()
    assert dashboard.status.kind == "error" and "no folders" in dashboard.status.value
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [] and dashboard.download.value == ""
    dashboard.snapshot_path.value = "fleet-2026.json"
    dashboard.save_button.click()
    assert [p.relative_to(work).as_posix() for p in work.rglob("*.json")] == ["snapshots/fleet-2026.json"]
    assert (work / "snapshots" / "fleet-2026.json").stat().st_mode & 0o777 == 0o600
    assert 'download="fleet-2026.json"' in dashboard.download.value


async def test_the_default_snapshot_folder_is_outside_the_working_folder(
    ts: tskit.ThingSpace, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tskit.widgets import AuditDashboard

    monkeypatch.setenv("TSKIT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    dashboard = AuditDashboard(ts)
    await click(dashboard, dashboard.run_button)
    dashboard.save_button.click()
    assert (tmp_path / "config" / "snapshots" / "audit.json").is_file() and not (tmp_path / "audit.json").exists()
