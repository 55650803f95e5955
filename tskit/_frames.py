"""Records to pandas DataFrames: fixed columns, the dtypes a pandas user expects, secrets masked.

The one place frames are made. Text is pandas' ``"string"`` dtype (:data:`TEXT`); names that repeat across many rows
(accounts, services, rules) are categoricals, which keep a fleet's frames small; severities are an
ordered categorical, so that sorting goes info < low < medium < high; times are tz-aware (UTC)
datetimes; counts and status codes are numbers (nullable ``Int64`` where one may be missing).

Why ``"string"`` (:class:`pandas.StringDtype`, missing values ``<NA>``) and not ``str`` or ``object``:
it is the one text dtype that is the same on every pandas tskit supports. ``str`` means ``object``
on pandas 2.2 and a new string dtype on pandas 3, so the same frame would differ with the install.
Its storage (Python or pyarrow) is pandas' ``mode.string_storage`` setting, the user's choice.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from tskit._models import SERVICE_CATALOGUE, Callback
from tskit._secret import MASK

if TYPE_CHECKING:
    import pandas as pd

CALLBACK_COLUMNS: Final = ("account_name", "service_name", "url", "username", "password")
SERVICE_COLUMNS: Final = ("service_name", "description")
#: The levels of an audit finding's severity, least severe first.
SEVERITY_LEVELS: Final = ("info", "low", "medium", "high")
#: The dtype of every text column, and of every categorical's categories, on every pandas version.
TEXT: Final = "string"


def text_dtype() -> Any:
    """The dtype :data:`TEXT` names, as an object: pandas looks a name up in its registry on every use.

    Made anew each time (it is cheap): its storage follows ``mode.string_storage`` as set now.
    """
    import pandas as pd

    return pd.StringDtype()


@functools.lru_cache(maxsize=1024)
def _categorical_dtype(levels: tuple[str, ...], ordered: bool, text: Any) -> Any:
    # Dtypes are immutable: one per set of categories, as a blocking list call makes the same
    # few each time (validating the categories costs more than the rest of a small frame).
    import pandas as pd

    return pd.CategoricalDtype(pd.Index(list(levels), dtype=text), ordered=ordered)


def frame(rows: Sequence[tuple[object, ...]], columns: Sequence[str]) -> pd.DataFrame:
    """A DataFrame of text columns with exactly ``columns``, even when there are no rows."""
    import pandas as pd

    return pd.DataFrame(rows, columns=list(columns), dtype=text_dtype())


def text(values: Sequence[object]) -> Any:
    """A column of text (:data:`TEXT`)."""
    import numpy as np

    dtype = text_dtype()
    # What pd.array(values, dtype) calls, without looking the dtype up again; the array is ours.
    return dtype.construct_array_type()._from_sequence(np.array(values, dtype=object), dtype=dtype)


def category(values: Sequence[str], categories: Iterable[str] = ()) -> Any:
    """A categorical column; its categories are ``categories`` then the other values, as first seen.

    Codes come from a dict rather than ``pd.Categorical(values)``: for 100,000 rows this is about
    three times as fast, which keeps ``callbacks_frame`` near ``from_records`` (benchmarks/bench_audit.py).
    """
    index = {name: i for i, name in enumerate(categories)}
    return from_codes([index.setdefault(v, len(index)) for v in values], index)


def from_codes(codes: Sequence[int], index: Mapping[str, int]) -> Any:
    """A categorical from its codes and the dict that gave them (category -> code, in code order)."""
    import numpy as np
    import pandas as pd

    dtype = _categorical_dtype(tuple(index), False, text_dtype())
    return pd.Categorical.from_codes(np.array(codes, dtype=np.int32), dtype=dtype, validate=False)


def categories(levels: Sequence[str], *, ordered: bool = False) -> Any:
    """A categorical dtype of exactly ``levels``, whose categories are text (:data:`TEXT`)."""
    return _categorical_dtype(tuple(levels), ordered, text_dtype())


def ordered(values: Sequence[str], levels: Sequence[str]) -> Any:
    """An ordered categorical whose order is ``levels``."""
    import pandas as pd

    return pd.Categorical(list(values), dtype=categories(levels, ordered=True))


def numbers(values: Sequence[int | None]) -> Any:
    """Whole numbers, with ``<NA>`` where a value is missing (``Int64``)."""
    import pandas as pd

    return pd.array(list(values), dtype="Int64")


def utc_times(values: Sequence[str] | Sequence[float], *, epoch_seconds: bool = False) -> Any:
    """Tz-aware UTC datetimes from ISO texts (or from seconds since the epoch), in microseconds.

    One unit whatever the input (pandas picks s, us or ns from the values): every time column of
    tskit compares and concatenates with every other.
    """
    import pandas as pd

    if epoch_seconds:
        times = pd.to_datetime([float(v) for v in values], unit="s", utc=True)
    else:
        times = pd.to_datetime([str(v) for v in values], utc=True, format="ISO8601")
    return times.as_unit("us")


def columns_frame(columns: Mapping[str, Any]) -> pd.DataFrame:
    """A DataFrame from ready columns (see :func:`text`, :func:`category` and the others)."""
    import pandas as pd

    return pd.DataFrame(dict(columns), copy=False)


def concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Frames of the same columns one after the other, categoricals kept (``pd.concat`` makes them text)."""
    import pandas as pd
    from pandas.api.types import union_categoricals

    together = pd.concat(frames, ignore_index=True)
    for column in together.columns:
        parts = [f[column] for f in frames]
        if all(isinstance(p.dtype, pd.CategoricalDtype) and not p.dtype.ordered for p in parts):
            together[column] = union_categoricals(parts)
    return together


