"""One rule for "what is there": an empty or partial listing is never taken as "no listeners".

Real HTTP on loopback: a served simulator behind the fault proxy, which empties, cuts or reorders
listing answers. Export, plan, apply, rotation and the audit all read through
``ThingSpaceClient.listing``; apply compares each listener with what the plan saw before changing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import tskit
from tests.conftest import FakeClock, make_client
from tests.fault_proxy import FaultProxy
from tskit.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME, Simulator, SimulatorServer
from tskit.state import DesiredState, Journal, rotate

A1, A2, A3 = "0000123456-00001", "0000123456-00002", "0000123456-00003"
NEW_PW = "brand-new-pw-1"


@pytest.fixture
def proxy(server: SimulatorServer) -> Iterator[FaultProxy]:
    with FaultProxy(server.base_url) as running:
        yield running


@pytest.fixture
def pts(proxy: FaultProxy) -> Iterator[tskit.ThingSpace]:
    """A connection through the proxy; retries quick."""
    ts = tskit.connect(
        client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET, username=DEMO_USERNAME, password=DEMO_PASSWORD,
        base_url=proxy.base_url, retry=tskit.RetryPolicy(attempts=2, backoff=0.01),
    )  # fmt: skip
    ts.list_callbacks(A3)  # log in first, so that scripted faults hit the calls that matter
    yield ts
    ts.close()


@pytest.fixture
async def client(sim: Simulator, clock: FakeClock, proxy: FaultProxy) -> AsyncIterator[tskit.ThingSpaceClient]:
    async with make_client(sim, clock, base_url=proxy.base_url, retry=tskit.RetryPolicy(attempts=2, backoff=0.01)) as c:
        await c.list_callbacks(A3)
        yield c


def services(sim: Simulator, account: str) -> dict[str, tuple[str, str, str]]:
    return {r["serviceName"]: (r["url"], r["username"], r["password"]) for r in sim.registrations(account)}


def stay_uncertain(proxy: FaultProxy, account: str, attempts: int, passes: int = 3) -> None:
    """In each reading pass: an empty answer, then every try of the confirming listing answered 500."""
    for _ in range(passes):
        proxy.script("empty", "GET", path=account)
        for _ in range(attempts):
            proxy.script("500", "GET", path=account)


# -- the client's one listing ------------------------------------------------------------


@pytest.mark.anyio
async def test_an_empty_answer_is_read_again_and_the_second_listing_decides(
    client: tskit.ThingSpaceClient, sim: Simulator, proxy: FaultProxy
) -> None:
    proxy.script("empty", "GET", path=A1)
    assert await client.list_callbacks(A1) == []  # one listing: what it says, documented as no evidence
    proxy.script("empty", "GET", path=A1)
    listing = await client.listing(A1)
    assert listing.certain and listing.services == {"CarrierService", "DeviceUsage"} and listing.reads == 2
    truly_empty = await client.listing(A3)
    assert truly_empty.certain and truly_empty.callbacks == () and truly_empty.reads == 3  # absence: three agree
    proxy.script("empty", "GET", path=A1)
    proxy.script("empty", "GET", path=A1)
    twice = await client.listing(A1)  # two empty answers in a row are not enough
    assert twice.certain and twice.services == {"CarrierService", "DeviceUsage"} and twice.reads == 3


@pytest.mark.anyio
async def test_an_empty_answer_no_listing_can_confirm_is_uncertain(
    client: tskit.ThingSpaceClient, proxy: FaultProxy
) -> None:
    proxy.script("empty", "GET", path=A1)
    for _ in range(client.retry.attempts):
        proxy.script("500", "GET", path=A1)
    listing = await client.listing(A1)
    assert (listing.certain, listing.reason, listing.callbacks) == (False, "unconfirmed", ())


@pytest.mark.anyio
async def test_a_cut_or_reordered_answer_is_confirmed_where_it_matters(
    client: tskit.ThingSpaceClient, proxy: FaultProxy
) -> None:
    proxy.script("reorder", "GET", path=A1)
    assert (await client.listing(A1)).services == {"CarrierService", "DeviceUsage"}
    proxy.script("cut", "GET", b"DeviceUsage", path=A1)
    listing = await client.listing(A1, expect={"DeviceUsage"})  # lacks a service expected: read again
    assert listing.certain and listing.services == {"CarrierService", "DeviceUsage"} and listing.reads == 2
    for cut in (b"DeviceUsage", b"CarrierService", b"DeviceUsage", b"CarrierService"):  # never three alike
        proxy.script("cut", "GET", cut, path=A1)
        proxy.script("reorder", "GET", path=A1)
    disagree = await client.listing(A1, confirm_all=True)
    assert (disagree.certain, disagree.reason, disagree.reads) == (False, "listings-disagree", 8)
    for _ in range(4):  # no listener at all, four times in a row: not yet enough for an export
        proxy.script("empty", "GET", path=A1)
    whole = await client.listing(A1, confirm_all=True)
    assert whole.certain and whole.services == {"CarrierService", "DeviceUsage"} and whole.reads == 7
    proxy.script("cut", "GET", b"DeviceUsage", path=A1)  # a partial answer, confirmed whole by three more
    whole = await client.listing(A1, confirm_all=True)
    assert whole.certain and whole.services == {"CarrierService", "DeviceUsage"} and whole.reads == 4


# -- export, then apply --prune -----------------------------------------------------------


def cli(
    proxy: FaultProxy, server: SimulatorServer, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    from tskit import cli as command

    for key, value in {**server.env(), "THINGSPACE_BASE_URL": proxy.base_url}.items():
        monkeypatch.setenv(key, value)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = command.main(argv)
    return code, out.getvalue() + err.getvalue()


@pytest.mark.parametrize("confirmable", [True, False])
def test_export_hit_by_an_empty_answer_never_writes_the_account_empty(
    sim: Simulator,
    server: SimulatorServer,
    proxy: FaultProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    confirmable: bool,
) -> None:
    before = services(sim, A1)
    out = tmp_path / "state.toml"
    if confirmable:  # a second listing shows the listeners
        proxy.script("empty", "GET", path=A1)
    else:  # every listing after it fails: the empty answer stays unconfirmed
        stay_uncertain(proxy, A1, tskit.RetryPolicy().attempts)
    code, text = cli(proxy, server, ["export", A1, A2, "-o", str(out), "--no-progress"], monkeypatch)
    proxy.scripted.clear()
    if not confirmable:
        assert code == 1 and not out.exists(), text
        assert f"{A1}: UncertainListingError unconfirmed" in text
        code, text = cli(proxy, server, ["export", A1, A2, "-o", str(out), "--no-progress"], monkeypatch)
    assert code == 0, text
    exported = DesiredState.load(out)
    assert set(exported.accounts[A1]) == {"CarrierService", "DeviceUsage"}
    code, text = cli(proxy, server, ["apply", str(out), "--prune", "--yes", "--no-progress"], monkeypatch)
    assert code == 0 and sim.count("deregister") == 0, text
    assert services(sim, A1) == before


def test_partial_answers_twice_in_a_row_neither_shorten_an_export_nor_hide_a_listener_from_a_rotation(
    sim: Simulator, server: SimulatorServer, proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = services(sim, A1)
    out = tmp_path / "state.toml"
    for _ in range(2):  # an answer that leaves DeviceUsage out, twice in a row
        proxy.script("cut", "GET", b"DeviceUsage", path=A1)
    code, text = cli(proxy, server, ["export", A1, "-o", str(out), "--no-progress"], monkeypatch)
    assert code == 0 and set(DesiredState.load(out).accounts[A1]) == {"CarrierService", "DeviceUsage"}, text
    code, text = cli(proxy, server, ["apply", str(out), "--prune", "--yes", "--no-progress"], monkeypatch)
    assert code == 0 and sim.count("deregister") == 0 and services(sim, A1) == before, text
    for _ in range(2):
        proxy.script("cut", "GET", b"DeviceUsage", path=A1)
    monkeypatch.setenv("ROTATED_PW", NEW_PW)
    code, text = cli(proxy, server, ["rotate", A1, "--password-env", "ROTATED_PW", "--yes", "--no-progress",
                                     "--allow-http", "--include-without-credentials"], monkeypatch)  # fmt: skip
    assert {service: held[2] for service, held in services(sim, A1).items()} == {
        "CarrierService": NEW_PW, "DeviceUsage": NEW_PW
    }, text  # fmt: skip


def test_a_plan_with_prune_plans_no_delete_from_an_uncertain_read(pts: tskit.ThingSpace, proxy: FaultProxy) -> None:
    stay_uncertain(proxy, A1, 2)
    plan = pts.plan({A1: {}, A2: {}}, prune=True, progress=False)
    proxy.scripted.clear()
    assert {s.account_name for s in plan.steps} == {A2}
    assert [(e.account_name, e.error, e.error_code) for e in plan.error_list] == [
        (A1, "UncertainListingError", "unconfirmed")
    ]


# -- rotation ------------------------------------------------------------------------------


def test_a_rotation_whose_first_listing_is_empty_does_not_report_ok_falsely(
    sim: Simulator, pts: tskit.ThingSpace, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.script("empty", "GET", path=A1)
    result = pts.rotate_password([A1, A2], new_password=NEW_PW, progress=False, journal=tmp_path / "j", allow_http=True)
    on_old = [
        (a, s) for a in (A1, A2) for s, (_, user, pw) in services(sim, a).items() if (user or pw) and pw != NEW_PW
    ]
    reported = {(a, s) for a, s, _ in result.remaining_list}
    assert not set(on_old) - reported, (on_old, result.remaining_list)  # every one left behind is said
    assert result.ok == (not on_old)
    assert on_old == []  # the empty answer was read again: A1's listener was rotated too
    assert services(sim, A1)["CarrierService"][2] == NEW_PW


def test_a_rotation_whose_first_listing_stays_uncertain_says_so(
    sim: Simulator, pts: tskit.ThingSpace, proxy: FaultProxy, tmp_path: Path
) -> None:
    stay_uncertain(proxy, A1, 2)
    result = pts.rotate_password([A1, A2], new_password=NEW_PW, progress=False, journal=tmp_path / "j", allow_http=True)
    assert not result.ok and services(sim, A1)["CarrierService"][2] == "demo-pass-1"
    said = "could not be read for certain: UncertainListingError unconfirmed"
    assert [(a, s) for a, s, r in result.remaining_list if r.startswith(said)] == [(A1, "")]


@pytest.mark.anyio
async def test_a_rotation_whose_check_listing_is_empty_does_not_say_no_longer_registered(
    client: tskit.ThingSpaceClient, sim: Simulator, proxy: FaultProxy, tmp_path: Path
) -> None:
    def after_the_last_step(done: int, total: int) -> None:
        if done == total:  # the listing that verifies the rotation comes back empty
            proxy.script("empty", "GET", path=A1)

    result = await rotate(
        client, [A1], new_password=NEW_PW, progress=False, journal=tmp_path / "j", on_progress=after_the_last_step
    )
    assert proxy.applied["empty"] == 1
    assert services(sim, A1)["CarrierService"][2] == NEW_PW
    assert result.remaining_list == [] and result.ok


# -- compare, then change ------------------------------------------------------------------


def test_prune_after_someone_registered_a_new_url_deletes_nothing(
    sim: Simulator, pts: tskit.ThingSpace, tmp_path: Path
) -> None:
    plan = pts.plan({A1: {"CarrierService": {"url": "https://listener.example.com/thingspace/carrier",
                                             "username": "tsuser", "password": "demo-pass-1"}}},
                    prune=True, progress=False)  # fmt: skip
    assert [(s.action, s.service_name) for s in plan.steps] == [("delete", "DeviceUsage")]
    sim.register(A1, "DeviceUsage", "https://someone-else.example.com/usage", "", "")  # since the plan
    result = plan.apply(journal=tmp_path / "j", progress=False)
    assert sim.count("deregister") == 0
    assert services(sim, A1)["DeviceUsage"][0] == "https://someone-else.example.com/usage"
    (outcome,) = result.outcome_list
    assert outcome.outcome == "changed-since-plan" and not result.ok
    assert result.counts()["changed-since-plan"] == 1
    assert "someone-else.example.com" in outcome.reason and "Plan again" in outcome.reason
    assert Journal(tmp_path / "j").frame["outcome"].tolist() == ["changed-since-plan"]


def test_an_update_or_create_skips_a_listener_changed_since_the_plan(
    sim: Simulator, pts: tskit.ThingSpace, tmp_path: Path
) -> None:
    plan = pts.plan(
        {
            A1: {"CarrierService": {"url": "https://moved.example.com/carrier", "username": "tsuser",
                                    "password": "demo-pass-1"}},
            A3: {"CarrierService": {"url": "https://mine.example.com/carrier"}},
        },
        progress=False,
    )  # fmt: skip
    assert [s.action for s in plan.steps] == ["create", "update"]
    sim.register(A1, "CarrierService", "https://listener.example.com/thingspace/carrier", "tsuser", "rotated-pw")
    sim.register(A3, "CarrierService", "https://theirs.example.com/carrier", "", "")
    before = sim.count("register")
    result = plan.apply(journal=tmp_path / "j", progress=False)
    assert sim.count("register") == before  # nothing sent: both changed since the plan
    assert [o.outcome for o in result.outcome_list] == ["changed-since-plan"] * 2
    assert services(sim, A1)["CarrierService"][2] == "rotated-pw"
    assert services(sim, A3)["CarrierService"][0] == "https://theirs.example.com/carrier"


def test_cli_apply_prune_after_a_change_exits_non_zero_and_advises_planning_again(
    sim: Simulator, server: SimulatorServer, proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state.toml"
    state.write_text(f'[{A1}.CarrierService]\nurl = "https://listener.example.com/thingspace/carrier"\n'
                     'username = "tsuser"\npassword = { env = "PW" }\n')  # fmt: skip
    monkeypatch.setenv("PW", "demo-pass-1")
    other = "https://someone-else.example.com/usage"
    # the plan reads A1, then someone registers a new URL for the listener it is about to delete
    proxy.script("pass", "GET", path=A1, then=lambda: sim.register(A1, "DeviceUsage", other, "", ""))
    code, text = cli(proxy, server, ["apply", str(state), "--prune", "--yes", "--no-progress"], monkeypatch)
    assert code == 1, text
    assert sim.count("deregister") == 0 and services(sim, A1)["DeviceUsage"][0] == other
    assert "changed-since-plan" in text and "tskit plan" in text


def test_a_rotation_skips_a_listener_changed_since_its_listing(
    sim: Simulator, pts: tskit.ThingSpace, proxy: FaultProxy, tmp_path: Path
) -> None:
    moved = "https://moved.example.com/carrier"
    # the rotation reads A1 three times (every answer confirmed); then someone moves its listener
    proxy.script("pass", "GET", path=A1)
    proxy.script("pass", "GET", path=A1)
    proxy.script("pass", "GET", path=A1, then=lambda: sim.register(A1, "CarrierService", moved, "tsuser", "x-pw"))
    result = pts.rotate_password([A1], new_password=NEW_PW, progress=False, journal=tmp_path / "j", allow_http=True)
    assert services(sim, A1)["CarrierService"] == (moved, "tsuser", "x-pw")  # not overwritten with the old URL
    assert [o.outcome for o in result.outcome_list] == ["changed-since-plan"]
    assert not result.ok and (A1, "CarrierService", "still on another password") in result.remaining_list


# -- the audit -----------------------------------------------------------------------------


def test_the_audit_reports_an_uncertain_account_as_such_not_as_missing_listeners(
    pts: tskit.ThingSpace, proxy: FaultProxy
) -> None:
    stay_uncertain(proxy, A1, 2, passes=1)
    audit = pts.audit([A1, A2], expect=["CarrierService"], progress=False)
    assert [(e.account_name, e.error, e.error_code) for e in audit.error_list] == [
        (A1, "UncertainListingError", "unconfirmed")
    ]
    assert not [f for f in audit.finding_list if f.account_name == A1]


def test_the_audit_confirms_a_missing_expected_service_before_reporting_it(
    pts: tskit.ThingSpace, proxy: FaultProxy
) -> None:
    proxy.script("cut", "GET", b"CarrierService", path=A2)
    audit = pts.audit([A2], expect=["CarrierService"], progress=False)
    assert audit.error_list == [] and not [f for f in audit.finding_list if f.rule == "missing-service"]


def test_the_proxy_can_empty_cut_and_reorder_listings_at_random(sim: Simulator, server: SimulatorServer) -> None:
    async def read(proxy: FaultProxy) -> list[int]:
        async with make_client(sim, FakeClock(), base_url=proxy.base_url) as client:
            return [len(await client.list_callbacks(A1)) for _ in range(60)]

    with FaultProxy(server.base_url, empty_list_rate=0.2, cut_list_rate=0.2, reorder_list_rate=0.2, seed=3) as faulty:
        sizes = asyncio.run(read(faulty))
    assert {0, 1, 2} <= set(sizes)
    assert min(faulty.applied[a] for a in ("empty", "cut", "reorder")) > 0


def test_a_step_no_fresh_listing_can_check_is_not_sent(
    sim: Simulator, pts: tskit.ThingSpace, proxy: FaultProxy, tmp_path: Path
) -> None:
    plan = pts.plan({A3: {"CarrierService": {"url": "https://mine.example.com/carrier"}}}, progress=False)
    for _ in range(12):  # every try of the listing just before the step, in every pass of the reads
        proxy.script("500", "GET", path=A3)
    result = plan.apply(journal=tmp_path / "j", progress=False)
    assert sim.count("register") == 0 and services(sim, A3) == {}
    assert [o.outcome for o in result.outcome_list] == ["unchecked"] and not result.ok
    assert result.outcome_list[0].reason.startswith("not sent: the account could not be listed for certain")
    assert Journal(tmp_path / "j").unfinished() == []
