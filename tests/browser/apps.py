"""Helpers of the browser tests: open an app, measure contrast, find cut labels, keep screenshots."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import ARTIFACTS

TIMEOUT = 60_000

# The contrast of an element's text against what is behind it (WCAG 2 relative luminance). The
# colour behind is that of the nearest opaque background, with the translucent ones above it laid
# over it (a button's rgba(255,255,255,0.15) over a dark page); a translucent text colour too.
_CONTRAST_JS = """
(element) => {
  const rgba = (text) => {
    const parts = (text.match(/[\\d.]+/g) || []).map(Number);
    return parts.length >= 3 ? [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1] : null;
  };
  const over = (top, below) => top.slice(0, 3).map((c, i) => c * top[3] + below[i] * (1 - top[3]));
  const luminance = ([r, g, b]) => {
    const lin = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const layers = [];
  let back = [255, 255, 255];
  for (let node = element; node; node = node.parentElement) {
    const colour = rgba(getComputedStyle(node).backgroundColor);
    if (!colour || colour[3] === 0) continue;
    if (colour[3] >= 1) { back = colour.slice(0, 3); break; }
    layers.push(colour);
  }
  for (const layer of layers.reverse()) back = over(layer, back);
  const text = rgba(getComputedStyle(element).color) || [0, 0, 0, 1];
  const fore = over(text, back);
  const [a, b] = [luminance(fore), luminance(back)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}
"""

# The WCAG contrast of every text the app shows, against the colour behind it: each element's own
# text (badges, table cells, labels, links, enabled buttons) and the values of its fields.
# Disabled controls are left out, as WCAG leaves them out.
_LOW_CONTRAST_JS = (
    (
        """
() => {
  const contrast = CONTRAST;
  const ownText = (e) => [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  const shown = (e) => {
    const box = e.getBoundingClientRect();
    const style = getComputedStyle(e);
    return box.width > 0 && box.height > 0 && style.visibility !== 'hidden' && style.opacity !== '0';
  };
  const root = document.querySelector('#rendered_cells') || document.body;
  const items = [...root.querySelectorAll('*')]
    .filter((e) => !(e instanceof SVGElement) && !e.closest(':disabled, .mod-disabled, [disabled], .disabled'))
    .filter((e) => (ownText(e) || (e.matches(FIELDS) && e.value)) && shown(e));
  return items.map((e) => [(e.value || e.textContent).trim().slice(0, 40), contrast(e)])
    .filter(([, ratio]) => ratio < 4.5).map(([text, ratio]) => `${text}: ${ratio.toFixed(2)}`);
}
"""
    )
    .replace("CONTRAST", _CONTRAST_JS.strip())
    .replace("FIELDS", "'input:not([type=checkbox]):not([type=radio]), select, textarea'")
)

_CUT_LABELS_JS = """
() => [...document.querySelectorAll('.widget-label, .jupyter-button, .tskit-panel button')]
  .filter((e) => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
  .map((e) => e.textContent.trim())
"""

# Only a table may scroll sideways (with its scroll bar in sight), never the app around it.
_TABLE_SCROLLERS = "'.tskit-scroll, .dt-layout-table, .dt-layout-cell'"

# Whatever ends past the app's right edge and cannot be scrolled into view by its table's own
# scroll bar: a column of a table cut off, a panel's border under the window's edge (or pushing
# the page into a sideways scroll). The app's right edge is that of the cells' area (or the
# window's, if that is nearer).
_OVERFLOW_JS = """
() => {
  const area = document.querySelector('#rendered_cells') || document.body;
  const style = getComputedStyle(area);
  const right = Math.min(document.documentElement.clientWidth,
    area.getBoundingClientRect().right - parseFloat(style.paddingRight || '0')) + 1;
  const scrolls = (e) => {
    for (let node = e.parentElement; node && node !== area; node = node.parentElement) {
      const s = getComputedStyle(node);
      if (node.matches(TABLES) && ['auto', 'scroll'].includes(s.overflowX) && node.scrollWidth > node.clientWidth
          && node.offsetHeight > node.clientHeight && node.getBoundingClientRect().right <= right) return true;
    }
    return false;
  };
  return [...area.querySelectorAll('.jupyter-widgets, th, td, p, .tskit-warning, .tskit-problem, .tskit-download')]
    .filter((e) => e.getBoundingClientRect().width > 0 && e.getBoundingClientRect().right > right && !scrolls(e))
    .map((e) => `${e.className || e.tagName}: ${(e.textContent || '').trim().slice(0, 30)} `
      + `ends at ${Math.round(e.getBoundingClientRect().right)} > ${Math.round(right)}`);
}
""".replace("TABLES", _TABLE_SCROLLERS)

# Status lines that show a bar with nothing in it.
_EMPTY_BARS_JS = """
() => [...document.querySelectorAll('.tskit-status')]
  .filter((e) => !e.textContent.trim() && e.getBoundingClientRect().height > 0.5)
  .map((e) => `${e.getBoundingClientRect().height}px`)
"""

# Labels of the controls in view, counted: two controls must never share a label.
_LABELS_JS = """
() => [...document.querySelectorAll(
    '.widget-label, .widget-label-basic, .jupyter-widget-Collapse-header, .lm-TabBar-tabLabel')]
  .filter((e) => e.getBoundingClientRect().width > 0 && e.textContent.trim())
  .map((e) => e.textContent.trim())
"""

# What scrolls sideways: a table, with the height of its scroll bar (it must show that it
# scrolls), or anything else, which must not scroll at all.
_SCROLLERS_JS = """
() => [...document.querySelectorAll('#rendered_cells, #rendered_cells *')]
  .filter((e) => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX) && e.scrollWidth > e.clientWidth + 1)
  .map((e) => [e.matches(TABLES) ? 'table' : `${e.tagName}.${e.className}`, e.offsetHeight - e.clientHeight])
""".replace("TABLES", _TABLE_SCROLLERS)


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


def badge_contrasts(page: Any) -> dict[str, float]:
    """The contrast of each badge in view (a span with a background of its own), by its text."""
    badges = page.locator('span[style*="background"]:visible')
    return {badge.inner_text().strip(): float(badge.evaluate(_CONTRAST_JS)) for badge in badges.all()}


def low_contrast(page: Any) -> list[str]:
    """Every text in view (badges, cells, labels, links, buttons, field values) below 4.5:1."""
    return list(page.evaluate(_LOW_CONTRAST_JS))


def labels_cut(page: Any) -> list[str]:
    """Labels and buttons whose text does not fit."""
    return list(page.evaluate(_CUT_LABELS_JS))


def overflowing(page: Any) -> list[str]:
    """What ends past the app's right edge with no scroll bar to reach it (empty: everything fits)."""
    return list(page.evaluate(_OVERFLOW_JS))


def empty_status_bars(page: Any) -> list[str]:
    """Status lines drawn as a bar with no text in it."""
    return list(page.evaluate(_EMPTY_BARS_JS))


def repeated_labels(page: Any) -> list[str]:
    """Labels in view that more than one control has."""
    labels = list(page.evaluate(_LABELS_JS))
    return sorted({label for label in labels if labels.count(label) > 1})


def scrolled_sideways(page: Any) -> list[tuple[str, int]]:
    """What scrolls sideways ("table" or what else) and the height of its scroll bar (0: none drawn)."""
    return [(what, int(bar)) for what, bar in page.evaluate(_SCROLLERS_JS)]


_LINES_JS = """
(cells) => cells.map((cell) => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  return new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top))).size;
})
"""


def lines_of(cells: Any) -> list[int]:
    """How many lines the text of each cell (a locator of many) takes: names must take one.

    A table drawn again (DataTables does, once its data arrives) is waited for: a few tries
    until every cell is laid out.
    """
    lines: list[int] = []
    for _ in range(40):
        lines = list(cells.evaluate_all(_LINES_JS))
        if lines and 0 not in lines:
            break
        cells.page.wait_for_timeout(250)
    return lines


def check_layout(page: Any) -> None:
    """What every app must be at any width and theme: fits or scrolls visibly, readable, no empty bar."""
    assert overflowing(page) == []
    scrolled = scrolled_sideways(page)
    assert all(what == "table" and bar > 0 for what, bar in scrolled), f"scrolled sideways: {scrolled}"
    assert low_contrast(page) == []
    assert labels_cut(page) == []
    assert empty_status_bars(page) == []
    assert repeated_labels(page) == []


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
