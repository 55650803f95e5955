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

#: One colour per action and per outcome, the same in the HTML and the widget. Each carries white
#: text at 4.5:1 or more (WCAG AA), whatever the theme around the badge.
COLOURS: Final = {
    "create": "#2e7d32",
    "update": "#b45309",
    "delete": "#c62828",
    "keep": "#546e7a",
    "done": "#2e7d32",
    "confirmed": "#1565c0",
    "failed": "#c62828",
    "changed-since-plan": "#ef6c00",
    "unchecked": "#ef6c00",
}
SIGNS: Final = {"create": "+", "update": "~", "delete": "-", "keep": " "}
_MAX_ROWS: Final = 200
# C0 and C1 controls, zero-width and bidirectional controls, line and paragraph separators, BOM:
# each can hide or reorder what a terminal or a page shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _safe(value: object) -> str:
    """Text from a server or a file, made harmless to show: no escapes, no hidden or reordering marks."""
    return _CONTROL.sub("?", str(value))


def _html(value: object) -> str:
    """Text from a server or a file, for HTML: made harmless, then escaped."""
    return escape(_safe(value))


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``"1 change"``, ``"2 changes"``."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {action}" for action, n in counts.items())


def _error_text(account: str, *parts: object) -> str:
    return _safe(f"{account}: " + " ".join(str(p) for p in parts if p))


def _header(text: str, *, cli: bool) -> str:
    """A text's first line: a repr's ``<...>`` in Python, a plain line on the command line."""
    return text if cli else f"<{text}>"


def _password_text(old: str, new: str) -> str:
    """A password row as words: set, changed, removed or unchanged."""
    if new == "unchanged":
        return "password unchanged"
    if new == "removed":
        return "password removed"
    return "password changed" if old else "password set"


def _password_cells(old: str, new: str) -> tuple[str, str]:
    """A password row of the HTML table as (old, new) words: whether one is set, and what becomes of it.

    An update sends the whole registration again, so a password kept is sent again: the row says
    so, rather than "update password ******** -> password unchanged".
    """
    before = "set" if old else "none"
    if new == "unchanged":
        return before, "same password, sent again"
    if new == "removed":
        return before, "removed: none from now on"
    return before, _password_text(old, new)


def plan_text(plan: Plan, *, cli: bool = False) -> str:
    """A few lines for a terminal: counts, then one line per changed field.

    Args:
        plan: The plan.
        cli: A plain first line, for the command line, instead of a repr's ``<Plan ...>``.
    """
    lines = [
        _header(
            f"Plan for {_safe(plan.desired.source)} against {_safe(plan.source)}: {_counts_text(plan.counts())}"
            f"{', prune' if plan.prune else ''}; {plural(len(plan.error_list), 'error')}",
            cli=cli,
        )
    ]
    changes = plan.changes
    shown = changes[changes["action"] != "keep"]
    for row in shown.head(50).to_dict("records"):
        action, old, new = str(row["action"]), _safe(row["old"]), _safe(row["new"])
        if row["field"] == "password":
            detail = _password_text(old, new)
        elif action == "create":
            detail = f"{row['field']}: {new}"
        else:
            detail = f"{row['field']}: {old or '(none)'} -> {new or '(none)'}"
        lines.append(
            f"  {SIGNS[action]} {action:<6} {_safe(row['account_name'])} {_safe(row['service_name'])} {detail}"
        )
    if len(shown) > 50:
        lines.append(f"  ... {len(shown) - 50} more in .changes")
    for e in plan.error_list[:10]:
        lines.append("  ! " + _error_text(e.account_name, e.error, e.error_code, e.message))
    if len(plan.error_list) > 10:
        lines.append(f"  ... {len(plan.error_list) - 10} more in .errors")
    if plan.password_changes:
        lines.append(f"  {_password_note(plan)}")
    if not plan.has_changes and not plan.error_list:
        lines.append("  Nothing to change: ThingSpace holds the desired state of the listeners named.")
    if plan.unmanaged:
        lines.append(f"  {_unmanaged_note(plan, cli=cli)}")
    return "\n".join(lines)


def _password_note(plan: Plan) -> str:
    note = (
        f"{plural(plan.password_changes, 'listener password')} would be set or changed: the listeners must accept "
        "the new passwords first."
    )
    if plan.password_replacements:  # only a change of a password a listener has could undo a rotation
        note += " After a rotation, update the file's variables instead of applying the old ones."
    return note


def _unmanaged_note(plan: Plan, *, cli: bool = False) -> str:
    count = len(plan.unmanaged)
    return (
        f"{plural(count, 'listener')} of the accounts named {'is' if count == 1 else 'are'} not in the desired "
        f"state: unmanaged, left alone (plan with {'--prune' if cli else 'prune'} to delete them)."
    )


def badge(text: str, colour: str) -> str:
    """A small coloured label."""
    return (
        f'<span style="background:{colour};color:#fff;border-radius:3px;padding:1px 6px;'
        f'margin-right:4px;font-size:90%">{escape(text)}</span>'
    )


