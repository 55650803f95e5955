"""Helpers of the browser tests: open an app, measure contrast, find cut labels, keep screenshots."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import ARTIFACTS

TIMEOUT = 60_000

# The contrast of the status line's text against what is behind it (WCAG 2 relative luminance).
_CONTRAST_JS = """
(element) => {
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const lin = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  let back = null;
  for (let node = element; node; node = node.parentElement) {
    const colour = rgb(getComputedStyle(node).backgroundColor);
    if (colour.length >= 3 && (colour.length < 4 || colour[3] > 0)) { back = colour; break; }
  }
  back = back || [255, 255, 255];
  const fore = rgb(getComputedStyle(element).color);
  const [a, b] = [luminance(fore), luminance(back)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}
"""

# Every badge (a span with a background of its own) and every enabled button, under 4.5:1.
_LOW_CONTRAST_JS = (
    """
() => {
  const contrast = CONTRAST;
  const items = [...document.querySelectorAll('span[style*="background"], button.jupyter-button:not(:disabled)')]
    .filter((e) => e.offsetParent !== null && e.textContent.trim());
  return items.map((e) => [e.textContent.trim(), contrast(e)]).filter(([, ratio]) => ratio < 4.5)
    .map(([text, ratio]) => `${text}: ${ratio.toFixed(2)}`);
}
"""
).replace("CONTRAST", _CONTRAST_JS.strip())

_CUT_LABELS_JS = """
() => [...document.querySelectorAll('.widget-label, .jupyter-button, .tskit-panel button')]
  .filter((e) => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
  .map((e) => e.textContent.trim())
"""


def open_app(page: Any, voila: str, name: str, theme: str = "light") -> None:
    """Open a notebook as its Voilà app and wait until the app's panel is there."""
    from playwright.sync_api import expect

    page.goto(f"{voila}/voila/render/{name}.ipynb?theme={theme}", timeout=TIMEOUT)
    expect(page.locator(".tskit-panel, .tskit-messages, .widget-button").first).to_be_visible(timeout=TIMEOUT)
    # the app shows only the app: no code, no traceback, no output of the checks
    assert page.locator(".jp-InputArea-editor:visible").count() == 0
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    assert "Traceback" not in page.inner_text("body")


def status_contrast(page: Any, selector: str = ".tskit-status") -> float:
    """The contrast ratio of the text of the status line (or of ``selector``), from 1 to 21."""
    return float(page.locator(selector).first.evaluate(_CONTRAST_JS))


def low_contrast(page: Any) -> list[str]:
    """Badges and enabled buttons whose text is below 4.5:1 against their background."""
    return list(page.evaluate(_LOW_CONTRAST_JS))


def labels_cut(page: Any) -> list[str]:
    """Labels and buttons whose text does not fit."""
    return list(page.evaluate(_CUT_LABELS_JS))


def screenshot(page: Any, name: str) -> None:
    """Keep a full-page screenshot in .ci/artifacts/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # Voila scrolls inside the page, so a full-page shot alone would cut the app: grow the window
    size = page.viewport_size or {"width": 1280, "height": 720}
    height = int(
        page.evaluate(
            "() => Math.max(document.body.scrollHeight, document.querySelector('#rendered_cells')?.scrollHeight || 0)"
        )
    )
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height + 40)})
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)
