"""One writer per account: concurrent applies and rotations, crashed runs' journals closed by the next one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tskit
from tests.fault_proxy import FaultProxy
from tskit.simulator import DEMO_PASSWORD, DEMO_USERNAME, Faults, Simulator, demo_env
from tskit.state import AccountLockedError, Holder, Journal

pytestmark = pytest.mark.server

FLEET = [f"{7200000000 + i:010d}-00001" for i in range(25)]
SERVICES = ("CarrierService", "DeviceUsage")
HOLD = """\
import asyncio, sys
from tskit.state._lock import AccountLocks

async def main():
    async with AccountLocks(sys.argv[1], sys.argv[2:], journal="held.jsonl"):
        print("held", flush=True)
        await asyncio.to_thread(sys.stdin.readline)

asyncio.run(main())
"""


def fleet_sim(latency: float = 0.0) -> Simulator:
    sim = Simulator(faults=Faults(latency=latency))
    sim.add_user(DEMO_USERNAME, DEMO_PASSWORD, accounts=FLEET)
    return sim


def desired_file(path: Path, host: str = "l", accounts: list[str] = FLEET) -> Path:
    """Two listeners per account, none registered yet: one create per listener."""
    lines = []
    for i, name in enumerate(accounts):
        for service in SERVICES:
            lines += [f'["{name}".{service}]', f'url = "https://{host}{i}.example.com/{service.lower()}"', ""]
    path.write_text("\n".join(lines))
    return path


def apply_command(path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tskit", "apply", str(path), "--yes", "--no-progress", "--concurrency", "4", *extra]


@pytest.mark.parametrize("journals", ["default", "different"])
def test_two_applies_at_once_send_each_change_once(tmp_path: Path, journals: str) -> None:
    sim = fleet_sim(latency=0.02)  # each apply takes a while: the two overlap
    path = desired_file(tmp_path / "fleet.toml")
    with sim.serve() as server:
        env = {**os.environ, **demo_env(server.base_url), "TSKIT_CONFIG_DIR": str(tmp_path / "config")}
        runs = []
        for i in range(2):
            extra = ["--journal", str(tmp_path / f"j{i}.jsonl")] if journals == "different" else []
            runs.append(subprocess.Popen(apply_command(path, *extra), env=env, stdout=subprocess.PIPE, text=True))
        outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert sim.count("register") == 2 * len(FLEET) == 50  # 50 planned changes, each sent once
    for i, name in enumerate(FLEET):
        held = {r["serviceName"]: r["url"] for r in sim.registrations(name)}
        assert held == {s: f"https://l{i}.example.com/{s.lower()}" for s in SERVICES}


def test_an_apply_does_not_overwrite_what_another_applied_since_its_plan(tmp_path: Path) -> None:
    sim = fleet_sim()
    accounts = FLEET[:3]
    ts = tskit.connect(simulator=sim)
    mine = ts.plan(desired_file(tmp_path / "mine.toml", "mine", accounts), progress=False)
    theirs = ts.plan(desired_file(tmp_path / "theirs.toml", "theirs", accounts), progress=False)
    assert theirs.apply(journal=tmp_path / "theirs.jsonl", progress=False).ok
    result = mine.apply(journal=tmp_path / "mine.jsonl", progress=False)
    assert not result.ok and sim.count("register") == 6  # none of mine sent
    assert {o.outcome for o in result.outcome_list} == {"changed-since-plan"}
    assert all(o.reason.endswith("Plan again") for o in result.outcome_list)
    assert all(r["url"].startswith("https://theirs") for a in accounts for r in sim.registrations(a))
    # the same file applied twice, the second planned before the first ran: nothing sent twice
    again = ts.plan(desired_file(tmp_path / "again.toml", "again", accounts), progress=False)
    twice = ts.plan(tmp_path / "again.toml", progress=False)
    assert again.apply(journal=tmp_path / "a.jsonl", progress=False).ok
    second = twice.apply(journal=tmp_path / "b.jsonl", progress=False)
    assert second.ok and second.counts() == {"done": 0, "confirmed": 6, "failed": 0}
    assert sim.count("register") == 12
    ts.close()


def test_a_held_account_is_refused_naming_its_holder_or_waited_for(tmp_path: Path) -> None:
    sim = fleet_sim()
    path = desired_file(tmp_path / "one.toml", accounts=FLEET[:1])
    with sim.serve() as server:
        env = {**os.environ, **demo_env(server.base_url), "TSKIT_CONFIG_DIR": str(tmp_path / "config")}
        holder = hold(server.base_url, FLEET[0], tmp_path, env)
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            refused = subprocess.run(
                apply_command(path, "--lock-wait", "0"), env=env, capture_output=True, text=True, timeout=120
            )
            assert refused.returncode == 1 and sim.count("register") == 0
            assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
            assert f"account {FLEET[0]} is held by pid {holder.pid} on {socket.gethostname()}" in refused.stderr

            os.environ["TSKIT_CONFIG_DIR"] = env["TSKIT_CONFIG_DIR"]
            ts = connect(server.base_url)
            plan = ts.plan(path, progress=False)
            with pytest.raises(AccountLockedError) as caught:
                plan.apply(journal=tmp_path / "j.jsonl", progress=False, lock_wait=0)
            error = caught.value
            assert (error.reason, error.account_name, error.server) == (
                "locked",
                FLEET[0],
                server.base_url.replace("127.0.0.1", "loopback"),
            )
            assert error.holder is not None and error.holder.pid == holder.pid
            assert error.holder.host == socket.gethostname() and error.holder.since
            assert error.holder.journal == str(tmp_path / "held.jsonl")
            assert sim.count("register") == 0

            seen: list[tuple[str, Holder | None]] = []

            def release(account: str, who: Holder | None) -> None:  # the holder finishes while we wait
                seen.append((account, who))
                assert holder.stdin is not None
                holder.stdin.write("\n")
                holder.stdin.flush()

            result = ts.plan(path, progress=False).apply(
                journal=tmp_path / "j.jsonl", progress=False, lock_wait=600, on_wait=release
            )
            assert result.ok and sim.count("register") == 2
            assert [(a, w.pid if w else None) for a, w in seen] == [(FLEET[0], holder.pid)]
            ts.close()
        finally:
            holder.communicate("\n", timeout=30)


def connect(base_url: str) -> tskit.ThingSpace:
    env = demo_env(base_url)
    return tskit.connect(
        base_url=base_url,
        client_id=env["THINGSPACE_CLIENT_ID"],
        client_secret=env["THINGSPACE_CLIENT_SECRET"],
        username=env["THINGSPACE_USERNAME"],
        password=env["THINGSPACE_PASSWORD"],
    )


def hold(base_url: str, account: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A process that holds an account's lock until a line comes on its stdin."""
    return subprocess.Popen(
        [sys.executable, "-c", HOLD, base_url, account],
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _journal_lines(folder: Path) -> str:
    return "".join(p.read_text() for p in folder.glob("apply-*.jsonl")) if folder.exists() else ""


@pytest.mark.parametrize("next_journal", ["default", "named"])
def test_a_killed_applys_default_journal_is_closed_by_the_next_apply(tmp_path: Path, next_journal: str) -> None:
    sim = fleet_sim()
    accounts = FLEET[:2]
    path = desired_file(tmp_path / "two.toml", accounts=accounts)
    config = tmp_path / "config"
    with sim.serve() as server, FaultProxy(server.base_url, stall_seconds=600) as proxy:
        proxy.script("stall", "POST")  # the first register is held by the proxy: in flight when killed
        env = {**os.environ, **demo_env(proxy.base_url), "TSKIT_CONFIG_DIR": str(config)}
        with subprocess.Popen(apply_command(path, "--concurrency", "1"), env=env, stdout=subprocess.PIPE) as crashed:
            deadline = time.monotonic() + 120  # a bound on a hang, not a measure of speed
            # the step is journaled and its register took effect, its answer held: it is in flight now
            # (killed any sooner, the stall would wait for the next apply's register, 30 s until its timeout)
            while '"event":"step"' not in _journal_lines(config / "journals") or sim.count("register") == 0:
                assert crashed.poll() is None and time.monotonic() < deadline
                time.sleep(0.01)
            crashed.send_signal(signal.SIGKILL)  # a step in flight: no outcome line will ever be written
            crashed.wait(timeout=30)
        (crashed_journal,) = (config / "journals").glob("apply-*.jsonl")
        assert len(Journal(crashed_journal).unfinished()) == 1
        extra = ["--journal", str(tmp_path / "next.jsonl")] if next_journal == "named" else []
        again = subprocess.run(apply_command(path, *extra), env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 interrupted step closed" in again.stdout
    closed = Journal(crashed_journal)
    assert closed.unfinished() == []
    assert closed.steps()[0]["reason"].startswith("interrupted; ")
    assert sim.count("register") == 4  # each of the 4 listeners registered once, the stalled one included
    assert "3 done, 0 confirmed" in again.stdout  # the stall was the killed apply's: none of these waited on it
    assert not list((config / "locks").glob("*.json"))  # every record settled and removed


def test_a_rotation_takes_the_accounts_locks_too(ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path) -> None:
    account = sim.accounts[0]
    holder = hold(ts.client.base_url, account, tmp_path)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        before = len(sim.requests)
        with pytest.raises(AccountLockedError) as caught:
            ts.rotate_password(account, new_password="brand-new-pw", lock_wait=0, progress=False)
        assert caught.value.holder is not None and caught.value.holder.pid == holder.pid
        assert len(sim.requests) == before  # refused before its first read
    finally:
        holder.communicate("\n", timeout=30)
    assert ts.rotate_password(account, new_password="brand-new-pw", lock_wait=0, progress=False).ok


def test_an_apply_with_nothing_to_change_still_closes_a_dead_holders_journal(
    ts: tskit.ThingSpace, sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:

    account = FLEET[0]
    sim.add_user(DEMO_USERNAME, DEMO_PASSWORD, accounts=[account])
    path = desired_file(tmp_path / "one.toml", accounts=[account])
    plan = ts.plan(path, progress=False)
    dead = Journal.for_writing(tmp_path / "held.jsonl")  # the journal the holder's record names
    dead.write("apply", apply="dead")
    for step in plan.steps:
        dead.write("step", apply="dead", **step.record())
    holder = hold(ts.client.base_url, account, tmp_path)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    holder.kill()  # dies holding the lock: the OS frees it, its record stays
    holder.communicate(timeout=30)
    assert plan.apply(journal=tmp_path / "mine.jsonl", progress=False).ok
    # settled as the lock was taken, before this apply sent its own: not in effect then
    assert {s["outcome"] for s in Journal(tmp_path / "held.jsonl").steps()} == {"failed"}
    # The same again, an apply with nothing to change: the dead holder's steps are still closed.
    dead.write("apply", apply="dead2")
    for step in plan.steps:
        dead.write("step", apply="dead2", **step.record())
    with sim.serve() as server:
        holder = hold(server.base_url, account, tmp_path)  # a lock of the server the command goes to
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        holder.kill()
        holder.communicate(timeout=30)
        # a run of its own, as cron starts it: nothing of this test process's sessions or simulators
        env = {k: v for k, v in os.environ.items() if not k.startswith("THINGSPACE_")}
        done = subprocess.run(
            apply_command(path), env={**env, **demo_env(server.base_url)}, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
    assert "2 interrupted steps of an earlier apply closed" in done.stdout
    assert Journal(tmp_path / "held.jsonl").unfinished() == []
    assert {s["outcome"] for s in Journal(tmp_path / "held.jsonl").steps() if s["apply"] == "dead2"} == {"confirmed"}


def test_an_apply_with_nothing_to_change_leaves_the_journal_its_result_names(tmp_path: Path) -> None:
    sim = fleet_sim()
    ts = tskit.connect(simulator=sim)
    state = ts.export(FLEET[:2], progress=False)
    result = ts.plan(state, progress=False).apply(journal=tmp_path / "nothing.jsonl", progress=False)
    assert result.ok and result.outcome_list == []
    assert len(Journal(result.journal.path).frame) == 0  # read back, not "no such journal"
    ts.close()
