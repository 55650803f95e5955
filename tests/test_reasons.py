"""Errors carry their meaning as data; the Python, CLI and widget messages are renderings of it."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

import tskit
from tests.conftest import FakeClock, make_client
from tskit import _validate as check
from tskit._config import base_url
from tskit._errors import PYTHON_WORDS, WHAT_TO_DO, FileReason, Reason, Remedy, ValidationError
from tskit._reasons import ACTIONS
from tskit.cli import cli_vocabulary, cli_words
from tskit.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, Simulator

DEMO_ACCOUNT = "0000123456-00001"

ROOT = Path(__file__).resolve().parents[1]


def _refused(call, *args, **kwargs) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_every_reason_says_what_to_do_and_values_are_unique() -> None:
    members = [*Reason, *FileReason]
    assert all(WHAT_TO_DO[member] for member in members)
    assert set(WHAT_TO_DO) == set(members)
    assert len({m.value for m in Reason}) == len(Reason)
    assert tskit.Reason is Reason and tskit.Remedy is Remedy and tskit.FileReason is FileReason


@pytest.mark.parametrize(
    ("call", "reason", "field", "remedy"),
    [
        (
            lambda: check.listener_url("https://l.example:8443/cb"),
            Reason.PORT_NOT_ALLOWED,
            "url",
            Remedy("set-option", option="allow_any_port", value="True"),
        ),
        (
            lambda: check.service_name("CarierService"),
            Reason.UNKNOWN_SERVICE,
            "service_name",
            Remedy("choose-from", option="allow_unknown_service", value="services"),
        ),
        (
            lambda: check.listener_url("https://me:hunter2@l.example/cb"),
            Reason.CREDENTIALS_IN_URL,
            "url",
            Remedy("listener-credentials"),
        ),
        (lambda: check.listener_url("https://l.example/cb?token=hunter2"), Reason.CREDENTIALS_IN_URL, "url", None),
        (lambda: check.account_name("not an account!"), Reason.INVALID_VALUE, "account_name", None),
    ],
)
def test_validation_errors_carry_reason_field_and_remedy(call, reason, field, remedy) -> None:
    error = _refused(call)
    assert (error.reason, error.field) == (reason, field)
    if remedy is not None:
        assert error.remedy == remedy
    assert "hunter2" not in (error.value_shown or "") and "hunter2" not in str(error)


def test_three_renderings_of_one_port_error() -> None:
    error = _refused(check.listener_url, "https://l.example:8443/cb")
    assert error.value_shown == "https://l.example:8443/cb"
    register = argparse.Namespace(command="register", allow_any_port=False)
    plan = argparse.Namespace(command="plan", file="desired.toml")
    listing = argparse.Namespace(command="list")
    from tskit.widgets._common import gui_words

    assert str(error).endswith("pass allow_any_port=True to skip this check)")
    assert cli_words(error, register).startswith("URL: port 8443 ")
    assert cli_words(error, register).endswith("add --allow-any-port to skip this check)")
    assert "set allow_any_port = true under [tskit] in the file" in cli_words(error, plan)
    assert "use allow_any_port=True from Python (tskit list has no such option)" in cli_words(error, listing)
    assert gui_words(error).endswith("tick “Allow any port” to skip this check)")
    for text in (cli_words(error, register), gui_words(error)):
        assert "allow_any_port=" not in text


def test_renderings_follow_the_fields_not_the_sentence() -> None:
    # A sentence worded anew still renders in each surface's words: nothing reads the message.
    error = ValidationError(
        "service_name",
        "is a brand-new wording",
        reason=Reason.UNKNOWN_SERVICE,
        remedy=Remedy("choose-from", option="allow_unknown_service", value="services"),
    )
    from tskit.widgets._common import gui_words

    args = argparse.Namespace(command="register", allow_unknown_service=False)
    assert cli_words(error, args) == (
        "SERVICE: is a brand-new wording (one of the services `tskit services` lists, "
        "or add --allow-unknown-service for a service newer than tskit)"
    )
    assert gui_words(error) == "Service: is a brand-new wording (choose one from the list)"
    assert error.render(PYTHON_WORDS) == str(error)


def test_a_base_url_with_a_password_never_shows_it() -> None:
    with pytest.raises(tskit.ConfigurationError) as caught:
        base_url("http://me:hunter2@thingspace.example.com")
    error = caught.value
    assert (error.reason, error.field) == (Reason.INVALID_VALUE, "base_url")
    assert "hunter2" not in str(error) and "hunter2" not in (error.value_shown or "")
    assert error.value_shown == "http://me:********@thingspace.example.com"


def test_a_missing_credential_names_its_variable_in_each_surface() -> None:
    from tskit._config import Credentials

    with pytest.raises(tskit.ConfigurationError) as caught:
        Credentials(client_id="", client_secret="s", username="u", password="p")
    error = caught.value
    assert error.reason == Reason.MISSING_CREDENTIALS and error.remedy is not None
    assert error.remedy.action == "set-variable" and error.remedy.option == "THINGSPACE_CLIENT_ID"
    assert cli_words(error).endswith("(set THINGSPACE_CLIENT_ID)")
    from tskit.widgets._common import gui_words

    assert gui_words(error) == "App key: is missing or empty (fill it in)"


def test_every_remedy_action_has_words_in_every_surface() -> None:
    from tskit.widgets._common import GUI_WORDS

    for words in (PYTHON_WORDS, cli_vocabulary(), GUI_WORDS):
        for action in ACTIONS:
            if action != "set-option":
                assert action in words.actions, (action, words)


def test_error_kinds_have_their_reasons() -> None:
    api = tskit.ApiError(400, "", "", method="GET", path="/x")
    assert api.reason == Reason.API_ERROR and not api.may_have_applied
    assert tskit.AuthenticationError(400, "UserLocked", "", method="POST", path="/x").reason == Reason.USER_LOCKED
    assert tskit.AuthenticationError(401, "", "", method="POST", path="/x").reason == Reason.LOGIN_REFUSED
    assert tskit.RateLimitError(429, "", "", method="GET", path="/x").reason == Reason.RATE_LIMITED
    throttled = tskit.AuthenticationError(429, "", "", method="POST", path="/login")
    assert throttled.reason == Reason.THROTTLED
    late = tskit.LoginThrottled(throttled, username="u", retry_after=5.0, time_left=1.0, shared=False)
    assert late.reason == Reason.THROTTLE_OUTLASTS_DEADLINE
    assert tskit.TransportError("refused", method="GET", path="/x").reason == Reason.NOT_REACHED
    assert tskit.RequestTimeout("slow", method="GET", path="/x").reason == Reason.TIMEOUT
    assert tskit.UnexpectedResponseError("odd", status_code=200, method="GET", path="/x").reason == (
        Reason.UNEXPECTED_ANSWER
    )


def test_the_listener_store_errors_have_reasons() -> None:
    from tskit.listener import MessageRefused, StoreFailed, StoreOpenError, StoreUnavailable

    kinds = (MessageRefused, StoreUnavailable, StoreFailed, StoreOpenError)
    assert [k.reason for k in kinds] == [
        Reason.MESSAGE_REFUSED,
        Reason.STORE_UNAVAILABLE,
        Reason.STORE_FAILED,
        Reason.STORE_UNOPENED,
    ]


def _regex_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imports = [
        node
        for node in ast.walk(tree)
        if (isinstance(node, ast.Import) and any(a.name == "re" for a in node.names))
        or (isinstance(node, ast.ImportFrom) and node.module == "re")
    ]
    return [ast.dump(node) for node in imports]


@pytest.mark.parametrize(
    "module",
    sorted(
        str(p.relative_to(ROOT))
        for folder in ("cli", "widgets")
        for p in (ROOT / "tskit" / folder).glob("*.py")
        if p.name != "_dashboard.py"  # its one pattern checks a snapshot's file name, typed by the user
    ),
)
def test_no_regular_expression_reads_an_error_message(module: str) -> None:
    assert _regex_calls(ROOT / module) == []


def test_the_docs_table_lists_every_reason_with_what_to_do() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("tskit_docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    table = hooks.reasons_table()
    for member in [*Reason, *FileReason]:
        assert f"| `{member.value}` |" in table
    for action in ACTIONS:
        assert f"| `{action}` |" in table
    assert hooks.REASONS_MARKER in (ROOT / "docs" / "reference" / "errors.md").read_text(encoding="utf-8")


@pytest.mark.anyio
async def test_a_refused_login_and_the_next_call_carry_their_remedies(sim: Simulator, clock: FakeClock) -> None:
    from tskit.widgets._common import plain_words

    wrong = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, "not-the-password")
    async with make_client(sim, clock, credentials=wrong) as client:
        with pytest.raises(tskit.AuthenticationError) as first:
            await client.list_callbacks(DEMO_ACCOUNT)
        with pytest.raises(tskit.AuthenticationError) as again:
            await client.list_callbacks(DEMO_ACCOUNT)
    assert (first.value.reason, first.value.remedy) == (Reason.LOGIN_REFUSED, Remedy("fix-credentials"))
    assert (again.value.reason, again.value.remedy) == (Reason.LOGIN_REFUSED, Remedy("reset-login"))
    assert cli_words(first.value).endswith("Fix the user name and password")
    assert "run `tskit reset-login` once they are fixed" in cli_words(again.value)
    assert "reset()" in str(again.value) and "reset()" not in cli_words(again.value)
    assert "log in again" in plain_words(again.value) and "reset()" not in plain_words(again.value)
    assert sim.count("login") == 1


def test_a_change_that_may_have_applied_says_so_in_the_widgets() -> None:
    from tskit.widgets._common import plain_words

    error = tskit.TransportError("connection reset", method="POST", path="/api/m2m/v1/callbacks/x")
    assert "list again to check" not in plain_words(error)
    error.may_have_applied = True
    assert plain_words(error).endswith("The change may have reached ThingSpace: list again to check")
