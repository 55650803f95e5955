"""A throttle is a reason to wait, never a refusal: waited out within the call's deadline, shared by processes.

Real processes (``tskit list``) and a served ``tskit simulator`` behind a proxy of our own on loopback
(``tests/fault_proxy.py``) that answers the first logins with 429 and the API gateway's throttle fault
(``900800``, ``Retry-After``). Logins are counted at the proxy, never timed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

import tskit
from tests.fault_proxy import FaultProxy
from tests.test_cli_terminal import on_pty
from tskit.auth import guard
from tskit.simulator import simulator_process

ACCOUNT = "0000123456-00001"
LIST = [sys.executable, "-m", "tskit", "list", ACCOUNT]


@pytest.fixture(scope="module")
def served() -> Iterator[dict[str, str]]:
    """``tskit simulator`` in a process of its own, for the whole module (each test has its own proxy)."""
    with simulator_process() as env:
        yield env


def proxy_env(served: dict[str, str], proxy: FaultProxy, config: Path) -> dict[str, str]:
    return {**os.environ, **served, "THINGSPACE_BASE_URL": proxy.base_url, "TSKIT_CONFIG_DIR": str(config)}


def run(env: dict[str, str], *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LIST, *more], env=env, capture_output=True, text=True, timeout=120)


def start(env: dict[str, str], *more: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*LIST, *more], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def connect(served: dict[str, str], proxy: FaultProxy, timeout: float = 30.0) -> tskit.ThingSpace:
    return tskit.connect(
        client_id=served["THINGSPACE_CLIENT_ID"],
        client_secret=served["THINGSPACE_CLIENT_SECRET"],
        username=served["THINGSPACE_USERNAME"],
        password=served["THINGSPACE_PASSWORD"],
        base_url=proxy.base_url,
        timeout=timeout,
    )


# -- processes: run A, run B, ten at once --------------------------------------------------


@pytest.mark.server
def test_run_a_waits_out_its_throttle_and_run_b_right_after_logs_in_once(served, tmp_path: Path) -> None:
    with FaultProxy(served["THINGSPACE_BASE_URL"], throttle_logins=1, throttle_retry_after=1) as proxy:
        env = proxy_env(served, proxy, tmp_path)
        first = run(env)
        assert first.returncode == 0 and "CarrierService" in first.stdout, first.stderr
        assert (proxy.logins["throttled"], proxy.logins["forwarded"]) == (1, 1)  # one login after the throttle
        second = run(env)
        assert second.returncode == 0 and "CarrierService" in second.stdout, second.stderr
        assert (proxy.logins["throttled"], proxy.logins["forwarded"], proxy.logins["worked"]) == (1, 2, 2)
        assert proxy.logins["inside a throttle"] == 0
    assert "demo-user" not in _records(tmp_path, guard.FILE_NAME)  # a throttle is never a refusal


@pytest.mark.server
def test_run_b_right_after_a_run_that_gave_up_waits_out_the_shared_throttle_and_logs_in_once(
    served, tmp_path: Path
) -> None:
    with FaultProxy(served["THINGSPACE_BASE_URL"], throttle_logins=1, throttle_retry_after=5) as proxy:
        env = proxy_env(served, proxy, tmp_path)
        first = run(env, "--timeout", "3")  # too short to wait 5 s: gives up at once, shares the throttle
        assert first.returncode == 1 and "throttled" in first.stderr and "Traceback" not in first.stderr
        assert (proxy.logins["throttled"], proxy.logins["forwarded"]) == (1, 0)
        second = run(env)  # started right after: the throttle's wait is not over, and it has time for it
        assert second.returncode == 0 and "CarrierService" in second.stdout, second.stderr
        assert (proxy.logins["throttled"], proxy.logins["forwarded"], proxy.logins["worked"]) == (1, 1, 1)
        assert proxy.logins["inside a throttle"] == 0


@pytest.mark.server
def test_ten_processes_started_inside_a_throttle_log_in_one_at_a_time_after_it_and_all_succeed(
    served, tmp_path: Path
) -> None:
    # The first login after the throttle is throttled again: the others, waiting, must not send into it.
    with FaultProxy(served["THINGSPACE_BASE_URL"], throttle_logins=2, throttle_retry_after=4) as proxy:
        env = proxy_env(served, proxy, tmp_path)
        assert run(env, "--timeout", "1").returncode == 1  # the throttle, shared on disk (or a timeout)
        procs = [start(env) for _ in range(10)]
        outcomes = [proc.communicate(timeout=120) for proc in procs]
        assert [proc.returncode for proc in procs] == [0] * 10, [err for _, err in outcomes]
        assert all("CarrierService" in out for out, _ in outcomes)
        assert proxy.logins["inside a throttle"] == 0  # no login while a wait ThingSpace asked for was on
        # 2 throttled (the run that gave up, then the first after the wait); then one login per process:
        # each process holds its own session (tokens are never written to disk), one at a time.
        assert (proxy.logins["throttled"], proxy.logins["forwarded"], proxy.logins["worked"]) == (2, 10, 10)


# -- one process: threads, tasks, the blocking and the async paths -------------------------


@pytest.mark.server
def test_ten_threads_inside_a_throttle_send_one_login_after_it(served) -> None:
    with FaultProxy(served["THINGSPACE_BASE_URL"], throttle_logins=1, throttle_retry_after=1) as proxy:
        ts = connect(served, proxy)
        results: list[object] = []
        barrier = threading.Barrier(10)

        def call() -> None:
            barrier.wait()
            try:
                results.append(len(ts.list_callbacks(ACCOUNT)))
            except Exception as error:  # kept for the assertion
                results.append(error)

        threads = [threading.Thread(target=call) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        ts.close()
    assert results == [2] * 10
    assert (proxy.logins["throttled"], proxy.logins["forwarded"], proxy.logins["inside a throttle"]) == (1, 1, 0)


@pytest.mark.server
def test_ten_tasks_inside_a_throttle_send_one_login_after_it(served) -> None:
    with FaultProxy(served["THINGSPACE_BASE_URL"], throttle_logins=1, throttle_retry_after=1) as proxy:

        async def main() -> list[object]:
            ts = connect(served, proxy)
            try:
                calls = [ts.alist_callbacks(ACCOUNT) for _ in range(10)]
                return [len(r) if not isinstance(r, BaseException) else r for r in await asyncio.gather(*calls)]
            finally:
                await ts.aclose()

        assert asyncio.run(main()) == [2] * 10
    assert (proxy.logins["throttled"], proxy.logins["forwarded"], proxy.logins["inside a throttle"]) == (1, 1, 0)


@pytest.mark.server
def test_the_sync_auth_flow_waits_out_a_throttle_as_the_async_one_does(served) -> None:
    with FaultProxy(served["THINGSPACE_BASE_URL"], throttle_logins=1, throttle_retry_after=1) as proxy:
        credentials = tskit.Credentials(
            served["THINGSPACE_CLIENT_ID"],
            served["THINGSPACE_CLIENT_SECRET"],
            served["THINGSPACE_USERNAME"],
            served["THINGSPACE_PASSWORD"],
        )
        statuses: list[object] = []
        barrier = threading.Barrier(10)

        def call() -> None:
            auth = tskit.ThingSpaceAuth(credentials, base_url=proxy.base_url)
            barrier.wait()
            with httpx2.Client(base_url=proxy.base_url, auth=auth) as http:
                statuses.append(http.get(f"/api/m2m/v1/callbacks/{ACCOUNT}").status_code)

        threads = [threading.Thread(target=call) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert statuses == [200] * 10
    assert (proxy.logins["throttled"], proxy.logins["forwarded"], proxy.logins["inside a throttle"]) == (1, 1, 0)


# -- a throttle longer than the deadline -------------------------------------------------


@pytest.mark.server
def test_a_retry_after_beyond_the_deadline_fails_at_once_saying_what_was_asked_and_left(served) -> None:
    with FaultProxy(served["THINGSPACE_BASE_URL"], throttle_logins=1, throttle_retry_after=45) as proxy:
        ts = connect(served, proxy, timeout=10)
        with pytest.raises(tskit.LoginThrottled) as caught:
            ts.list_callbacks(ACCOUNT)
        error = caught.value
        # as data: what ThingSpace asked (45 s, capped at 60), what was left of the 10 s: it did not wait
        assert error.reason == "throttle-outlasts-deadline" and not error.shared
        assert 44 < (error.retry_after or 0) <= 45 and 0 < error.time_left < 10
        assert isinstance(error, tskit.AuthenticationError) and isinstance(error, tskit.RateLimitError)
        assert (error.status_code, error.error_code) == (429, "900800")
        assert error.asked == 45 and "asked to wait 45 s;" in str(error)
        waits = f"tskit waits {error.retry_after:.1f} s before the next login"
        assert f"{waits}, longer than the {error.time_left:.1f} s left" in str(error)
        # the next call of the process fails at once too, from the shared cooldown, sending nothing
        with pytest.raises(tskit.LoginThrottled):
            ts.list_callbacks(ACCOUNT)
        ts.close()
        assert (proxy.logins["throttled"], proxy.logins["forwarded"]) == (1, 0)


@pytest.mark.server
def test_a_later_run_with_too_short_a_timeout_fails_at_once_from_the_shared_record(served, tmp_path: Path) -> None:
    with FaultProxy(served["THINGSPACE_BASE_URL"], throttle_logins=1, throttle_retry_after=40) as proxy:
        env = proxy_env(served, proxy, tmp_path)
        first = run(env, "--timeout", "5")
        assert first.returncode == 1 and "asked to wait 40 s;" in first.stderr, first.stderr
        # what is left of the 40 s when the message is made: 40.0, or a little less on a loaded machine
        waits = float(first.stderr.partition("tskit waits ")[2].partition(" s before")[0])
        assert 30 < waits <= 40, first.stderr
        later = run(env, "--timeout", "5")
        assert later.returncode == 1 and "from another process or run" in later.stderr, later.stderr
        assert "s of that wait are left, longer than the" in later.stderr and "Traceback" not in later.stderr
        assert (proxy.logins["throttled"], proxy.logins["forwarded"]) == (1, 0)


# -- the wait on a terminal ------------------------------------------------------------------


@pytest.mark.server
@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_the_command_shows_the_wait_on_a_terminal_and_not_in_a_log(served, tmp_path: Path) -> None:
    with FaultProxy(served["THINGSPACE_BASE_URL"], throttle_logins=1, throttle_retry_after=1) as proxy:
        env = proxy_env(served, proxy, tmp_path)
        code, _out, shown = on_pty("list", ACCOUNT, env=env)
        assert code == 0 and b"ThingSpace asked to wait 1 s before the next login of 'demo-user'; waiting" in shown
        proxy.throttle_logins = 2  # the next login is throttled too
        logged = run(env)  # stderr to a file or pipe: a wait this short is not worth a line
        assert logged.returncode == 0 and "asked to wait" not in logged.stderr, logged.stderr
        assert (proxy.logins["throttled"], proxy.logins["inside a throttle"]) == (2, 0)


# -- records capped when read, and `tskit reset-login` (issue 17, item 6) --------------------


def _records(config: Path, name: str) -> str:
    path = config / name
    return path.read_text() if path.is_file() else ""


def _key(served: dict[str, str], base_url: str) -> str:
    """The key of the records of the served simulator's user (it needs no secret)."""
    creds = tskit.Credentials(served["THINGSPACE_CLIENT_ID"], "-", served["THINGSPACE_USERNAME"], "-")
    return guard._key(base_url, creds)


