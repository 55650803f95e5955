"""PlanView: a desired state's plan coloured by action, an Apply button that asks first, progress, outcomes."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

import tskit
from tskit.state import MAX_PLAN_AGE, as_desired
from tskit.widgets._common import Panel, Progress, connection_badge, download_link, plural, row

if TYPE_CHECKING:
    from tskit._facade import ThingSpace
    from tskit.state import ApplyResult, DesiredState, Plan

_HIDDEN = "none"


class PlanView(Panel):
    """Plan a desired state, look at the changes, and apply them: a thin view over ``ts.aplan``.

    The plan is made at once. Apply asks for confirmation naming the number of changes, then
    shows progress and the outcome of every step, and offers the journal as a download.

    Args:
        ts: The connection to use; default ``tskit.connect()``.
        desired: A :class:`~tskit.state.DesiredState`, a mapping, or a TOML file's path.
        prune: Also delete listeners of named accounts that the state does not name.
        journal: The journal to append to; default a new file per apply.

    Attributes:
        plan: The last plan, or ``None``.
        result: The last apply's result, or ``None``.
    """

    def __init__(
        self,
        ts: ThingSpace | None = None,
        desired: DesiredState | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        prune: bool = False,
        journal: str | os.PathLike[str] | None = None,
    ) -> None:
        if ts is None:
            ts = tskit.connect()
        if desired is None:
            raise TypeError("PlanView needs a desired state: a DesiredState, a mapping or a TOML file")
        self.ts = ts
        # A file is read again at each plan (it, or its variables, may have been edited since).
        self.path = desired if isinstance(desired, str | os.PathLike) else None
        self.desired = as_desired(desired)
        self.prune = prune
        self.journal = journal
        self.plan: Plan | None = None
        self.result: ApplyResult | None = None
        self.badge = widgets.HTML(connection_badge(ts))
        self.refresh = widgets.Button(description="Plan again", icon="refresh")
        # the table wraps its long values and scrolls sideways if still too wide: no column is hidden
        self.table = widgets.HTML("<i>Planning…</i>", layout=widgets.Layout(width="auto", max_width="100%"))
        self.table.add_class("tskit-plan")
        self.apply_button = widgets.Button(description="Apply…", button_style="primary", icon="check", disabled=True)
        self.confirm_text = widgets.HTML()
        self.confirm = widgets.Button(description="Yes, apply", button_style="danger")
        self.cancel = widgets.Button(description="Cancel")
        self.confirm_box = widgets.VBox(
            [self.confirm_text, row([self.confirm, self.cancel])], layout=widgets.Layout(display=_HIDDEN)
        )
        self.progress = Progress("Changes", max_width="24em")
        self.progress.layout.display = _HIDDEN  # until something is applied: no empty bar
        self.outcomes = widgets.HTML()
        self.download = widgets.HTML()
        super().__init__(
            [
                self.badge,
                row([self.refresh, self.apply_button]),
                self.table,
                self.confirm_box,
                self.progress,
                self.outcomes,
                self.download,
            ]
        )
        self.refresh.on_click(lambda _: self.make_plan())
        self.apply_button.on_click(lambda _: self.ask_to_apply())
        self.confirm.on_click(lambda _: self.confirm_apply())
        self.cancel.on_click(lambda _: self.cancel_apply())
        self.make_plan()

    def make_plan(self) -> None:
        """Read the accounts and show what applying would change."""

        async def plan() -> None:
            self.plan = await self._plan()
            self.table.value = self.plan._repr_html_()
            changes = plural(len(self.plan.steps), "change")
            errors = f", {plural(len(self.plan.error_list), 'error')}" if self.plan.error_list else ""
            self.say(f"Planned: {changes}{errors}.", "ok" if not self.plan.error_list else "error")

        self.run(f"Planning {len(self.desired.accounts)} accounts", plan)

    async def _plan(self) -> Plan:
        if self.path is not None:
            self.desired = as_desired(self.path)
        return await self.ts.aplan(self.desired, prune=self.prune, progress=False)

    def ask_to_apply(self) -> None:
        """Show the confirmation step, naming the number of changes; nothing is sent yet."""
        if self.plan is None or not self.plan.has_changes:
            self.say("Nothing to apply.", "info")
            return
        count = len(self.plan.steps)
        self.confirm_text.value = f"Apply <b>{plural(count, 'change')}</b> to {html.escape(self.plan.source)}?"
        self.confirm_box.layout.display = None
        self.say(f"Confirm to apply {plural(count, 'change')}.", "info")

    def cancel_apply(self) -> None:
        """Close the confirmation step without sending anything."""
        self.confirm_box.layout.display = _HIDDEN
        self.say("Nothing was changed.", "info")

    def confirm_apply(self) -> None:
        """Apply the plan shown (planning again first if it went stale), then plan again."""
        plan = self.plan
        self.confirm_box.layout.display = _HIDDEN
        if plan is None:
            return
        self.progress.show(0, len(plan.steps))
        self.progress.layout.display = None

        async def apply() -> None:
            current = plan
            if current.age > MAX_PLAN_AGE:  # stale: plan again rather than refuse, and say so
                self.note("the plan was stale: planning again before applying")
                current = await self._plan()
                if [s.id for s in current.steps] != [s.id for s in plan.steps]:
                    self.plan = current  # what was confirmed is no longer what would be done
                    self.table.value = current._repr_html_()
                    self.say("ThingSpace changed since the plan was made: check the new plan, then apply.", "info")
                    return
            result = await current.aapply(journal=self.journal, progress=False, on_progress=self.progress.show)
            self.result = result
            self.outcomes.value = result.html(journal=False)
            self._offer_journal(result)
            self.plan = await self._plan()
            self.table.value = self.plan._repr_html_()
            counts = ", ".join(f"{n} {k}" for k, n in result.counts().items() if n) or "nothing to do"
            self.say(
                f"Applied: {counts}; the journal of every step can be downloaded above.", "ok" if result.ok else "error"
            )

        self.run(f"Applying {plural(len(plan.steps), 'change')}", apply)

    def _offer_journal(self, result: ApplyResult) -> None:
        """Offer the journal as a download: its path means nothing where the kernel runs elsewhere."""
        path = result.journal.path
        try:
            content = path.read_bytes()
        except OSError as error:
            self.download.value = ""
            self.note(f"the journal {path} cannot be read for download: {error.strerror or error}")
            return
        self.download.value = download_link(path.name, content, "application/jsonl")
        self.note(f"journal: {path}")

    def _update_buttons(self) -> None:
        busy = self.busy
        has_changes = getattr(self, "plan", None) is not None and bool(self.plan and self.plan.has_changes)
        self.refresh.disabled = busy
        self.apply_button.disabled = busy or not has_changes
        self.confirm.disabled = busy
