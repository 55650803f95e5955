"""Audits of many accounts: every registration in one DataFrame, findings, snapshots and diffs.

Examples:
    >>> import tskit
    >>> ts = tskit.connect()
    >>> audit = ts.audit(["0000123456-00001", "0000123456-00002"], expect=["CarrierService"], progress=False)
    >>> sorted(set(audit.findings["rule"]))[:2]
    ['credentials-over-http', 'no-credentials']
"""

from tskit.audit._audit import Audit, run_audit
from tskit.audit._display import text_summary
from tskit.audit._records import AuditRecord
from tskit.audit._rules import (
    DEFAULT_RULES,
    AuditContext,
    CallbackRule,
    Finding,
    MissingService,
    Rule,
    Severity,
    SharedUrl,
    callback_rule,
    credentials_over_http,
    no_credentials,
    not_https,
    port_not_allowed,
    run_rules,
    unknown_service,
    unreachable_host,
)
from tskit.audit._snapshot import document as snapshot_document
from tskit.ops import (
    AccountError,
    account_lines,
    account_list,
    check_concurrency,
    close_open_bars,
    read_accounts,
    read_accounts_file,
)

__all__ = [
    "DEFAULT_RULES",
    "AccountError",
    "Audit",
    "AuditContext",
    "AuditRecord",
    "CallbackRule",
    "Finding",
    "MissingService",
    "Rule",
    "Severity",
    "SharedUrl",
    "account_lines",
    "account_list",
    "callback_rule",
    "check_concurrency",
    "close_open_bars",
    "credentials_over_http",
    "no_credentials",
    "not_https",
    "port_not_allowed",
    "read_accounts",
    "read_accounts_file",
    "run_audit",
    "run_rules",
    "snapshot_document",
    "text_summary",
    "unknown_service",
    "unreachable_host",
]
