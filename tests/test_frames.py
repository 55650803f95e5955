"""The dtypes a pandas user expects: ordered severities, UTC datetimes, numbers, categoricals, text.

Text is pandas' ``"string"`` dtype on every pandas tskit supports (2.2 and 3.x): ``.ci/matrix``
runs these tests on pandas 2.2, where ``str`` would have made ``object`` columns.
"""

from __future__ import annotations

import pandas as pd
import pytest

import tskit
from tests.test_delivery import ACCOUNT, listener, quick_sim, register  # noqa: F401  (fixtures)
from tskit._frames import SEVERITY_LEVELS, TEXT, callbacks_frame, concat
from tskit.audit import Audit
from tskit.listener import Listener
from tskit.simulator import Simulator, seed_fleet


@pytest.fixture
def audit(sim: Simulator) -> Audit:
    fleet = seed_fleet(sim, 40)
    return tskit.connect(simulator=sim).audit([*fleet, "9999999999-00001"], ["CarrierService"], progress=False)


def test_severity_is_an_ordered_categorical(audit: Audit) -> None:
    findings = audit.findings
    assert isinstance(findings["severity"].dtype, pd.CategoricalDtype)
    assert findings["severity"].dtype.ordered and list(findings["severity"].cat.categories) == list(SEVERITY_LEVELS)
    ranks = [SEVERITY_LEVELS.index(s) for s in findings.sort_values("severity")["severity"]]
    assert ranks == sorted(ranks) and len(set(ranks)) >= 3  # sorted by severity, not alphabetically
    serious = findings[findings["severity"] >= "medium"]
    assert set(serious["severity"]) <= {"medium", "high"} and len(serious) > 0
    assert (findings["severity"] == "high").sum() == audit.counts()["high"]


def test_names_are_categoricals_and_text_is_text(audit: Audit) -> None:
    assert [str(d) for d in audit.findings.dtypes] == ["category", "category", "category", "category", TEXT]
    assert [str(d) for d in audit.callbacks.dtypes] == ["category", "category", TEXT, TEXT, TEXT]
    errors = audit.errors
    assert str(errors["status_code"].dtype) == "Int64" and errors["status_code"].tolist() == [400]


def test_categoricals_save_memory_at_fleet_scale() -> None:
    rows = [
        tskit.Callback(f"{7000000000 + i // 4}-00001", ("CarrierService", "DeviceUsage")[i % 2], f"https://l/{i}", "")
        for i in range(20_000)
    ]
    frame = callbacks_frame(rows)
    as_text = frame.astype({"account_name": "str", "service_name": "str"})
    assert frame.memory_usage(deep=True).sum() < 0.8 * as_text.memory_usage(deep=True).sum()
    assert frame["account_name"].nunique() == 5000 and frame["service_name"].cat.categories.size == 2


def test_concat_keeps_categoricals(sim: Simulator) -> None:
    ts = tskit.connect(simulator=sim)
    both = concat([ts.list_callbacks("0000123456-00001"), ts.list_callbacks("0000123456-00002")])
    assert str(both["account_name"].dtype) == "category" and both["account_name"].nunique() == 2


def test_delivery_log_has_numbers_and_times(quick_sim: Simulator, listener: Listener) -> None:  # noqa: F811
    register(quick_sim, listener.url_for("CarrierService"))
    quick_sim.trigger(ACCOUNT, "CarrierService").wait()
    log = quick_sim.delivery_log()
    assert str(log["sent_at"].dtype) == "datetime64[ns, UTC]" or str(log["sent_at"].dtype).endswith(", UTC]")
    for column in ("delivery", "attempt", "callback_count", "status_code"):
        assert str(log[column].dtype) == "Int64", column
    assert log["elapsed_ms"].dtype == "float64" and log["status_code"].tolist() == [200]
    assert (pd.Timestamp.now(tz="UTC") - log["sent_at"].iloc[0]) < pd.Timedelta(minutes=1)


def test_listener_messages_have_utc_datetimes(quick_sim: Simulator, listener: Listener) -> None:  # noqa: F811
    register(quick_sim, listener.url_for("CarrierService"))
    quick_sim.trigger(ACCOUNT, "CarrierService").wait()
    messages = listener.messages
    received = messages["received_at"]
    assert isinstance(received.dtype, pd.DatetimeTZDtype) and str(received.dt.tz) == "UTC"
    assert (pd.Timestamp.now(tz="UTC") - received.iloc[0]) < pd.Timedelta(minutes=1)
    assert str(messages["attempts"].dtype) == "Int64" and str(messages["service"].dtype) == "category"


