"""Records to pandas DataFrames: fixed columns, and secrets masked. The one place frames are made."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final

from tskit._models import SERVICE_CATALOGUE, Callback
from tskit._secret import MASK

if TYPE_CHECKING:
    import pandas as pd

CALLBACK_COLUMNS: Final = ("account_name", "service_name", "url", "username", "password")
SERVICE_COLUMNS: Final = ("service_name", "description")


def frame(rows: Sequence[tuple[object, ...]], columns: Sequence[str]) -> pd.DataFrame:
    """A DataFrame of text columns with exactly ``columns``, even when there are no rows."""
    import pandas as pd

    return pd.DataFrame(rows, columns=list(columns), dtype="str")


def callbacks_frame(callbacks: Iterable[Callback]) -> pd.DataFrame:
    """One row per registered callback, with the columns of :data:`CALLBACK_COLUMNS`.

    The ``password`` column holds a fixed mask where a password is set and ``""`` where not:
    never the password itself. The columns are there even when there are no rows.
    """
    # Secret's own truth test is a Python call per row; reading its slot directly keeps 100,000
    # rows close to pandas' own from_records speed (benchmarks/bench_audit.py).
    records = [
        (c.account_name, c.service_name, c.url, c.username, MASK if c.password._value else "") for c in callbacks
    ]
    return frame(records, CALLBACK_COLUMNS)


def services_frame() -> pd.DataFrame:
    """The catalogue of callback services with their descriptions."""
    return frame([(s.name, s.description) for s in SERVICE_CATALOGUE.values()], SERVICE_COLUMNS)
