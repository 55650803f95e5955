"""The callback manager in a real browser: Voilà renders the notebook, chromium clicks through it."""

from __future__ import annotations

import pytest

from tests.browser.conftest import ARTIFACTS

playwright = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect  # noqa: E402

pytestmark = pytest.mark.browser
ACCOUNT = "0000123456-00003"
TIMEOUT = 60_000


def test_register_and_deregister_in_the_browser(page: Page, voila: str) -> None:
    page.goto(f"{voila}/voila/render/callback_manager.ipynb", timeout=TIMEOUT)
    expect(page.get_by_text("SIMULATOR", exact=True)).to_be_visible(timeout=TIMEOUT)
    # the notebook's own check cell listed 0000123456-00001
    expect(page.get_by_text("0000123456-00001: 2 callback(s) registered.")).to_be_visible(timeout=TIMEOUT)

    page.get_by_placeholder("0000123456-00001").fill(ACCOUNT)
    page.get_by_role("button", name="List callbacks").click()
    expect(page.get_by_text(f"No callbacks are registered for {ACCOUNT}.")).to_be_visible(timeout=TIMEOUT)

    page.get_by_placeholder("https://listener.example.com/carrier").fill("https://listener.example.com:8443/x")
    expect(page.get_by_text("port 8443 is not one ThingSpace delivers to")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_role("button", name="Register")).to_be_disabled()

    page.get_by_placeholder("https://listener.example.com/carrier").fill("https://listener.example.com/browser")
    page.get_by_placeholder("optional, 40 characters at most").fill("browser-user")
    page.get_by_placeholder("optional, never shown").fill("browser-secret")
    register = page.get_by_role("button", name="Register")
    expect(register).to_be_enabled(timeout=TIMEOUT)
    register.click()
    expect(page.get_by_text(f"Registered CarrierService for {ACCOUNT}.")).to_be_visible(timeout=TIMEOUT)
    table = page.locator("table.dataframe")
    expect(table).to_contain_text("https://listener.example.com/browser")
    expect(table).to_contain_text("browser-user")
    expect(table).not_to_contain_text("browser-secret")
    expect(page.get_by_placeholder("optional, never shown")).to_have_value("")

    page.get_by_role("tab", name="Deregister").click()
    page.get_by_role("button", name="Deregister…").click()
    expect(page.get_by_text(f"Deregister CarrierService of account {ACCOUNT}?")).to_be_visible(timeout=TIMEOUT)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "callback-manager.png"), full_page=True)
    page.get_by_role("button", name="Yes, deregister").click()
    expect(page.get_by_text(f"Deregistered CarrierService for {ACCOUNT}.")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text(f"No callbacks are registered for {ACCOUNT}.")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("table.dataframe")).to_have_count(0)
