"""An apply sends each step through the client once: the client alone retries and confirms by listing."""

from __future__ import annotations

from pathlib import Path

import tskit
from tskit.simulator import Fault, Simulator


def _free_service(sim: Simulator, account: str) -> str:
    held = {r["serviceName"] for r in sim.registrations(account)}
    return next(s for s in tskit.SERVICE_CATALOGUE if s not in held)


def _operations_from_first_register(sim: Simulator, start: int) -> list[str]:
    operations = [r.operation for r in list(sim.requests)[start:]]
    return operations[operations.index("register") :]


def test_a_lost_answer_is_decided_by_the_clients_one_listing(tmp_path: Path) -> None:
    sim = Simulator()
    account = sim.accounts[0]
    service = _free_service(sim, account)
    ts = tskit.connect(simulator=sim)
    wanted = {"url": "https://listener.example.com/in", "username": "hook", "password": "pw-sends-1"}
    plan = ts.plan({account: {service: wanted}}, progress=False)
    assert [s.action for s in plan.steps] == ["create"]
    sim.faults.scripted.append(Fault(drop="after", operations=("register",)))  # it takes effect; its answer is lost
    start = len(sim.requests)

    result = plan.apply(journal=tmp_path / "journal.jsonl", progress=False)

    # The client's listing shows the change (password included): the apply neither lists nor sends again.
    assert _operations_from_first_register(sim, start) == ["register", "list"]
    assert [o.outcome for o in result.outcome_list] == ["confirmed"]
    assert "a listing shows the change" in result.outcome_list[0].reason
    held = {r["serviceName"]: (r["url"], r["username"], r["password"]) for r in sim.registrations(account)}
    assert held[service] == ("https://listener.example.com/in", "hook", "pw-sends-1")
    ts.close()


def test_a_step_the_client_gives_up_on_is_sent_no_more_by_the_apply(tmp_path: Path) -> None:
    sim = Simulator()
    account = sim.accounts[0]
    service = _free_service(sim, account)
    ts = tskit.connect(simulator=sim, retry=tskit.RetryPolicy(attempts=2, backoff=0.0))
    plan = ts.plan({account: {service: {"url": "https://listener.example.com/in"}}}, progress=False)
    # Every register is lost before it takes effect: the client sends it as its policy allows, then raises.
    sim.faults.scripted.extend(Fault(drop="before", operations=("register",)) for _ in range(10))
    start = len(sim.requests)

    result = plan.apply(journal=tmp_path / "journal.jsonl", progress=False)

    operations = _operations_from_first_register(sim, start)
    assert operations.count("register") == 2  # the policy's two attempts, not the apply's own on top
    (outcome,) = result.outcome_list
    assert outcome.outcome == "failed" and outcome.unknown
    assert all(r["serviceName"] != service for r in sim.registrations(account))
    ts.close()
