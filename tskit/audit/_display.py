"""How an audit shows itself: a plain-text summary for terminals, HTML with a chart for notebooks.

Every text that came from a server (URLs, names, error messages) is HTML-escaped: a hostile
registration must not run script in the notebook.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from html import escape
from typing import TYPE_CHECKING

from tskit.audit._rules import Finding, Severity

if TYPE_CHECKING:
    from tskit.audit._audit import Audit
    from tskit.ops import AccountError

COLOURS = {Severity.HIGH: "#c62828", Severity.MEDIUM: "#ef6c00", Severity.LOW: "#f9a825", Severity.INFO: "#546e7a"}
# text on each badge: white or black, whichever gives 4.5:1 or more (WCAG AA) on that colour
_TEXT_ON = {"#c62828": "#fff", "#ef6c00": "#000", "#f9a825": "#000", "#546e7a": "#fff", "#455a64": "#fff"}
_MAX_ROWS = 200


def counted(n: int, word: str) -> str:
    """``1 finding``, ``2 findings``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def _headline(audit: Audit) -> str:
    read = len(audit.accounts) - len(audit.error_list)
    return (
        f"{counted(len(audit.accounts), 'account')} ({read} read, {len(audit.error_list)} unreadable), "
        f"{counted(len(audit.records), 'callback')}, {counted(len(audit.finding_list), 'finding')}"
    )


_KIND_WORDS = {
    "ApiError": "ThingSpace said no",
    "AuthenticationError": "ThingSpace refused the login",
    "RateLimitError": "too many requests",
    "RequestTimeout": "no answer in time",
    "TransportError": "could not reach ThingSpace",
    "UnexpectedResponseError": "an unexpected answer",
    "UncertainListingError": "uncertain: its listings did not show for certain what it holds",
}


def unreadable_words(error: AccountError) -> str:
    """Why an account could not be read, in plain words (not an exception's class name)."""
    kind = _KIND_WORDS.get(error.error, "could not be read")
    status = f" ({error.status_code})" if error.status_code else ""
    code = f" [{error.error_code}]" if error.error_code else ""
    return f"{kind}{status}: {error.message or 'no reason given'}{code}"


# ANSI colours of the severities on a terminal (bold red, red, yellow, dim)
ANSI = {Severity.HIGH: "\033[1;31m", Severity.MEDIUM: "\033[31m", Severity.LOW: "\033[33m", Severity.INFO: "\033[2m"}
_ANSI_RESET = "\033[0m"


def text_summary(audit: Audit, *, limit: int | None = 20, colour: bool = False, command: bool = False) -> str:
    """A few lines for a terminal: counts, then the findings and errors.

    Args:
        audit: The audit to describe.
        limit: How many findings and unreadable accounts to list; ``None`` for all of them.
        colour: Colour the severities with ANSI codes (for a terminal).
        command: Written by the ``tskit`` command: a plain header, and ``--limit`` named for more.
    """
    counts = ", ".join(f"{n} {s}" for s, n in audit.counts().items() if n) or "none"
    header = f"Audit of {audit.source} at {audit.started_at:%Y-%m-%d %H:%M} UTC: {_headline(audit)}"
    lines = [header if command else f"<{header}>", f"  findings by severity: {counts}"]
    findings = audit.finding_list if limit is None else audit.finding_list[:limit]
    for f in findings:
        tag = f"[{f.severity}]"
        if colour:
            tag = f"{ANSI[f.severity]}{tag}{_ANSI_RESET}"
        lines.append(f"  {tag} {f.account_name} {f.service_name or '-'} {f.rule}: {f.detail}")
    if len(findings) < len(audit.finding_list):
        where = "use --limit to see more" if command else "in .findings"
        lines.append(f"  ... {len(audit.finding_list) - len(findings)} more ({where})")
    errors = audit.error_list if limit is None else audit.error_list[:limit]
    for e in errors:
        lines.append(f"  [unreadable] {e.account_name}: {unreadable_words(e)}")
    if len(errors) < len(audit.error_list):
        where = "use --limit to see more" if command else "in .errors"
        lines.append(f"  ... {len(audit.error_list) - len(errors)} more ({where})")
    return "\n".join(lines)


def _badge(text: str, colour: str) -> str:
    return (
        f'<span style="background:{colour};color:{_TEXT_ON.get(colour, "#fff")};border-radius:3px;padding:1px 6px;'
        f'margin-right:4px;font-size:90%">{escape(text)}</span>'
    )