def test_every_time_column_has_one_unit() -> None:
    from tskit._frames import utc_times

    kinds = [
        utc_times([]),
        utc_times([], epoch_seconds=True),
        utc_times(["2026-01-01T00:00:00+00:00"]),
        utc_times(["2026-01-01T00:00:00.123456+00:00"]),
        utc_times([1500000000.0], epoch_seconds=True),
        utc_times([1500000000.123], epoch_seconds=True),
    ]
    assert {str(t.dtype) for t in kinds} == {"datetime64[us, UTC]"}


def test_the_diff_change_column_has_all_its_categories(ts: tskit.ThingSpace) -> None:
    audit = ts.audit(["0000123456-00001"], progress=False)
    changes = audit.diff(audit)
    assert list(changes["change"].cat.categories) == ["added", "removed", "changed", "not-compared"]
    assert list(changes["field"].cat.categories) == ["", "url", "username", "password"]


def test_concat_frames_is_public_and_keeps_categoricals(ts: tskit.ThingSpace) -> None:
    both = tskit.concat_frames([ts.list_callbacks("0000123456-00001"), ts.list_callbacks("0000123456-00002")])
    assert str(both["account_name"].dtype) == "category" and len(both) == 4


def _text_everywhere(frame: pd.DataFrame) -> dict[str, str]:
    """The columns whose text is not :data:`TEXT`: plain columns, and categoricals' categories."""
    wrong = {}
    for name, dtype in frame.dtypes.items():
        inner = dtype.categories.dtype if isinstance(dtype, pd.CategoricalDtype) else dtype
        if pd.api.types.is_object_dtype(inner) or (pd.api.types.is_string_dtype(inner) and str(inner) != TEXT):
            wrong[str(name)] = str(inner)
    return wrong


def test_every_frame_has_one_text_dtype(audit: Audit, quick_sim: Simulator, listener: Listener) -> None:  # noqa: F811
    """The same dtypes on pandas 2.2 and 3.x: "string", never object nor pandas 3's "str"."""
    register(quick_sim, listener.url_for("CarrierService"))
    quick_sim.trigger(ACCOUNT, "CarrierService").wait()
    ts = tskit.connect(simulator=quick_sim)
    state = ts.export([ACCOUNT])
    frames = {
        "callbacks": ts.list_callbacks(ACCOUNT),
        "empty callbacks": callbacks_frame([]),
        "services": ts.services(),
        "findings": audit.findings,
        "audit callbacks": audit.callbacks,
        "errors": audit.errors,
        "diff": audit.diff(audit),
        "plan": ts.plan(state).changes,
        "delivery log": quick_sim.delivery_log(),
        "messages": listener.messages,
    }
    assert {name: _text_everywhere(f) for name, f in frames.items() if _text_everywhere(f)} == {}
    assert str(frames["services"].dtypes["service_name"]) == TEXT == "string"


@pytest.mark.parametrize("rows", [0, 1, 3])
def test_the_callbacks_frame_is_the_frame_pandas_public_constructor_makes(rows: int) -> None:
    """The quick way a small frame is made (for blocking calls) gives the frame of the public one."""
    from tskit._models import Callback
    from tskit._secret import MASK, Secret

    records = [
        Callback(
            f"0000123456-0000{i % 2}",
            ["CarrierService", "DeviceUsage"][i % 2],
            f"https://l.example.com/{i}",
            "u",
            Secret("p" * i),
        )
        for i in range(rows)
    ]
    text = pd.StringDtype()
    expected = pd.DataFrame(
        {
            "account_name": pd.Categorical(
                [r.account_name for r in records],
                categories=pd.Index(list(dict.fromkeys(r.account_name for r in records)), dtype=text),
            ),
            "service_name": pd.Categorical(
                [r.service_name for r in records],
                categories=pd.Index(list(dict.fromkeys(r.service_name for r in records)), dtype=text),
            ),
            "url": pd.array([r.url for r in records], dtype=text),
            "username": pd.array([r.username for r in records], dtype=text),
            "password": pd.array([MASK if i else "" for i in range(rows)], dtype=text),
        }
    )
    made = callbacks_frame(records)
    pd.testing.assert_frame_equal(made, expected)
    assert made.index.equals(pd.RangeIndex(rows)) and list(made.columns) == list(tskit.CALLBACK_COLUMNS)
    other = callbacks_frame(records)  # frames share nothing a change to one shows in another
    made.columns = made.columns.str.upper()
    made.insert(0, "n", range(rows))
    assert list(other.columns) == list(tskit.CALLBACK_COLUMNS)
