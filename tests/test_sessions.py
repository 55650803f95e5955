"""One login for everyone: threads, event loops, connections and processes share one session per identity."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sized
from pathlib import Path
from typing import Any

import httpx2
import pytest

import tskit
from tests.conftest import FakeClock, make_client
from tskit.auth import coordinator, guard, protocol
from tskit.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME, Simulator
from tskit.simulator._core import Reply

pytestmark = pytest.mark.anyio
ACCOUNT = "0000123456-00001"
WRONG = "wrong-pw-123"


def credentials(password: str = DEMO_PASSWORD) -> dict[str, Any]:
    return {
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
        "username": DEMO_USERNAME,
        "password": password,
    }


class SlowLogins(Simulator):
    """A simulator whose logins take ``login_delay`` seconds, and whose first ``throttled`` logins
    are answered 429 with the API gateway's ``900800`` fault (counted in ``throttled_logins``)."""

    def __init__(self, *, login_delay: float = 0.0, throttled: int = 0, retry_after: int | None = None) -> None:
        super().__init__()
        self.login_delay = login_delay
        self.throttled = throttled
        self.retry_after = retry_after
        self.throttled_logins = 0
        self.login_arrived = threading.Event()  # set when the first login reaches the simulator

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        if raw_path.endswith("/session/login"):
            self.login_arrived.set()
        if raw_path.endswith("/session/login") and self.throttled_logins < self.throttled:
            self.throttled_logins += 1
            fault = {"fault": {"code": "900800", "message": "Message throttled out", "description": "try later"}}
            answer: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
            if self.retry_after is not None:
                answer += (("retry-after", str(self.retry_after)),)
            return Reply(429, json.dumps(fault).encode(), answer)
        reply = super().handle(method, raw_path, headers, body)
        if raw_path.endswith("/session/login"):
            reply.delay = max(reply.delay, self.login_delay)
        return reply


@pytest.fixture
def slow_server() -> Iterator[tuple[SlowLogins, str]]:
    sim = SlowLogins(login_delay=0.2)
    with sim.serve() as running:
        yield sim, running.base_url


def run_threads(count: int, target) -> list[object]:
    results: list[object] = [None] * count
    start = threading.Barrier(count)

    def worker(i: int) -> None:
        start.wait()
        try:
            results[i] = target(i)
        except BaseException as error:  # kept, to be looked at by the test
            results[i] = error

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


# -- the table: how many logins reach ThingSpace ------------------------------------------


@pytest.mark.server
@pytest.mark.parametrize("password", [WRONG, DEMO_PASSWORD])
def test_20_threads_on_one_connection_send_one_login(slow_server, password: str) -> None:
    sim, url = slow_server
    ts = tskit.connect(**credentials(password), base_url=url)
    results = run_threads(20, lambda i: ts.list_callbacks(ACCOUNT))
    if password == WRONG:
        assert all(isinstance(r, tskit.AuthenticationError) for r in results), results
    else:
        assert all(len(r) == 2 for r in results)  # type: ignore[arg-type]
    assert sim.count("login") == 1 and not sim.is_locked(DEMO_USERNAME)
    assert ts.client.auth.logins == 1


@pytest.mark.server
@pytest.mark.parametrize("password", [WRONG, DEMO_PASSWORD])
def test_20_threads_each_with_its_own_connection_send_one_login(slow_server, password: str) -> None:
    sim, url = slow_server

    def call(i: int) -> object:
        with tskit.connect(**credentials(password), base_url=url) as ts:
            return ts.list_callbacks(ACCOUNT)

    results = run_threads(20, call)
    if password == WRONG:
        assert all(isinstance(r, tskit.AuthenticationError) for r in results), results
    else:
        assert all(len(r) == 2 for r in results)  # type: ignore[arg-type]
    assert sim.count("login") == 1 and not sim.is_locked(DEMO_USERNAME)


@pytest.mark.server
def test_6_processes_started_together_with_a_wrong_password_send_one_login(tmp_path: Path) -> None:
    sim = SlowLogins(login_delay=0.3)
    with sim.serve() as server:
        env = {**os.environ, **server.env(), "THINGSPACE_PASSWORD": WRONG, "TSKIT_CONFIG_DIR": str(tmp_path)}
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tskit", "list", ACCOUNT],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        outcomes = [proc.communicate(timeout=60) for proc in procs]
        assert [proc.returncode for proc in procs] == [1] * 6
        errors = [err for _, err in outcomes]
        assert sum("does not try again" in e for e in errors) == 1, errors  # the one that sent it
        assert sum("by another process or run" in e for e in errors) == 5, errors  # the others read its refusal
        assert sim.count("login") == 1 and not sim.is_locked(DEMO_USERNAME)


@pytest.mark.server
@pytest.mark.parametrize(
    ("status", "code", "logins"),
    [
        # Production's answer to a wrong password is not documented: any of these may be it.
        (401, "REQUEST_FAILED.InvalidCredentials", 3),  # a code tskit does not know: counted, 3 in a row at most
        (400, "INPUT_INVALID.Request", 3),
        (404, "REQUEST_FAILED.Weird", 3),  # a ThingSpace code: the login was reached
        (503, "REQUEST_FAILED.Login.Failed", 1),  # a known code is a refusal whatever the status
    ],
)
def test_cron_runs_with_a_wrong_password_never_lock_the_user(
    tmp_path: Path, status: int, code: str, logins: int
) -> None:
    from tskit.simulator import SimulatorConfig

    sim = Simulator(SimulatorConfig(login_failure_status=status, login_failure_code=code))
    with sim.serve() as server:
        env = {**os.environ, **server.env(), "THINGSPACE_PASSWORD": WRONG, "TSKIT_CONFIG_DIR": str(tmp_path)}
        command = [sys.executable, "-m", "tskit", "list", ACCOUNT]
        runs = [subprocess.run(command, env=env, capture_output=True, text=True, timeout=60) for _ in range(6)]
        assert [run.returncode for run in runs] == [1] * 6
        assert sim.count("login") == logins and not sim.is_locked(DEMO_USERNAME)
        texts = [run.stderr for run in runs]
        if logins == 3:
            assert (
                f"ThingSpace answered {status} to POST /api/m2m/v1/session/login: UnifiedWebService.{code}" in texts[0]
            )
            assert "answer tskit does not know" in texts[0] and texts[0].count(code) == 1
            assert "failed login 1 of the 3 in a row" in texts[0] and "failed login 3 of the 3" in texts[2]
            assert all("Not sent: 3 logins of user 'demo-user' in a row failed" in t for t in texts[3:]), texts
        else:
            assert all("by another process or run" in t for t in texts[1:]), texts
        reset = subprocess.run([sys.executable, "-m", "tskit", "reset-login"], env=env, capture_output=True, text=True)
        assert reset.returncode == 0 and "Forgot" in reset.stdout, reset.stderr
        env["THINGSPACE_PASSWORD"] = DEMO_PASSWORD
        right = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert right.returncode == 0 and "CarrierService" in right.stdout, right.stderr
    assert all(entry["count"] == 0 for entry in json.loads((tmp_path / guard.FAILURES_FILE).read_text()).values())