@pytest.mark.server
@pytest.mark.parametrize("ahead", [3600.0, 1e12])
def test_a_throttle_record_dated_in_the_future_never_holds_logins_back_beyond_60_s(
    served, tmp_path: Path, ahead: float
) -> None:
    with FaultProxy(served["THINGSPACE_BASE_URL"]) as proxy:
        (tmp_path / guard.THROTTLE_FILE).write_text(json.dumps({_key(served, proxy.base_url): time.time() + ahead}))
        done = run(proxy_env(served, proxy, tmp_path))  # 30 s: even a wait capped at 60 s would fail it
        assert done.returncode == 0 and "CarrierService" in done.stdout, done.stderr
        assert proxy.logins["forwarded"] == 1


@pytest.mark.server
def test_reset_login_clears_a_throttle(served, tmp_path: Path) -> None:
    with FaultProxy(served["THINGSPACE_BASE_URL"]) as proxy:
        env = proxy_env(served, proxy, tmp_path)
        (tmp_path / guard.THROTTLE_FILE).write_text(json.dumps({_key(served, proxy.base_url): time.time() + 50}))
        assert run(env, "--timeout", "5").returncode == 1  # 50 s to wait, 5 s to go: fails at once
        reset = subprocess.run([sys.executable, "-m", "tskit", "reset-login"], env=env, capture_output=True, text=True)
        assert reset.returncode == 0 and "Forgot" in reset.stdout and "throttle" in reset.stdout, reset.stderr
        done = run(env)
        assert done.returncode == 0 and "CarrierService" in done.stdout, done.stderr
        assert proxy.logins["forwarded"] == 1


