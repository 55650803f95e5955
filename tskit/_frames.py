"""Records to pandas DataFrames: fixed columns, and secrets masked. The one place frames are made."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from tskit._models import SERVICE_CATALOGUE, Callback
from tskit._secret import MASK

if TYPE_CHECKING:
    import pandas as pd

CALLBACK_COLUMNS: Final = ("account_name", "service_name", "url", "username", "password")
SERVICE_COLUMNS: Final = ("service_name", "description")


def callbacks_frame(callbacks: Iterable[Callback]) -> pd.DataFrame:
    """One row per registered callback, with the columns of :data:`CALLBACK_COLUMNS`.

    The ``password`` column holds a fixed mask where a password is set and ``""`` where not:
    never the password itself. The columns are there even when there are no rows.
    """
    import pandas as pd

    records = [(c.account_name, c.service_name, c.url, c.username, MASK if c.password else "") for c in callbacks]
    return pd.DataFrame(records, columns=list(CALLBACK_COLUMNS), dtype="str")


def services_frame() -> pd.DataFrame:
    """The catalogue of callback services with their descriptions."""
    import pandas as pd

    records = [(s.name, s.description) for s in SERVICE_CATALOGUE.values()]
    return pd.DataFrame(records, columns=list(SERVICE_COLUMNS), dtype="str")
