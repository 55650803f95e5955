"""The audit dashboard and the listener view as Voilà apps, in chromium, light and dark."""

from __future__ import annotations

import pytest

from tests.browser.apps import TIMEOUT, labels_cut, low_contrast, open_app, screenshot, status_contrast

playwright = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect  # noqa: E402

pytestmark = pytest.mark.browser


def test_audit_dashboard_filters_and_exports(page: Page, voila: str) -> None:
    open_app(page, voila, "audit_dashboard")
    expect(page.locator(".tskit-status")).to_have_text("")  # the check cell did not run the audit
    page.get_by_role("button", name="Run audit").click()
    status = page.locator(".tskit-status")
    expect(status).to_contain_text("Audited 40 accounts", timeout=TIMEOUT)
    expect(page.get_by_text("100 of 100 finding(s)")).to_be_visible()
    table = page.locator("table.dataTable").first
    expect(table.locator("tbody tr")).to_have_count(10)  # pages: Save stays above the fold
    expect(page.get_by_role("button", name="Save snapshot")).to_be_in_viewport()

    page.get_by_label("Severity", exact=True).select_option(label="high only")
    expect(page.get_by_text("84 of 100 finding(s)")).to_be_visible(timeout=TIMEOUT)
    severities = table.locator("tbody tr td:nth-child(4)").all_inner_texts()
    assert severities and set(severities) == {"high"}
    page.get_by_label("Rule", exact=True).select_option("missing-service")
    expect(page.get_by_text("16 of 100 finding(s)")).to_be_visible(timeout=TIMEOUT)

    with page.expect_download(timeout=TIMEOUT) as download:
        page.get_by_role("button", name="Excel").first.click()
    assert download.value.suggested_filename == "audit-findings.xlsx"
    assert labels_cut(page) == []
    assert low_contrast(page) == []  # the severity badges ("8 low") and the buttons
    # the tables use the page's width, and account names stay on one line
    width = page.locator("table.dataTable").first.evaluate("(e) => e.getBoundingClientRect().width")
    assert width > 1100, width
    heights = table.locator("tbody tr td:first-child").evaluate_all("(cells) => cells.map((c) => c.clientHeight)")
    assert heights and max(heights) < 30, heights
    screenshot(page, "audit-dashboard")


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
    assert labels_cut(page) == []
    assert low_contrast(page) == []
    screenshot(page, "audit-dashboard-dark-700px")


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