def callbacks_frame(callbacks: Iterable[Callback]) -> pd.DataFrame:
    """One row per registered callback, with the columns of :data:`CALLBACK_COLUMNS`.

    ``account_name`` and ``service_name`` are categoricals, the others text. The ``password``
    column holds a fixed mask where a password is set and ``""`` where not: never the password
    itself. The columns are there even when there are no rows.
    """
    rows = callbacks if isinstance(callbacks, list) else list(callbacks)
    # One pass per column, each as plain as it can be, keeps 100,000 rows within 1.5x pandas' own
    # from_records: category codes straight from the records, and Secret's slot read directly
    # (its own truth test is a Python call per row).
    accounts: dict[str, int] = {}
    services: dict[str, int] = {}
    account_codes = [accounts.setdefault(c.account_name, len(accounts)) for c in rows]
    service_codes = [services.setdefault(c.service_name, len(services)) for c in rows]
    return _ready_frame(
        [
            from_codes(account_codes, accounts),
            from_codes(service_codes, services),
            text([c.url for c in rows]),
            text([c.username for c in rows]),
            text([MASK if c.password._value else "" for c in rows]),
        ],
        CALLBACK_COLUMNS,
    )


def _ready_frame(arrays: list[Any], columns: Sequence[str]) -> pd.DataFrame:
    """A frame of pandas arrays of one length, made as cheaply as pandas allows.

    A blocking ``list_callbacks`` makes a frame of a few rows per call, where the checks of
    ``pd.DataFrame(dict)`` cost more than the rest (benchmarks/bench_client_overhead.py):
    ``DataFrame._from_arrays`` takes arrays that are already right, on pandas 2.2 and 3.x alike.
    """
    import pandas as pd

    from_arrays = getattr(pd.DataFrame, "_from_arrays", None)
    if from_arrays is None:  # a pandas without it: the public way, same frame
        return columns_frame(dict(zip(columns, arrays, strict=True)))
    length = len(arrays[0]) if arrays else 0
    frame: pd.DataFrame = from_arrays(
        arrays, columns=_column_index(tuple(columns)), index=pd.RangeIndex(length), verify_integrity=False
    )
    return frame


@functools.lru_cache(maxsize=64)
def _column_index(columns: tuple[str, ...]) -> Any:
    import pandas as pd

    return pd.Index(list(columns))


def callbacks_columns(
    accounts: Sequence[str],
    services: Sequence[str],
    urls: Sequence[str],
    usernames: Sequence[str],
    masks: Sequence[str],
) -> pd.DataFrame:
    """The frame of :func:`callbacks_frame` from its columns (``masks`` already masked)."""
    return columns_frame(
        {
            "account_name": category(accounts),
            "service_name": category(services),
            "url": text(urls),
            "username": text(usernames),
            "password": text(masks),
        }
    )


def services_frame() -> pd.DataFrame:
    """The catalogue of callback services with their descriptions."""
    return frame([(s.name, s.description) for s in SERVICE_CATALOGUE.values()], SERVICE_COLUMNS)
