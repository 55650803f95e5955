"""How plans and apply results show themselves: a few lines of text, or HTML coloured by action.

Every text that came from a server or a file is HTML-escaped.
"""

from __future__ import annotations

import re
from html import escape
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from tskit.state._apply import ApplyResult
    from tskit.state._plan import Plan

#: One colour per action and per outcome, the same in the HTML and the widget.
COLOURS: Final = {
    "create": "#2e7d32",
    "update": "#ef6c00",
    "delete": "#c62828",
    "keep": "#607d8b",
    "done": "#2e7d32",
    "confirmed": "#1565c0",
    "failed": "#c62828",
}
SIGNS: Final = {"create": "+", "update": "~", "delete": "-", "keep": " "}
_MAX_ROWS: Final = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _safe(value: object) -> str:
    """Text from a server or a file, made harmless for a terminal (no escape sequences)."""
    return _CONTROL.sub("?", str(value))


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {action}" for action, n in counts.items())


def plan_text(plan: Plan) -> str:
    """A few lines for a terminal: counts, then one line per changed field."""
    lines = [
        f"<Plan for {plan.desired.source} against {plan.source}: {_counts_text(plan.counts())}"
        f"{', prune' if plan.prune else ''}; {len(plan.error_list)} errors>"
    ]
    changes = plan.changes
    shown = changes[changes["action"] != "keep"]
    for row in shown.head(50).to_dict("records"):
        action, old, new = str(row["action"]), _safe(row["old"]), _safe(row["new"])
        if action == "create":
            detail = f"{row['field']}: {new}"
        else:
            detail = f"{row['field']}: {old or '(none)'} -> {new or '(none)'}"
        lines.append(f"  {SIGNS[action]} {action:<6} {row['account_name']} {_safe(row['service_name'])} {detail}")
    if len(shown) > 50:
        lines.append(f"  ... {len(shown) - 50} more rows in .changes")
    for e in plan.error_list[:10]:
        lines.append(_safe(f"  ! {e.account_name}: {e.error} {e.error_code} {e.message}".rstrip()))
    if len(plan.error_list) > 10:
        lines.append(f"  ... {len(plan.error_list) - 10} more in .errors")
    if not plan.has_changes and not plan.error_list:
        lines.append("  Nothing to change: ThingSpace holds the desired state.")
    return "\n".join(lines)


def badge(text: str, colour: str) -> str:
    """A small coloured label."""
    return (
        f'<span style="background:{colour};color:#fff;border-radius:3px;padding:1px 6px;'
        f'margin-right:4px;font-size:90%">{escape(text)}</span>'
    )


def changes_table(plan: Plan, *, include_keep: bool = False) -> str:
    """The changes as an HTML table, each row's action as a coloured badge."""
    changes = plan.changes
    if not include_keep:
        changes = changes[changes["action"] != "keep"]
    if not len(changes):
        return "<p><i>No changes.</i></p>"
    head = "".join(f"<th style='text-align:left;padding:2px 10px'>{c}</th>" for c in changes.columns)
    rows = []
    for row in changes.head(_MAX_ROWS).itertuples(index=False):
        action = str(row.action)
        cells = [
            escape(str(row.account_name)),
            escape(str(row.service_name)),
            badge(action, COLOURS[action]),
            escape(str(row.field)),
            escape(str(row.old)),
            escape(str(row.new)),
        ]
        style = f"border-left:4px solid {COLOURS[action]}"
        rows.append(
            f"<tr style='{style}'>" + "".join(f"<td style='padding:2px 10px'>{c}</td>" for c in cells) + "</tr>"
        )
    more = f"<p>… {len(changes) - _MAX_ROWS} more rows in <code>.changes</code></p>" if len(changes) > _MAX_ROWS else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def plan_html(plan: Plan) -> str:
    """Counts per action as coloured badges, the changes coloured by action, and the errors."""
    counts = "".join(badge(f"{n} {action}", COLOURS[action]) for action, n in plan.counts().items())
    parts = [
        f"<div><b>Plan</b> for {escape(plan.desired.source)} against {escape(plan.source)}"
        f"{' (prune)' if plan.prune else ''} at {plan.created_at:%Y-%m-%d %H:%M} UTC</div>",
        f"<div style='margin:4px 0'>{counts}</div>",
        changes_table(plan),
    ]
    if plan.error_list:
        items = "".join(
            f"<li>{escape(e.account_name)}: {escape(e.error)} {escape(e.error_code)} {escape(e.message)}</li>"
            for e in plan.error_list[:50]
        )
        parts.append(
            f"<div style='color:{COLOURS['failed']}'><b>{len(plan.error_list)} errors</b><ul>{items}</ul></div>"
        )
    return "".join(parts)


def result_text(result: ApplyResult) -> str:
    """A few lines for a terminal: counts per outcome, the failures, the journal."""
    lines = [
        f"<ApplyResult: {_counts_text(result.counts())}"
        f"{f', {result.resumed} interrupted steps closed' if result.resumed else ''}; journal {result.journal.path}>"
    ]
    for o in result.failed[:20]:
        lines.append(_safe(f"  failed {o.step.action} {o.step.account_name} {o.step.service_name}: {o.reason}"))
    if len(result.failed) > 20:
        lines.append(f"  ... {len(result.failed) - 20} more in .outcomes")
    return "\n".join(lines)


def result_html(result: ApplyResult) -> str:
    """Counts per outcome as coloured badges, then the failures."""
    counts = "".join(badge(f"{n} {k}", COLOURS[k]) for k, n in result.counts().items())
    items = "".join(
        f"<li>{escape(o.step.action)} {escape(o.step.account_name)} {escape(o.step.service_name)}: "
        f"{escape(o.reason)}</li>"
        for o in result.failed[:50]
    )
    failures = f"<ul style='color:{COLOURS['failed']}'>{items}</ul>" if items else ""
    return (
        f"<div><b>Applied</b> {counts}</div>{failures}"
        f"<div>Journal: <code>{escape(str(result.journal.path))}</code></div>"
    )
