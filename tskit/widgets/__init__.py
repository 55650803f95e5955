"""Notebook widgets: thin views over the same async operations a notebook calls.

Examples:
    >>> from tskit.widgets import CallbackManager, AuditDashboard
    >>> CallbackManager(ts)   # doctest: +SKIP
    >>> AuditDashboard(ts)    # doctest: +SKIP

Importing this package imports ipywidgets (``pip install 'thingspace-tskit[widgets]'``);
``import tskit`` alone does not.
"""

from tskit._extras import require

require("ipywidgets", "widgets")  # before anything imports it: the error then names the extra
require("anywidget", "widgets")  # what itables.widget needs: itables[widget]
require("itables.widget", "widgets")

from tskit.widgets._common import Panel, plain_words  # noqa: E402
from tskit.widgets._dashboard import AuditDashboard  # noqa: E402
from tskit.widgets._login import LoginPanel  # noqa: E402
from tskit.widgets._manager import CallbackManager  # noqa: E402
from tskit.widgets._messages import MessagesView  # noqa: E402
from tskit.widgets._plan import PlanView  # noqa: E402
from tskit.widgets._voila import in_voila  # noqa: E402

__all__ = [
    "AuditDashboard",
    "CallbackManager",
    "LoginPanel",
    "MessagesView",
    "Panel",
    "PlanView",
    "in_voila",
    "plain_words",
]
