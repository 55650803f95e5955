"""Hostile journals and desired-state files: refused clearly, as data, bounded, never a traceback."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

import tskit
from tskit.cli import main
from tskit.simulator import Simulator, SimulatorServer, demo_env
from tskit.state import FileError, Journal, JournalError

A3 = "0000123456-00003"
WANT = {A3: {"CarrierService": {"url": "https://l.example.com/c"}, "DeviceUsage": {"url": "https://l.example.com/u"}}}
STEP = {"event": "step", "apply": "old", "step": "s1", "service_name": "CarrierService", "action": "create"}


@pytest.fixture
def served(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorServer]:
    with sim.serve() as server:
        for key, value in demo_env(server.base_url).items():
            monkeypatch.setenv(key, value)
        yield server


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_a_journal_line_nested_100000_deep_is_skipped_and_reported(
    ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path
) -> None:
    path = write_lines(
        tmp_path / "j.jsonl",
        json.dumps({"event": "apply", "apply": "old"}),
        '{"event": "step", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"event": "step", "x": ' + "[" * 20_000 + "]" * 20_000 + "}",
        json.dumps({**STEP, "account_name": A3}),
    )
    journal = Journal(path)
    assert [(p.line, p.reason) for p in journal.problems] == [(2, "line-too-long"), (3, "too-deep")]
    assert len(journal.frame) == 1 and len(journal.unfinished()) == 1
    result = ts.plan(WANT, progress=False).apply(journal=path, progress=False)
    assert result.ok and result.resumed == 1 and sim.count("register") == 2


def test_an_unfinished_step_whose_account_is_a_list_is_reported_not_a_type_error(
    ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path
) -> None:
    path = write_lines(
        tmp_path / "j.jsonl",
        json.dumps({"event": "apply", "apply": "old"}),
        json.dumps({**STEP, "account_name": [A3]}),
        json.dumps({**STEP, "step": "s2", "account_name": A3, "action": "explode"}),
        json.dumps({"event": "outcome", "apply": "old", "step": "s1", "outcome": {"no": 1}}),
        b"\xff\xfe".decode("latin-1"),
        "x" * (65 * 1024),
    )
    journal = Journal(path)
    problems = [(p.line, p.field, p.reason) for p in journal.problems]
    assert problems == [
        (2, "account_name", "wrong-type"),
        (3, "action", "wrong-type"),
        (4, "outcome", "wrong-type"),
        (5, "", "torn"),
        (6, "", "line-too-long"),
    ]
    assert journal.unfinished() == [] and journal.frame.empty
    assert ts.plan(WANT, progress=False).apply(journal=path, progress=False).ok
    assert sim.count("register") == 2


def test_a_journal_that_is_not_one_is_refused_with_its_reason(tmp_path: Path) -> None:
    deep = write_lines(tmp_path / "deep.jsonl", "[" * 50_000)
    with pytest.raises(JournalError) as caught:
        Journal(deep)
    assert (caught.value.reason, caught.value.line) == ("not-a-journal", 1)
    assert "line 1: nests objects or arrays too deep" in str(caught.value)
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    for opened in (Journal, Journal.for_writing):
        with pytest.raises(JournalError) as caught:
            opened(fifo)  # never blocks waiting for a writer
        assert caught.value.reason == "not-a-file"
    big = tmp_path / "big.jsonl"
    with big.open("wb") as handle:
        handle.truncate(64 * 2**20 + 1)
    with pytest.raises(JournalError) as caught:
        Journal(big)
    assert caught.value.reason == "too-large" and caught.value.remedy == tskit.Remedy("new-journal")
    assert str(caught.value).endswith("Start a new journal (journal=)")


def test_a_full_disk_under_the_journal_is_one_sentence(
    served: SimulatorServer,
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = tmp_path / "want.toml"
    state.write_text(tskit.state.DesiredState.from_mapping(WANT).dumps())
    real_write = os.write
    lines: list[bytes] = []

    def full_after_two(fd: int, data: bytes) -> int:  # the apply line and one step line fit, then the disk is full
        if not os.readlink(f"/proc/self/fd/{fd}").endswith(".jsonl"):
            return real_write(fd, data)  # only the journal's disk is full
        if len(lines) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        lines.append(data)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_after_two)
    code = main(["apply", str(state), "--yes", "--journal", str(tmp_path / "j.jsonl"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err and "ExceptionGroup" not in err
    assert "the disk is full" in err
    assert sim.count("register") <= 1  # no step sent without its line on disk
    with pytest.raises(JournalError) as caught:
        Journal.for_writing(tmp_path / "k.jsonl").write("apply")
    assert caught.value.reason == "disk-full"


def toml_refusal(path: Path) -> FileError:
    with pytest.raises(FileError) as caught:
        tskit.state.DesiredState.load(path)
    assert isinstance(caught.value, tskit.ValidationError)
    return caught.value


def test_a_toml_nested_20000_deep_or_with_40_kb_of_dotted_keys_is_refused_before_tomllib(tmp_path: Path) -> None:
    deep = tmp_path / "deep.toml"
    deep.write_text('# a comment with [[[ and "\n["0000123456-00001".CarrierService]\nurl = ' + "[" * 20_000)
    error = toml_refusal(deep)
    assert (error.reason, error.line) == ("too-deep", 3)
    assert error.field == f"{deep} line 3"
    dotted = tmp_path / "dotted.toml"
    dotted.write_text("a" + ".a" * 20_000 + " = 1\n")
    tracemalloc.start()
    try:
        error = toml_refusal(dotted)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (error.reason, error.line) == ("too-deep", 1) and peak < 10 * 2**20
    keys = tmp_path / "keys.toml"
    keys.write_text("".join(f"k{i} = 1\n" for i in range(200_001)))
    assert toml_refusal(keys).reason == "too-many-keys"
    fine = tmp_path / "fine.toml"  # brackets, dots and equals signs inside strings and comments count for nothing
    fine.write_text(
        '["0000123456-00001".CarrierService]  # [[[[ a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r\n'
        f"url = \"https://l.example.com/{'[{' * 40}{'.x' * 40}\"\nusername = 'a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s'\n"
        'password = """\n' + "[" * 40 + '\n"""\n'
    )
    with pytest.raises(tskit.ValidationError) as caught:
        tskit.state.DesiredState.load(fine)
    assert not isinstance(caught.value, FileError)  # past the shape check: refused for its values only


@pytest.mark.parametrize("kind", ["fifo", "deep", "folder", "not-utf8"])
def test_plan_on_a_hostile_file_exits_1_with_one_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "state.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "deep":
        path.write_text("a = " + "{a = " * 20_000)
    elif kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(b'["0000123456-00001".CarrierService]\nurl = "\xff"\n')
    env = {**os.environ, "TSKIT_CONFIG_DIR": str(tmp_path / "config")}
    # the timeout bounds a hang (a FIFO used to block forever); it measures nothing
    done = subprocess.run(
        [sys.executable, "-m", "tskit", "plan", str(path), "--simulator"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    words = {
        "fifo": "is a FIFO, not a regular file",
        "deep": "line 1: nests tables or arrays more than 16 deep",
        "folder": "is a folder, not a regular file",
        "not-utf8": "line 2: is not UTF-8 text",
    }
    assert words[kind] in done.stderr


@pytest.mark.parametrize("kind", ["fifo", "deep", "list"])
def test_apply_with_a_hostile_journal_exits_1_with_one_line_before_sending(
    served: SimulatorServer, sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    state = tmp_path / "want.toml"
    state.write_text(tskit.state.DesiredState.from_mapping(WANT).dumps())
    journal = tmp_path / "j.jsonl"
    if kind == "fifo":
        os.mkfifo(journal)
    elif kind == "deep":
        write_lines(journal, '{"event": ' + "[" * 30_000)
    else:
        write_lines(journal, json.dumps({**STEP, "event": ["step"], "account_name": [A3]}))
    code = main(["apply", str(state), "--yes", "--journal", str(journal), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and sim.count("register") == 0
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert {"fifo": "not a regular file", "deep": "line 1: nests objects", "list": "line 1: is not a journal event"}[
        kind
    ] in err
