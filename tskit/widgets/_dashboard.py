"""AuditDashboard: paste or load account names, run an audit, filter and export the findings."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from tskit._models import SERVICE_CATALOGUE
from tskit.widgets._common import Panel, data_table, export_name, field_layout, field_style, row, show_frame
from tskit.widgets._manager import connection_badge, on_enter

if TYPE_CHECKING:
    import pandas as pd

    from tskit._facade import ThingSpace
    from tskit.audit import Audit

ANY_RULE = ""


# a name only: the snapshot folder is the one place the form writes to
_SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(json|csv)", re.IGNORECASE)


def _names(text: str) -> list[str]:
    """Account names from pasted text: one per line or separated by commas or spaces; '#' comments."""
    names: list[str] = []
    for line in text.splitlines():
        names += line.split("#", 1)[0].replace(",", " ").split()
    return names


class AuditDashboard(Panel):
    """Audit many accounts from the notebook: a thin view over ``ts.aaudit``.

    The findings show in an interactive table (sort, search, pages, CSV and Excel export),
    filtered by severity (at or above) and by rule.

    Args:
        ts: The connection to use; default ``tskit.connect()``.
        accounts: Account names to start with; default the simulator's accounts.
        snapshot_dir: The only folder snapshots are saved in (the form takes a file name, never a
            path); default ``snapshots`` in tskit's config folder (``TSKIT_CONFIG_DIR``).

    Attributes:
        audit: The last audit, or ``None``.
        findings: The findings table; ``findings.df`` is what the filters let through.
        errors: The table of accounts that could not be read.
    """

    def __init__(
        self,
        ts: ThingSpace | None = None,
        *,
        accounts: list[str] | None = None,
        snapshot_dir: str | Path | None = None,
    ) -> None:
        if snapshot_dir is None:
            from tskit._fingerprint import config_dir

            snapshot_dir = config_dir() / "snapshots"
        self.snapshot_dir = Path(snapshot_dir)
        if ts is None:
            import tskit

            ts = tskit.connect()
        self.ts = ts
        self.audit: Audit | None = None
        start = accounts if accounts is not None else (ts.simulator.accounts if ts.simulator else [])
        self.badge = widgets.HTML(connection_badge(ts))
        self.accounts = widgets.Textarea(
            value="\n".join(start),
            placeholder="one account name per line",
            description="Accounts",
            rows=5,
            layout=field_layout(),
            style=field_style(),
        )
        self.upload = widgets.FileUpload(accept=".txt,.csv", multiple=False, description="Load list")
        self.expect = widgets.TagsInput(
            value=[], allowed_tags=list(SERVICE_CATALOGUE), allow_duplicates=False, layout={"width": "auto"}
        )
        self.concurrency = widgets.BoundedIntText(
            value=16,
            min=1,
            max=256,
            description="Concurrency",
            layout=field_layout(max_width="16em"),
            style=field_style(),
        )
        self.run_button = widgets.Button(description="Run audit", button_style="primary", icon="search")
        self.progress = widgets.IntProgress(
            value=0, min=0, max=1, description="Accounts", style=field_style(), layout=field_layout(max_width="28em")
        )
        self.summary = widgets.HTML()
        self.severity = widgets.Dropdown(
            options=[
                ("any severity", "info"),
                ("low and above", "low"),
                ("medium and above", "medium"),
                ("high only", "high"),
            ],
            value="info",
            description="Severity",
            layout=field_layout(max_width="22em"),
            style=field_style(),
        )
        self.rule = widgets.Dropdown(
            options=[("every rule", ANY_RULE)],
            value=ANY_RULE,
            description="Rule",
            layout=field_layout(max_width="26em"),
            style=field_style(),
        )
        self.shown = widgets.HTML()
        self.findings = data_table(shown=False, **export_name("audit-findings"))
        self.errors_title = widgets.HTML()
        self.errors = data_table(shown=False, **export_name("audit-unreadable"))
        self.snapshot_path = widgets.Text(
            value="audit.json",
            description="Snapshot",
            placeholder="a file name ending in .json or .csv",
            layout=field_layout(max_width="28em"),
            style=field_style(),
        )
        self.save_button = widgets.Button(description="Save snapshot", icon="save", disabled=True)
        self.download = widgets.HTML()
        super().__init__(
            [
                self.badge,
                row([self.accounts, self.upload]),
                row(
                    [
                        widgets.Label("Expected services", layout={"width": "auto"}),
                        self.expect,
                    ]
                ),
                row([self.concurrency, self.run_button, self.progress]),
                row([self.snapshot_path, self.save_button, self.download]),
                self.summary,
                row([self.severity, self.rule, self.shown]),
                self.findings,
                self.errors_title,
                self.errors,
            ]
        )
        self.upload.observe(self._load_upload, names="value")
        self.run_button.on_click(lambda _: self.start())
        self.save_button.on_click(lambda _: self.save())
        on_enter(self.snapshot_path, self.save)
        self.severity.observe(lambda _: self.filter(), names="value")
        self.rule.observe(lambda _: self.filter(), names="value")

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
            self._show(result)
            counts = ", ".join(f"{n} {s}" for s, n in result.counts().items() if n) or "no findings"
            unread = f", {len(result.error_list)} unreadable" if result.error_list else ""
            self.say(f"Audited {len(result.accounts)} accounts: {counts}{unread}.", "ok")

        self.run(f"Auditing {len(names)} accounts", audit)

    def _show(self, audit: Audit) -> None:
        from tskit.audit._display import html_overview

        self.audit = audit
        self.summary.value = html_overview(audit)
        rules = sorted({f.rule for f in audit.finding_list})
        keep = self.rule.value if self.rule.value in rules else ANY_RULE
        self.rule.options = [("every rule", ANY_RULE), *[(r, r) for r in rules]]
        self.rule.value = keep
        self.filter()
        errors = audit.errors
        self.errors_title.value = f"<b>{len(errors)} account(s) could not be read</b>" if len(errors) else ""
        if len(errors):
            show_frame(self.errors, errors)
        self.errors.layout.display = None if len(errors) else "none"

    def filtered(self) -> pd.DataFrame | None:
        """The findings the severity and rule filters let through, or ``None`` before an audit."""
        if self.audit is None:
            return None
        findings = self.audit.findings
        keep = findings["severity"] >= self.severity.value  # ordered categorical: at or above
        if self.rule.value != ANY_RULE:
            keep &= findings["rule"] == self.rule.value
        shown: pd.DataFrame = findings[keep].reset_index(drop=True)
        return shown

    def filter(self) -> None:
        """Show the findings the filters let through."""
        shown = self.filtered()
        if shown is None or self.audit is None:
            return
        total = len(self.audit.finding_list)
        self.shown.value = f"{len(shown)} of {total} finding(s)"
        show_frame(self.findings, shown)
        self.findings.layout.display = None if total else "none"

    def save(self) -> None:
        """Save the last audit as a snapshot file, and offer it as a download."""
        if self.audit is None:
            self.say("Run an audit first.", "error")
            return
        name = self.snapshot_path.value.strip() or "audit.json"
        if not _SNAPSHOT_NAME.fullmatch(name):
            self.say(
                "Please check Snapshot: a file name ending in .json or .csv (letters, digits, '-', '_', '.'; "
                "no folders)",
                "error",
            )
            return
        try:
            self.snapshot_dir.mkdir(parents=True, exist_ok=True)
            path = self.audit.save(self.snapshot_dir / name)
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
        self.save_button.disabled = self.busy or self.audit is None
