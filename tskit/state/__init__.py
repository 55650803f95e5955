"""Desired state: write down what every account should have, plan the difference, apply it, journaled.

A desired state maps account names to services to listeners. In Python::

    {"0000123456-00001": {"CarrierService": {"url": "https://listener.example.com/carrier",
                                             "username": "tsuser", "password": {"env": "LISTENER_PW"}}}}

On disk, TOML (read with ``tomllib``, written with ``tomli-w``), where a password is only ever a
reference: ``password = { env = "LISTENER_PW" }``, or ``password = { fingerprint = "..." }`` for
"keep the password it has" (what ``ts.export`` writes). A ``[defaults]`` table gives the
username and password of listeners that name none.

Examples:
    >>> import tskit
    >>> ts = tskit.connect(simulator=True)
    >>> state = ts.export(["0000123456-00001"], progress=False)
    >>> ts.plan(state, progress=False).counts()
    {'create': 0, 'update': 0, 'delete': 0, 'keep': 2}
"""

from tskit.state._apply import OUTCOME_COLUMNS, ApplyResult, Outcome, apply_plan
from tskit.state._display import plan_text, result_text
from tskit.state._export import ExportError, PartialExportWarning, export_state, unread_text
from tskit.state._files import FileError
from tskit.state._journal import JOURNAL_COLUMNS, Journal, JournalError, JournalProblem
from tskit.state._lock import LOCK_WAIT, AccountLockedError, Holder
from tskit.state._model import DesiredCallback, DesiredState
from tskit.state._plan import ACTIONS, CHANGE_COLUMNS, MAX_PLAN_AGE, Plan, as_desired, make_plan
from tskit.state._rotate import RotationDeclined, RotationResult, rotate
from tskit.state._steps import PlanUsedError, StalePlanError, Step

__all__ = [
    "ACTIONS",
    "CHANGE_COLUMNS",
    "JOURNAL_COLUMNS",
    "LOCK_WAIT",
    "MAX_PLAN_AGE",
    "OUTCOME_COLUMNS",
    "AccountLockedError",
    "ApplyResult",
    "DesiredCallback",
    "DesiredState",
    "ExportError",
    "FileError",
    "Holder",
    "Journal",
    "JournalError",
    "JournalProblem",
    "Outcome",
    "PartialExportWarning",
    "Plan",
    "PlanUsedError",
    "RotationDeclined",
    "RotationResult",
    "StalePlanError",
    "Step",
    "apply_plan",
    "as_desired",
    "export_state",
    "make_plan",
    "plan_text",
    "result_text",
    "rotate",
    "unread_text",
]
