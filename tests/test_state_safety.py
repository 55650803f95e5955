"""Applies that must not run twice: one apply per journal (threads, processes), a plan used once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import tskit
from tskit import FileReason
from tskit.simulator import Simulator
from tskit.state import Journal, JournalError, PlanUsedError

A1, A2, A3 = "0000123456-00001", "0000123456-00002", "0000123456-00003"
WANT = {A3: {"CarrierService": {"url": "https://l.example.com/c"}, "DeviceUsage": {"url": "https://l.example.com/u"}}}


def test_a_second_apply_on_a_held_journal_is_refused_across_processes(
    ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path
) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal.for_writing(path)
    journal.write("apply", apply="other")
    journal.write("step", apply="other", step="s1", account_name=A3, service_name="CarrierService", action="create")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, tskit.state as s\nwith s.Journal(sys.argv[1]).hold():\n    print('held', flush=True)\n"
            "    sys.stdin.read()\n",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        plan = ts.plan(WANT, progress=False)
        with pytest.raises(JournalError) as caught:
            plan.apply(journal=path, progress=False)
        assert caught.value.reason == FileReason.IN_USE and caught.value.path == str(path)
        assert sim.count("register") == 0
        # the other apply's step in flight is not closed as interrupted
        assert [s["step"] for s in Journal(path).unfinished()] == ["s1"]
        assert not plan.applied  # refused before anything: the plan can still be applied
    finally:
        holder.communicate("", timeout=10)
    result = plan.apply(journal=path, progress=False)
    assert result.ok and result.resumed == 1 and sim.count("register") == 2


def test_two_threads_applying_on_one_journal_one_is_refused(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    sim.faults.latency = 0.3  # the first apply is still sending when the second starts
    barrier = threading.Barrier(2)
    outcomes: list[object] = [None, None]

    async def plan_and_apply(i: int) -> None:
        async with tskit.connect(simulator=sim) as ts:  # a connection per thread, as a user would have
            plan = await ts.aplan(WANT, progress=False)
            await asyncio.to_thread(barrier.wait)
            try:
                outcomes[i] = await plan.aapply(journal=path, progress=False, concurrency=1)
            except JournalError as exc:
                outcomes[i] = exc

    def thread(i: int) -> None:
        loop = asyncio.new_event_loop()  # a loop of its own, closed after (asyncio.run may be patched)
        try:
            loop.run_until_complete(plan_and_apply(i))
        finally:
            loop.close()

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    refused = [o for o in outcomes if isinstance(o, JournalError)]
    done = [o for o in outcomes if isinstance(o, tskit.state.ApplyResult)]
    assert len(refused) == 1 and len(done) == 1, outcomes
    assert isinstance(refused[0], JournalError) and refused[0].reason == FileReason.IN_USE
    assert sim.count("register") == 2  # each step sent once
    frame = Journal(path).frame
    assert len(frame) == 2 and frame["outcome"].tolist() == ["done", "done"]


def test_a_plan_is_applied_once(ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path) -> None:
    plan = ts.plan(WANT, progress=False)
    assert plan.apply(journal=tmp_path / "j.jsonl", progress=False).ok
    sent = sim.count("register")
    with pytest.raises(PlanUsedError) as used:
        plan.apply(journal=tmp_path / "j.jsonl", progress=False)
    assert used.value.reason == tskit.Reason.PLAN_USED
    assert sim.count("register") == sent == 2
    assert len(Journal(tmp_path / "j.jsonl").frame) == 2


def test_a_torn_last_line_does_not_swallow_the_next(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal.for_writing(path)
    journal.write("step", apply="a", step="s1", account_name=A1, service_name="CarrierService", action="create")
    with path.open("a") as handle:
        handle.write('{"event": "outcome", "apply": "a", "st')  # killed in the middle of a line
    journal.write("outcome", apply="a", step="s1", outcome="done", reason="")
    assert Journal(path).frame["outcome"].tolist() == ["done"]
    assert Journal(path).unfinished() == []


def test_reading_a_journal_that_is_missing_or_not_a_journal_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError) as caught:
        Journal(tmp_path / "missing.jsonl")
    assert caught.value.reason == FileReason.MISSING
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(JournalError) as caught:
        Journal(tmp_path / "notes.txt")
    assert caught.value.reason == FileReason.NOT_A_JOURNAL
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(JournalError) as caught:
        Journal(tmp_path / "empty.jsonl")
    assert caught.value.reason == FileReason.NOT_A_JOURNAL


@pytest.mark.parametrize("where", ["folder", "missing-folder"])
def test_a_journal_path_that_cannot_be_written_is_refused_before_anything_is_sent(
    ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path, where: str
) -> None:
    path = tmp_path if where == "folder" else tmp_path / "nope" / "j.jsonl"
    plan = ts.plan(WANT, progress=False)
    with pytest.raises(JournalError) as caught:
        plan.apply(journal=path, progress=False)
    assert caught.value.reason in (FileReason.NOT_A_FILE, FileReason.UNWRITABLE)
    assert sim.count("register") == 0 and not (tmp_path / "nope").exists()


def test_the_login_credentials_are_refused_as_listener_credentials_before_anything_is_read(
    ts: tskit.ThingSpace, sim: Simulator
) -> None:
    from tskit.simulator import DEMO_PASSWORD, DEMO_USERNAME

    account = sim.accounts[0]
    before = len(sim.requests)
    for wanted in (
        {"url": "https://listener.example.com/cb", "username": DEMO_USERNAME.upper(), "password": "own-pass-1"},
        {"url": "https://listener.example.com/cb", "username": "own-user", "password": DEMO_PASSWORD},
    ):
        with pytest.raises(tskit.ValidationError) as caught:
            ts.plan({account: {"CarrierService": wanted}})
        assert f"[{account}.CarrierService]" in caught.value.field
        assert caught.value.reason == tskit.Reason.LOGIN_CREDENTIALS_REUSED
        assert DEMO_PASSWORD not in str(caught.value)
    with pytest.raises(tskit.ValidationError) as caught:
        ts.rotate_password([account], new_password=DEMO_PASSWORD)
    assert (caught.value.field, caught.value.reason) == ("new_password", tskit.Reason.LOGIN_CREDENTIALS_REUSED)
    assert len(sim.requests) == before  # not even a listing
