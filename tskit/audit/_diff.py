"""What changed between two audits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tskit._frames import categories, frame

if TYPE_CHECKING:
    import pandas as pd

    from tskit.audit._audit import Audit
    from tskit.audit._records import AuditRecord

DIFF_COLUMNS = ("account_name", "service_name", "change", "field", "old", "new")
#: The values of the ``change`` and ``field`` columns (the categories of those categoricals).
CHANGES = ("added", "removed", "changed", "not-compared")
FIELDS = ("", "url", "username", "password")


def _password(fingerprint: str) -> str:
    return "set" if fingerprint else ""


def diff(old: Audit, new: Audit) -> pd.DataFrame:
    """One row per change from ``old`` to ``new``; accounts not read in both are listed, not guessed."""
    rows: list[tuple[str, str, str, str, str, str]] = []
    unread_old = {e.account_name for e in old.error_list}
    unread_new = {e.account_name for e in new.error_list}
    old_accounts, new_accounts = set(old.accounts), set(new.accounts)
    compared: list[str] = []
    for name in dict.fromkeys([*old.accounts, *new.accounts]):
        reason = (
            "not in the old audit"
            if name not in old_accounts
            else "not in the new audit"
            if name not in new_accounts
            else "could not be read in the old audit"
            if name in unread_old
            else "could not be read in the new audit"
            if name in unread_new
            else ""
        )
        if reason:
            rows.append((name, "", "not-compared", "", "", reason))
        else:
            compared.append(name)
    passwords_comparable = old.key_id == new.key_id
    if not passwords_comparable:
        rows.append(("", "", "not-compared", "password", f"key {old.key_id}", f"key {new.key_id}"))

    def index(audit: Audit) -> dict[tuple[str, str], AuditRecord]:
        return {(r.account_name, r.service_name): r for r in audit.records}

    before, after = index(old), index(new)
    # Each account's services, old ones first, gathered in one pass (not one pass per account).
    services: dict[str, dict[tuple[str, str], None]] = {}
    for key in [*before, *after]:
        services.setdefault(key[0], {})[key] = None
    for name in compared:
        for key in services.get(name, {}):
            was, now = before.get(key), after.get(key)
            if was is None and now is not None:
                rows.append((*key, "added", "url", "", now.url))
            elif now is None and was is not None:
                rows.append((*key, "removed", "url", was.url, ""))
            elif was is not None and now is not None:
                if was.url != now.url:
                    rows.append((*key, "changed", "url", was.url, now.url))
                if was.username != now.username:
                    rows.append((*key, "changed", "username", was.username, now.username))
                if passwords_comparable and was.password_fingerprint != now.password_fingerprint:
                    new_text = "set (changed)" if was.password_fingerprint and now.password_fingerprint else ""
                    rows.append(
                        (
                            *key,
                            "changed",
                            "password",
                            _password(was.password_fingerprint),
                            new_text or _password(now.password_fingerprint),
                        )
                    )

    table = frame(rows, DIFF_COLUMNS)
    for column in ("account_name", "service_name"):  # few distinct values
        table[column] = table[column].astype("category")
    # every category there even when absent, so diffs of different audits compare and concatenate
    table["change"] = table["change"].astype(categories(CHANGES))
    table["field"] = table["field"].astype(categories(FIELDS))
    return table
