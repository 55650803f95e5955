"""Two small widgets ipywidgets lacks: a status line screen readers announce, and a log that follows.

Both are anywidgets (anywidget comes with itables' widget): a few lines of JavaScript render
them, with the colours of JupyterLab's theme (``static/tskit.css``).
"""

from __future__ import annotations

from pathlib import Path

import anywidget
import ipywidgets as widgets
import traitlets

CSS = (Path(__file__).parent / "static" / "tskit.css").read_text(encoding="utf-8")

_STATUS_JS = """
function render({ model, el }) {
  const line = document.createElement("div");
  line.className = "tskit-status";
  // one live region that stays in the page: screen readers announce each new text in it
  line.setAttribute("role", "status");
  line.setAttribute("aria-live", "polite");
  const show = () => {
    line.textContent = model.get("value");
    line.dataset.kind = model.get("kind");
  };
  model.on("change:value", show);
  model.on("change:kind", show);
  show();
  el.appendChild(line);
}
export default { render };
"""

_LOG_JS = """
function render({ model, el }) {
  const log = document.createElement("pre");
  log.className = "tskit-log";
  log.setAttribute("role", "log");
  log.setAttribute("tabindex", "0");
  log.setAttribute("aria-label", model.get("label"));
  const show = () => {
    // follow the newest line, unless the reader scrolled up to read an older one
    const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
    log.textContent = model.get("value");
    if (atEnd) log.scrollTop = log.scrollHeight;
  };
  model.on("change:value", show);
  show();
  el.appendChild(log);
  requestAnimationFrame(() => { log.scrollTop = log.scrollHeight; });
}
export default { render };
"""


class StatusLine(anywidget.AnyWidget):
    """One line saying what happened last, announced to screen readers (``aria-live="polite"``).

    Attributes:
        value: The text (shown as text, never as HTML).
        kind: ``info``, ``ok``, ``error`` or ``busy``; sets the colour of its edge.
    """

    _esm = _STATUS_JS
    _css = CSS
    value = traitlets.Unicode("").tag(sync=True)
    kind = traitlets.Unicode("info").tag(sync=True)


class LogView(anywidget.AnyWidget):
    """A readable, scrollable log that keeps its newest line in view.

    Attributes:
        value: The whole text of the log.
        label: Its accessible name.
    """

    _esm = _LOG_JS
    _css = CSS
    value = traitlets.Unicode("").tag(sync=True)
    label = traitlets.Unicode("Details").tag(sync=True)


class SecretField(widgets.Password):
    """A password field whose keystrokes are not echoed back over the widget channel.

    ipywidgets 8 sends every value a browser sets back to all front ends ("echo_update"), so a
    password typed in one view would travel the channel again; its per-trait ``echo_update``
    switch turns that off for this field only.
    """

    value = traitlets.Unicode(help="String value").tag(sync=True, echo_update=False)