@pytest.mark.server
def test_a_login_that_works_clears_the_failed_logins_in_a_row(tmp_path: Path) -> None:
    from tskit.simulator import SimulatorConfig

    sim = Simulator(SimulatorConfig(login_failure_status=401, login_failure_code="REQUEST_FAILED.Unknown"))
    with sim.serve() as server:
        env = {**os.environ, **server.env(), "TSKIT_CONFIG_DIR": str(tmp_path)}
        command = [sys.executable, "-m", "tskit", "list", ACCOUNT]
        for password, code in [(WRONG, 1), (WRONG, 1), (DEMO_PASSWORD, 0), (WRONG, 1), (WRONG, 1), (DEMO_PASSWORD, 0)]:
            run = subprocess.run(command, env={**env, "THINGSPACE_PASSWORD": password}, capture_output=True, text=True)
            assert run.returncode == code, run.stderr
            assert "Not sent" not in run.stderr  # never 3 in a row: each success started the count again
        assert sim.count("login") == 6 and not sim.is_locked(DEMO_USERNAME)


@pytest.mark.server
def test_6_processes_together_with_an_unknown_answer_send_at_most_3_logins(tmp_path: Path) -> None:
    from tskit.simulator import SimulatorConfig

    sim = Simulator(SimulatorConfig(login_failure_status=401, login_failure_code="REQUEST_FAILED.Unknown"))
    with sim.serve() as server:
        env = {**os.environ, **server.env(), "THINGSPACE_PASSWORD": WRONG, "TSKIT_CONFIG_DIR": str(tmp_path)}
        command = [sys.executable, "-m", "tskit", "list", ACCOUNT]
        procs = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) for _ in range(6)]
        errors = [proc.communicate(timeout=60)[1] for proc in procs]
        assert [proc.returncode for proc in procs] == [1] * 6
        assert sum("Not sent: 3 logins" in e for e in errors) == 3, errors
        assert sim.count("login") == 3 and not sim.is_locked(DEMO_USERNAME)


@pytest.mark.server
def test_a_throttled_login_is_not_remembered_and_a_later_run_logs_in(tmp_path: Path) -> None:
    sim = SlowLogins(throttled=1)
    with sim.serve() as server:
        env = {**os.environ, **server.env(), "TSKIT_CONFIG_DIR": str(tmp_path)}
        command = [sys.executable, "-m", "tskit", "list", ACCOUNT]
        # a timeout shorter than the throttle's wait (2 s without Retry-After): it fails at once
        first = subprocess.run([*command, "--timeout", "1"], env=env, capture_output=True, text=True, timeout=60)
        assert first.returncode == 1 and "900800" in first.stderr and "throttled" in first.stderr
        assert not (tmp_path / guard.FILE_NAME).exists() or "demo-user" not in (tmp_path / guard.FILE_NAME).read_text()
        later = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert later.returncode == 0, later.stderr
        assert "CarrierService" in later.stdout
    assert (sim.throttled_logins, sim.count("login")) == (1, 1)


def answering(sim: Simulator, path: str, status: int, body: dict[str, object] | str) -> httpx2.MockTransport:
    """The simulator, except that requests to ``path`` get ``status`` with ``body`` (JSON, or text)."""
    inner = sim.transport()

    async def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith(path):
            return httpx2.Response(status, text=body) if isinstance(body, str) else httpx2.Response(status, json=body)
        response: httpx2.Response = await inner.handle_async_request(request)
        return response

    return httpx2.MockTransport(handler)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (429, {"fault": {"code": "900800", "message": "Message throttled out"}}),
        (401, {"fault": {"code": "900901", "message": "Invalid Credentials"}}),
        (408, {"errorCode": "REQUEST_FAILED.Timeout", "errorMessage": "timeout"}),
        (503, {"errorCode": "UnifiedWebService.REQUEST_FAILED.UnexpectedError", "errorMessage": "down"}),
        (401, {"fault": {"code": "900902", "message": "Missing Credentials"}}),
        (401, {"fault": {"code": "900903", "message": "a gateway fault tskit does not know"}}),
        (400, {"fault": {"code": "900906", "message": "No matching resource found"}}),
        (502, "<html><body>Bad Gateway</body></html>"),
    ],
)
async def test_passing_login_failures_are_never_recorded(
    sim: Simulator, clock: FakeClock, status: int, body: dict[str, object] | str
) -> None:
    async with make_client(sim, clock, transport=answering(sim, "/session/login", status, body)) as client:
        with pytest.raises(tskit.ApiError, match=r"passing reason|throttled"):
            await client.list_callbacks(ACCOUNT)
        assert client.auth.refused is None
    record = Path(os.environ["TSKIT_CONFIG_DIR"]) / guard.FILE_NAME
    assert not record.exists() or "demo-user" not in record.read_text()
    assert guard.failures("https://simulator.tskit.invalid", client.auth._credentials) is None


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"errorCode": "UnifiedWebService.INPUT_INVALID.Request", "errorMessage": "x"}),
        (404, {"errorCode": "UnifiedWebService.REQUEST_FAILED.Weird", "errorMessage": "x"}),
        (401, ""),
        (403, {"message": "Forbidden"}),
        # Any other 4xx, with or without a code: Verizon does not say how it answers a wrong password
        (404, {"errorCode": "", "errorMessage": "The requested resource is not available"}),
        (403, "<am:fault><am:code>404</am:code><am:message>Not Found</am:message></am:fault>"),
        (400, "<html><body>Bad Request (a proxy's page)</body></html>"),
        (422, ""),
        (401, {"errorCode": "1001", "errorMessage": "a numeric code that is not the gateway's"}),
    ],
)
async def test_uncertain_login_failures_are_counted_not_refused(
    sim: Simulator, clock: FakeClock, status: int, body: dict[str, object] | str
) -> None:
    async with make_client(sim, clock, transport=answering(sim, "/session/login", status, body)) as client:
        with pytest.raises(tskit.ApiError, match=r"answer tskit does not know\..*failed login 1 of the 3 in a row"):
            await client.list_callbacks(ACCOUNT)
        assert client.auth.refused is None  # tried again after the cooldown, up to 3 in a row
    failed = guard.failures("https://simulator.tskit.invalid", client.auth._credentials)
    assert failed is not None and failed["count"] == 1 and failed["status_code"] == status
    assert guard.refused_before("https://simulator.tskit.invalid", client.auth._credentials) is None


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/oauth2/token", 401, {"error": "invalid_client", "error_description": "bad secret"}),
        ("/session/login", 400, {"errorCode": "UnifiedWebService.REQUEST_FAILED.Login.Failed", "errorMessage": "x"}),
        ("/session/login", 401, {"errorCode": "UnifiedWebService.REQUEST_FAILED.UserLocked", "errorMessage": "x"}),
        ("/session/login", 500, {"errorCode": "UnifiedWebService.REQUEST_FAILED.Login.Failed"}),  # whatever the status
    ],
)
async def test_real_refusals_are_recorded(
    sim: Simulator, clock: FakeClock, path: str, status: int, body: dict[str, object]
) -> None:
    async with make_client(sim, clock, transport=answering(sim, path, status, body)) as client:
        with pytest.raises(tskit.AuthenticationError, match="does not try again"):
            await client.list_callbacks(ACCOUNT)
        assert client.auth.refused is not None
    assert guard.refused_before("https://simulator.tskit.invalid", client.auth._credentials) is not None


