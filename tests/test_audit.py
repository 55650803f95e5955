"""Audits: fan-out with failures, one session, snapshots without passwords, diffs, display."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx2
import pytest

import tskit
from tests.conftest import FakeClock, make_client
from tests.timing import growth
from tskit._frames import concat
from tskit.audit import Audit, Severity, read_accounts, run_audit
from tskit.ops import account_list
from tskit.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, Fault, Simulator
from tskit.simulator._faults import fault_reply

pytestmark = pytest.mark.anyio
DEMO = ["0000123456-00001", "0000123456-00002", "0000123456-00003"]
PASSWORDS = ["demo-pass-1", "demo-pass-2", "demo-pass-3", "s3cret-new"]


def fleet(sim: Simulator, count: int) -> list[str]:
    names = [f"0000200000-{i:05d}" for i in range(count)]
    for name in names:
        sim.add_account(name, users=["demo-user"])
        sim.register(name, "CarrierService", f"https://l.example.com/{name}", "u", "pw")
    return names


async def test_an_unexpected_error_for_one_account_keeps_the_others(sim: Simulator, clock: FakeClock) -> None:
    names = fleet(sim, 3)

    async def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith(names[1]):  # nested deeper than json.loads can recurse
            return httpx2.Response(200, content=b"[" * 100_000)
        response: httpx2.Response = await inner.handle_async_request(request)
        return response

    inner = sim.transport()
    async with make_client(sim, clock, transport=httpx2.MockTransport(handler)) as client:
        listing = client.listing

        async def broken(account: str, **kwargs: Any) -> tskit.Listing:
            if account == names[2]:
                raise RuntimeError("a bug that quotes pw")
            return await listing(account, **kwargs)

        client.listing = broken  # type: ignore[method-assign,assignment]
        audit = await run_audit(client, names, progress=False, source="test")
    assert [r.account_name for r in audit.records] == [names[0]]
    errors = {e.account_name: e for e in audit.error_list}
    assert "nested too deeply" in errors[names[1]].message
    assert errors[names[2]].message == "reading it failed unexpectedly (RuntimeError)"


async def test_an_unexpected_error_is_logged_with_its_traceback_but_not_its_text(
    sim: Simulator, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    names = fleet(sim, 2)
    secret = "-".join(["listener", "secret", "in", "a", "bug"])  # built here: not in the source line logged

    async with make_client(sim, clock) as client:
        listing = client.listing

        async def a_bug_deep_inside(account: str, **kwargs: Any) -> tskit.Listing:
            if account == names[1]:
                raise KeyError(f"quotes {secret}")
            return await listing(account, **kwargs)

        client.listing = a_bug_deep_inside  # type: ignore[method-assign,assignment]
        with caplog.at_level(logging.ERROR, logger="tskit"):
            found, failed = await read_accounts(client, names, progress=False)
    assert list(found) == [names[0]] and str(failed[names[1]]) == "reading it failed unexpectedly (KeyError)"
    [record] = [r for r in caplog.records if names[1] in r.getMessage()]
    logged = record.getMessage()
    assert record.levelno == logging.ERROR and "(KeyError)" in logged
    # the traceback: the frame that raised it, with its file and line
    assert "a_bug_deep_inside" in logged and "test_audit.py" in logged
    assert 'raise KeyError(f"quotes {secret}")' in logged
    assert secret not in caplog.text


def test_audit_of_the_demo_accounts(ts: tskit.ThingSpace) -> None:
    audit = ts.audit([*DEMO, "9999999999-00001"], expect=["CarrierService", "DeviceUsage"], progress=False)
    assert audit.callbacks.equals(concat([ts.list_callbacks(a) for a in DEMO]))
    assert list(audit.findings.columns) == ["account_name", "service_name", "rule", "severity", "detail"]
    found = {(f.account_name, f.service_name, f.rule) for f in audit.finding_list}
    assert ("0000123456-00002", "CarrierService", "credentials-over-http") in found
    assert ("0000123456-00002", "CarrierService", "unreachable-host") in found
    assert ("0000123456-00003", "CarrierService", "missing-service") in found
    assert ("0000123456-00001", "DeviceUsage", "no-credentials") in found
    assert audit.findings["severity"].iloc[0] == "high"  # most severe first
    assert audit.errors.to_dict("records") == [
        {
            "account_name": "9999999999-00001",
            "error": "ApiError",
            "status_code": 400,
            "error_code": "UnifiedWebService.REQUEST_FAILED.AccountNotFound",
            "message": "Account 9999999999-00001 was not found.",
        }
    ]
    # The demo's listeners are on example.com, a documentation name ThingSpace cannot reach: 3 of them.
    example = audit.findings[audit.findings["detail"].str.contains("example.com is a name reserved")]
    assert len(example) == 3 and set(example["rule"]) == {"unreachable-host"}
    assert audit.counts() == {"high": 8, "medium": 2, "low": 0, "info": 0}
    assert not audit.complete
    assert [f.rule for f in audit.at_or_above("high")].count("missing-service") == 3


async def test_failing_accounts_are_listed_and_the_rest_complete(sim: Simulator, clock: FakeClock) -> None:
    names = fleet(sim, 40)
    broken = set(names[5:10])
    bad_names = {"0000999999-00001", "0000999999-00002"}
    async with make_client(sim, clock, retry=tskit.RetryPolicy(attempts=2, backoff=0.001)) as client:
        # five accounts answer 503 every time (the retry fails too); two do not exist
        original = sim.handle

        def flaky(method: str, raw_path: str, headers, body):
            if any(raw_path.endswith(name) for name in broken):
                return fault_reply(503, None)
            return original(method, raw_path, headers, body)

        sim.handle = flaky  # type: ignore[method-assign]
        audit = await run_audit(client, [*names, *sorted(bad_names)], concurrency=8, progress=False, source="t")
    assert {e.account_name for e in audit.error_list} == broken | bad_names
    assert {e.status_code for e in audit.error_list} == {503, 400}
    assert {r.account_name for r in audit.records} == set(names) - broken
    assert audit.accounts == [*names, *sorted(bad_names)]


async def test_one_login_serves_the_whole_fan_out(sim: Simulator, clock: FakeClock) -> None:
    names = fleet(sim, 60)
    sim.faults.latency = 0.005
    async with make_client(sim, clock) as client:
        audit = await run_audit(client, names, concurrency=16, progress=False, source="t")
    assert audit.complete and len(audit.records) == 60
    assert (sim.count("token"), sim.count("login"), sim.count("list")) == (1, 1, 60)


class Gauge(httpx2.AsyncBaseTransport):
    """Counts requests in flight at once."""

    def __init__(self, sim: Simulator) -> None:
        self.inner, self.now, self.most = sim.transport(), 0, 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(0.002)
            response: httpx2.Response = await self.inner.handle_async_request(request)
            return response
        finally:
            self.now -= 1


@pytest.mark.parametrize("concurrency", [1, 5])
async def test_concurrency_is_bounded(sim: Simulator, clock: FakeClock, concurrency: int) -> None:
    names = fleet(sim, 30)
    gauge = Gauge(sim)
    async with make_client(sim, clock, transport=gauge) as client:
        await client.list_callbacks(names[0])
        await run_audit(client, names, concurrency=concurrency, progress=False, source="t")
    assert gauge.most == concurrency


async def test_refused_login_fails_every_account_with_one_attempt(sim: Simulator, clock: FakeClock) -> None:
    wrong = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, "wrong")
    async with make_client(sim, clock, credentials=wrong) as client:
        audit = await run_audit(client, fleet(sim, 20), concurrency=8, progress=False, source="t")
    assert {e.error for e in audit.error_list} == {"AuthenticationError"}
    assert len(audit.error_list) == 20
    assert sim.count("login") == 1 and not sim.is_locked(DEMO_USERNAME)


def test_bad_account_names_are_refused_before_any_request(ts: tskit.ThingSpace, sim: Simulator) -> None:
    with pytest.raises(tskit.ValidationError) as caught:
        ts.audit(["0000123456-00001", "../x", "", "a b"], progress=False)
    assert caught.value.field == "accounts"
    assert "3 not account names" in str(caught.value) and "'../x'" in str(caught.value)
    assert list(sim.requests) == []
    with pytest.raises(tskit.ValidationError) as caught:
        ts.audit(DEMO, concurrency=0)
    assert (caught.value.field, caught.value.reason) == ("concurrency", tskit.Reason.INVALID_VALUE)
    with pytest.raises(tskit.ValidationError) as caught:
        ts.audit([])
    assert caught.value.field == "accounts"


def test_duplicates_are_read_once(ts: tskit.ThingSpace, sim: Simulator) -> None:
    audit = ts.audit(["0000123456-00001", " 0000123456-00001", "0000123456-00001"], progress=False)
    assert audit.accounts == ["0000123456-00001"] and sim.count("list") == 1


def test_ten_thousand_names_are_checked_and_deduplicated_at_once() -> None:
    # A repeat was once looked for in a list: 10,000 accounts took 0.4 s before the first request.
    def both_ways(count: int) -> list[str]:
        names = [f"{7000000000 + i:010d}-00001" for i in range(count)]
        return [*names, *reversed(names)]

    assert account_list(both_ways(40_000)) == both_ways(40_000)[:40_000]
    assert growth(account_list, both_ways, 5_000) < 24  # linear: ~8; a quadratic search: ~64


async def test_rules_run_as_each_account_arrives_and_results_keep_the_order(sim: Simulator, clock: FakeClock) -> None:
    names = fleet(sim, 12)
    seen: list[tuple[str, int]] = []  # (account judged, list requests the simulator had received by then)

    @tskit.audit.callback_rule("spy", "info", "Records when it runs.")
    def spy(callback: tskit.Callback) -> str | None:
        seen.append((callback.account_name, sim.count("list")))
        return callback.account_name

    gauge = Gauge(sim)  # reads finish in whatever order they like
    async with make_client(sim, clock, transport=gauge) as client:
        audit = await run_audit(client, names[::-1], rules=[spy], concurrency=3, progress=False, source="t")
    assert seen[0][1] < len(names), "the rules waited for the last read"
    assert sorted(account for account, _ in seen) == sorted(names)
    assert [r.account_name for r in audit.records] == names[::-1]
    assert sorted(f.detail for f in audit.finding_list) == sorted(names)


async def test_a_rule_that_raises_stops_the_audit_with_its_own_error(sim: Simulator, clock: FakeClock) -> None:
    names = fleet(sim, 30)
    judged: list[str] = []

    @tskit.audit.callback_rule("broken", "info", "A rule with a bug.")
    def broken(callback: tskit.Callback) -> str | None:
        judged.append(callback.account_name)
        raise KeyError("a bug in a user's rule")

    class HoldAllButTheFirst(httpx2.AsyncBaseTransport):
        """Once armed: answers the first account's read when three others are in flight, and holds
        those until they are cancelled."""

        def __init__(self) -> None:
            self.inner, self.armed, self.held, self.cancelled = sim.transport(), False, 0, 0
            self.three = asyncio.Event()

        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            if self.armed and "/callbacks/" in request.url.path:
                if request.url.path.endswith(names[0]):
                    await asyncio.wait_for(self.three.wait(), 10)
                else:
                    self.held += 1
                    if self.held == 3:
                        self.three.set()
                    try:
                        await asyncio.Event().wait()
                    except asyncio.CancelledError:
                        self.cancelled += 1
                        raise
            response: httpx2.Response = await self.inner.handle_async_request(request)
            return response

    held = HoldAllButTheFirst()
    async with make_client(sim, clock, transport=held) as client:
        await client.list_callbacks(names[0])  # logged in: the audit's four reads leave together
        held.armed = True
        with pytest.raises(KeyError, match="a bug in a user's rule") as caught:
            audit = run_audit(client, names, rules=[broken], concurrency=4, progress=False, source="t")
            await asyncio.wait_for(audit, 10)  # the reads in flight are cancelled, not waited for
    assert judged == [names[0]] and held.cancelled == 3, held.cancelled
    (note,) = caught.value.__notes__
    assert note.startswith("raised by the audit rule 'broken' on account 0000200000-000")
    assert sim.count("list") < len(names), "reading went on after the rule failed"


def test_progress_bar_only_when_asked_or_on_a_terminal(
    ts: tskit.ThingSpace, capsys: pytest.CaptureFixture[str]
) -> None:
    ts.audit(DEMO, progress=None)  # stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""
    ts.audit(DEMO, progress=True)
    err = capsys.readouterr().err
    assert "Auditing" in err and "/3 " in err


def test_user_rules_run_beside_the_defaults(ts: tskit.ThingSpace) -> None:
    @tskit.audit.callback_rule("carrier-on-example", "info", "CarrierService on example.com.")
    def carrier_on_example(callback: tskit.Callback) -> str | None:
        return "example.com" if callback.service_name == "CarrierService" and "example.com" in callback.url else None

    audit = ts.audit(DEMO, rules=[*tskit.audit.DEFAULT_RULES, carrier_on_example], progress=False)
    assert [(f.account_name, f.severity) for f in audit.finding_list if f.rule == "carrier-on-example"] == [
        ("0000123456-00001", Severity.INFO)
    ]
    only = ts.audit(DEMO, rules=[carrier_on_example], progress=False)
    assert {f.rule for f in only.finding_list} == {"carrier-on-example"}
    with pytest.raises(tskit.ValidationError) as caught:
        ts.audit(DEMO, rules=["not-a-rule"])  # type: ignore[list-item]
    assert caught.value.field == "rules"


@pytest.mark.parametrize("suffix", ["json", "csv"])
def test_snapshot_round_trip_without_passwords(ts: tskit.ThingSpace, tmp_path, suffix: str) -> None:
    ts.register_callback(
        "0000123456-00003", "DeviceUsage", "https://l.example.com/u", username="x", password="s3cret-new"
    )
    audit = ts.audit([*DEMO, "9999999999-00001"], expect=["CarrierService"], progress=False)
    (tmp_path / f"audit.{suffix}.partial").write_text("left by an older run")
    (tmp_path / f"audit.{suffix}.partial").chmod(0o644)
    path = audit.save(tmp_path / f"audit.{suffix}")
    assert path.stat().st_mode & 0o777 == 0o600  # the owner's only, as journals and the listener's store
    text = path.read_text()
    for password in PASSWORDS:
        assert password not in text
    assert not list(tmp_path.glob("*.partial"))
    loaded = Audit.load(path)
    assert loaded.records == audit.records
    assert loaded.finding_list == audit.finding_list
    assert loaded.error_list == audit.error_list
    assert (loaded.accounts, loaded.expect, loaded.source, loaded.key_id) == (
        audit.accounts,
        audit.expect,
        audit.source,
        audit.key_id,
    )
    assert loaded.started_at == audit.started_at
    assert loaded.callbacks.equals(audit.callbacks)
    assert changes(loaded.diff(audit)) == {  # the unreadable account is listed, not compared
        ("9999999999-00001", "", "not-compared", "", "", "could not be read in the old audit")
    }


def test_bad_snapshots(tmp_path) -> None:
    (tmp_path / "x.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a tskit audit snapshot"):
        Audit.load(tmp_path / "x.json")
    (tmp_path / "x.csv").write_text("account_name\n1\n")
    with pytest.raises(ValueError, match="not a tskit audit snapshot"):
        Audit.load(tmp_path / "x.csv")
    with pytest.raises(ValueError, match=r"\.json or \.csv"):
        Audit.load(tmp_path / "x.txt")


def changes(frame) -> set[tuple[str, ...]]:
    return {tuple(row) for row in frame.itertuples(index=False)}


def test_diff_reports_each_kind_of_change(ts: tskit.ThingSpace, sim: Simulator) -> None:
    old = ts.audit(DEMO, progress=False)
    ts.register_callback(
        "0000123456-00001", "CarrierService", "https://new.example.com/c", username="tsuser", password="demo-pass-1"
    )  # url changed, password the same
    sim.register("0000123456-00001", "DeviceUsage", "https://listener.example.com/thingspace/usage", "newuser", "")
    sim.register("0000123456-00002", "NiddService", "https://listener.example.com/thingspace/nidd", "nidd", "rotated")
    ts.deregister_callback("0000123456-00002", "CarrierService")
    ts.register_callback("0000123456-00003", "StateService", "https://l.example.com/s")
    new = ts.audit(DEMO, progress=False)
    assert changes(new.diff(old)) == {
        (
            "0000123456-00001",
            "CarrierService",
            "changed",
            "url",
            "https://listener.example.com/thingspace/carrier",
            "https://new.example.com/c",
        ),
        ("0000123456-00001", "DeviceUsage", "changed", "username", "", "newuser"),
        ("0000123456-00002", "NiddService", "changed", "password", "set", "set (changed)"),
        ("0000123456-00002", "CarrierService", "removed", "url", "http://203.0.113.10:9001/callbacks", ""),
        ("0000123456-00003", "StateService", "added", "url", "", "https://l.example.com/s"),
    }
    assert list(new.diff(old).columns) == ["account_name", "service_name", "change", "field", "old", "new"]


def test_diff_of_two_fleets_of_20000_accounts_takes_one_pass() -> None:
    # Each account's services were once gathered by a pass over every record: 8,000 accounts took 1 s.
    from datetime import UTC, datetime

    from tskit.audit import AuditRecord

    def fleet_audit(names: list[str], url: str) -> Audit:
        now = datetime.now(UTC)
        records = [AuditRecord(n, s, f"{url}/{n}", "ts", "f") for n in names for s in ("CarrierService", "DeviceUsage")]
        return Audit(
            accounts=names, expect=[], source="t", started_at=now, finished_at=now, key_id="k",
            records=records, findings=[], errors=[],
        )  # fmt: skip

    def fleets(count: int) -> tuple[Audit, Audit]:
        names = [f"{7000000000 + i:010d}-00001" for i in range(count)]
        return fleet_audit(names, "https://a.example.com"), fleet_audit(names, "https://b.example.com")

    old, new = fleets(20_000)
    changes = new.diff(old)
    assert len(changes) == 40_000 and set(changes.change) == {"changed"} and set(changes.field) == {"url"}
    assert growth(lambda pair: pair[1].diff(pair[0]), fleets, 2_500) < 24  # one pass: ~8; a pass per account: ~64


def test_diff_never_guesses_about_unread_accounts(ts: tskit.ThingSpace, sim: Simulator) -> None:
    old = ts.audit(DEMO, progress=False)
    sim.faults.scripted.extend([Fault(status=500)] * 3)  # the first account fails all three tries
    new = ts.audit([*DEMO, "0000123456-00009"], concurrency=1, progress=False)
    assert changes(new.diff(old)) == {
        ("0000123456-00001", "", "not-compared", "", "", "could not be read in the new audit"),
        ("0000123456-00009", "", "not-compared", "", "", "not in the old audit"),
    }


def test_diff_with_another_key_says_passwords_were_not_compared(ts: tskit.ThingSpace, sim: Simulator) -> None:
    old = ts.audit(DEMO, progress=False, fingerprint_key="k" * 32)
    sim.register("0000123456-00002", "NiddService", "https://listener.example.com/thingspace/nidd", "nidd", "rotated")
    new = ts.audit(DEMO, progress=False, fingerprint_key="z" * 32)
    rows = changes(new.diff(old))
    assert len(rows) == 1
    [(account, _, change, field, _, _)] = rows
    assert (account, change, field) == ("", "not-compared", "password")


def test_fingerprint_key_file_is_private_and_stable(ts: tskit.ThingSpace, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TSKIT_CONFIG_DIR", str(tmp_path))
    first = ts.audit(DEMO, progress=False)
    key_file = tmp_path / "fingerprint.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert ts.audit(DEMO, progress=False).records == first.records
    with pytest.raises(ValueError, match="at least 16 bytes"):
        ts.audit(DEMO, progress=False, fingerprint_key="short")


def test_display_escapes_hostile_text_and_draws_a_chart(ts: tskit.ThingSpace, sim: Simulator) -> None:
    sim.register("0000123456-00003", "CarrierService", "http://x.example.com/<script>alert(1)</script>", "u", "p")
    audit = ts.audit(DEMO, progress=False)
    html = audit._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<svg" in html and "Findings by rule" in html
    assert "#c62828" in html  # high findings are highlighted in red
    assert "demo-pass" not in html and "demo-pass" not in repr(audit)
    assert repr(audit).startswith("<Audit of embedded simulator")
    assert "findings by severity: " in repr(audit)


def test_chart_without_findings_shows_callbacks_per_account(ts: tskit.ThingSpace) -> None:
    audit = ts.audit(DEMO, rules=[], progress=False)
    assert "Callbacks registered per account" in audit._repr_html_()
    assert "No findings." in audit._repr_html_()


def test_async_twin_in_a_running_loop(ts: tskit.ThingSpace) -> None:
    async def cell() -> Audit:
        return await ts.aaudit(DEMO, progress=False)

    assert len(asyncio.run(cell()).records) == 4


def test_json_snapshot_is_plain_json(ts: tskit.ThingSpace, tmp_path) -> None:
    path = ts.audit(DEMO, progress=False).save(tmp_path / "a.json")
    document = json.loads(path.read_text())
    assert document["format"] == "tskit-audit/1"
    assert {"callbacks", "findings", "errors", "accounts", "started_at", "source"} <= set(document)


def test_an_expected_service_outside_the_catalogue_is_refused_before_anything_is_sent(sim: Simulator) -> None:
    with tskit.connect(simulator=sim) as ts:
        with pytest.raises(tskit.ValidationError) as caught:
            ts.audit(["0000123456-00001"], expect=["Bogus"], progress=False)
        assert (caught.value.reason, caught.value.field) == (tskit.Reason.UNKNOWN_SERVICE, "service_name")
        assert sim.count("list") == 0
        audit = ts.audit(["0000123456-00001"], expect=["Bogus"], progress=False, allow_unknown_service=True)
    assert "missing-service" in set(audit.findings["rule"])
