"""The callback manager in a real browser: Voilà renders the notebook, chromium clicks through it."""

from __future__ import annotations

import re

import pytest

from tests.browser.apps import TIMEOUT, labels_cut, low_contrast, open_app, screenshot, status_contrast

playwright = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect  # noqa: E402

pytestmark = pytest.mark.browser
ACCOUNT = "0000123456-00003"
LISTED = "0000123456-00001"
REGISTER = re.compile(r"^\W*Register$")  # the icon may add a character before the word


def test_register_replace_and_deregister_in_the_browser(page: Page, voila: str) -> None:
    open_app(page, voila, "callback_manager")
    # the app opens as a person finds it: no check has listed an account, no problem is shouted
    expect(page.locator(".tskit-status").first).to_have_text("")
    expect(page.locator(".tskit-problem")).to_have_count(0)
    expect(page.locator("table.dataTable")).to_be_hidden()
    expect(page.locator(".tskit-status").first).to_have_attribute("aria-live", "polite")

    account = page.get_by_placeholder("0000123456-00001")
    account.fill(ACCOUNT)
    account.press("Enter")  # Enter lists
    expect(page.get_by_text(f"No callbacks are registered for {ACCOUNT}.")).to_be_visible(timeout=TIMEOUT)
    assert status_contrast(page) >= 4.5

    url = page.get_by_placeholder("https://listener.example.com/carrier")
    url.fill("https://listener.example.com:8443/x")
    expect(page.get_by_role("alert")).to_contain_text("URL: port 8443 is not one ThingSpace delivers to")
    expect(page.get_by_role("alert")).to_contain_text("tick “Allow any port”")
    expect(page.get_by_role("button", name=REGISTER)).to_be_disabled()

    url.fill("https://callbacks.tskit-ops.net/browser")
    page.get_by_placeholder("optional, 40 characters at most").fill("browser-user")
    page.get_by_placeholder("optional, never shown").fill("browser-secret")
    register = page.get_by_role("button", name=REGISTER)
    expect(register).to_be_enabled(timeout=TIMEOUT)
    assert low_contrast(page) == []  # Register, List callbacks, the SIMULATOR badge
    service = page.get_by_label("Service", exact=True)
    assert service.evaluate("(e) => e.scrollWidth <= e.clientWidth"), "the service list is cut"
    register.click()
    expect(page.get_by_text(f"Registered CarrierService for {ACCOUNT}.")).to_be_visible(timeout=TIMEOUT)
    table = page.locator("table.dataTable")
    expect(table).to_contain_text("https://callbacks.tskit-ops.net/browser")
    expect(table).to_contain_text("browser-user")
    expect(table).not_to_contain_text("browser-secret")
    expect(page.get_by_placeholder("optional, never shown")).to_have_value("")

    # registering again replaces: the page says what is replaced, and an empty password is a choice
    url.fill("https://callbacks.tskit-ops.net/replaced")
    register.click()
    expect(page.get_by_text("already sends to")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_role("button", name="Yes, register")).to_be_disabled()
    page.get_by_text("Yes, register it without a password").click()
    expect(page.get_by_role("button", name="Yes, register")).to_be_enabled(timeout=TIMEOUT)
    screenshot(page, "callback-manager-replace")
    page.get_by_role("button", name="Yes, register").click()
    expect(table).to_contain_text("https://callbacks.tskit-ops.net/replaced", timeout=TIMEOUT)

    # the table exports what it shows
    with page.expect_download(timeout=TIMEOUT) as download:
        page.get_by_role("button", name="CSV").click()
    assert download.value.suggested_filename == f"callbacks-{ACCOUNT}.csv"

    page.get_by_role("tab", name="Deregister").click()
    page.get_by_role("button", name="Deregister…").click()
    expect(page.get_by_text(f"Deregister CarrierService of account {ACCOUNT}?")).to_be_visible(timeout=TIMEOUT)
    screenshot(page, "callback-manager")
    page.get_by_role("button", name="Yes, deregister").click()
    expect(page.get_by_text(f"Deregistered CarrierService for {ACCOUNT}.")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text(f"No callbacks are registered for {ACCOUNT}.")).to_be_visible(timeout=TIMEOUT)

    # a failed list leaves no rows of the account before it, and nothing to deregister
    account.fill(LISTED)
    page.get_by_role("button", name="List callbacks").click()
    expect(page.locator("table.dataTable")).to_contain_text("DeviceUsage", timeout=TIMEOUT)
    # the table uses the page's width; account names are never broken inside their cells
    width = page.locator("table.dataTable").first.evaluate("(e) => e.getBoundingClientRect().width")
    assert width > 1100, width
    heights = page.locator("table.dataTable tbody td:first-child").evaluate_all(
        "(cells) => cells.map((c) => c.clientHeight)"
    )
    assert heights and max(heights) < 30, heights
    # a malformed account: the summary no longer names the account listed before
    account.fill("0000123456 00001")
    page.get_by_role("button", name="List callbacks").click()
    expect(page.locator(".tskit-status").first).to_contain_text("Please check Account", timeout=TIMEOUT)
    expect(page.get_by_text("No account listed: check the account name above.")).to_be_visible()
    expect(page.get_by_text(f"{LISTED}: 2 callback(s)", exact=True)).to_have_count(0)
    expect(page.locator("table.dataTable")).not_to_be_visible()
    account.fill("9999999999-00001")
    page.get_by_role("button", name="List callbacks").click()
    expect(page.locator(".tskit-status").first).to_contain_text("AccountNotFound", timeout=TIMEOUT)
    expect(page.locator("table.dataTable")).not_to_be_visible()
    expect(page.get_by_role("button", name="Deregister…")).to_be_disabled()


def test_dark_theme_and_a_narrow_window(page: Page, voila: str) -> None:
    page.set_viewport_size({"width": 700, "height": 1000})
    open_app(page, voila, "callback_manager", theme="dark")
    account = page.get_by_placeholder("0000123456-00001")
    account.fill(LISTED)
    account.press("Enter")
    expect(page.locator("table.dataTable")).to_contain_text("DeviceUsage", timeout=TIMEOUT)
    ratio = status_contrast(page)
    assert ratio >= 4.5, f"the status line's contrast on the dark theme is {ratio:.1f}:1"
    page.get_by_text("Details", exact=True).first.click()  # the log: readable, and at its newest line
    log = page.locator(".tskit-log").first
    expect(log).to_contain_text(f"Listing the callbacks of {LISTED}", timeout=TIMEOUT)
    assert status_contrast(page, ".tskit-log") >= 4.5
    assert log.evaluate("(e) => e.scrollHeight - e.scrollTop - e.clientHeight") < 8
    # at 700 px every column is still there (the password column too) and no label is cut
    for header in ("account_name", "service_name", "url", "username", "password"):
        expect(page.locator("table.dataTable th", has_text=header)).to_be_visible()
    assert labels_cut(page) == [] and low_contrast(page) == []
    password = page.get_by_placeholder("optional, never shown")
    box = password.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 700
    screenshot(page, "callback-manager-dark-700px")
