"""PlanView as a Voilà app at 700 px: the whole plan in view before Apply is confirmed, then applied."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.browser.apps import TIMEOUT, check_layout, lines_of, open_app, screenshot

playwright = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Locator, Page, expect  # noqa: E402

pytestmark = pytest.mark.browser
WIDTH = 700
SECRETS = ("rotated-ops-pw", "new-listener-pw")


def right_edge(locator: Locator) -> float:
    box = locator.bounding_box()
    assert box is not None
    return float(box["x"] + box["width"])


def test_the_whole_plan_is_in_view_before_apply_and_the_journal_downloads(page: Page, voila: str) -> None:
    page.set_viewport_size({"width": WIDTH, "height": 1000})
    open_app(page, voila, "plan_view", theme="dark")
    status = page.locator(".tskit-status")
    expect(status).to_contain_text("Planned: 4 changes.", timeout=TIMEOUT)
    plan = page.locator(".tskit-plan")
    # a password row says what becomes of it, in words
    expect(plan).to_contain_text("same password, sent again")
    expect(plan).to_contain_text("password changed")
    expect(plan).not_to_contain_text("password unchanged")
    expect(plan).not_to_contain_text("********")

    page.get_by_role("button", name="Apply…").click()
    expect(page.get_by_text("Apply 4 changes to embedded simulator?")).to_be_visible(timeout=TIMEOUT)
    # before the confirmation: every column, the new values and the whole warning inside the page
    for header in ("account_name", "service_name", "action", "field", "old", "new"):
        assert right_edge(plan.locator("th", has_text=re.compile(f"^{header}$"))) <= WIDTH - 10, header
    for cell in plan.locator("tbody td:last-child").all():
        assert right_edge(cell) <= WIDTH - 10
    warning = plan.get_by_text("2 listener passwords would be set or changed")
    assert right_edge(warning) <= WIDTH - 10
    assert warning.evaluate("(e) => e.scrollWidth <= e.clientWidth")
    assert set(lines_of(plan.locator("tbody td:first-child"))) == {1}  # account names on one line
    check_layout(page)
    screenshot(page, "plan-view-confirm-dark-700")

    page.get_by_role("button", name="Yes, apply").click()
    expect(status).to_contain_text(
        "Applied: 4 done; the journal of every step can be downloaded above.", timeout=TIMEOUT
    )
    expect(page.get_by_text("4/4", exact=True)).to_be_visible()
    expect(status).not_to_contain_text("/")  # no path of the kernel's machine
    link = page.get_by_text(re.compile(r"^Download .+\.jsonl$"))
    with page.expect_download(timeout=TIMEOUT) as download:
        link.click()
    journal = Path(download.value.path()).read_text()
    outcomes = [line.get("outcome") for line in map(json.loads, journal.splitlines())]
    assert outcomes.count("done") == 4, journal[:500]
    body = page.inner_text("body")
    assert not any(secret in journal or secret in body for secret in SECRETS)
    expect(plan).to_contain_text("No changes.", timeout=TIMEOUT)  # planned again: ThingSpace holds it all
    check_layout(page)
    screenshot(page, "plan-view-applied-dark-700")
