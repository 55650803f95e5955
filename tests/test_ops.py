"""What audit, state, CLI and widgets share (tskit.ops): the fan-out's failures, the pre-register check."""

from __future__ import annotations

import asyncio
import logging

import pytest

import tskit
from tskit.ops import read_accounts
from tskit.ops.preflight import check_register
from tskit.simulator import Fault, Simulator


def test_an_unexpected_error_keeps_its_traceback_in_the_log_not_its_text(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = Simulator()
    ts = tskit.connect(simulator=sim)
    client = ts.client
    names = sim.accounts[:2]
    listing = client.listing
    secret = "-".join(("secret", "in", "the", "text", "42"))

    async def broken_listing(account_name: str, **options: object) -> object:
        if account_name == names[1]:
            raise KeyError(secret)  # an error no layer expects, its text a secret
        return await listing(account_name, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(client, "listing", broken_listing)
    with caplog.at_level(logging.ERROR, logger="tskit"):
        found, failed = asyncio.run(read_accounts(client, names, progress=False))
    assert list(found) == [names[0]]
    assert isinstance(failed[names[1]], tskit.ThingSpaceError)
    assert "KeyError" in str(failed[names[1]])
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "KeyError" in logged and "in broken_listing" in logged  # the frame where it arose
    assert secret not in logged + str(failed[names[1]])
    ts.close()


def test_the_pre_register_check_sorts_findings_and_honours_a_chosen_port() -> None:
    found = check_register("0000123456-00001", "CarrierService", "http://10.0.0.1:8080/in")
    assert {f.rule for f in found.serious} == {"unreachable-host", "port-not-allowed"}
    assert {f.rule for f in found.warnings} == {"not-https", "no-credentials"}
    chosen = check_register("0000123456-00001", "CarrierService", "http://10.0.0.1:8080/in", allow_any_port=True)
    assert {f.rule for f in chosen.serious} == {"unreachable-host"}
    with_password = check_register(
        "0000123456-00001", "CarrierService", "http://203.0.113.9:9001/in", username="u", has_password=True
    )
    assert "credentials-over-http" in {f.rule for f in with_password.serious}
    assert (
        check_register(
            "0000123456-00001", "CarrierService", "https://listener.tskit.dev/in", username="u", has_password=True
        ).serious
        == ()
    )


@pytest.mark.parametrize("read_again", [False, True])
def test_read_again_reads_an_account_whose_reads_failed_for_a_passing_reason(read_again: bool) -> None:
    sim = Simulator()
    ts = tskit.connect(simulator=sim, retry=tskit.RetryPolicy(attempts=2, backoff=0.001))
    name = sim.accounts[0]
    sim.faults.scripted.extend([Fault(status=500), Fault(status=500)])  # both of the client's tries, first pass
    found, failed = asyncio.run(read_accounts(ts.client, [name], progress=False, read_again=read_again))
    if read_again:  # a second pass read it
        assert list(found) == [name] and failed == {} and sim.count("list") == 3
    else:  # reported as failed, never as an account without listeners
        assert found == {} and isinstance(failed[name], tskit.ApiError) and sim.count("list") == 2
    ts.close()
