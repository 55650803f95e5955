"""Audit fan-out against its floor and a sequential loop; and DataFrame building at 100,000 rows.

Part 1 reads N accounts (default 10,000) from ``tskit simulator --fleet N --latency 0.05`` in its
own process, at concurrency C (default 64), three ways in one run:

- the floor, ``ceil(N / C) x latency``: what a perfect client would take;
- ``ThingSpace.aaudit`` with each transport under test, with the client's CPU time per account
  (tskit's own work, the audit's rules and snapshot included);
- a sequential plain ``httpx2.Client`` loop (the way people script it today).

Part 2 builds the DataFrame of 100,000 callbacks with tskit and with
``pandas.DataFrame.from_records`` on the same records.

Run: ``.venv/bin/python -m benchmarks.bench_audit [--accounts 10000] [--concurrency 64] [--latency 0.05]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx2

import tskit
from tskit.simulator import fleet_accounts, simulator_process

AUDIT_GOAL = 1.10
#: Most client CPU per account read, in milliseconds.
CPU_GOAL_MS = 1.0
FRAME_GOAL = 1.5


def children_cpu() -> float:
    """CPU seconds used so far by this process's children (the simulator), from /proc; 0 elsewhere."""
    import os
    from pathlib import Path

    total, me, tick = 0.0, os.getpid(), os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:  # fields after the name: state, ppid, ..., utime (12), stime (13)
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def credentials(env: dict[str, str]) -> tskit.Credentials:
    return tskit.Credentials(
        env["THINGSPACE_CLIENT_ID"],
        env["THINGSPACE_CLIENT_SECRET"],
        env["THINGSPACE_USERNAME"],
        env["THINGSPACE_PASSWORD"],
    )


def transports(concurrency: int) -> dict[str, Callable[[], httpx2.AsyncBaseTransport | None]]:
    """The transports to compare: tskit's default (httpx2's pool, as tskit builds it) and a bare httpx2 pool."""
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return {
        "tskit default (httpx2)": lambda: None,
        "bare httpx2 transport": lambda: httpx2.AsyncHTTPTransport(limits=limits),
    }


async def audit_once(
    env: dict[str, str], names: list[str], concurrency: int, make_transport: Callable[[], Any]
) -> tuple[float, float]:
    """Seconds for one audit (login done beforehand), and CPU seconds this process spent on it."""
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = tskit.ThingSpaceClient(
        credentials(env), base_url=env["THINGSPACE_BASE_URL"], transport=make_transport(), limits=limits
    )
    ts = tskit.ThingSpace(client)
    await client.list_callbacks(names[0])  # log in, outside the timing
    cpu, started = time.process_time(), time.perf_counter()
    audit = await ts.aaudit(names, concurrency=concurrency, progress=False, fingerprint_key="b" * 32)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert audit.complete and len(audit.accounts) == len(names), audit.error_list[:3]
    await client.aclose()
    return elapsed, cpu


def sequential(env: dict[str, str], names: list[str]) -> float:
    """A plain httpx2.Client loop: log in, then one GET per account."""
    base = env["THINGSPACE_BASE_URL"]
    with httpx2.Client(base_url=base) as http:
        token = http.post(
            "/api/ts/v1/oauth2/token",
            auth=(env["THINGSPACE_CLIENT_ID"], env["THINGSPACE_CLIENT_SECRET"]),
            data={"grant_type": "client_credentials"},
        ).json()["access_token"]
        session = http.post(
            "/api/m2m/v1/session/login",
            headers={"Authorization": f"Bearer {token}"},
            json={"username": env["THINGSPACE_USERNAME"], "password": env["THINGSPACE_PASSWORD"]},
        ).json()["sessionToken"]
        headers = {"Authorization": f"Bearer {token}", "VZ-M2M-Token": session}
        started = time.perf_counter()
        for name in names:
            response = http.get(f"/api/m2m/v1/callbacks/{name}", headers=headers)
            response.raise_for_status()
            response.content and response.json()
        return time.perf_counter() - started


def load() -> tuple[float, ...]:
    import os

    return os.getloadavg() if hasattr(os, "getloadavg") else ()