def bar_chart(items: list[tuple[str, int, str]], title: str) -> str:
    """A horizontal bar chart as inline SVG: (label, value, colour) per bar. No plotting library needed."""
    if not items:
        return ""
    width, label_width, bar_height = 520, 190, 18
    top = max(value for _, value, _ in items) or 1
    height = 24 + len(items) * (bar_height + 4)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text x="0" y="14" font-size="13" font-weight="bold" fill="currentColor">{escape(title)}</text>',
    ]
    for i, (label, value, colour) in enumerate(items):
        y = 24 + i * (bar_height + 4)
        length = max(2, int((width - label_width - 40) * value / top))
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 13}" font-size="12" text-anchor="end" fill="currentColor">'
            f"{escape(label[:28])}</text>"
        )
        parts.append(f'<rect x="{label_width}" y="{y}" width="{length}" height="{bar_height}" fill="{colour}"/>')
        parts.append(
            f'<text x="{label_width + length + 4}" y="{y + 13}" font-size="12" fill="currentColor">{value}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


#: The colour of the findings an overview sets apart (white text on it at 7:1).
APART_COLOUR = "#455a64"


def chart(audit: Audit, apart: Collection[Finding] = (), apart_label: str = "") -> str:
    """Findings by rule, coloured by severity; with no findings, callbacks per account.

    Findings in ``apart`` are drawn as one grey bar named ``apart_label``, last.
    """
    if audit.finding_list:
        by_rule = Counter((f.rule, f.severity) for f in audit.finding_list if f not in apart)
        items = [
            (rule, n, COLOURS[severity])
            for (rule, severity), n in sorted(by_rule.items(), key=lambda kv: (-kv[0][1], -kv[1]))
        ][: 14 if apart else 15]
        if apart:
            items.append((apart_label, len(apart), APART_COLOUR))
        return bar_chart(items, "Findings by rule")
    per_account = Counter(r.account_name for r in audit.records)
    items = [(name, per_account.get(name, 0), "#1565c0") for name in audit.accounts][:15]
    return bar_chart(items, "Callbacks registered per account")


def _table(headers: list[str], rows: list[list[str]], colours: list[str] | None = None) -> str:
    """An HTML table; with ``colours``, the first cell of each row is a badge of that colour."""
    head = "".join(f'<th style="text-align:left;padding:2px 8px">{escape(h)}</th>' for h in headers)
    body = []
    for i, row in enumerate(rows[:_MAX_ROWS]):
        cells = [escape(c) for c in row]
        if colours:
            cells[0] = _badge(row[0], colours[i])
        last = len(cells) - 1  # the detail column may wrap; the others stay on one line
        body.append(
            "<tr>"
            + "".join(
                f'<td style="text-align:left;padding:2px 8px;{"" if j == last else "white-space:nowrap"}">{c}</td>'
                for j, c in enumerate(cells)
            )
            + "</tr>"
        )
    more = f"<p>... {len(rows) - _MAX_ROWS} more rows</p>" if len(rows) > _MAX_ROWS else ""
    return (
        f'<table class="tskit-audit" style="border-collapse:collapse"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>{more}"
    )


def html_overview(audit: Audit, apart: Collection[Finding] = (), apart_label: str = "") -> str:
    """Headline, severity badges and chart: the top of the notebook view, without the tables.

    Text takes the colour around it (``currentColor``), so it reads on light and dark themes.

    Args:
        audit: The audit.
        apart: Findings counted in a grey badge and bar of their own, e.g. those about hosts
            reserved for documentation, so that they do not bury the others.
        apart_label: What the findings set apart have in common, for their badge and bar.
    """
    counts = Counter(str(f.severity) for f in audit.finding_list if f not in apart)
    badges = "".join(_badge(f"{n} {s}", COLOURS[Severity.parse(s)]) for s in audit.counts() if (n := counts[s]))
    if apart:
        badges += _badge(f"{len(apart)} {apart_label}", APART_COLOUR)
    return (
        f"<h4 style='margin:4px 0'>Audit of {escape(audit.source)} — {audit.started_at:%Y-%m-%d %H:%M} UTC</h4>"
        f"<p>{escape(_headline(audit))}</p><p>{badges or 'No findings.'}</p>{chart(audit, apart, apart_label)}"
    )


def html_summary(audit: Audit) -> str:
    """The notebook view: headline, severity badges, chart, findings and unreadable accounts."""
    parts = ['<div class="tskit-audit">', html_overview(audit)]
    if audit.finding_list:
        parts.append(
            _table(
                ["severity", "account", "service", "rule", "detail"],
                [[str(f.severity), f.account_name, f.service_name, f.rule, f.detail] for f in audit.finding_list],
                [COLOURS[f.severity] for f in audit.finding_list],
            )
        )
    if audit.error_list:
        parts.append("<p><b>Accounts that could not be read</b></p>")
        parts.append(
            _table(
                ["account", "error", "status", "code", "message"],
                [
                    [
                        e.account_name,
                        e.error,
                        "" if e.status_code is None else str(e.status_code),
                        e.error_code,
                        e.message,
                    ]
                    for e in audit.error_list
                ],
            )
        )
    parts.append("</div>")
    return "".join(parts)
