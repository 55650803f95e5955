"""AuditDashboard: paste or load account names, run an audit, see the findings and the chart."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from tskit._models import SERVICE_CATALOGUE
from tskit.widgets._common import Panel
from tskit.widgets._manager import connection_badge

if TYPE_CHECKING:
    from tskit._facade import ThingSpace
    from tskit.audit import Audit


def _names(text: str) -> list[str]:
    """Account names from pasted text: one per line or separated by commas or spaces; '#' comments."""
    names: list[str] = []
    for line in text.splitlines():
        names += line.split("#", 1)[0].replace(",", " ").split()
    return names


class AuditDashboard(Panel):
    """Audit many accounts from the notebook: a thin view over ``ts.aaudit``.

    Args:
        ts: The connection to use; default ``tskit.connect()``.
        accounts: Account names to start with; default the simulator's accounts.

    Attributes:
        audit: The last audit, or ``None``.
    """

    def __init__(self, ts: ThingSpace | None = None, *, accounts: list[str] | None = None) -> None:
        if ts is None:
            import tskit

            ts = tskit.connect()
        self.ts = ts
        self.audit: Audit | None = None
        start = accounts if accounts is not None else (ts.simulator.accounts if ts.simulator else [])
        self.badge = widgets.HTML(connection_badge(ts))
        self.accounts = widgets.Textarea(
            value="\n".join(start), placeholder="one account name per line", description="Accounts", rows=6
        )
        self.upload = widgets.FileUpload(accept=".txt,.csv", multiple=False, description="Load list")
        self.expect = widgets.TagsInput(value=[], allowed_tags=list(SERVICE_CATALOGUE), allow_duplicates=False)
        self.concurrency = widgets.BoundedIntText(value=16, min=1, max=256, description="Concurrency")
        self.run_button = widgets.Button(description="Run audit", button_style="primary", icon="search")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="Accounts")
        self.summary = widgets.HTML()
        self.snapshot_path = widgets.Text(value="audit.json", description="Snapshot")
        self.export = widgets.Button(description="Save snapshot", icon="save", disabled=True)
        self.download = widgets.HTML()
        super().__init__(
            [
                self.badge,
                widgets.HBox([self.accounts, self.upload]),
                widgets.HBox([widgets.Label("Expected services"), self.expect]),
                widgets.HBox([self.concurrency, self.run_button, self.progress]),
                self.summary,
                widgets.HBox([self.snapshot_path, self.export]),
                self.download,
            ]
        )
        self.upload.observe(self._load_upload, names="value")
        self.run_button.on_click(lambda _: self.start())
        self.export.on_click(lambda _: self.save())

    def _load_upload(self, change: Any) -> None:
        for item in change["new"]:
            text = bytes(item["content"]).decode("utf-8", errors="replace")
            self.accounts.value = "\n".join(_names(text))
            self.say(f"Loaded {len(_names(text))} account names from {item['name']}.", "info")

    def start(self) -> None:
        """Run the audit over the account names in the text area."""
        names = _names(self.accounts.value)
        if not names:
            self.say("Paste or load some account names first.", "error")
            return
        self.progress.max, self.progress.value = len(dict.fromkeys(names)), 0

        def advance(done: int, total: int) -> None:
            self.progress.max, self.progress.value = total, done

        async def audit() -> None:
            result = await self.ts.aaudit(
                names, list(self.expect.value), concurrency=self.concurrency.value, progress=False, on_progress=advance
            )
            self.audit = result
            self.summary.value = result._repr_html_()
            counts = ", ".join(f"{n} {s}" for s, n in result.counts().items() if n) or "no findings"
            unread = f", {len(result.error_list)} unreadable" if result.error_list else ""
            self.say(f"Audited {len(result.accounts)} accounts: {counts}{unread}.", "ok")

        self.run(f"Auditing {len(names)} accounts", audit)

    def save(self) -> None:
        """Save the last audit as a snapshot file, and offer it as a download."""
        if self.audit is None:
            self.say("Run an audit first.", "error")
            return
        try:
            path = self.audit.save(Path(self.snapshot_path.value.strip() or "audit.json"))
        except (OSError, ValueError) as error:
            self.say(f"Could not save the snapshot: {error}", "error")
            return
        data = base64.b64encode(path.read_bytes()).decode()
        kind = "application/json" if path.suffix == ".json" else "text/csv"
        self.download.value = (
            f'<a download="{html.escape(path.name)}" href="data:{kind};base64,{data}">'
            f"Download {html.escape(path.name)}</a>"
        )
        self.say(f"Saved the snapshot to {path} (no passwords in it).", "ok")

    def _update_buttons(self) -> None:
        self.run_button.disabled = self.busy
        self.export.disabled = self.busy or self.audit is None
