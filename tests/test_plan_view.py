"""PlanView driven as a person would: look at the plan, click Apply, confirm, see the outcomes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import tskit
from tskit.simulator import Simulator

widgets = pytest.importorskip("ipywidgets")
from tskit.widgets import PlanView  # noqa: E402

pytestmark = pytest.mark.anyio
A3 = "0000123456-00003"
DESIRED = {A3: {"CarrierService": {"url": "https://l.example.com/c", "username": "u", "password": "widget-pw"}}}


async def settle(view: PlanView) -> None:
    if view.pending is not None:
        await view.pending


def all_state(widget: Any) -> str:
    parts = [repr(widget.get_state())]
    for child in getattr(widget, "children", ()):
        parts.append(all_state(child))
    return "\n".join(parts)


async def test_plan_confirm_apply_and_plan_again(ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path) -> None:
    view = PlanView(ts, DESIRED, journal=tmp_path / "j.jsonl")
    await settle(view)
    assert view.plan is not None and view.plan.counts()["create"] == 1
    assert "1 create" in view.table.value and "#2e7d32" in view.table.value
    assert not view.apply_button.disabled
    view.apply_button.click()
    assert "Apply <b>1 change</b>" in view.confirm_text.value and view.confirm_box.layout.display is None
    assert sim.count("register") == 0  # asking sends nothing
    view.cancel.click()
    assert sim.count("register") == 0 and "Nothing was changed" in view.status.value
    view.apply_button.click()
    view.confirm.click()
    await settle(view)
    assert view.result is not None and view.result.ok
    assert "1 done" in view.outcomes.value and view.progress.value == 1
    assert sim.registrations(A3)[0]["password"] == "widget-pw"
    assert view.plan is not None and not view.plan.has_changes and view.apply_button.disabled
    assert "widget-pw" not in all_state(view)
    assert "widget-pw" not in (tmp_path / "j.jsonl").read_text()


async def test_unreadable_accounts_are_shown(ts: tskit.ThingSpace) -> None:
    view = PlanView(ts, {"9999999999-00001": {}})
    await settle(view)
    assert "9999999999-00001" in view.table.value and "1 error." in view.status.value
    assert view.apply_button.disabled


async def test_a_stale_plan_is_made_again_and_shown_before_anything_is_sent(
    ts: tskit.ThingSpace, sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    view = PlanView(ts, DESIRED, journal=tmp_path / "j.jsonl")
    await settle(view)
    assert view.plan is not None
    monkeypatch.setattr(view.plan, "_created", view.plan._created - 301)
    sim.register(A3, "CarrierService", "https://l.example.com/c", "u", "widget-pw")  # someone else did it
    view.apply_button.click()
    view.confirm.click()
    await settle(view)
    assert view.result is None and sim.count("register") == 0
    assert "check the new plan" in view.status.value and not view.plan.has_changes


async def test_plan_again_reads_the_file_and_its_variables_again(
    ts: tskit.ThingSpace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.toml"
    monkeypatch.setenv("VIEW_PW", "first-pw")
    path.write_text(f'["{A3}".CarrierService]\nurl = "https://l.example.com/c"\npassword = {{ env = "VIEW_PW" }}\n')
    view = PlanView(ts, path)
    await settle(view)
    assert view.plan is not None and view.plan.counts()["create"] == 1
    path.write_text(path.read_text() + f'\n["{A3}".DeviceUsage]\nurl = "https://l.example.com/u"\n')
    monkeypatch.setenv("VIEW_PW", "second-pw")
    view.refresh.click()
    await settle(view)
    assert view.plan.counts()["create"] == 2 and "2 changes" in view.status.value
    assert view.plan.desired.accounts[A3]["CarrierService"].password.reveal() == "second-pw"