# -- the faults -----------------------------------------------------------------------


class HoldFirstList(httpx2.AsyncBaseTransport):
    """Serves the simulator, but holds back the answer of the first list call until released."""

    def __init__(self, sim: Simulator) -> None:
        self.inner = sim.transport()
        self.realm = sim
        self.answered = asyncio.Event()
        self.release = asyncio.Event()
        self.held = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response: httpx2.Response = await self.inner.handle_async_request(request)
        if request.method == "GET" and not self.held:
            self.held = True
            self.answered.set()
            await self.release.wait()
        return response


async def test_a_stale_401_never_erases_newer_credentials(sim: Simulator, clock: FakeClock) -> None:
    hold = HoldFirstList(sim)
    async with make_client(sim, clock) as warm:
        await warm.list_callbacks(ACCOUNT)  # logged in: token and session 1
    async with make_client(sim, clock, transport=hold) as client:
        sim.revoke_tokens()  # revoked mid-audit
        late = asyncio.create_task(client.list_callbacks(ACCOUNT))  # its 401 is held back
        await hold.answered.wait()
        assert len(await client.list_callbacks(ACCOUNT)) == 2  # 401, then token 2 and session 2
        fresh = client.auth.session.grant
        hold.release.set()  # now the stale 401 for token 1 lands
        assert len(await late) == 2  # no assert tripped: it retried with the fresh credentials
        assert client.auth.session.grant is fresh  # and erased nothing
    assert (sim.count("token"), sim.count("login")) == (2, 1)  # a refused bearer keeps the session


class HoldStaleAndLogin(HoldFirstList):
    """Also holds the second login until released: a stale 401 then lands between token and login."""

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.login_started = asyncio.Event()
        self.release_login = asyncio.Event()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/session/login"):
            self.login_started.set()
            await self.release_login.wait()
        return await super().handle_async_request(request)


async def test_a_stale_401_landing_between_new_token_and_new_login_trips_nothing(
    sim: Simulator, clock: FakeClock
) -> None:
    hold = HoldStaleAndLogin(sim)
    async with make_client(sim, clock) as warm:
        await warm.list_callbacks(ACCOUNT)  # token and session 1
    async with make_client(sim, clock, transport=hold) as client:
        sim.revoke_tokens()
        sim.expire_sessions()  # both: a new token, then a new login
        late = asyncio.create_task(client.list_callbacks(ACCOUNT))  # its 401 is held back
        await hold.answered.wait()
        relogin = asyncio.create_task(client.list_callbacks(ACCOUNT))  # 401, new token, then the login...
        await hold.login_started.wait()  # ...which is in flight now
        hold.release.set()  # the stale 401 lands: it must not erase the new token
        await asyncio.sleep(0.05)
        hold.release_login.set()
        assert [len(r) for r in await asyncio.gather(late, relogin)] == [2, 2]
    assert (sim.count("token"), sim.count("login")) == (2, 2)


def test_login_handed_over_across_event_loops_and_threads(slow_server) -> None:
    sim, url = slow_server
    auth_client = tskit.ThingSpaceClient(tskit.Credentials(**credentials()), base_url=url)
    loops_seen: list[int] = []

    def on_own_loop(i: int) -> object:
        async def call() -> object:
            loops_seen.append(id(asyncio.get_running_loop()))
            result = await auth_client.list_callbacks(ACCOUNT)
            await auth_client.aclose()
            return result

        return asyncio.run(call())

    results = run_threads(4, on_own_loop)
    assert all(isinstance(r, list) and len(r) == 2 for r in results), results
    assert len(set(loops_seen)) == 4
    assert sim.count("login") == 1


