"""Notebook widgets: thin views over the same async operations a notebook calls.

Example:
    >>> from tskit.widgets import CallbackManager, AuditDashboard
    >>> CallbackManager(ts)   # doctest: +SKIP
    >>> AuditDashboard(ts)    # doctest: +SKIP

Importing this package imports ipywidgets (``pip install 'thingspace-tskit[widgets]'``);
``import tskit`` alone does not.
"""

from tskit.widgets._common import Panel, plain_words
from tskit.widgets._dashboard import AuditDashboard
from tskit.widgets._login import LoginPanel
from tskit.widgets._manager import CallbackManager
from tskit.widgets._messages import MessagesView
from tskit.widgets._plan import PlanView

__all__ = ["AuditDashboard", "CallbackManager", "LoginPanel", "MessagesView", "Panel", "PlanView", "plain_words"]
