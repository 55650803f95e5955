"""Desired state: files, validation, plans, journaled applies, export and rotation on the simulator."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

import tskit
from tskit.simulator import Fault, Simulator
from tskit.state import DesiredState, Journal, StalePlanError

A1, A2, A3 = "0000123456-00001", "0000123456-00002", "0000123456-00003"
NEW_PW = "rotated-Pw-42"


def registrations(sim: Simulator, account: str) -> dict[str, tuple[str, str, str]]:
    return {r["serviceName"]: (r["url"], r["username"], r["password"]) for r in sim.registrations(account)}


def secrets_in(folder: Path, *secrets: str) -> list[str]:
    """Files under ``folder`` holding any of ``secrets``."""
    return [str(p) for p in folder.rglob("*") if p.is_file() and any(s.encode() in p.read_bytes() for s in secrets)]


# -- the desired state as data -------------------------------------------------------------------


def test_toml_with_defaults_and_env_references(tmp_path: Path) -> None:
    path = tmp_path / "callbacks.toml"
    path.write_text(
        '[defaults]\nusername = "ts"\npassword = { env = "LISTENER_PW" }\n\n'
        f'["{A1}".CarrierService]\nurl = "https://l.example.com/c"\n\n'
        f'["{A1}".DeviceUsage]\nurl = "https://l.example.com/u"\nusername = "other"\npassword = ""\n\n'
        f'["{A3}"]\n'
    )
    state = DesiredState.load(path, environ={"LISTENER_PW": "s3cret-env"})
    carrier = state.accounts[A1]["CarrierService"]
    assert (carrier.url, carrier.username, carrier.password.reveal(), carrier.env) == (
        "https://l.example.com/c",
        "ts",
        "s3cret-env",
        "LISTENER_PW",
    )
    usage = state.accounts[A1]["DeviceUsage"]
    assert (usage.username, usage.password.reveal()) == ("other", "")
    assert state.accounts[A3] == {}
    assert "s3cret-env" not in repr(state) + repr(carrier) + state.frame.to_string()
    # written back: the reference, never the password
    text = state.dumps()
    assert 'password = { env = "LISTENER_PW" }' in text and "s3cret-env" not in text
    assert tomllib.loads(text)[A1]["CarrierService"]["password"] == {"env": "LISTENER_PW"}
    assert DesiredState.from_mapping(tomllib.loads(text), environ={"LISTENER_PW": "s3cret-env"}) == state


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (f'["{A1}".CarrierService]\nurl = "https://l.example.com:8443/c"\n', "[0000123456-00001.CarrierService] url"),
        (f'["{A1}".CarierService]\nurl = "https://l.example.com/c"\n', "did you mean 'CarrierService'"),
        ('["bad account!".CarrierService]\nurl = "https://l.example.com/c"\n', "account 'bad account!'"),
        (f'["{A1}".CarrierService]\nusername = "u"\n', "url: is missing"),
        (f'["{A1}".CarrierService]\nurl = "https://l.example.com/c"\npassword = "plain"\n', "never holds a password"),
        (f'["{A1}".CarrierService]\nurl = "https://l.example.com/c"\npassword = {{ env = "NOPE_X" }}\n', "NOPE_X"),
        (f'["{A1}".CarrierService]\nurl = "https://l.example.com/c"\ncolour = "red"\n', "unknown keys ['colour']"),
        (f'["{A1}".CarrierService]\nurl = "https://l.example.com/c"\nusername = "{"u" * 41}"\n', "41 characters"),
        ('[defaults]\npassword = { file = "x" }\n', "unknown reference"),
        ("not toml [", "is not valid TOML"),
    ],
)
def test_bad_values_name_file_account_service_and_field(tmp_path: Path, body: str, words: str) -> None:
    path = tmp_path / "desired.toml"
    path.write_text(
        body if "defaults" not in body else body + f'["{A1}".CarrierService]\nurl = "https://x.example.com/"\n'
    )
    with pytest.raises(tskit.ValidationError) as caught:
        DesiredState.load(path, environ={})
    assert "desired.toml" in str(caught.value) and words in str(caught.value)
    assert "plain" not in str(caught.value)  # a password written as text is never echoed


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('password = { env = "EMPTY_PW" }\n', "the variable EMPTY_PW is empty"),
        ('[defaults]\npassword = { env = "EMPTY_PW" }\n', "the variable EMPTY_PW is empty"),
        ('password = { env = "Hunter2 secret!" }\n', "password: the env reference is not a variable name"),
        ('password = { fingerprint = "Hunter2 secret!" }\n', "the fingerprint reference is not a fingerprint"),
        ('password = { "Hunter2 secret!" = "x" }\n', "unknown reference key"),
        ('password = { evn = "Hunter2 secret!" }\n', "did you mean 'env'"),
    ],
)
def test_references_refuse_empty_variables_and_never_echo_what_may_be_a_password(
    tmp_path: Path, body: str, words: str
) -> None:
    path = tmp_path / "desired.toml"
    listener = f'["{A1}".CarrierService]\nurl = "https://l.example.com/c"\n'
    path.write_text(body + listener if body.startswith("[defaults]") else listener + body)
    with pytest.raises(tskit.ValidationError) as caught:
        DesiredState.load(path, environ={"EMPTY_PW": ""})
    assert words in str(caught.value) and "Hunter2" not in str(caught.value)


def test_a_file_named_like_a_mapping_still_refuses_passwords_as_text(tmp_path: Path) -> None:
    path = tmp_path / "<mapping>"
    path.write_text(f'["{A1}".CarrierService]\nurl = "https://l.example.com/c"\npassword = "plain-text"\n')
    with pytest.raises(tskit.ValidationError) as caught:
        DesiredState.load(path)
    assert caught.value.field.endswith("[0000123456-00001.CarrierService] password")
    assert "plain-text" not in str(caught.value)


def test_a_desired_state_file_over_16_mb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    path.write_bytes(b"# padding\n" * (2 * 2**20))
    with pytest.raises(tskit.ValidationError) as caught:
        DesiredState.load(path)
    assert caught.value.reason == tskit.FileReason.TOO_LARGE and caught.value.field == str(path)


def test_an_export_writes_none_explicitly_so_defaults_added_later_do_not_apply(
    ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path
) -> None:
    sim.register(A3, "CarrierService", "https://l.example.com/c")  # no username, no password
    path = ts.export([A3], progress=False).save(tmp_path / "c.toml")
    text = path.read_text()
    assert 'username = ""' in text and 'password = ""' in text
    path.write_text('[defaults]\nusername = "ts"\npassword = { env = "PW" }\n' + text)
    assert not ts.plan(DesiredState.load(path, environ={"PW": "set-later"}), progress=False).has_changes


def test_a_python_mapping_may_hold_the_password_itself() -> None:
    state = DesiredState.from_mapping({A1: {"CarrierService": {"url": "https://l.example.com/c", "password": "pw"}}})
    assert state.accounts[A1]["CarrierService"].password.reveal() == "pw"
    with pytest.raises(ValueError, match="cannot be written"):
        state.dumps()
    with pytest.raises(tskit.ValidationError) as caught:
        DesiredState.from_mapping({A1: {"CarrierService": {"url": "https://l.example.com/c", "password": "p" * 41}}})
    assert caught.value.field == f"<mapping>: [{A1}.CarrierService] password" and caught.value.value_shown is None


def test_a_file_may_relax_the_port_and_service_checks_for_itself(tmp_path: Path) -> None:
    body = f'["{A1}".CarrierService]\nurl = "https://l.example.com:8443/c"\n\n["{A1}".BrandNewService]\nurl = "https://l.example.com/n"\n'
    path = tmp_path / "c.toml"
    path.write_text(body)
    with pytest.raises(tskit.ValidationError) as caught:
        DesiredState.load(path)
    assert caught.value.reason == tskit.Reason.PORT_NOT_ALLOWED and caught.value.field.endswith("url")
    assert caught.value.remedy == tskit.Remedy("set-option", option="allow_any_port", value="True")
    path.write_text("[tskit]\nallow_any_port = true\nallow_unknown_service = true\n\n" + body)
    state = DesiredState.load(path)
    assert state.allow_any_port and set(state.accounts[A1]) == {"CarrierService", "BrandNewService"}
    assert "allow_any_port = true" in state.dumps()
    path.write_text('[tskit]\ncolour = "red"\n')
    with pytest.raises(tskit.ValidationError) as caught:
        DesiredState.load(path)
    assert caught.value.field.endswith("[tskit]") and caught.value.problem == "unknown keys ['colour']"


def test_an_export_relaxes_only_the_checks_what_thingspace_holds_would_fail(
    ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path
) -> None:
    assert not ts.export([A1], progress=False).allow_any_port
    sim.register(A3, "CarrierService", "https://l.example.com:8443/c")
    state = ts.export([A3], progress=False)
    assert state.allow_any_port and not state.allow_unknown_service
    loaded = DesiredState.load(state.save(tmp_path / "c.toml"))
    assert loaded == state and loaded.allow_any_port
    assert not ts.plan(loaded, progress=False).has_changes


# -- plan --------------------------------------------------------------------------------------------


def test_plan_sends_nothing_and_lists_every_action(ts: tskit.ThingSpace, sim: Simulator) -> None:
    desired = {
        A1: {
            "CarrierService": {"url": "https://new.example.com/c", "username": "tsuser", "password": "demo-pass-1"},
            "DeviceUsage": {"url": "https://listener.example.com/thingspace/usage"},
        },
        A2: {"CarrierService": {"url": "http://203.0.113.10:9001/callbacks", "username": "ops", "password": "new"}},
        A3: {"NiddService": {"url": "https://l.example.com/n", "username": "n", "password": "pw-n"}},
    }
    before = sim.count("register") + sim.count("deregister")
    plan = ts.plan(desired, prune=True, progress=False)
    assert sim.count("register") + sim.count("deregister") == before
    assert plan.counts() == {"create": 1, "update": 2, "delete": 1, "keep": 1}
    changes = plan.changes
    assert list(changes.columns) == ["account_name", "service_name", "action", "field", "old", "new"]
    assert list(changes["action"].cat.categories) == ["create", "update", "delete", "keep"]
    assert changes["action"].cat.ordered
    rows = {(r.account_name, r.service_name, r.field): (r.action, r.old, r.new) for r in changes.itertuples()}
    assert rows[(A1, "CarrierService", "url")] == (
        "update",
        "https://listener.example.com/thingspace/carrier",
        "https://new.example.com/c",
    )
    assert rows[(A1, "CarrierService", "password")] == ("update", "********", "unchanged")
    assert rows[(A2, "CarrierService", "password")] == ("update", "********", "changed")
    assert rows[(A2, "NiddService", "url")][0] == "delete"
    assert rows[(A3, "NiddService", "password")] == ("create", "", "changed")
    assert rows[(A1, "DeviceUsage", "")] == ("keep", "", "")
    shown = changes.to_string() + repr(plan) + plan._repr_html_()
    assert "demo-pass" not in shown and "pw-n" not in shown
    # without prune, services not named are left alone
    assert ts.plan(desired, progress=False).counts()["delete"] == 0


def test_plan_lists_unreadable_accounts_and_gives_them_no_changes(ts: tskit.ThingSpace) -> None:
    plan = ts.plan({"9999999999-00001": {"CarrierService": {"url": "https://l.example.com/c"}}, A3: {}}, progress=False)
    assert plan.errors["account_name"].tolist() == ["9999999999-00001"]
    assert not plan.has_changes
    assert "9999999999-00001" in repr(plan) and "9999999999-00001" in plan._repr_html_()


def test_plan_html_escapes_and_colours_by_action(ts: tskit.ThingSpace) -> None:
    plan = ts.plan({A3: {"CarrierService": {"url": "https://l.example.com/<script>"}}}, progress=False)
    html = plan._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "#2e7d32" in html and "1 create" in html


# -- apply and the journal ------------------------------------------------------------------------------


def test_apply_journals_each_step_before_and_after(ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path) -> None:
    desired = {
        A1: {"CarrierService": {"url": "https://new.example.com/c", "username": "tsuser", "password": "fresh-pw-1"}},
        A3: {"DeviceUsage": {"url": "https://l.example.com/u"}},
    }
    plan = ts.plan(desired, prune=True, progress=False)
    result = plan.apply(journal=tmp_path / "j.jsonl", progress=False)
    assert result.ok and result.counts() == {"done": 3, "confirmed": 0, "failed": 0}
    assert result.outcomes[["service_name", "action", "outcome"]].values.tolist() == [
        ["DeviceUsage", "create", "done"],
        ["CarrierService", "update", "done"],
        ["DeviceUsage", "delete", "done"],
    ]
    assert registrations(sim, A1) == {"CarrierService": ("https://new.example.com/c", "tsuser", "fresh-pw-1")}
    assert registrations(sim, A3) == {"DeviceUsage": ("https://l.example.com/u", "", "")}
    lines = [json.loads(line) for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert lines[0]["event"] == "apply" and len(lines) == 7
    steps = [line for line in lines if line["event"] == "step"]
    outcomes = [line for line in lines if line["event"] == "outcome"]
    assert sorted(s["step"] for s in steps) == sorted(o["step"] for o in outcomes) and len(steps) == 3
    for outcome in outcomes:  # each outcome line comes after its step line
        assert lines.index(next(s for s in steps if s["step"] == outcome["step"])) < lines.index(outcome)
    assert "fresh-pw-1" not in (tmp_path / "j.jsonl").read_text()
    assert all(s["password_fingerprint"] for s in steps if s["action"] == "update")
    frame = Journal(tmp_path / "j.jsonl").frame
    assert frame["outcome"].tolist() == ["done"] * 3 and "password" not in frame.columns
    assert not ts.plan(desired, prune=True, progress=False).has_changes


def test_a_stale_plan_is_refused_and_nothing_is_sent(
    ts: tskit.ThingSpace, sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    plan = ts.plan({A3: {"CarrierService": {"url": "https://l.example.com/c"}}}, progress=False)
    monkeypatch.setattr(plan, "_created", plan._created - 301)
    with pytest.raises(StalePlanError) as caught:
        plan.apply(journal=tmp_path / "j.jsonl")
    assert caught.value.reason == tskit.Reason.STALE_PLAN
    assert sim.count("register") == 0 and not (tmp_path / "j.jsonl").exists()
    fresh = ts.plan({A3: {"CarrierService": {"url": "https://l.example.com/c"}}}, progress=False)
    with pytest.raises(StalePlanError) as caught:
        fresh.apply(journal=tmp_path / "j.jsonl", max_age=0)
    assert "0 s old" not in str(caught.value) and "(the most is 0 s)" in str(caught.value)


def test_a_failed_step_is_journaled_with_its_reason(ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path) -> None:
    from tskit.simulator import Fault

    plan = ts.plan({A3: {"CarrierService": {"url": "https://l.example.com/c"}}}, progress=False)
    sim.faults.scripted.append(Fault(status=400, operations=("register",)))
    result = plan.apply(journal=tmp_path / "j.jsonl", progress=False)
    assert not result.ok and result.outcomes["outcome"].tolist() == ["failed"]
    assert "400" in result.outcomes["reason"][0]
    assert Journal(tmp_path / "j.jsonl").frame["outcome"].tolist() == ["failed"]


def test_an_interrupted_step_is_closed_by_the_next_apply(ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path) -> None:
    desired = {
        A3: {"CarrierService": {"url": "https://l.example.com/c"}, "DeviceUsage": {"url": "https://l.example.com/u"}}
    }
    plan = ts.plan(desired, progress=False)
    journal = Journal.for_writing(tmp_path / "j.jsonl")
    # As if a process wrote both steps, sent the first, and was killed before any outcome:
    journal.write("apply", apply="crashed")
    for step in plan.steps:
        journal.write("step", apply="crashed", **step.record())
    sim.register(A3, "CarrierService", "https://l.example.com/c")
    result = ts.plan(desired, progress=False).apply(journal=journal, progress=False)
    assert result.resumed == 2
    assert [o.step.service_name for o in result.outcome_list] == ["DeviceUsage"]  # the first is not sent again
    frame = journal.frame.set_index(["apply", "service_name"])
    assert frame.loc[("crashed", "CarrierService"), "outcome"] == "confirmed"
    assert frame.loc[("crashed", "DeviceUsage"), "outcome"] == "failed"
    assert sim.count("register") == 1
    assert journal.unfinished() == []


def test_journal_skips_a_line_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal.for_writing(path)
    journal.write("step", apply="a", step="s1", account_name=A1, service_name="CarrierService", action="create")
    with path.open("a") as handle:
        handle.write('{"event": "outcome", "apply": "a", "st')
    assert len(journal.entries()) == 1 and journal.frame["step"].tolist() == ["s1"]
    assert [s["step"] for s in journal.unfinished()] == ["s1"]


# -- export -----------------------------------------------------------------------------------------


def test_export_then_plan_finds_nothing_and_the_file_holds_no_password(
    ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path
) -> None:
    state = ts.export(sim.accounts, progress=False)
    assert not ts.plan(state, prune=True, progress=False).has_changes
    path = state.save(tmp_path / "callbacks.toml")
    assert secrets_in(tmp_path, "demo-pass-1", "demo-pass-2", "demo-pass-3") == []
    loaded = DesiredState.load(path)
    assert loaded == state and loaded.accounts[A3] == {}
    assert not ts.plan(path, prune=True, progress=False).has_changes
    # the URL of an exported listener changes: its password is kept although the file never knew it
    text = path.read_text().replace("thingspace/carrier", "thingspace/carrier-v2")
    path.write_text(text)
    result = ts.plan(path, progress=False).apply(journal=tmp_path / "j.jsonl", progress=False)
    assert result.ok
    assert registrations(sim, A1)["CarrierService"] == (
        "https://listener.example.com/thingspace/carrier-v2",
        "tsuser",
        "demo-pass-1",
    )
    assert secrets_in(tmp_path, "demo-pass-1") == []


def test_a_fingerprint_that_no_longer_matches_is_an_error_not_a_guess(ts: tskit.ThingSpace, sim: Simulator) -> None:
    state = ts.export([A1], progress=False)
    sim.register(A1, "CarrierService", "https://listener.example.com/thingspace/carrier", "tsuser", "changed-meanwhile")
    plan = ts.plan(state, progress=False)
    assert plan.errors["error"].tolist() == ["PasswordUnknown"]
    assert [(s.service_name, s.action) for s in plan.steps] == []


def test_fingerprints_of_another_key_are_refused(ts: tskit.ThingSpace) -> None:
    state = ts.export([A1], progress=False)
    with pytest.raises(tskit.ValidationError) as caught:
        ts.plan(state, progress=False, fingerprint_key="another key of 16+ bytes")
    assert caught.value.field.endswith("fingerprint_key_id")


# -- rotation ------------------------------------------------------------------------------------------


def test_rotation_with_a_listener_taking_both_passwords(ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path) -> None:
    from tskit.listener import Listener

    with Listener(username="tsuser", password="old-pw", port=0) as listener:
        url = listener.url_for("CarrierService")
        sim.config.enforce_listener_ports = False
        sim.register(A3, "CarrierService", url, "tsuser", "old-pw")
        sim.register(A3, "DeviceUsage", url.replace("CarrierService", "DeviceUsage"), "tsuser", "old-pw")
        result = ts.rotate_password([A3, A1], new_password=NEW_PW, listener=listener, journal=tmp_path / "r.jsonl")
        assert result.ok and result.remaining.empty
        assert listener.app.passwords == [NEW_PW.encode(), b"old-pw"]  # both, until ThingSpace stops the old
        assert {r[2] for r in registrations(sim, A3).values()} == {NEW_PW}
        assert registrations(sim, A1)["CarrierService"][2] == NEW_PW
        assert registrations(sim, A1)["DeviceUsage"][2] == ""  # no credentials: left alone
        listener.set_password(NEW_PW)
        assert listener.app.passwords == [NEW_PW.encode()]
    assert secrets_in(tmp_path, NEW_PW, "old-pw") == []
    assert len(Journal(tmp_path / "r.jsonl").frame) == 3


def test_rotation_lists_what_is_still_on_the_old_password(ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path) -> None:
    from tskit.simulator import Fault

    sim.faults.scripted.append(Fault(status=400, operations=("register",)))
    result = ts.rotate_password(
        [A2], ["CarrierService"], new_password=NEW_PW, journal=tmp_path / "r.jsonl", allow_http=True
    )
    assert not result.ok
    assert result.remaining.values.tolist() == [[A2, "CarrierService", "still on another password"]]
    assert registrations(sim, A2)["NiddService"][2] == "demo-pass-3"  # not asked for: untouched
    assert "CarrierService" in repr(result)


def test_rotation_run_again_keeps_the_listener_accepting_the_old_password(
    ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path
) -> None:
    from tskit.listener import Listener

    sim.config.enforce_listener_ports = False
    with Listener(username="tsuser", password="old-pw", port=0) as listener:
        sim.register(A3, "CarrierService", listener.url_for("CarrierService"), "tsuser", "old-pw")
        for _ in range(2):  # a notebook cell run twice
            result = ts.rotate_password(A3, new_password=NEW_PW, listener=listener, journal=tmp_path / "r.jsonl")
            assert result.ok
        assert listener.app.passwords == [NEW_PW.encode(), b"old-pw"]
        # a listener that lost the grace gets back the password still registered for it
        listener.set_password("other-pw")
        sim.register(A3, "CarrierService", listener.url_for("CarrierService"), "tsuser", "old-pw")
        sim.faults.scripted.append(Fault(status=400, operations=("register",)))
        assert not ts.rotate_password(A3, new_password=NEW_PW, listener=listener, journal=tmp_path / "r.jsonl").ok
        assert set(listener.app.passwords) == {NEW_PW.encode(), b"other-pw", b"old-pw"}
    with pytest.raises(tskit.ValidationError) as caught:
        ts.rotate_password(A3, new_password=NEW_PW, listener=listener)
    assert caught.value.field == "listener" and caught.value.problem.startswith("is stopped")


def test_rotation_checks_services_and_says_when_nothing_matched(ts: tskit.ThingSpace, sim: Simulator) -> None:
    with pytest.raises(tskit.ValidationError) as caught:
        ts.rotate_password([A1], ["CarierService"], new_password=NEW_PW)
    assert (caught.value.field, caught.value.reason) == ("services", tskit.Reason.UNKNOWN_SERVICE)
    assert caught.value.value_shown == "CarierService" and "did you mean 'CarrierService'" in caught.value.problem
    result = ts.rotate_password([A1], "CarrierService", new_password=NEW_PW)  # one name, not its letters
    assert result.ok and result.matched == 1
    assert registrations(sim, A1)["CarrierService"][2] == NEW_PW and registrations(sim, A1)["DeviceUsage"][2] != NEW_PW
    nothing = ts.rotate_password([A3], new_password=NEW_PW)
    assert not nothing.ok and "No listener matched" in repr(nothing)


def test_rotation_skips_listeners_without_credentials_and_refuses_clear_text(
    ts: tskit.ThingSpace, sim: Simulator
) -> None:
    sim.register(A3, "CarrierService", "https://l.example.com/c")  # checks no password
    result = ts.rotate_password([A3], new_password=NEW_PW)
    assert result.skipped == 1 and registrations(sim, A3)["CarrierService"][2] == ""
    assert "1 listener with no username or password left alone" in repr(result)
    assert ts.rotate_password([A3], new_password=NEW_PW, include_without_credentials=True).ok
    sim.register(A3, "DeviceUsage", "http://l.example.com:9001/u", "ts", "old")
    before = sim.count("register")
    with pytest.raises(tskit.ValidationError) as caught:
        ts.rotate_password([A3], new_password="another-pw")
    assert caught.value.field == "new_password"
    assert caught.value.remedy == tskit.Remedy("set-option", option="allow_http", value="True")
    assert sim.count("register") == before
    assert ts.rotate_password([A3], new_password="another-pw", allow_http=True).ok


def test_rotation_names_the_variables_to_update_so_plan_does_not_undo_it(
    ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'["{A3}".CarrierService]\nurl = "https://l.example.com/c"\npassword = {{ env = "LPW" }}\n')
    monkeypatch.setenv("LPW", "old-pw")
    assert ts.plan(path).apply(journal=tmp_path / "j.jsonl").ok
    result = ts.rotate_password(A3, new_password=NEW_PW, desired=path, journal=tmp_path / "j.jsonl")
    assert result.variables == ["LPW"] and "Now set LPW (named by c.toml) to the new password" in repr(result)
    assert "password changed" in repr(ts.plan(path))  # the file still says the old one
    monkeypatch.setenv("LPW", NEW_PW)
    assert not ts.plan(path).has_changes
    exported = ts.export([A1]).save(tmp_path / "e.toml")
    result = ts.rotate_password(A1, "CarrierService", new_password=NEW_PW, desired=exported)
    assert "e.toml keeps 1 of these passwords by fingerprint" in result.next_step


def test_plan_text_carries_no_terminal_escapes_from_the_server(ts: tskit.ThingSpace, sim: Simulator) -> None:
    sim.register(A3, "CarrierService", "https://l.example.com/\x1b]0;pwned\x07")
    plan = ts.plan({A3: {"CarrierService": {"url": "https://l.example.com/c"}}}, progress=False)
    assert plan.counts()["update"] == 1
    assert "\x1b" not in repr(plan) and "\x07" not in repr(plan)


HIDDEN = "\x85\x9b\u202e\u2066\u200b\ufeff\u2028\u2029"


def test_plan_text_and_html_carry_no_hidden_or_reordering_characters(
    ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path
) -> None:
    sim.register(A3, "CarrierService", f"https://l.example.com/{HIDDEN}x")
    path = tmp_path / f"desired{HIDDEN}.toml"
    path.write_text(f'["{A3}".CarrierService]\nurl = "https://l.example.com/c"\nusername = ""\npassword = ""\n')
    plan = ts.plan(path, progress=False)
    assert plan.counts()["update"] == 1
    for shown in (repr(plan), plan._repr_html_()):
        assert not any(ch in shown for ch in HIDDEN), ascii(shown)


def test_plan_text_says_what_happens_to_passwords_and_unmanaged_listeners(ts: tskit.ThingSpace, sim: Simulator) -> None:
    sim.register(A3, "CarrierService", "https://l.example.com/c", "ts", "old-pw")
    sim.register(A3, "DeviceUsage", "https://l.example.com/u")
    plan = ts.plan(
        {A3: {"CarrierService": {"url": "https://l.example.com/c2", "username": "ts", "password": "old-pw"}}}
    )
    text = repr(plan)
    assert "password unchanged" in text and "-> unchanged" not in text and "; 0 errors>" in text
    assert "1 listener of the accounts named is not in the desired state: unmanaged" in text
    changed = ts.plan({A3: {"CarrierService": {"url": "https://l.example.com/c", "username": "ts", "password": "n"}}})
    assert "password changed" in repr(changed) and "1 listener password would be set or changed" in repr(changed)
    assert "<b>password changed</b>" in changed._repr_html_()
    emptied = ts.plan({A3: {}}, progress=False)
    assert "Nothing to change" in repr(emptied) and "2 listeners of the accounts named are not" in repr(emptied)
    assert "  " not in repr(emptied).replace("\n  ", "\n")


def test_results_say_counts_in_words(ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path) -> None:
    result = ts.rotate_password(
        [A2], ["CarrierService"], new_password=NEW_PW, journal=tmp_path / "r.jsonl", allow_http=True
    )
    assert repr(result).startswith("<RotationResult: 1 done, 0 confirmed, 0 failed; 0 listeners still on another")
    plan = ts.plan({"9999999999-00001": {}}, progress=False)
    assert "; 1 error>" in repr(plan) and "<b>1 error</b>" in plan._repr_html_()
