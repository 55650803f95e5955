"""Secrets in a listener URL's query (``?token=...``) and env references that may be passwords.

A URL registered by other means may carry a credential in its query: it is masked wherever tskit
shows or writes the URL (records, frames, findings, snapshots, exports, the CLI, widget state),
the audit reports it, and tskit refuses to register one. A password reference whose "variable
name" may be the password itself is never echoed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import tskit
from tskit._errors import mask_url, query_credentials, scrub
from tskit.cli import main
from tskit.simulator import Simulator

ACCOUNT = "0000123456-00003"
TOKEN = "T0pS3cretT0ken"
KEY = "K3yV4lueXyz"
SIG = "s1gn4tureAbc%2B"
PLANTED = f"https://l.example.com/cb?mode=fast&access_token={TOKEN}&apiKey={KEY}&sig={SIG}"
VALUES = (TOKEN, KEY, SIG, "s1gn4tureAbc+")


def plant(sim: Simulator) -> None:
    """A listener registered by other means, its URL holding three credentials."""
    sim.register(ACCOUNT, "CarrierService", PLANTED, "u", "cb-pass-123")


def assert_hidden(text: str) -> None:
    for value in VALUES:
        assert value not in text
    assert "mode=fast" in text  # only the credentials are hidden, the rest of the URL reads as it is


@pytest.mark.parametrize(
    ("url", "word"),
    [
        ("https://l.example.com/cb?password=hunter2", "password"),
        ("https://l.example.com/cb?a=1&PASSWORD=hunter2", "password"),
        ("https://l.example.com/cb?Token=abc", "token"),
        ("https://l.example.com/cb?access_token=abc", "token"),
        ("https://l.example.com/cb?accesstoken=abc", "token"),
        ("https://l.example.com/cb?api_key=abc", "apikey"),
        ("https://l.example.com/cb?apiKey=abc", "apikey"),
        ("https://l.example.com/cb?apikey=abc", "apikey"),
        ("https://l.example.com/cb?subscription-key=abc", "key"),
        ("https://l.example.com/cb?client_secret=abc", "secret"),
        ("https://l.example.com/cb?sv=2022&sig=abc", "sig"),
        ("https://l.example.com/cb?X-Amz-Signature=abc", "signature"),
        ("https://l.example.com/cb?code=abc", "code"),  # Azure Functions' key
        ("https://l.example.com/cb?pass%77ord=abc", "password"),  # percent-encoded name
        ("https://l.example.com/cb?pwd=abc", "pwd"),
    ],
)
def test_credentials_in_the_query_are_refused_and_never_echoed(url: str, word: str) -> None:
    with pytest.raises(tskit.ValidationError) as caught:
        _check(url)
    error = caught.value
    assert error.field == "url" and "credential in its query" in error.problem
    assert f"'{word}'" in error.problem
    assert "abc" not in str(error) and "hunter2" not in str(error)
    assert query_credentials(url) == [word]


def _check(url: str) -> str:
    from tskit import _validate

    return _validate.listener_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://l.example.com/cb?id=7&mode=fast",
        "https://l.example.com/cb?zipcode=12345&monkey=1&keyboard=x",
        "https://l.example.com/cb?token=",  # no value: nothing to hide
        "https://l.example.com/token/cb?keys=1",
    ],
)
def test_other_query_parameters_are_accepted(url: str) -> None:
    assert _check(url) == url
    assert query_credentials(url) == [] and mask_url(url) == url


def test_no_scheme_is_said_plainly() -> None:
    for url in ("listener.example.com/cb", "listener.example.com:443/cb"):
        with pytest.raises(tskit.ValidationError) as caught:
            _check(url)
        assert caught.value.problem == "has no scheme" and caught.value.allowed.startswith("https://")
    with pytest.raises(tskit.ValidationError) as caught:
        _check("ftp://listener.example.com/cb")
    assert caught.value.problem == "scheme 'ftp' is not allowed"


def test_register_refuses_before_sending(sim: Simulator, ts: tskit.ThingSpace) -> None:
    with pytest.raises(tskit.ValidationError):
        ts.register_callback(ACCOUNT, "CarrierService", f"https://l.example.com/cb?token={TOKEN}")
    assert sim.count("register") == 0


def test_mask_url_keeps_names_and_hides_values() -> None:
    assert mask_url(PLANTED) == (
        "https://l.example.com/cb?mode=fast&access_token=********&apiKey=********&sig=********"
    )
    assert mask_url("https://u:pw@h.example/cb?token=x") == "https://u:********@h.example/cb?token=********"
    # a server's text quoting such a URL, whatever the client knew
    text = scrub(f"cannot deliver to {PLANTED}: refused")
    assert_hidden(text)
    assert "apiKey=***" in text


def test_records_frames_and_findings_hide_query_credentials(sim: Simulator, ts: tskit.ThingSpace) -> None:
    plant(sim)
    frame = ts.list_callbacks(ACCOUNT)
    record = tskit.Callback(ACCOUNT, "CarrierService", PLANTED)
    assert_hidden(frame.to_csv() + frame.to_json() + frame.to_html() + repr(record) + record.url)
    audit = ts.audit([ACCOUNT], progress=False)
    findings = [f for f in audit.finding_list if f.rule == "credentials-in-url-query"]
    assert [(f.service_name, f.severity) for f in findings] == [("CarrierService", tskit.audit.Severity.HIGH)]
    assert "'token', 'apikey', 'sig'" in findings[0].detail
    assert_hidden(repr(audit.finding_list) + audit.findings.to_csv() + audit.callbacks.to_csv())


def test_snapshots_and_exports_hide_query_credentials(sim: Simulator, ts: tskit.ThingSpace, tmp_path: Path) -> None:
    plant(sim)
    audit = ts.audit([ACCOUNT], progress=False)
    for name in ("a.json", "a.csv"):
        audit.save(tmp_path / name)
        assert_hidden((tmp_path / name).read_text())
        loaded = tskit.audit.Audit.load(tmp_path / name)
        assert "credentials-in-url-query" in {f.rule for f in loaded.finding_list}
    assert_hidden(ts.export([ACCOUNT]).dumps())


def test_a_snapshot_written_with_a_secret_is_masked_when_read(
    sim: Simulator, ts: tskit.ThingSpace, tmp_path: Path
) -> None:
    sim.register(ACCOUNT, "CarrierService", "https://l.example.com/cb?mode=fast", "u", "p")
    path = tmp_path / "old.json"
    ts.audit([ACCOUNT], progress=False).save(path)
    # a snapshot of an older tskit (or edited by hand) holding the URL as it was registered
    document = json.loads(path.read_text())
    document["callbacks"][0]["url"] = PLANTED
    document["findings"].append(
        {
            "account_name": ACCOUNT,
            "service_name": "CarrierService",
            "rule": "not-https",
            "severity": "medium",
            "detail": f"{PLANTED} is odd",
        }
    )
    path.write_text(json.dumps(document))
    loaded = tskit.audit.Audit.load(path)
    assert_hidden(repr(loaded.records) + loaded.callbacks.to_csv() + loaded.findings.to_csv())


@pytest.fixture
def cli_sim(cli_simulator: Simulator) -> Simulator:
    plant(cli_simulator)
    return cli_simulator


@pytest.mark.parametrize(
    "argv",
    [
        ["list", ACCOUNT],
        ["list", ACCOUNT, "--format", "csv"],
        ["list", ACCOUNT, "--format", "json"],
        ["audit", ACCOUNT],
        ["audit", ACCOUNT, "--format", "json"],
        ["audit", ACCOUNT, "--format", "csv"],
        ["export", ACCOUNT],
    ],
)
def test_cli_output_hides_query_credentials(cli_sim: Simulator, capsys: pytest.CaptureFixture[str], argv) -> None:
    main(argv)
    out, err = capsys.readouterr()
    for value in VALUES:
        assert value not in out + err
    if argv[0] == "audit":
        assert "credentials-in-url-query" in out


def test_widget_state_hides_query_credentials(sim: Simulator, ts: tskit.ThingSpace) -> None:
    pytest.importorskip("ipywidgets")
    import asyncio

    from tskit.widgets import CallbackManager

    plant(sim)
    manager = CallbackManager(ts)
    manager.account.value = ACCOUNT

    async def refresh() -> None:
        manager.refresh.click()
        if manager.pending is not None:
            await manager.pending

    asyncio.run(refresh())
    state = _all_state(manager)
    assert "CarrierService" in state
    for value in VALUES:
        assert value not in state


def _all_state(widget: Any) -> str:
    parts = [repr(widget.get_state())]
    df = getattr(widget, "df", None)
    if df is not None:
        parts.append(df.to_csv())
    for child in getattr(widget, "children", ()):
        parts.append(_all_state(child))
    return "\n".join(parts)


def reference(name: str) -> str:
    return f'password = {{ env = "{name}" }}\n'


@pytest.mark.parametrize("name", ["hunter2pass", "Tr0ub4dor&3", "AKIAIOSFODNN7EXAMPLE", "s3cr3t", "lower_case_pw"])
def test_env_reference_that_may_be_a_password_is_not_echoed(tmp_path: Path, name: str) -> None:
    path = tmp_path / "state.toml"
    path.write_text(f'["{ACCOUNT}".CarrierService]\nurl = "https://l.example.com/cb"\n' + reference(name))
    with pytest.raises(tskit.ValidationError) as caught:
        tskit.state.DesiredState.load(path, environ={})
    assert name not in str(caught.value) and name not in repr(caught.value)
    assert "password" in caught.value.field


@pytest.mark.parametrize("name", ["LISTENER_PW", "PW_2", "CARRIER_LISTENER_PASSWORD"])
def test_env_reference_that_reads_as_a_variable_is_named(tmp_path: Path, name: str) -> None:
    path = tmp_path / "state.toml"
    path.write_text(f'["{ACCOUNT}".CarrierService]\nurl = "https://l.example.com/cb"\n' + reference(name))
    with pytest.raises(tskit.ValidationError) as caught:
        tskit.state.DesiredState.load(path, environ={})
    assert f"the variable {name} is not set" in str(caught.value)