class HeldLogins(SlowLogins):
    """Holds the answer to the first login until ``release`` is set (the server's loop waits meanwhile)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        first = raw_path.endswith("/session/login") and not self.login_arrived.is_set()
        reply = super().handle(method, raw_path, headers, body)
        if first:
            self.release.wait(30)
        return reply


def test_a_cancelled_leader_hands_the_login_to_a_waiter_on_another_loop() -> None:
    sim = HeldLogins()
    waiting = threading.Event()  # the waiter has made its call
    with sim.serve() as running:
        client = tskit.ThingSpaceClient(tskit.Credentials(**credentials()), base_url=running.base_url)

        async def leader() -> None:
            task = asyncio.create_task(client.list_callbacks(ACCOUNT))
            assert await asyncio.to_thread(waiting.wait, 30)  # its login is held at the server meanwhile
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            sim.release.set()
            await client.aclose()

        async def waiter() -> object:
            assert await asyncio.to_thread(sim.login_arrived.wait, 30)  # the leader's login is in flight
            call = asyncio.create_task(client.list_callbacks(ACCOUNT))
            await asyncio.sleep(0)  # the call has started: it finds the leader's login and waits for it
            waiting.set()
            result = await call
            await client.aclose()
            return result

        results: dict[str, object] = {}
        threads = [
            threading.Thread(target=lambda: results.__setitem__("leader", asyncio.run(leader()))),
            threading.Thread(target=lambda: results.__setitem__("waiter", asyncio.run(waiter()))),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        sim.release.set()  # (had the leader failed)
    assert isinstance(results["waiter"], list) and len(results["waiter"]) == 2, results
    assert 1 <= sim.count("login") <= 2  # the cancelled login reached the server; at most one more


async def test_a_login_timeout_is_not_retried_once_per_waiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "COOLDOWN", 60.0)  # however slow the machine, the audit ends within it
    sim = SlowLogins(login_delay=1.0)
    with sim.serve() as server:
        ts = tskit.connect(**credentials(), base_url=server.base_url, timeout=0.3)
        accounts = [ACCOUNT] * 1 + [f"0000123456-{i:05d}" for i in range(2, 51)]
        audit = await ts.aaudit(accounts, concurrency=16, progress=False, fingerprint_key="k" * 32)
        await ts.aclose()
    assert len(audit.error_list) == 50
    assert all("/session/login" in e.message for e in audit.error_list), audit.error_list[:2]
    assert sim.count("login") == 1  # not 50, not 150


def test_every_wait_has_a_deadline_that_names_what_it_waited_for(tmp_path: Path) -> None:
    sim = Simulator()
    with sim.serve() as server:
        creds = tskit.Credentials(**credentials())
        lock = guard.login_lock(server.base_url, creds)
        lock.acquire()  # another process is logging in as this user, and never finishes
        try:
            ts = tskit.connect(**credentials(), base_url=server.base_url, timeout=0.5)
            started = time.monotonic()
            with pytest.raises(tskit.RequestTimeout, match=r"waited 0\.5 s for another process's login"):
                ts.list_callbacks(ACCOUNT)
            assert time.monotonic() - started >= 0.5  # it waited out its timeout (the lock is never freed)
            assert sim.count("login") == 0
        finally:
            lock.release()
        assert len(ts.list_callbacks(ACCOUNT)) == 2  # the lock is free: it logs in
        ts.close()


def test_token_renewal_keeps_a_valid_session(sim: Simulator, clock: FakeClock) -> None:
    async def main() -> None:
        async with make_client(sim, clock) as client:
            await client.list_callbacks(ACCOUNT)
            for _ in range(8):  # two hours, the session kept alive by use
                clock.advance(900)
                sim.advance(900)
                assert len(await client.list_callbacks(ACCOUNT)) == 2
            assert (client.auth.token_requests, client.auth.logins) == (3, 1)

    asyncio.run(main())


# -- threads, loops and file descriptors ----------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.server
@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc to count file descriptors")
def test_blocking_calls_from_many_threads_leak_no_loop_nor_socket() -> None:
    from tskit._runtime import runtime

    sim = Simulator()
    with sim.serve() as server:
        ts = tskit.connect(**credentials(), base_url=server.base_url)
        run_threads(20, lambda i: ts.list_callbacks(ACCOUNT))  # the I/O loop, its pool (and the server's end)
        before, threads_before = _open_fds(), threading.active_count()
        for _ in range(3):  # 60 more threads, each gone after its call
            run_threads(20, lambda i: ts.list_callbacks(ACCOUNT))
        after = _open_fds()
        assert after - before <= 4, (before, after)  # the pool is reused: no loop nor socket per thread
        assert threading.active_count() == threads_before
        assert runtime.io_loop() is runtime.io_loop()
        ts.close()


def test_a_plain_script_never_patches_asyncio(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        "import asyncio, sys, threading, _asyncio\n"
        "import tskit\n"
        "ts = tskit.connect()\n"
        "threads = [threading.Thread(target=ts.list_callbacks, args=('0000123456-00001',)) for _ in range(5)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(len(ts.list_callbacks('0000123456-00001')))\n"
        "assert asyncio.Task is _asyncio.Task and asyncio.Future is _asyncio.Future\n"
        "assert asyncio.run.__module__ == 'asyncio.runners'\n"
        "assert 'nest_asyncio2' not in sys.modules\n"
        "loop = asyncio.new_event_loop(); assert not hasattr(loop, '_nest_patched'); loop.close()\n"
        "print('unpatched')\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "unpatched"] and done.stderr == ""


def test_nest_asyncio2_patches_only_the_loop_of_the_blocking_call() -> None:
    import _asyncio

    from tskit._runtime import runtime

    ts = tskit.connect()
    other = asyncio.new_event_loop()

    async def cell() -> None:
        pending = asyncio.ensure_future(ts.alist_callbacks(ACCOUNT))  # a widget's task
        frame = ts.list_callbacks(ACCOUNT)  # blocking, inside the running loop
        assert len(frame) == 2
        assert len(await ts.alist_callbacks(ACCOUNT)) == 2
        assert len(await pending) == 2

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(cell())
        assert runtime.is_patched(loop) and not runtime.is_patched(other)
        assert not hasattr(other, "_nest_patched")
        assert asyncio.Task is _asyncio.Task and asyncio.run.__module__ == "asyncio.runners"
        assert asyncio.run(asyncio.sleep(0, "ok")) == "ok"
    finally:
        loop.run_until_complete(ts.aclose())
        loop.close()
        other.close()


def test_in_a_real_kernel_widget_tasks_await_and_blocking_calls_mix() -> None:
    from jupyter_client.manager import start_new_kernel

    cells = [
        "import asyncio, _asyncio, tskit\n"
        "from tskit._runtime import runtime\n"
        "from tskit.simulator import Simulator\n"
        "sim = Simulator()\n"
        "sim.faults.latency = 0.1\n"
        "ts = tskit.connect(simulator=sim)",
        "widget_task = asyncio.ensure_future(ts.alist_callbacks('0000123456-00001'))  # a button's handler\n"
        "frame = ts.list_callbacks('0000123456-00001')  # blocking, in the kernel's running loop\n"
        "print(len(frame), sim.count('login'))",
        "print(len(await ts.alist_callbacks('0000123456-00001')), len(await widget_task))",
        "print(len(ts.list_callbacks('0000123456-00001')), len(await ts.alist_callbacks('0000123456-00001')))",
        "print(runtime.is_patched(asyncio.get_running_loop()), asyncio.Task is _asyncio.Task,"
        " asyncio.Future is _asyncio.Future, asyncio.run.__module__,"
        " hasattr(asyncio.new_event_loop(), '_nest_patched'))",
    ]
    manager, kernel = start_new_kernel(kernel_name="python3")
    outputs: list[str] = []
    try:
        for code in cells:
            texts: list[str] = []

            def hook(message: dict[str, Any], texts: list[str] = texts) -> None:
                content = message["content"]
                if message["msg_type"] == "stream":
                    texts.append(content["text"])
                elif message["msg_type"] == "error":
                    texts.append("ERROR " + content["ename"] + ": " + content["evalue"])

            reply = kernel.execute_interactive(code, timeout=60, output_hook=hook)
            assert reply["content"]["status"] == "ok", (code, texts)
            outputs.append("".join(texts).strip())
    finally:
        kernel.stop_channels()
        manager.shutdown_kernel(now=True)
    # the widget's task led the login; the blocking call waited for it inside the same loop
    assert outputs[1:5] == ["2 1", "2 2", "2 2", "True True True asyncio.runners False"], outputs


async def test_a_403_means_one_fresh_login_as_a_401_does(sim: Simulator, clock: FakeClock) -> None:
    from tskit.simulator import Fault

    async with make_client(sim, clock) as client:
        await client.list_callbacks(ACCOUNT)
        sim.faults.scripted.append(Fault(status=403))
        assert len(await client.list_callbacks(ACCOUNT)) == 2
        assert client.auth.logins == 2
        sim.faults.scripted.extend([Fault(status=403), Fault(status=403)])
        with pytest.raises(tskit.ApiError) as caught:  # still refused after the new login: not a loop
            await client.list_callbacks(ACCOUNT)
        assert caught.value.status_code == 403
    assert sim.count("login") == 3


async def test_a_failed_login_is_handed_once_to_every_waiter(sim: Simulator, clock: FakeClock) -> None:
    from tskit.simulator import Fault

    sim.faults.scripted.append(Fault(status=503, operations=("login",)))
    sim.faults.latency = 0.01
    async with make_client(sim, clock) as client:
        results = await asyncio.gather(*(client.list_callbacks(ACCOUNT) for _ in range(20)), return_exceptions=True)
        assert all(isinstance(r, tskit.ApiError) and r.status_code == 503 for r in results), results
        assert sim.count("login") == 1 and sim.count("list") == 0
        assert client.auth.refused is None


def test_connections_to_one_simulator_share_a_login_and_two_simulators_do_not() -> None:
    shared, other = Simulator(), Simulator()
    first, second, third = (tskit.connect(simulator=s) for s in (shared, shared, other))
    for ts in (first, second, third, first):
        assert len(ts.list_callbacks(ACCOUNT)) == 2
    assert (shared.count("login"), other.count("login")) == (1, 1)
    assert first.client.auth.session is second.client.auth.session is not third.client.auth.session
    for ts in (first, second, third):
        ts.close()


@pytest.mark.server
@pytest.mark.parametrize("password", [WRONG, DEMO_PASSWORD])
def test_blocking_httpx2_clients_in_10_threads_share_one_login_through_the_sync_flow(slow_server, password) -> None:
    sim, url = slow_server
    auth = tskit.ThingSpaceAuth(tskit.Credentials(**credentials(password)), base_url=url)

    def call(i: int) -> int:
        with httpx2.Client(base_url=url, auth=auth) as http:
            return http.get(f"/api/m2m/v1/callbacks/{ACCOUNT}").status_code

    results = run_threads(10, call)
    if password == WRONG:
        assert all(isinstance(r, tskit.AuthenticationError) for r in results), results
    else:
        assert results == [200] * 10
    assert sim.count("login") == 1


@pytest.mark.server
def test_right_and_wrong_callers_of_one_user_never_share_a_session_or_its_refusal(slow_server) -> None:
    sim, url = slow_server
    right, wrong = (tskit.connect(**credentials(p), base_url=url) for p in (DEMO_PASSWORD, WRONG))
    assert len(right.list_callbacks(ACCOUNT)) == 2
    with pytest.raises(tskit.AuthenticationError):  # a wrong password is never served by the right one's session
        wrong.list_callbacks(ACCOUNT)
    coordinator.forget_all()
    sim.expire_sessions()
    results = run_threads(20, lambda i: (wrong if i % 2 else right).list_callbacks(ACCOUNT))
    assert all(isinstance(r, tskit.AuthenticationError) for r in results[1::2]), results
    shown = [len(r) for r in results[0::2] if isinstance(r, Sized)]  # DataFrames; a refusal has no len
    assert shown == [2] * 10, results
    assert sim.count("login") == 3 and not sim.is_locked(DEMO_USERNAME)  # the wrong one: on record, not resent


@pytest.mark.server
def test_a_password_changed_at_the_server_is_used_by_new_connections(slow_server) -> None:
    sim, url = slow_server
    old = tskit.connect(**credentials(), base_url=url)
    assert len(old.list_callbacks(ACCOUNT)) == 2
    sim.add_user(DEMO_USERNAME, "the-new-password")
    sim.expire_sessions()
    sim.revoke_tokens()
    with pytest.raises(tskit.AuthenticationError):
        old.list_callbacks(ACCOUNT)
    new = tskit.connect(**credentials("the-new-password"), base_url=url)
    assert len(new.list_callbacks(ACCOUNT)) == 2
    with pytest.raises(tskit.AuthenticationError, match="Not sent"):
        tskit.connect(**credentials(), base_url=url).list_callbacks(ACCOUNT)


@pytest.mark.server
def test_successive_asyncio_runs_with_new_connections_send_one_login(slow_server) -> None:
    sim, url = slow_server

    async def main() -> int:
        ts = tskit.connect(**credentials(), base_url=url)
        try:
            return len(await ts.alist_callbacks(ACCOUNT))
        finally:
            await ts.aclose()

    for _ in range(4):
        assert asyncio.run(main()) == 2
    assert sim.count("login") == 1


class RawLoginServer:
    """A loopback HTTP server written on sockets, to answer logins as no well-behaved server would.

    Token requests get a token; logins get ``login_answer`` (raw bytes); counted per path.
    """

    def __init__(self, login_answer: bytes) -> None:
        self.login_answer = login_answer
        self.token_answer: bytes | None = None
        self.counts: dict[str, int] = {"token": 0, "login": 0, "other": 0}
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        ready.wait()
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                path = line.decode().split(" ")[1]
                length = 0
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                kind = "token" if path.endswith("/oauth2/token") else "login" if path.endswith("/login") else "other"
                self.counts[kind] += 1
                if kind == "token" and self.token_answer is not None:
                    writer.write(self.token_answer)
                elif kind == "token":
                    body = json.dumps({"access_token": "tok-1234567890", "expires_in": 3600}).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                else:
                    await asyncio.sleep(0.2)  # long enough for every caller to wait for this login
                    writer.write(self.login_answer)
                    await writer.drain()
                    writer.close()
                    return
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.mark.server
@pytest.mark.parametrize(
    "answer",
    [
        b'HTTP/1.1 400 Bad Request\r\nContent-Length: 500\r\n\r\n{"errorCode":"UnifiedWebService.REQUEST_FAILED',
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nabcde",
    ],
    ids=["truncated-400", "bad-chunking", "bad-gzip"],
)
def test_a_login_answer_broken_mid_body_is_one_failed_login_for_every_waiter(answer: bytes) -> None:
    server = RawLoginServer(answer)
    try:
        ts = tskit.connect(client_id="app", client_secret="app-s", username="u", password="pw", base_url=server.url)
        results = run_threads(30, lambda i: ts.list_callbacks(ACCOUNT))
        assert all(isinstance(r, tskit.TransportError) for r in results), results
        assert server.counts == {"token": 1, "login": 1, "other": 0}
        with pytest.raises(tskit.TransportError, match="cooldown"):  # then the cooldown: not sent at once
            ts.list_callbacks(ACCOUNT)
        assert not guard.recorded(server.url, ts.client.auth._credentials)  # passing: never recorded
    finally:
        server.close()


@pytest.mark.server
def test_a_failed_login_keeps_the_token_it_just_obtained_and_scrubs_it_from_the_error() -> None:
    server = RawLoginServer(
        b"HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n\r\nbearer tok-1234567890 ??"
    )
    try:
        ts = tskit.connect(client_id="app", client_secret="app-s", username="u", password="pw", base_url=server.url)
        with pytest.raises(tskit.ThingSpaceError) as caught:
            ts.list_callbacks(ACCOUNT)
        assert "tok-1234567890" not in str(caught.value)
        time.sleep(protocol.COOLDOWN + 0.1)
        with pytest.raises(tskit.ThingSpaceError):
            ts.list_callbacks(ACCOUNT)
        assert server.counts["token"] == 1 and server.counts["login"] == 2
    finally:
        server.close()


@pytest.mark.server
def test_an_error_page_echoing_the_basic_header_shows_no_secret() -> None:
    import base64

    basic = base64.b64encode(b"app:app-s").decode()
    page = f"<html><p>Rejected credentials {basic}, see the log</p></html>".encode()
    server = RawLoginServer(b"")
    server.token_answer = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: %d\r\n\r\n%s" % (len(page), page)
    try:
        ts = tskit.connect(client_id="app", client_secret="app-s", username="u", password="pw", base_url=server.url)
        with pytest.raises(tskit.ThingSpaceError) as caught:
            ts.list_callbacks(ACCOUNT)
        assert basic not in str(caught.value) and "***" in str(caught.value)
    finally:
        server.close()


@pytest.mark.server
def test_a_login_answer_larger_than_the_cap_is_refused_clearly_and_not_kept() -> None:
    size = 5 * tskit.auth.MAX_LOGIN_ANSWER
    server = RawLoginServer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (size, b"x" * size))
    try:
        ts = tskit.connect(client_id="app", client_secret="app-s", username="u", password="pw", base_url=server.url)
        results = run_threads(5, lambda i: ts.list_callbacks(ACCOUNT))
        assert all(isinstance(r, tskit.AuthenticationError) and "larger than 1 MB" in str(r) for r in results), results
        assert server.counts["login"] == 1
    finally:
        server.close()


@pytest.mark.server
def test_a_blocking_call_on_tskits_own_io_loop_fails_clearly_and_later_calls_work(slow_server) -> None:
    from tskit._runtime import runtime

    _sim, url = slow_server
    ts = tskit.connect(**credentials(), base_url=url)
    assert len(ts.list_callbacks(ACCOUNT)) == 2
    outcome: list[object] = []
    done = threading.Event()

    def on_the_io_loop() -> None:
        try:
            outcome.append(ts.list_callbacks(ACCOUNT))
        except BaseException as error:  # kept, to be looked at by the test
            outcome.append(error)
        done.set()

    runtime.io_loop().call_soon_threadsafe(on_the_io_loop)
    assert done.wait(10)
    assert isinstance(outcome[0], RuntimeError) and "async twin" in str(outcome[0])
    assert not runtime.is_patched(runtime.io_loop())
    results = run_threads(5, lambda i: ts.list_callbacks(ACCOUNT))
    assert all(not isinstance(r, BaseException) for r in results), results


_IO_THREAD_DIES = """
import asyncio, concurrent.futures
from tskit._runtime import runtime