DAMAGE = {
    "a folder": None,
    "not JSON": "{half a record",
    "a list": "[1, 2]",
    "wrong types": None,  # filled per record below
    "nested too deeply": "[" * 100_000 + "]" * 100_000,
    "a FIFO": None,  # opened without waiting for a writer: never hangs a command
    "a symlink loop": None,
}


@pytest.mark.server
@pytest.mark.parametrize("record", [guard.FILE_NAME, guard.FAILURES_FILE, guard.THROTTLE_FILE])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_reset_login_survives_a_damaged_record_and_logins_work_after_it(
    served, tmp_path: Path, record: str, damage: str
) -> None:
    with FaultProxy(served["THINGSPACE_BASE_URL"]) as proxy:
        env = proxy_env(served, proxy, tmp_path)
        path = tmp_path / record
        key = _key(served, proxy.base_url)
        if damage == "a folder":
            path.mkdir()
            (path / "inside").write_text("x")
        elif damage == "wrong types":
            wrong = {"count": "3", "status_code": [], "at": {}} if record == guard.FAILURES_FILE else "soon"
            path.write_text(json.dumps({key: wrong, "other": True}))
        elif damage == "a FIFO":
            os.mkfifo(path)
        elif damage == "a symlink loop":
            path.symlink_to(path.name)
        else:
            path.write_text(str(DAMAGE[damage]))
        reset = subprocess.run(
            [sys.executable, "-m", "tskit", "reset-login"], env=env, capture_output=True, text=True, timeout=60
        )
        assert reset.returncode == 0 and "Traceback" not in reset.stderr, reset.stderr
        assert "Forgot" in reset.stdout or "was on record" in reset.stdout
        done = run(env)
        assert done.returncode == 0 and "CarrierService" in done.stdout, done.stderr
        assert proxy.logins["forwarded"] == 1
