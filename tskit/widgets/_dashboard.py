"""AuditDashboard: paste or load account names, run an audit, filter and export the findings."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import ipywidgets as widgets
import pandas as pd

import tskit
from tskit._addresses import is_documentation_address, is_documentation_name
from tskit._fingerprint import config_dir
from tskit._models import SERVICE_CATALOGUE
from tskit.widgets._common import (
    Panel,
    Progress,
    connection_badge,
    data_table,
    download_link,
    export_name,
    field_layout,
    field_style,
    on_enter,
    row,
    show_frame,
)

if TYPE_CHECKING:
    from tskit._facade import ThingSpace
    from tskit.audit import Audit, Finding

ANY_RULE = ""
#: The words for the findings set apart, on their badge and bar.
DOCUMENTATION_HOSTS = "on documentation hosts"


# a name only: the snapshot folder is the one place the form writes to
_SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(json|csv)", re.IGNORECASE)


def documentation_host(url: str) -> bool:
    """Whether a listener URL's host is reserved for documentation: example.com, *.test, 203.0.113.0/24, ..."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    try:
        return is_documentation_address(ipaddress.ip_address(host))
    except ValueError:
        return bool(host) and is_documentation_name(host)


def documentation_findings(audit: Audit) -> set[Finding]:
    """The findings that only say a listener is on a host reserved for documentation.

    Such a host is a placeholder (example.com) that ThingSpace can never deliver to; on the
    simulator's demo fleet every healthy listener has one. Other findings about the same
    listener (plain HTTP, no credentials) are kept with the rest.
    """
    listeners = {(r.account_name, r.service_name) for r in audit.records if documentation_host(r.url)}
    return {
        f for f in audit.finding_list if f.rule == "unreachable-host" and (f.account_name, f.service_name) in listeners
    }


def _names(text: str) -> list[str]:
    """Account names from pasted text: one per line or separated by commas or spaces; '#' comments."""
    names: list[str] = []
    for line in text.splitlines():
        names += line.split("#", 1)[0].replace(",", " ").split()
    return names


