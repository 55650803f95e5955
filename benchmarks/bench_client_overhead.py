"""Per-call cost of tskit's client against a bare httpx2 call, same server, same run.

Both sides list the callbacks of one account, one call at a time, over loopback HTTP to a
simulator in another process. The bare side is the least a user of plain httpx2 writes: a GET
with the two auth headers (fetched once beforehand) and ``response.json()``. Rounds alternate
between the two sides and the median of the per-round ratios is reported, so that noise from
other work on the machine hits both alike.

Run: ``.venv/bin/python -m benchmarks.bench_client_overhead [--calls 300] [--rounds 9]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx2

import tskit
from tskit.simulator import simulator_process

ACCOUNT = "0000123456-00001"
GOAL = 1.15


async def bare_headers(http: httpx2.AsyncClient, env: dict[str, str]) -> dict[str, str]:
    token = await http.post(
        "/api/ts/v1/oauth2/token",
        auth=(env["THINGSPACE_CLIENT_ID"], env["THINGSPACE_CLIENT_SECRET"]),
        data={"grant_type": "client_credentials"},
    )
    bearer = token.json()["access_token"]
    login = await http.post(
        "/api/m2m/v1/session/login",
        headers={"Authorization": f"Bearer {bearer}"},
        json={"username": env["THINGSPACE_USERNAME"], "password": env["THINGSPACE_PASSWORD"]},
    )
    return {"Authorization": f"Bearer {bearer}", "VZ-M2M-Token": login.json()["sessionToken"]}


async def timed(calls: int, call: Callable[[], Awaitable[object]]) -> float:
    """Seconds per call."""
    started = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - started) / calls


async def main(calls: int, rounds: int) -> None:
    with simulator_process() as env:
        base = env["THINGSPACE_BASE_URL"]
        path = f"/api/m2m/v1/callbacks/{ACCOUNT}"
        async with httpx2.AsyncClient(base_url=base) as plain:
            headers = await bare_headers(plain, env)

            def bare_with(http: httpx2.AsyncClient) -> Callable[[], Awaitable[object]]:
                async def bare() -> object:
                    response = await http.get(path, headers=headers)
                    response.raise_for_status()
                    return response.json()

                return bare

            client = tskit.ThingSpaceClient(
                tskit.Credentials(
                    env["THINGSPACE_CLIENT_ID"],
                    env["THINGSPACE_CLIENT_SECRET"],
                    env["THINGSPACE_USERNAME"],
                    env["THINGSPACE_PASSWORD"],
                ),
                base_url=base,
            )
            ts = tskit.ThingSpace(client)

            async def with_client() -> object:
                return await client.list_callbacks(ACCOUNT)

            async def with_frame() -> object:
                return await ts.alist_callbacks(ACCOUNT)

            sides: dict[str, Callable[[], Awaitable[object]]] = {
                "bare": bare_with(plain),
                "client": with_client,
                "frame": with_frame,
            }
            for warm in sides.values():  # connections, login, imports
                await timed(50, warm)
            results: dict[str, list[float]] = {name: [] for name in sides}
            for _ in range(rounds):
                for name, side in sides.items():
                    results[name].append(await timed(calls, side))
            await client.aclose()

    def ratios(side: str, baseline: str) -> list[float]:
        return sorted(c / b for c, b in zip(results[side], results[baseline], strict=True))

    print(f"{rounds} rounds x {calls} sequential list calls over loopback")
    for name, label in (
        ("bare", "bare httpx2 GET + json()"),
        ("client", "ThingSpaceClient.list_callbacks"),
        ("frame", "ThingSpace.alist_callbacks (DataFrame)"),
    ):
        print(f"  {label:40s} median {statistics.median(results[name]) * 1e6:8.0f} us/call")
    strict = ratios("client", "bare")
    verdict = "OK" if statistics.median(strict) <= GOAL else "OVER"
    print(
        f"  client / bare, same transport: {statistics.median(strict):.3f}x median of rounds, "
        f"range {strict[0]:.3f}-{strict[-1]:.3f} (goal <= {GOAL}x) {verdict}"
    )
    print(
        f"  frame  / bare, same transport: {statistics.median(ratios('frame', 'bare')):.3f}x "
        "(a DataFrame per call, for information)"
    )


def mock_transport() -> httpx2.MockTransport:
    """Answers of ThingSpace made in-process: a token, a session, and one account's listing."""
    body = b'[{"accountName":"0000123456-00001","serviceName":"CarrierService","url":"https://l.example.com/c",'
    body += b'"username":"u","password":"p"}]'

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/oauth2/token"):
            return httpx2.Response(200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 3600})
        if request.url.path.endswith("/session/login"):
            return httpx2.Response(200, json={"sessionToken": "s"})
        return httpx2.Response(200, content=body)

    return httpx2.MockTransport(handler)