# names, actions and fields on one line ("0000123456-00003" never broken); old and new values
# (URLs) wrap anywhere, so the table fits a narrow page
_NOWRAP = "white-space:nowrap"
_WRAP = "overflow-wrap:anywhere"
_CELL_STYLES: Final = (_NOWRAP, _NOWRAP, _NOWRAP, _NOWRAP, _WRAP, _WRAP)


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
        old, new = _html(row.old), _html(row.new)
        if row.field == "password":  # what becomes of the password, said plainly; a change in bold
            before, after = _password_cells(str(row.old), str(row.new))
            old = escape(before)
            new = f"<b>{escape(after)}</b>" if row.new != "unchanged" else escape(after)
        cells = [
            _html(row.account_name),
            _html(row.service_name),
            badge(action, COLOURS[action]),
            _html(row.field),
            old,
            new,
        ]
        style = f"border-left:4px solid {COLOURS[action]}"
        rows.append(
            f"<tr style='{style}'>"
            + "".join(f"<td style='padding:2px 10px;{_CELL_STYLES[j]}'>{c}</td>" for j, c in enumerate(cells))
            + "</tr>"
        )
    more = f"<p>… {len(changes) - _MAX_ROWS} more rows in <code>.changes</code></p>" if len(changes) > _MAX_ROWS else ""
    # a narrow page scrolls the table sideways rather than cutting its last columns
    return (
        f"<div class='tskit-scroll' style='overflow-x:auto;max-width:100%'><table style='border-collapse:collapse'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{more}"
    )


def _edge(kind: str) -> str:
    """The style of a note marked by a coloured edge in the colour of ``kind``."""
    return f"border-left:4px solid {COLOURS[kind]};padding:2px 8px;margin:4px 0"


def plan_html(plan: Plan) -> str:
    """Counts per action as coloured badges, the changes coloured by action, and the errors."""
    counts = "".join(badge(f"{n} {action}", COLOURS[action]) for action, n in plan.counts().items())
    parts = [
        f"<div><b>Plan</b> for {_html(plan.desired.source)} against {_html(plan.source)}"
        f"{' (prune)' if plan.prune else ''} at {plan.created_at:%Y-%m-%d %H:%M} UTC</div>",
        f"<div style='margin:4px 0'>{counts}</div>",
        changes_table(plan),
    ]
    if plan.password_changes:
        # a coloured edge, not coloured text: text in the theme's colour reads on light and dark pages
        parts.append(f"<p style='{_edge('update')}'><b>{escape(_password_note(plan))}</b></p>")
    if plan.unmanaged:
        parts.append(f"<p><i>{escape(_unmanaged_note(plan))}</i></p>")
    if plan.error_list:
        items = "".join(
            f"<li>{escape(_error_text(e.account_name, e.error, e.error_code, e.message))}</li>"
            for e in plan.error_list[:50]
        )
        title = plural(len(plan.error_list), "error")
        parts.append(f"<div style='{_edge('failed')}'><b>{title}</b><ul>{items}</ul></div>")
    return "".join(parts)


def result_text(result: ApplyResult, *, cli: bool = False, title: str = "Applied") -> str:
    """A few lines for a terminal: counts per outcome, the failures, the journal.

    Args:
        result: The outcome of an apply or a rotation.
        cli: A plain first line starting with ``title``, for the command line, instead of a repr's
            ``<ApplyResult: ...>``.
        title: The first word of the plain first line.
    """
    resumed = f", {plural(result.resumed, 'interrupted step')} closed" if result.resumed else ""
    counts = f"{_counts_text(result.counts())}{resumed}{result.summary()}; journal {_safe(result.journal.path)}"
    lines = [f"{title}: {counts}" if cli else f"<{type(result).__name__}: {counts}>"]
    shown = [o for o in result.outcome_list if o.outcome not in ("done", "confirmed")]
    for o in shown[:20]:
        lines.append(_safe(f"  {o.outcome} {o.step.action} {o.step.account_name} {o.step.service_name}: {o.reason}"))
    if len(shown) > 20:
        lines.append(f"  ... {len(shown) - 20} more in .outcomes")
    if result.changed_since_plan:
        count = len(result.changed_since_plan)
        lines.append(f"  {plural(count, 'listener')} changed since the plan, left alone: plan again.")
    return "\n".join(lines)


def result_html(result: ApplyResult, *, journal: bool = True) -> str:
    """Counts per outcome as coloured badges, then the failures, then the journal's path.

    Args:
        result: The outcome of an apply or a rotation.
        journal: Name the journal's path (an app offers the journal as a download instead).
    """
    counts = "".join(badge(f"{n} {k}", COLOURS[k]) for k, n in result.counts().items())
    shown = [o for o in result.outcome_list if o.outcome not in ("done", "confirmed")][:50]
    items = "".join(
        f"<li>{_html(o.outcome)} {_html(o.step.action)} {_html(o.step.account_name)} "
        f"{_html(o.step.service_name)}: {_html(o.reason)}</li>"
        for o in shown
    )
    failures = f"<ul style='{_edge('failed')}'>{items}</ul>" if items else ""
    where = f"<div>Journal: <code>{_html(result.journal.path)}</code></div>" if journal else ""
    return f"<div><b>Applied</b> {counts}</div>{failures}{where}"