class AuditDashboard(Panel):
    """Audit many accounts from the notebook: a thin view over ``ts.aaudit``.

    The findings show in an interactive table (sort, search, pages, CSV and Excel export),
    filtered by severity (at or above) and by rule. Findings that only say a listener's host is
    reserved for documentation (example.com) are counted apart and hidden until asked for, so
    that they do not bury the others. *Cancel* stops an audit: accounts not yet read are not.

    Args:
        ts: The connection to use; default ``tskit.connect()``.
        accounts: Account names to start with; default the simulator's accounts.
        snapshot_dir: The only folder snapshots are saved in (the form takes a file name, never a
            path); default ``snapshots`` in tskit's config folder (``TSKIT_CONFIG_DIR``).

    Attributes:
        audit: The last audit, or ``None``.
        findings: The findings table; ``findings.df`` is what the filters let through.
        errors: The table of accounts that could not be read.
        documentation: Whether the findings about documentation hosts are shown.
    """

    def __init__(
        self,
        ts: ThingSpace | None = None,
        *,
        accounts: list[str] | None = None,
        snapshot_dir: str | Path | None = None,
    ) -> None:
        if snapshot_dir is None:
            snapshot_dir = config_dir() / "snapshots"
        self.snapshot_dir = Path(snapshot_dir)
        if ts is None:
            ts = tskit.connect()
        self.ts = ts
        self.audit: Audit | None = None
        self._apart: set[Finding] = set()  # the findings about documentation hosts, of the audit shown
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
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.progress = Progress("Read", max_width="24em")
        self.summary = widgets.HTML()
        self.documentation = widgets.Checkbox(value=False, indent=False, layout={"width": "auto"})
        self.documentation_help = widgets.HTML()
        self.documentation_box = widgets.VBox(
            [self.documentation_help, self.documentation], layout=widgets.Layout(display="none")
        )
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
                row([self.concurrency, self.run_button, self.cancel_button, self.progress]),
                row([self.snapshot_path, self.save_button, self.download]),
                self.summary,
                self.documentation_box,
                row([self.severity, self.rule, self.shown]),
                self.findings,
                self.errors_title,
                self.errors,
            ]
        )
        self.upload.observe(self._load_upload, names="value")
        self.run_button.on_click(lambda _: self.start())
        self.cancel_button.on_click(lambda _: self.cancel_pending())
        self.documentation.observe(lambda _: self.filter(), names="value")
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
        if self.busy:
            self.note("ignored Run audit: busy with another operation")
            return
        self._clear()  # no findings of the last audit under the progress of this one
        self.progress.show(0, len(dict.fromkeys(names)))

        async def audit() -> None:
            result = await self.ts.aaudit(
                names,
                list(self.expect.value),
                concurrency=self.concurrency.value,
                progress=False,
                on_progress=self.progress.show,
            )
            self._show(result)
            self.say(f"Audited {len(result.accounts)} accounts: {self._counts_words(result)}.", "ok")

        self.run(f"Auditing {len(names)} accounts", audit)

    def cancelled_words(self, what: str) -> str:
        """How far the audit got; nothing of a part of the accounts is shown as if it were all."""
        return (
            f"Cancelled after {self.progress.value} of {self.progress.total} accounts were read: no findings "
            "are shown, since part of an audit says nothing of the accounts not read."
        )

    def _counts_words(self, audit: Audit) -> str:
        """The findings per severity, most severe first, then those set apart and the unreadable."""
        counts = Counter(str(f.severity) for f in audit.finding_list if f not in self._apart)
        words = ", ".join(f"{counts[s]} {s}" for s in audit.counts() if counts[s]) or "no findings"
        if self._apart:
            words += f", and {len(self._apart)} {DOCUMENTATION_HOSTS} (set apart)"
        unread = f", {len(audit.error_list)} unreadable" if audit.error_list else ""
        return words + unread

    def _clear(self) -> None:
        """Show no audit: before a new one, so nothing of the last one reads as its result."""
        self.audit, self._apart = None, set()
        self.summary.value = self.shown.value = self.errors_title.value = self.download.value = ""
        self.documentation_box.layout.display = "none"
        self.findings.layout.display = self.errors.layout.display = "none"
        self._update_buttons()

    def _show(self, audit: Audit) -> None:
        self.audit = audit
        apart = self._apart = documentation_findings(audit)
        self.summary.value = audit.overview_html(apart, DOCUMENTATION_HOSTS)
        count = len(apart)
        self.documentation_help.value = (
            f'<div class="tskit-help">{count} finding(s) only say that a listener is on a host reserved for '
            "documentation (example.com, *.test, 203.0.113.0/24, …). ThingSpace can never deliver there, but "
            "such hosts are placeholders, not typos: on the simulator's demo fleet every healthy listener has "
            "one. They are set apart so that the other findings are not buried under them.</div>"
        )
        self.documentation.description = f"Show the {count} finding(s) {DOCUMENTATION_HOSTS}"
        self.documentation_box.layout.display = None if count else "none"
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
        if not self.documentation.value:  # the frame's rows are the findings, in order
            keep &= pd.Series([f not in self._apart for f in self.audit.finding_list], index=findings.index)
        shown: pd.DataFrame = findings[keep].reset_index(drop=True)
        return shown

    def filter(self) -> None:
        """Show the findings the filters let through."""
        shown = self.filtered()
        if shown is None or self.audit is None:
            return
        total = len(self.audit.finding_list)
        apart = len(self._apart)
        hidden = f" ({apart} {DOCUMENTATION_HOSTS} hidden)" if apart and not self.documentation.value else ""
        self.shown.value = f"{len(shown)} of {total} finding(s){hidden}"
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
        kind = "application/json" if path.suffix == ".json" else "text/csv"
        self.download.value = download_link(path.name, path.read_bytes(), kind)
        # the file's name, not its path: the kernel's folders mean nothing in the browser (Binder)
        self.say(f"Saved the snapshot {path.name} (no passwords in it): download it with the button beside Save.", "ok")
        self.note(f"snapshot written to {path}")

    def _update_buttons(self) -> None:
        self.run_button.disabled = self.busy
        self.cancel_button.disabled = not self.busy
        self.save_button.disabled = self.busy or self.audit is None