async def forever():
    await asyncio.sleep(3600)

def calls():  # in another thread than the main one: the main thread's calls have a loop of their own
    loop = runtime.io_loop()
    loop.call_later(0.2, loop.stop)  # the thread ends as if it died
    try:
        runtime.run(forever())
    except RuntimeError as error:
        assert "I/O loop stopped" in str(error), error
    else:
        raise AssertionError("no error")  # (a call left waiting for an hour is ended by the test's timeout)
    assert runtime.run(asyncio.sleep(0, result=7)) == 7  # a new I/O loop serves the next call

with concurrent.futures.ThreadPoolExecutor(1) as pool:
    pool.submit(calls).result()
print("ok")
"""


def test_a_blocking_call_fails_clearly_when_the_io_loop_thread_dies() -> None:
    # In a process of its own: the I/O loop it stops is the process's.
    done = subprocess.run([sys.executable, "-c", _IO_THREAD_DIES], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.server
def test_a_login_whose_leaders_loop_stopped_is_taken_over_by_the_next_caller() -> None:
    sim = SlowLogins(login_delay=1.0)
    with sim.serve() as running:
        ts = tskit.connect(**credentials(), base_url=running.base_url, timeout=10)
        loop = asyncio.new_event_loop()
        stop_at_login = threading.Thread(  # as Ctrl-C in run_until_complete: the loop never runs again
            target=lambda: sim.login_arrived.wait(30) and loop.call_soon_threadsafe(loop.stop)
        )
        stop_at_login.start()
        with pytest.raises(RuntimeError, match="stopped"):
            loop.run_until_complete(ts.alist_callbacks(ACCOUNT))
        stop_at_login.join()
        # not stuck behind the stopped leader (waiting for it would end in RequestTimeout at 10 s)
        assert len(ts.list_callbacks(ACCOUNT)) == 2
        assert sim.count("login") == 2
        stopped = [t for t in asyncio.all_tasks(loop) if not t.done()]
        done = loop.run_until_complete(asyncio.gather(*stopped, return_exceptions=True))  # it runs again
        assert [len(r) for r in done if not isinstance(r, BaseException)] == [2], done  # on the new login
        assert sim.count("login") == 2  # the resumed leader sent none of its own
        loop.run_until_complete(ts.aclose())
        loop.close()


@pytest.mark.server
def test_a_caller_taking_over_a_stopped_leader_gets_the_login_lock_it_held() -> None:
    sim = SlowLogins(login_delay=1.0)
    with sim.serve() as running:
        ts = tskit.connect(**credentials(), base_url=running.base_url, timeout=10)
        lock = guard.login_lock(running.base_url, tskit.Credentials(**credentials()))
        holder = threading.Timer(0.5, lock.release)
        lock.acquire()  # another process logs in first: the leader below then holds the lock in its login
        holder.start()
        loop = asyncio.new_event_loop()
        loop.call_later(0.8, loop.stop)
        with pytest.raises(RuntimeError, match="stopped"):
            loop.run_until_complete(ts.alist_callbacks(ACCOUNT))
        assert len(ts.list_callbacks(ACCOUNT)) == 2  # a wait for the lock it held would end in RequestTimeout
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
        loop.run_until_complete(ts.aclose())
        loop.close()


@pytest.mark.server
def test_a_refusal_waiting_for_the_record_lock_never_blocks_other_callers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Longer than the bound below: were the I/O loop blocked by this wait, no other call could end in it.
    monkeypatch.setattr(guard, "RECORD_LOCK_WAIT", 120.0)
    asked = threading.Event()
    held = guard._held

    def watched_held(timeout: float = 120.0) -> Any:
        asked.set()
        return held(120.0)

    sim = Simulator()
    sim.add_user("other", "other-pw", accounts=[ACCOUNT])
    with sim.serve() as running:
        # logged in before: a login needs the record (it is counted before it is sent)
        other = tskit.connect(**{**credentials("other-pw"), "username": "other"}, base_url=running.base_url)
        assert len(other.list_callbacks(ACCOUNT)) == 2
        path = guard._path().with_name(guard.FILE_NAME + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        hold = f"from filelock import FileLock; lock = FileLock({str(path)!r}); lock.acquire()"
        # another process is changing the record, slowly (until its input ends)
        hold += "; print('held', flush=True); input()"
        pipe = subprocess.PIPE
        holder = subprocess.Popen([sys.executable, "-c", hold], stdin=pipe, stdout=pipe, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(guard, "_held", watched_held)
        try:
            wrong = tskit.connect(**credentials(WRONG), base_url=running.base_url)
            errors: list[object] = []
            calls = lambda: errors.extend(run_threads(2, lambda i: wrong.list_callbacks(ACCOUNT)))  # noqa: E731
            refused = threading.Thread(target=calls)
            refused.start()
            assert asked.wait(30)  # the login now waits for the record lock, in a worker thread
            listed: list[object] = []
            meanwhile = threading.Thread(target=lambda: listed.append(other.list_callbacks(ACCOUNT)))
            meanwhile.start()
            meanwhile.join(60)  # on the same I/O loop, while the record lock is still held
            assert [len(r) for r in listed] == [2]  # type: ignore[arg-type]
            assert refused.is_alive()  # the refused calls still wait for the lock
            assert not guard.recorded(running.base_url, tskit.Credentials(**credentials(WRONG)))
        finally:
            holder.communicate("", timeout=10)
        refused.join(10)
        assert len(errors) == 2 and all(isinstance(e, tskit.AuthenticationError) for e in errors), errors
        assert guard.recorded(running.base_url, tskit.Credentials(**credentials(WRONG)))
        assert sim.count("login") == 2


def test_a_token_near_its_end_is_not_asked_for_once_per_call(clock: FakeClock) -> None:
    from tskit.simulator._config import SimulatorConfig

    sim = Simulator(SimulatorConfig(token_lifetime=63), clock=FakeClock())

    async def main() -> None:
        async with make_client(sim, clock) as client:
            for _ in range(1400):  # 70 s of calls every 50 ms: the whole life of a token, and the next
                assert len(await client.list_callbacks(ACCOUNT)) == 2
                clock.advance(0.05)
                sim.advance(0.05)
            # each token asked again once half-way (the same one comes back), not once per call
            assert client.auth.token_requests <= 4 and client.auth.logins == 1, client.auth.token_requests

    asyncio.run(main())


@pytest.mark.server
def test_each_asyncio_run_closes_its_connections_and_keeps_no_loop_alive(slow_server) -> None:
    import gc
    import weakref

    _sim, url = slow_server
    ts = tskit.connect(**credentials(), base_url=url)
    ts.list_callbacks(ACCOUNT)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def main() -> int:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        return len(await ts.alist_callbacks(ACCOUNT))

    before = _open_fds()
    for _ in range(30):
        assert asyncio.run(main()) == 2  # never closed by the caller: asyncio.run's end closes it
    gc.collect()
    assert _open_fds() <= before + 2
    assert all(ref() is None for ref in loops)
    ts.close()


@pytest.mark.server
def test_an_unusable_config_folder_falls_back_to_a_private_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import tempfile

    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("TSKIT_CONFIG_DIR", str(tmp_path / "a-file" / "tskit"))  # under a file: cannot be made
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    sim = Simulator()
    with sim.serve() as running:
        ts = tskit.connect(**credentials(WRONG), base_url=running.base_url)
        with pytest.raises(tskit.AuthenticationError):
            ts.list_callbacks(ACCOUNT)
        fallback = tmp_path / "tmp" / f"tskit-{os.getuid()}"
        assert (fallback / guard.FILE_NAME).exists() and (fallback / "logins").is_dir()
        assert fallback.stat().st_mode & 0o777 == 0o700
        assert "TSKIT_CONFIG_DIR" in caplog.text
        coordinator.forget_all()
        with pytest.raises(tskit.AuthenticationError, match="Not sent"):  # the record is found there
            tskit.connect(**credentials(WRONG), base_url=running.base_url).list_callbacks(ACCOUNT)
        assert sim.count("login") == 1


@pytest.mark.server
def test_no_login_is_sent_when_no_folder_can_hold_the_login_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("TSKIT_CONFIG_DIR", str(tmp_path / "a-file" / "tskit"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "a-file"))  # no temporary folder either
    sim = Simulator()
    with sim.serve() as running:
        ts = tskit.connect(**credentials(WRONG), base_url=running.base_url)
        results = run_threads(5, lambda i: ts.list_callbacks(ACCOUNT))
        assert all(isinstance(r, tskit.ConfigurationError) and "login lock" in str(r) for r in results), results
        assert sim.count("login") == 0


@pytest.mark.server
def test_timeout_is_the_calls_overall_deadline_login_included() -> None:
    sim = SlowLogins(login_delay=0.7)
    sim.faults.latency = 0.7  # every answer: token, login and list each within the timeout alone
    with sim.serve() as running:
        ts = tskit.connect(**credentials(), base_url=running.base_url, timeout=1.5)
        # each answer comes within 1.5 s: only a deadline over the whole call (2.1 s of answers) runs out
        with pytest.raises(tskit.RequestTimeout) as caught:
            ts.list_callbacks(ACCOUNT)
        assert "1.5 s" in str(caught.value) or "timeout ran out" in str(caught.value)


def test_a_retry_after_longer_than_what_is_left_of_the_timeout_fails_at_once(
    sim: Simulator, clock: FakeClock, sleeps: list[float]
) -> None:
    from tskit.simulator import Fault

    async def main() -> None:
        async with make_client(sim, clock, timeout=2.0) as client:
            await client.list_callbacks(ACCOUNT)
            sim.faults.scripted.append(Fault(status=429, retry_after=5, operations=("list",)))
            sleeps.clear()
            with pytest.raises(tskit.ApiError, match=r"Retry-After of 5 s is longer than the .* left of timeout=2"):
                await client.list_callbacks(ACCOUNT)
            assert sleeps == []  # failed without waiting any of it

    asyncio.run(main())


def test_a_damaged_refusal_record_is_moved_aside_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    record = guard._path()
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text('{"half a record": ')
    assert not guard.recorded("https://ts.example", tskit.Credentials(**credentials()))
    assert "damaged" in caplog.text and not record.exists()
    assert [p.name.startswith(guard.FILE_NAME + ".corrupt-") for p in record.parent.iterdir()].count(True) == 1


def test_a_login_throttled_with_retry_after_is_honoured_by_other_processes(tmp_path: Path) -> None:
    sim = SlowLogins(throttled=1, retry_after=30)
    with sim.serve() as server:
        env = {**os.environ, **server.env(), "TSKIT_CONFIG_DIR": str(tmp_path)}
        command = [sys.executable, "-m", "tskit", "list", ACCOUNT]
        first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert first.returncode == 1 and "throttled" in first.stderr
        # a later run whose timeout is shorter than what is left of the wait fails at once, saying so
        later = subprocess.run([*command, "--timeout", "5"], env=env, capture_output=True, text=True, timeout=60)
        assert later.returncode == 1 and "Not sent: ThingSpace throttled" in later.stderr, later.stderr
        assert (
            not (tmp_path / guard.FILE_NAME).exists() or "demo-user" not in (tmp_path / guard.FILE_NAME).read_text()
        )  # passing: never a refusal
    assert (sim.throttled_logins, sim.count("login")) == (1, 0)  # one login sent, throttled; none after


def test_the_cli_timeout_option_is_each_calls_deadline(tmp_path: Path) -> None:
    # The login takes 20 s: a run that waited for it would outlive the bound below (no wall-clock
    # limit on the run itself, which a loaded machine's interpreter start alone can stretch).
    sim = SlowLogins(login_delay=20.0)
    with sim.serve() as server:
        env = {**os.environ, **server.env(), "TSKIT_CONFIG_DIR": str(tmp_path)}
        done = subprocess.run(
            [sys.executable, "-m", "tskit", "list", ACCOUNT, "--timeout", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=15,
        )
        assert done.returncode != 0 and "1 s" in done.stderr, done.stderr


def test_tskit_audit_with_a_refused_login_says_so_in_one_line(tmp_path: Path) -> None:
    sim = Simulator()
    with sim.serve() as server:
        env = {**os.environ, **server.env(), "TSKIT_CONFIG_DIR": str(tmp_path), "THINGSPACE_PASSWORD": WRONG}
        accounts = ["0000123456-00001", "0000123456-00002", "0000123456-00003"]
        done = subprocess.run(
            [sys.executable, "-m", "tskit", "audit", *accounts, "--no-progress"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "refused" in lines[0] and "0000123456-00002" not in done.stdout, done.stderr
    assert sim.count("login") == 1


def _in_a_forked_child(work: Any, seconds: float = 20.0) -> int:
    """Run ``work()`` in a child made by ``os.fork()``; its exit status: 0 when it returned, 1 when it raised.

    A child that hangs is killed after ``seconds`` and reported as 124.
    """
    import signal
    import warnings

    with warnings.catch_warnings():  # Python 3.12 warns about forking a process that has threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            work()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return 124


@pytest.mark.server
@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork exists on POSIX only")
def test_a_forked_child_keeps_the_session_and_gets_its_own_io_loop(slow_server) -> None:
    sim, url = slow_server
    ts = tskit.connect(**credentials(), base_url=url)
    assert len(ts.list_callbacks(ACCOUNT)) == 2  # the parent logs in; tskit's I/O thread runs

    def child() -> None:
        assert [t.name for t in threading.enumerate() if t.name == "tskit-io"] == []  # not copied by fork
        assert len(ts.list_callbacks(ACCOUNT)) == 2

    assert _in_a_forked_child(child) == 0
    assert sim.count("login") == 1  # the child used the session it inherited
    assert len(ts.list_callbacks(ACCOUNT)) == 2  # and the parent's loop and session still work


@pytest.mark.server
@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork exists on POSIX only")
def test_a_child_forked_during_a_login_logs_in_itself_rather_than_wait_for_it(tmp_path: Path) -> None:
    sim = SlowLogins(login_delay=1.5)
    with sim.serve() as server:
        ts = tskit.connect(**credentials(), base_url=server.base_url, timeout=10)
        parent = threading.Thread(target=ts.list_callbacks, args=(ACCOUNT,))
        parent.start()
        deadline = time.monotonic() + 10
        while sim.count("login") == 0 and time.monotonic() < deadline:  # the parent's login is on the wire
            time.sleep(0.01)
        assert sim.count("login") == 1

        def child() -> None:  # the parent's leader thread does not exist here: waiting for it would hang
            assert len(ts.list_callbacks(ACCOUNT)) == 2

        assert _in_a_forked_child(child) == 0
        parent.join(15)
        assert not parent.is_alive()
        assert sim.count("login") == 2 and not sim.is_locked(DEMO_USERNAME)


@pytest.mark.server
def test_no_home_folder_nor_passwd_entry_uses_a_private_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A container run under an arbitrary user id (OpenShift): no HOME, no entry in /etc/passwd.
    import pwd
    import tempfile

    def no_entry(uid: int) -> Any:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    for name in ("HOME", "XDG_CONFIG_HOME", "TSKIT_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert not os.path.isabs(os.path.expanduser("~"))  # what platformdirs will get
    sim = Simulator()
    with sim.serve() as running:
        ts = tskit.connect(**credentials(WRONG), base_url=running.base_url)
        with pytest.raises(tskit.AuthenticationError):
            ts.list_callbacks(ACCOUNT)
        fallback = tmp_path / f"tskit-{os.getuid()}"
        assert (fallback / guard.FILE_NAME).exists() and fallback.stat().st_mode & 0o777 == 0o700
        assert "no home folder" in caplog.text
        coordinator.forget_all()
        with pytest.raises(tskit.AuthenticationError, match="Not sent"):
            tskit.connect(**credentials(WRONG), base_url=running.base_url).list_callbacks(ACCOUNT)
        assert sim.count("login") == 1
