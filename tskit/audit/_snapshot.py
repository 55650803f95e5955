"""Audit snapshots on disk: JSON (everything) and CSV (registrations, metadata in a header).

Neither holds a password: only keyed fingerprints (see ``_fingerprint``). A CSV snapshot keeps no
findings; loading one runs the default rules again over the saved registrations.
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tskit._errors import scrub
from tskit.audit._records import AuditRecord, findings_for
from tskit.audit._rules import Finding, Severity
from tskit.ops.fanout import AccountError

if TYPE_CHECKING:
    from tskit.audit._audit import Audit

FORMAT = "tskit-audit/1"
_RECORD_FIELDS = ("account_name", "service_name", "url", "username", "password_fingerprint")


def _format(path: Path, given: str | None) -> str:
    fmt = (given or path.suffix.lstrip(".")).lower()
    if fmt not in ("json", "csv"):
        raise ValueError(f"cannot tell the snapshot format of {path.name!r}: use a .json or .csv name, or format=")
    return fmt


def _meta(audit: Audit) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "source": audit.source,
        "started_at": audit.started_at.isoformat(),
        "finished_at": audit.finished_at.isoformat(),
        "accounts": audit.accounts,
        "expect": audit.expect,
        "fingerprint_key_id": audit.key_id,
        "errors": [
            {
                "account_name": e.account_name,
                "error": e.error,
                "status_code": e.status_code,
                "error_code": scrub(e.error_code),
                "message": scrub(e.message),  # again: a file outlives the run that wrote it
            }
            for e in audit.error_list
        ],
    }


def document(audit: Audit) -> dict[str, Any]:
    """The JSON snapshot of an audit, as a dict."""
    findings = [
        {
            "account_name": f.account_name,
            "service_name": f.service_name,
            "rule": f.rule,
            "severity": str(f.severity),
            "detail": f.detail,
        }
        for f in audit.finding_list
    ]
    records = [{k: getattr(r, k) for k in _RECORD_FIELDS} for r in audit.records]
    return _meta(audit) | {"callbacks": records, "findings": findings}


def save(audit: Audit, path: Path, fmt: str | None) -> Path:
    """Write ``audit`` to ``path`` (written whole to a temporary file first, then renamed)."""
    kind = _format(path, fmt)
    if kind == "json":
        text = json.dumps(document(audit), indent=2) + "\n"
    else:
        out = io.StringIO()
        out.write(f"# {json.dumps(_meta(audit))}\n")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(_RECORD_FIELDS)
        writer.writerows([getattr(r, k) for k in _RECORD_FIELDS] for r in audit.records)
        text = out.getvalue()
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the owner's only, as journals
    os.fchmod(fd, 0o600)  # a partial file left by an older run may have other bits
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    partial.replace(path)  # never leave half a snapshot behind
    return path


def load(path: Path, fmt: str | None) -> dict[str, Any]:
    """Read a snapshot written by :func:`save`: the arguments of the :class:`~tskit.audit.Audit` it holds."""
    kind = _format(path, fmt)
    text = path.read_text(encoding="utf-8")
    try:
        if kind == "json":
            document = json.loads(text)
            meta, rows = document, document["callbacks"]
        else:
            header, _, body = text.partition("\n")
            if not header.startswith("# "):
                raise ValueError("the first line is not tskit's metadata header")
            meta = json.loads(header[2:])
            rows = list(csv.DictReader(io.StringIO(body)))
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, not {FORMAT!r}")
        records = [AuditRecord(**{k: str(row[k]) for k in _RECORD_FIELDS}) for row in rows]
        errors = [AccountError(**e) for e in meta["errors"]]
        if kind == "json":
            findings = [
                Finding(f["account_name"], f["service_name"], f["rule"], Severity.parse(f["severity"]), f["detail"])
                for f in document["findings"]
            ]
        else:
            findings = findings_for(records, meta["accounts"], meta["expect"], {e.account_name for e in errors})
        return dict(
            accounts=meta["accounts"],
            expect=meta["expect"],
            source=meta["source"],
            started_at=datetime.fromisoformat(meta["started_at"]),
            finished_at=datetime.fromisoformat(meta["finished_at"]),
            key_id=meta["fingerprint_key_id"],
            records=records,
            findings=findings,
            errors=errors,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} is not a tskit audit snapshot: {exc}") from None