def fan_out(accounts: int, concurrency: int, latency: float, rounds: int, sequential_accounts: int) -> None:
    names = fleet_accounts(accounts)
    floor = math.ceil(accounts / concurrency) * latency
    print(
        f"Audit of {accounts} accounts, {latency * 1000:.0f} ms added latency, concurrency {concurrency}: "
        f"floor {floor:.2f} s"
    )
    with simulator_process("--fleet", str(accounts), "--latency", str(latency), "--no-demo") as env:
        sides = transports(concurrency)
        results: dict[str, list[tuple[float, float]]] = {label: [] for label in sides}
        server_cpu: dict[str, list[float]] = {label: [] for label in sides}
        print(f"  machine load average when starting: {' '.join(f'{x:.1f}' for x in load())}")
        for _ in range(rounds):  # alternate, so that both sides see the same machine
            for label, make in sides.items():
                before = children_cpu()
                results[label].append(asyncio.run(audit_once(env, names, concurrency, make)))
                server_cpu[label].append(children_cpu() - before)
        for label, runs in results.items():
            best = min(r[0] for r in runs)
            median = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            per_account = cpu / accounts * 1000
            verdict = "OK" if best / floor <= AUDIT_GOAL and per_account <= CPU_GOAL_MS else "OVER"
            print(
                f"  {label:24s} best {best:.2f} s = {best / floor:.2f}x floor (median {median:.2f} s = "
                f"{median / floor:.2f}x, client CPU {cpu:.2f} s = {per_account:.2f} ms/account) "
                f"goal <= {AUDIT_GOAL}x and <= {CPU_GOAL_MS} ms: {verdict}; "
                f"simulator CPU {statistics.median(server_cpu[label]):.2f} s"
            )
        subset = names[:sequential_accounts]
        seconds = sequential(env, subset) * accounts / len(subset)
        note = "" if len(subset) == accounts else f" (measured on {len(subset)}, scaled)"
        print(f"  {'sequential httpx2.Client':24s} {seconds:.2f} s = {seconds / floor:.1f}x floor{note}")


def frames(rows: int, rounds: int) -> None:
    import pandas as pd

    records = [
        tskit.Callback(
            f"{7000000000 + i // 4:010d}-00001",
            ("CarrierService", "DeviceUsage", "NiddService", "SMSDeliveryConfirmation")[i % 4],
            f"https://listener-{i}.example.com/cb",
            "ts" if i % 3 else "",
            tskit.Secret("pw" if i % 2 else ""),
        )
        for i in range(rows)
    ]
    tuples = [(c.account_name, c.service_name, c.url, c.username, "********" if c.password else "") for c in records]
    columns = list(tskit.CALLBACK_COLUMNS)

    def best(fn: Callable[[], object]) -> float:
        times = []
        gc.disable()  # as timeit does: a collection landing in one side's timing is noise
        try:
            for _ in range(rounds):
                started = time.perf_counter()
                fn()
                times.append(time.perf_counter() - started)
        finally:
            gc.enable()
        return min(times)

    ours, theirs = [], []
    for _ in range(3):  # alternate, so that both see the same machine
        ours.append(best(lambda: tskit.callbacks_frame(records)))
        theirs.append(best(lambda: pd.DataFrame.from_records(tuples, columns=columns)))
    ratio = min(ours) / min(theirs)
    print(
        f"DataFrame of {rows} callbacks: tskit.callbacks_frame {min(ours) * 1000:.0f} ms (from records, masking "
        f"included), from_records {min(theirs) * 1000:.0f} ms (ready tuples) = {ratio:.2f}x, "
        f"goal <= {FRAME_GOAL}x: {'OK' if ratio <= FRAME_GOAL else 'OVER'}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--sequential-accounts",
        type=int,
        default=200,
        help="accounts for the sequential loop (it takes N x latency; fewer are scaled)",
    )
    parser.add_argument("--rows", type=int, default=100_000)
    options = parser.parse_args()
    fan_out(options.accounts, options.concurrency, options.latency, options.rounds, options.sequential_accounts)
    frames(options.rows, options.rounds)
