"""What audits, desired state, the CLI and the widgets share: account lists and the fan-out.

- :mod:`tskit.ops.accounts`: account names checked, de-duplicated, read from a file;
- :mod:`tskit.ops.fanout`: many accounts read at once, with a progress bar, failures as data;
- :mod:`tskit.ops.progress`: the progress bar of a fan-out;
- :mod:`tskit.ops.preflight`: the pre-register check (the audit's rules on one listener). It is
  imported as its own module, since the audit itself is built on the fan-out.
"""

from tskit.ops.accounts import account_lines, account_list, check_concurrency, read_accounts_file
from tskit.ops.fanout import ERROR_COLUMNS, AccountError, read_accounts
from tskit.ops.progress import close_open_bars, progress_bar

__all__ = [
    "ERROR_COLUMNS",
    "AccountError",
    "account_lines",
    "account_list",
    "check_concurrency",
    "close_open_bars",
    "progress_bar",
    "read_accounts",
    "read_accounts_file",
]