async def in_process(calls: int, rounds: int) -> None:
    """The same comparison with no network: what tskit itself adds per call, in CPU time."""
    transport = mock_transport()
    base = "https://thingspace.example.com"
    path = f"/api/m2m/v1/callbacks/{ACCOUNT}"
    credentials = tskit.Credentials("id", "secret", "user", "password")
    async with (
        httpx2.AsyncClient(base_url=base, transport=transport) as http,
        tskit.ThingSpaceClient(credentials, base_url=base, transport=transport) as client,
    ):
        headers = {"Authorization": "Bearer t", "VZ-M2M-Token": "s"}

        async def bare() -> object:
            response = await http.get(path, headers=headers)
            response.raise_for_status()
            return response.json()

        async def with_client() -> object:
            return await client.list_callbacks(ACCOUNT)

        await timed(100, bare)
        await timed(100, with_client)
        pairs = [(await timed(calls, bare), await timed(calls, with_client)) for _ in range(rounds)]
    bare_us = statistics.median(b for b, _ in pairs) * 1e6
    client_us = statistics.median(c for _, c in pairs) * 1e6
    print(f"in-process, no network ({rounds} rounds x {calls} calls):")
    print(
        f"  bare httpx2 {bare_us:.0f} us/call, ThingSpaceClient {client_us:.0f} us/call: "
        f"tskit adds {client_us - bare_us:.0f} us per call"
    )


def in_process_blocking(calls: int, rounds: int) -> None:
    """The blocking call with no network: the main thread's loop and the DataFrame included, in CPU time."""
    transport = mock_transport()
    base = "https://thingspace.example.com"
    path = f"/api/m2m/v1/callbacks/{ACCOUNT}"
    headers = {"Authorization": "Bearer t", "VZ-M2M-Token": "s"}
    client = tskit.ThingSpaceClient(
        tskit.Credentials("id", "secret", "user", "password"), base_url=base, transport=transport
    )
    with httpx2.Client(base_url=base, transport=transport) as http, tskit.ThingSpace(client) as ts:

        def bare() -> object:
            response = http.get(path, headers=headers)
            response.raise_for_status()
            return response.json()

        def blocking_call() -> object:
            return ts.list_callbacks(ACCOUNT)

        timed_blocking(100, bare)
        timed_blocking(100, blocking_call)
        pairs = [(timed_blocking(calls, bare)[1], timed_blocking(calls, blocking_call)[1]) for _ in range(rounds)]
    bare_us = statistics.median(b for b, _ in pairs) * 1e6
    tskit_us = statistics.median(t for _, t in pairs) * 1e6
    print(
        f"  blocking: bare httpx2.Client {bare_us:.0f} us CPU/call, ts.list_callbacks {tskit_us:.0f} us CPU/call "
        f"(the main thread's loop, client, DataFrame): +{tskit_us - bare_us:.0f} us per call"
    )


def sdk_lister(env: dict[str, str], session_token: str) -> Callable[[], object] | None:
    """Verizon's SDK ``list_registered_callbacks``, as its users call it; ``None`` when it is not installed."""
    try:
        from verizon.configuration import Configuration, Server
        from verizon.http.auth.thingspace_oauth import ThingspaceOauthCredentials
        from verizon.http.auth.vz_m2m_token import VZM2mTokenCredentials
        from verizon.verizon_client import VerizonClient
    except ImportError:
        return None
    root = env["THINGSPACE_BASE_URL"] + "/api"

    class Loopback(Configuration):  # type: ignore[misc]
        # The SDK has no base-URL option; overriding get_base_uri is its documented seam.
        def get_base_uri(self, server: Server = Server.THINGSPACE) -> str:
            return root + "/ts/v1" if server == Server.OAUTH_SERVER else root

    oauth = ThingspaceOauthCredentials(
        oauth_client_id=env["THINGSPACE_CLIENT_ID"], oauth_client_secret=env["THINGSPACE_CLIENT_SECRET"]
    )
    m2m = VZM2mTokenCredentials(vz_m2m_token=session_token)
    callbacks = VerizonClient(
        config=Loopback(thingspace_oauth_credentials=oauth, vz_m2m_token_credentials=m2m)
    ).connectivity_callbacks

    def sdk() -> object:
        return callbacks.list_registered_callbacks(ACCOUNT).body

    return sdk


