"""The audit dashboard and the listener view as Voilà apps, in chromium, light and dark."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.apps import (
    TIMEOUT,
    check_layout,
    empty_status_bars,
    labels_cut,
    lines_of,
    low_contrast,
    open_app,
    screenshot,
    status_contrast,
)
from tests.browser.conftest import serving
from tskit.simulator import Faults, Simulator, SimulatorServer, seed_fleet

playwright = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect  # noqa: E402

pytestmark = pytest.mark.browser


def test_audit_dashboard_filters_and_exports(page: Page, voila: str) -> None:
    open_app(page, voila, "audit_dashboard")
    expect(page.locator(".tskit-status")).to_have_text("")  # the check cell did not run the audit
    assert empty_status_bars(page) == []  # and says nothing with no lone bar
    page.get_by_role("button", name="Run audit").click()
    status = page.locator(".tskit-status")
    expect(status).to_contain_text("Audited 40 accounts: 24 high, 8 medium, 8 low", timeout=TIMEOUT)
    expect(page.get_by_text("40/40", exact=True)).to_be_visible()
    # the placeholders' findings are set apart, and the page says why
    expect(page.get_by_text("40 of 100 finding(s) (60 on documentation hosts hidden)")).to_be_visible()
    expect(page.get_by_text("only say that a listener is on a host reserved for documentation")).to_be_visible()
    table = page.locator("table.dataTable").first
    expect(table.locator("tbody tr")).to_have_count(10)  # pages: Save stays above the fold
    expect(page.get_by_role("button", name="Save snapshot")).to_be_in_viewport()
    page.get_by_label("Show the 60 finding(s) on documentation hosts").check()
    expect(page.get_by_text("100 of 100 finding(s)", exact=True)).to_be_visible(timeout=TIMEOUT)
    page.get_by_label("Show the 60 finding(s) on documentation hosts").uncheck()

    page.get_by_label("Severity", exact=True).select_option(label="high only")
    expect(page.get_by_text("24 of 100 finding(s)")).to_be_visible(timeout=TIMEOUT)
    severities = table.locator("tbody tr td:nth-child(4)").all_inner_texts()
    assert severities and set(severities) == {"high"}
    page.get_by_label("Rule", exact=True).select_option("missing-service")
    expect(page.get_by_text("16 of 100 finding(s)")).to_be_visible(timeout=TIMEOUT)

    with page.expect_download(timeout=TIMEOUT) as download:
        page.get_by_role("button", name="Excel").first.click()
    assert download.value.suggested_filename == "audit-findings.xlsx"

    # a snapshot is a download: the status line names the file, never a folder of the server
    page.get_by_role("button", name="Save snapshot").click()
    expect(status).to_contain_text("Saved the snapshot audit.json", timeout=TIMEOUT)
    assert "/" not in status.inner_text()
    with page.expect_download(timeout=TIMEOUT) as download:
        page.get_by_text("Download audit.json").click()
    assert download.value.suggested_filename == "audit.json"
    snapshot = Path(download.value.path()).read_text()
    assert '"format": "tskit-audit/1"' in snapshot and "fleet-pw" not in snapshot
    check_layout(page)
    # the tables use the page's width, and account names stay on one line
    width = page.locator("table.dataTable").first.evaluate("(e) => e.getBoundingClientRect().width")
    assert width > 1100, width
    assert set(lines_of(table.locator("tbody tr td:first-child"))) == {1}
    screenshot(page, "audit-dashboard-saved")


def test_audit_dashboard_dark(page: Page, voila: str) -> None:
    page.set_viewport_size({"width": 700, "height": 1000})
    open_app(page, voila, "audit_dashboard", theme="dark")
    page.get_by_role("button", name="Run audit").click()
    expect(page.locator(".tskit-status")).to_contain_text("Audited 40 accounts", timeout=TIMEOUT)
    ratio = status_contrast(page)
    assert ratio >= 4.5, f"the status line's contrast on the dark theme is {ratio:.1f}:1"
    chart_text = page.locator("svg text").first.evaluate(
        "(e) => getComputedStyle(e).fill + ' on ' + getComputedStyle(document.body).backgroundColor"
    )
    assert not chart_text.startswith("rgb(0, 0, 0)"), chart_text  # not black on the dark page
    check_layout(page)


@pytest.fixture
def slow_fleet() -> Iterator[tuple[Simulator, dict[str, str], list[str]]]:
    """A simulator served on loopback whose every answer waits, with a fleet of 40 accounts.

    It runs in this process, so the test counts at the simulator the reads that reached it.
    """
    simulator = Simulator(faults=Faults(latency=0.4))
    fleet = seed_fleet(simulator, 40)
    with SimulatorServer(simulator) as server:
        yield simulator, server.env(), fleet
    simulator.close()


def test_cancel_stops_the_audit(
    page: Page, tmp_path: Path, slow_fleet: tuple[Simulator, dict[str, str], list[str]]
) -> None:
    simulator, env, fleet = slow_fleet
    with serving(tmp_path, env) as voila:  # the app connects to it as to ThingSpace
        open_app(page, voila, "audit_dashboard")
        page.get_by_label("Accounts", exact=True).fill("\n".join(fleet))
        page.get_by_label("Concurrency", exact=True).fill("2")
        page.get_by_role("button", name="Run audit").click()
        cancel = page.get_by_role("button", name="Cancel")
        expect(cancel).to_be_enabled(timeout=TIMEOUT)
        expect(page.get_by_text(re.compile(r"^[1-9]\d*/40$"))).to_be_visible(timeout=TIMEOUT)  # under way
        cancel.click()
        status = page.locator(".tskit-status")
        expect(status).to_contain_text("Cancelled after", timeout=TIMEOUT)
        expect(status).to_contain_text("of 40 accounts were read: no findings are shown")
        expect(cancel).to_be_disabled()
        reads = simulator.count("list")
        page.wait_for_timeout(2000)  # five answers' time: a fan-out still running would read more
        assert simulator.count("list") == reads < 40, reads
        expect(page.locator("table.dataTable:visible")).to_have_count(0)
        check_layout(page)
        screenshot(page, "audit-dashboard-cancelled")


def test_listener_view_shows_messages_live(page: Page, voila: str) -> None:
    open_app(page, voila, "listener_view", theme="dark")
    expect(page.get_by_text("No messages yet.")).to_be_visible(timeout=TIMEOUT)  # the checks sent nothing
    page.get_by_role("button", name="Send a test message").click()
    expect(page.get_by_text("1 message(s)")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text("CarrierService").first).to_be_visible()
    table = page.locator("table.dataTable")  # the same sortable, searchable table as the other apps
    expect(table).to_contain_text("CarrierService", timeout=TIMEOUT)
    expect(page.get_by_role("button", name="CSV")).to_be_visible()
    expect(page.get_by_text("No messages yet.")).to_be_hidden()
    assert "listener-app-pw" not in page.inner_text("body")
    assert labels_cut(page) == [] and low_contrast(page) == []
    screenshot(page, "listener-view-dark")
