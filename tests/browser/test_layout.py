"""Every app, in both themes, at 1280 and 700 px: nothing cut or hidden, every text readable.

Each app is brought to the state a person looks at most (a listing, an audit's findings, a
message received, a plan about to be applied) and checked: everything ends inside the page or
scrolls with a scroll bar in sight, every text reads at 4.5:1 or more, no label is cut or shared
by two controls, no status line is an empty bar. A screenshot of each is kept in .ci/artifacts/.
"""

from __future__ import annotations

import pytest

from tests.browser.apps import TIMEOUT, badge_contrasts, check_layout, lines_of, open_app, screenshot

playwright = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect  # noqa: E402

pytestmark = pytest.mark.browser
LISTED = "0000123456-00001"

_PAGE_IS_DARK = """
() => {
  const [r, g, b] = (getComputedStyle(document.body).backgroundColor.match(/[\\d.]+/g) || []).map(Number);
  return (r + g + b) / 3 < 80;
}
"""


def _callback_manager(page: Page) -> None:
    account = page.get_by_placeholder("0000123456-00001")
    account.fill(LISTED)
    account.press("Enter")
    expect(page.locator("table.dataTable")).to_contain_text("DeviceUsage", timeout=TIMEOUT)
    # account names are never broken inside their cells
    cells = page.locator("table.dataTable tbody td:first-child")
    lines = lines_of(cells)
    assert lines == [1, 1], (lines, cells.all_inner_texts())
    # the login form too: inside the page, and no label shared with the register form's
    page.get_by_text("Connect to a real ThingSpace").click()
    expect(page.get_by_label("UWS password", exact=True)).to_be_visible(timeout=TIMEOUT)


def _audit_dashboard(page: Page) -> None:
    accounts = page.get_by_label("Accounts", exact=True)
    accounts.fill(accounts.input_value() + "\n9999999999-00001")  # so the unreadable accounts' table shows too
    page.get_by_role("button", name="Run audit").click()
    expect(page.locator(".tskit-status")).to_contain_text("Audited 41 accounts", timeout=TIMEOUT)
    expect(page.locator(".tskit-status")).to_contain_text("1 unreadable")
    expect(page.get_by_text("41/41", exact=True)).to_be_visible()  # the bar's count, in words
    expect(page.get_by_text("1 account(s) could not be read")).to_be_visible()


def _listener_view(page: Page) -> None:
    page.get_by_role("button", name="Send a test message").click()
    expect(page.get_by_text("1 message(s)")).to_be_visible(timeout=TIMEOUT)


def _plan_view(page: Page) -> None:
    expect(page.locator(".tskit-status")).to_contain_text("Planned: 4 changes", timeout=TIMEOUT)
    page.get_by_role("button", name="Apply…").click()
    expect(page.get_by_text("Apply 4 changes to embedded simulator?")).to_be_visible(timeout=TIMEOUT)
    # before the confirmation, the whole plan fits: no column to scroll to, none cut
    scroll = page.locator(".tskit-plan .tskit-scroll")
    assert scroll.evaluate("(e) => e.scrollWidth <= e.clientWidth"), "the plan's table is wider than the page"
    lines = lines_of(page.locator(".tskit-plan tbody td:first-child"))
    assert lines and set(lines) == {1}, lines  # account names on one line
    # the action badges, measured in this theme: "update" and "keep" were 3.1:1 and 4.4:1
    badges = badge_contrasts(page)
    assert {"update", "create", "delete", "2 update", "1 keep"} <= set(badges), badges
    assert min(badges.values()) >= 4.5, badges


APPS = {
    "callback_manager": _callback_manager,
    "audit_dashboard": _audit_dashboard,
    "listener_view": _listener_view,
    "plan_view": _plan_view,
}


@pytest.mark.parametrize("width", [1280, 700])
@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("app", list(APPS))
def test_every_app_fits_and_reads_well(page: Page, shared_voila: str, app: str, theme: str, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    open_app(page, shared_voila, app, theme=theme)
    assert page.evaluate(_PAGE_IS_DARK) == (theme == "dark")
    APPS[app](page)
    check_layout(page)
    screenshot(page, f"{app.replace('_', '-')}-{theme}-{width}")