def timed_blocking(calls: int, call: Callable[[], object]) -> tuple[float, float]:
    """Seconds per call: of the clock, and of CPU in this process (every thread; not the server's)."""
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls, (time.process_time() - cpu) / calls


def blocking(calls: int, rounds: int) -> None:
    """The blocking call a notebook loop makes: ``ts.list_callbacks`` against Verizon's SDK and a bare httpx2.Client."""
    with simulator_process() as env, httpx2.Client(base_url=env["THINGSPACE_BASE_URL"]) as plain:
        token = plain.post(
            "/api/ts/v1/oauth2/token",
            auth=(env["THINGSPACE_CLIENT_ID"], env["THINGSPACE_CLIENT_SECRET"]),
            data={"grant_type": "client_credentials"},
        ).json()["access_token"]
        session = plain.post(
            "/api/m2m/v1/session/login",
            headers={"Authorization": f"Bearer {token}"},
            json={"username": env["THINGSPACE_USERNAME"], "password": env["THINGSPACE_PASSWORD"]},
        ).json()["sessionToken"]
        headers = {"Authorization": f"Bearer {token}", "VZ-M2M-Token": session}
        path = f"/api/m2m/v1/callbacks/{ACCOUNT}"

        def bare() -> object:
            response = plain.get(path, headers=headers)
            response.raise_for_status()
            return response.json()

        ts = tskit.connect(
            client_id=env["THINGSPACE_CLIENT_ID"],
            client_secret=env["THINGSPACE_CLIENT_SECRET"],
            username=env["THINGSPACE_USERNAME"],
            password=env["THINGSPACE_PASSWORD"],
            base_url=env["THINGSPACE_BASE_URL"],
        )
        sides: dict[str, Callable[[], object]] = {"bare": bare, "tskit": lambda: ts.list_callbacks(ACCOUNT)}
        sdk = sdk_lister(env, session)
        if sdk is not None:
            sides["sdk"] = sdk
        with ts:
            for warm in sides.values():  # connections, login, imports
                timed_blocking(50, warm)
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
            for _ in range(rounds):
                for name, side in sides.items():
                    results[name].append(timed_blocking(calls, side))

    def ratios(side: str, baseline: str, which: int) -> list[float]:
        return sorted(s[which] / b[which] for s, b in zip(results[side], results[baseline], strict=True))

    def ratio(side: str, baseline: str, which: int) -> str:
        each = ratios(side, baseline, which)
        return f"{statistics.median(each):.3f}x median of rounds, range {each[0]:.3f}-{each[-1]:.3f}"

    print(f"blocking: {rounds} rounds x {calls} sequential list calls over loopback, no running loop")
    for name, label in (
        ("bare", "bare httpx2.Client GET + json()"),
        ("sdk", "Verizon SDK list_registered_callbacks"),
        ("tskit", "ts.list_callbacks (DataFrame)"),
    ):
        if name in results:
            clock = statistics.median(w for w, _ in results[name]) * 1e6
            cpu = statistics.median(c for _, c in results[name]) * 1e6
            print(f"  {label:40s} median {clock:8.0f} us/call, CPU {cpu:6.0f} us/call")
    if "sdk" in results:
        verdict = "OK" if statistics.median(ratios("tskit", "sdk", 0)) <= 1.0 else "OVER"
        print(f"  tskit / SDK, clock: {ratio('tskit', 'sdk', 0)} (goal <= 1.0x) {verdict}")
        print(f"  tskit / SDK, CPU:   {ratio('tskit', 'sdk', 1)}")
    else:
        print("  Verizon's SDK (sdksio-verizon-apis-sdk) is not installed: no SDK side")
    print(f"  tskit / bare, clock: {ratio('tskit', 'bare', 0)}; CPU: {ratio('tskit', 'bare', 1)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--only", choices=("async", "blocking", "in-process"), help="run one part only")
    options = parser.parse_args()
    if options.only in (None, "blocking"):
        blocking(options.calls, options.rounds)
    if options.only in (None, "async"):
        asyncio.run(main(options.calls, options.rounds))
    if options.only in (None, "in-process"):
        asyncio.run(in_process(options.calls, options.rounds))
        in_process_blocking(options.calls, options.rounds)
