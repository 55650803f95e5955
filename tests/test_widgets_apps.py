"""The apps' rough edges, without a browser: what the summary names, what is set apart, Cancel, downloads."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

import tskit
from tests.test_widgets import click
from tskit.simulator import Simulator, seed_fleet

pytest.importorskip("ipywidgets")
from tskit.state._display import COLOURS
from tskit.widgets import (
    AuditDashboard,
    CallbackManager,
    PlanView,
    _dashboard,
)

pytestmark = pytest.mark.anyio
LISTED = "0000123456-00001"
A2 = "0000123456-00002"


def contrast(background: str, text: str = "#ffffff") -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours."""

    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted((luminance(background), luminance(text)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def descriptions(widget: Any) -> list[str]:
    """The labels of a widget and of everything inside it."""
    own = [str(widget.description)] if getattr(widget, "description", "") else []
    return own + [label for child in getattr(widget, "children", ()) for label in descriptions(child)]


def data_link(html: str) -> tuple[str, bytes]:
    """The file name and content of a download link."""
    match = re.search(r'download="([^"]+)" href="data:[^;]+;base64,([^"]+)"', html)
    assert match, html
    return match[1], base64.b64decode(match[2])


async def test_a_malformed_account_clears_the_summary_of_the_account_before(ts: tskit.ThingSpace) -> None:
    manager = CallbackManager(ts)
    manager.account.value = LISTED
    await click(manager, manager.refresh)
    assert LISTED in manager.listing.value and manager.table.layout.display is None
    manager.account.value = "not an account"
    manager.refresh.click()
    assert manager.status.kind == "error" and "Account" in manager.status.value
    assert LISTED not in manager.listing.value and "No account listed" in manager.listing.value
    assert manager.table.layout.display == "none" and manager.deregister.disabled


async def test_findings_about_documentation_hosts_are_set_apart_and_say_why(sim: Simulator) -> None:
    dashboard = AuditDashboard(tskit.connect(simulator=sim), accounts=seed_fleet(sim, 40))
    dashboard.expect.value = ["CarrierService", "DeviceUsage"]
    await click(dashboard, dashboard.run_button)
    # the headline counts what needs looking at; the placeholders have a badge of their own
    assert dashboard.status.value == (
        "Audited 40 accounts: 24 high, 8 medium, 8 low, and 60 on documentation hosts (set apart)."
    )
    assert "24 high" in dashboard.summary.value and "60 on documentation hosts" in dashboard.summary.value
    assert "84 high" not in dashboard.summary.value
    assert "reserved for documentation" in dashboard.documentation_help.value
    assert dashboard.documentation_box.layout.display is None
    assert dashboard.documentation.description == "Show the 60 finding(s) on documentation hosts"
    shown = dashboard.findings.df
    assert shown is not None and len(shown) == 40
    # other findings about the same listeners stay: plain HTTP to 203.0.113.x is a planted problem
    assert {"credentials-over-http", "not-https", "shared-url"} <= set(shown["rule"])
    assert not shown["detail"].str.contains("reserved for documentation").any()
    assert shown["detail"].str.contains("private address").sum() == 4  # 10.20.x.7 is not set apart


@pytest.mark.parametrize(
    ("url", "documentation"),
    [
        ("https://listener-1.example.com/carrier", True),
        ("https://EXAMPLE.ORG./x", True),
        ("https://callbacks.test/x", True),
        ("http://203.0.113.10:9001/cb", True),
        ("https://[2001:db8::1]/cb", True),
        ("https://10.20.7.7/cb", False),
        ("https://callbacks.tskit-ops.net/x", False),
        ("https://example.com.evil.net/x", False),
        ("not a url", False),
        ("http://[bad/x", False),
    ],
)
def test_documentation_hosts(url: str, documentation: bool) -> None:
    assert _dashboard.documentation_host(url) is documentation


async def test_the_progress_bar_counts_and_no_two_controls_share_a_label(ts: tskit.ThingSpace) -> None:
    dashboard = AuditDashboard(ts)
    labels = descriptions(dashboard)
    assert len(labels) == len(set(labels)), labels
    await click(dashboard, dashboard.run_button)
    assert dashboard.progress.count.value == "3/3" and (dashboard.progress.value, dashboard.progress.max) == (3, 3)


async def test_cancel_stops_the_fan_out(sim: Simulator) -> None:
    fleet = seed_fleet(sim, 40)
    sim.faults.latency = 0.05  # each read waits: the audit is still running when Cancel is clicked
    dashboard = AuditDashboard(tskit.connect(simulator=sim), accounts=fleet)
    dashboard.concurrency.value = 2
    assert dashboard.cancel_button.disabled  # nothing to cancel yet
    dashboard.run_button.click()
    assert not dashboard.cancel_button.disabled and dashboard.run_button.disabled
    for _ in range(2000):  # bounded: until a few accounts were read
        if dashboard.progress.value >= 4:
            break
        await asyncio.sleep(0.005)
    dashboard.cancel_button.click()
    assert dashboard.pending is not None
    await dashboard.pending
    reads = sim.count("list")
    assert 4 <= reads < 40, reads
    await asyncio.sleep(0.2)  # nothing left running that could still send one
    assert sim.count("list") == reads
    assert dashboard.audit is None and dashboard.findings.layout.display == "none"
    done = dashboard.progress.value
    assert dashboard.status.value.startswith(f"Cancelled after {done} of 40 accounts were read: no findings")
    assert dashboard.status.kind == "info"
    assert dashboard.cancel_button.disabled and not dashboard.run_button.disabled and dashboard.save_button.disabled
    sim.faults.latency = 0.0
    await click(dashboard, dashboard.run_button)  # and it runs again, whole
    assert dashboard.audit is not None and dashboard.progress.count.value == "40/40"


async def test_a_new_audit_shows_nothing_of_the_last_one_while_it_runs(ts: tskit.ThingSpace) -> None:
    dashboard = AuditDashboard(ts)
    await click(dashboard, dashboard.run_button)
    dashboard.save_button.click()
    assert dashboard.summary.value and dashboard.download.value
    dashboard.run_button.click()
    assert dashboard.busy and dashboard.audit is None
    assert dashboard.summary.value == dashboard.download.value == dashboard.shown.value == ""
    assert dashboard.pending is not None
    await dashboard.pending


async def test_a_snapshot_is_a_download_and_the_status_names_no_path(ts: tskit.ThingSpace, tmp_path: Path) -> None:
    dashboard = AuditDashboard(ts, snapshot_dir=tmp_path / "snapshots")
    await click(dashboard, dashboard.run_button)
    dashboard.save_button.click()
    assert dashboard.status.value.startswith("Saved the snapshot audit.json (no passwords in it)")
    assert str(tmp_path) not in dashboard.status.value and "/" not in dashboard.status.value
    name, content = data_link(dashboard.download.value)
    assert name == "audit.json" and content == (tmp_path / "snapshots" / "audit.json").read_bytes()
    assert json.loads(content)["format"] == "tskit-audit/1" and b"demo-pass" not in content
    assert 'class="tskit-download"' in dashboard.download.value


def test_badges_read_at_4_5_to_1() -> None:
    for action in ("create", "update", "delete", "keep", "done", "confirmed", "failed"):
        assert contrast(COLOURS[action]) >= 4.5, (action, COLOURS[action])


async def test_a_plan_row_says_what_happens_to_a_password(ts: tskit.ThingSpace, sim: Simulator) -> None:
    # A2's CarrierService has a password: moving it elsewhere sends the same password again
    (now,) = [r for r in sim.registrations(A2) if r["serviceName"] == "CarrierService"]
    moved = {"url": "https://ops.tskit-ops.net/cb", "username": now["username"], "password": now["password"]}
    view = PlanView(ts, {A2: {"CarrierService": moved}})
    assert view.pending is not None
    await view.pending
    assert view.plan is not None and view.plan.counts()["update"] == 1
    table = view.table.value
    assert "same password, sent again" in table and "password unchanged" not in table and "********" not in table
    assert "overflow-x:auto" in table and "white-space:nowrap" in table  # fits, or scrolls; names on one line


async def test_an_apply_offers_its_journal_as_a_download(ts: tskit.ThingSpace, tmp_path: Path) -> None:
    desired = {LISTED: {"CarrierService": {"url": "https://l.tskit-ops.net/c", "username": "u", "password": "plan-pw"}}}
    view = PlanView(ts, desired, journal=tmp_path / "apply.jsonl")
    assert view.pending is not None and view.progress.layout.display == "none"  # no empty bar before an apply
    await view.pending
    view.apply_button.click()
    view.confirm.click()
    assert view.pending is not None
    await view.pending
    assert view.result is not None and view.result.ok
    assert view.progress.count.value == "1/1" and view.progress.layout.display is None
    assert str(tmp_path) not in view.outcomes.value + view.status.value
    name, content = data_link(view.download.value)
    assert name == "apply.jsonl" and content == (tmp_path / "apply.jsonl").read_bytes()
    assert b"plan-pw" not in content
