"""Truthful under faults, at scale: audits, mutations, bad input and secrets, against a faulty ThingSpace.

A simulator served on loopback with its fault knobs on (10% 5xx, 5% 429, 2% answers dropped after
the call took effect, every session expired every second), behind the tests' fault proxy (3%
answered 500 without forwarding, 2% dropped after forwarding, 2% of 2xx bodies corrupted):

1. a fleet audit of N accounts (default 500): read correctly / read wrongly / listed in errors / missing;
2. M registers (default 800), M rotations of their passwords and M deregisters, 20 at a time: each
   result is checked against what the simulator holds at once. A lying success returned while the
   server does not hold what was asked; a lying failure raised, without saying the outcome is
   unknown, while the server holds what was asked;
3. B generated bad inputs (default 2,000) through the same calls and the CLI: refused with zero
   requests, sent, crashed (any error but ``ValidationError``);
4. the listener (``tskit listen`` in its own process): bursts of simultaneous messages (default
   300, 1,000 and 3,000), 40 valid messages while 300 idle sockets are held, and 3,000 wrong
   passwords from one source: stored, refused 503 with ``Retry-After``, acknowledged but not stored;
5. every secret of the run (application secret, UWS password, tokens, every listener password)
   searched on every surface: reprs, DataFrames and their HTML, logs at DEBUG, exceptions and their
   chains, audit snapshots, CLI output, widget state, listener files, the config folder;
6. desired state under empty listings (the same faults, and 5% of listings answered with an empty
   body): an export of L accounts (default 250, two listeners each) and a password rotation of
   them. An account wrongly exported is one written with fewer listeners than it holds; a lying
   rotation leaves a registration on another password without listing it in ``remaining``, says
   "no longer registered" of one that is registered, or says ``ok`` while any is left behind.

Run: ``.venv/bin/python -m benchmarks.faults [--accounts 500] [--mutations 800] [--bad-inputs 2000]
[--listing-accounts 250] [--bursts 300,1000,3000]``.
Exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tskit
from benchmarks.bench_listener import LIMIT, burst_figures
from tests.fault_proxy import FaultProxy
from tskit._errors import secret_forms
from tskit._fingerprint import fingerprint
from tskit.simulator import Faults, Simulator, SimulatorServer, seed_fleet
from tskit.state import Journal, PartialExportWarning

SERVICES = ("AlertService", "DeviceService")
FORBIDDEN = [
    *map(chr, range(0x20)),
    *map(chr, range(0x7F, 0xA0)),
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
    *"\u200b\u200c\u200d\u2060\ufeff\u2028\u2029\ud800\udbff\udc00\udcff\udfff",
    # other format characters, spaces, noncharacters, selectors, tags, blanks, private and unassigned
    *"\u00ad\u034f\u061c\u180e\u200e\u200f\u2061\u206a\U000e0001\U000e0041\U0001d173",
    *"\u00a0\u1680\u2000\u200a\u202f\u205f\u3000\ufdd0\ufdef\ufffe\uffff\U0010ffff",
    *"\ufe00\ufe0f\U000e0100\u180b\ufff9\ufffb\ufffc\u115f\u1160\u3164\uffa0\u2800\ue000\U000f0000\u0378",
]


def canary() -> str:
    """A secret no text would hold by chance, 28 characters (listener passwords allow 40).

    It holds a quote, a backslash and non-ASCII letters, which JSON, URLs and HTML each escape: a
    surface that shows a secret in any such form is caught (see ``found_in``).
    """
    return 'cn"ry\\ä' + secrets.token_hex(10) + "Ωß"


def found_in(folded: str, secret: str) -> bool:
    """Whether a text (case-folded) shows ``secret`` in any form tskit scrubs (escaped, encoded, any case)."""
    return any(form.casefold() in folded for form in secret_forms(secret))


@dataclass
class Row:
    part: str
    measure: str
    figure: int | float
    goal: str = ""
    ok: bool = True


@dataclass
class Run:
    """What a run saw: the table's rows, every secret used, and every text a user could see."""

    rows: list[Row] = field(default_factory=list)
    canaries: set[str] = field(default_factory=set)
    surfaces: dict[str, list[str]] = field(default_factory=dict)

    def show(self, surface: str, *texts: object) -> None:
        self.surfaces.setdefault(surface, []).extend(t if isinstance(t, str) else repr(t) for t in texts)

    def error(self, exc: BaseException) -> None:
        """An exception, its notes, attributes, traceback and whole chain."""
        parts = ["".join(traceback.format_exception(exc))]
        seen: BaseException | None = exc
        while seen is not None:
            parts += [str(seen), repr(seen), *getattr(seen, "__notes__", ()), repr(vars(seen))]
            seen = seen.__cause__ or seen.__context__
        self.show("exceptions and chains", *parts)

    def row(self, part: str, measure: str, figure: int | float, goal: str = "") -> None:
        ok = not goal or (figure == 0 if goal == "0" else figure >= float(goal.lstrip("≥ ").replace(",", "")))
        self.rows.append(Row(part, measure, figure, goal, ok))


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        with self._guard:
            self.lines.append(text)


@contextlib.contextmanager
def expiring_sessions(sim: Simulator, every: float) -> Iterator[None]:
    """Expire every session ``every`` seconds, as ThingSpace's idle timeout does, until the block ends."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            sim.expire_sessions()

    thread = threading.Thread(target=loop, name="session-expiry", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def retry_policy() -> tskit.RetryPolicy:
    return tskit.RetryPolicy(attempts=6, backoff=0.02, max_backoff=0.2)


# -- 1. the fleet audit ------------------------------------------------------------------------


def audit_part(run: Run, ts: tskit.ThingSpace, sim: Simulator, names: list[str], tmp: Path) -> None:
    key = secrets.token_bytes(32)
    truth = {
        name: {(r["serviceName"], r["url"], r["username"], fingerprint(key, name, r["serviceName"], r["password"]))
               for r in sim.registrations(name)}
        for name in names
    }  # fmt: skip
    started = time.perf_counter()
    audit = ts.audit(names, ["CarrierService"], concurrency=20, progress=False, fingerprint_key=key)
    seconds = time.perf_counter() - started
    failed = {e.account_name for e in audit.error_list}
    read: dict[str, set[tuple[str, str, str, str]]] = {name: set() for name in audit.accounts if name not in failed}
    for r in audit.records:
        read.setdefault(r.account_name, set()).add((r.service_name, r.url, r.username, r.password_fingerprint))
    correct = sum(1 for name in read if read[name] == truth[name])
    run.row("fleet audit", f"accounts audited ({seconds:.1f} s)", len(names))
    run.row("fleet audit", "read correctly", correct)
    run.row("fleet audit", "read wrongly", len(read) - correct, "0")
    run.row("fleet audit", "listed in errors", len(failed))
    run.row("fleet audit", "missing", len(set(names) - set(read) - failed), "0")
    run.show("reprs", repr(audit), repr(audit.error_list), repr(audit.records[:50]))
    html = [audit._repr_html_()]
    for frame in (audit.callbacks, audit.findings, audit.errors):
        html += [frame.to_string(), frame.to_html()]
    run.show("DataFrames and their HTML", *html)
    for name in ("audit.json", "audit.csv"):
        audit.save(tmp / name)
        run.show("snapshots", (tmp / name).read_text())


# -- 2. registers, rotations, deregisters ------------------------------------------------------


def holds(sim: Simulator, account: str, service: str, wanted: dict[str, str] | None) -> bool:
    found = next((r for r in sim.registrations(account) if r["serviceName"] == service), None)
    if wanted is None:
        return found is None
    return found is not None and all(found[k] == v for k, v in wanted.items())


async def mutation_part(run: Run, client: tskit.ThingSpaceClient, sim: Simulator, names: list[str], count: int) -> None:
    keys = [(names[i // len(SERVICES)], SERVICES[i % len(SERVICES)], i) for i in range(count)]
    gate = asyncio.Semaphore(20)

    async def one(phase: str, account: str, service: str, i: int, tally: Counter[str]) -> None:
        wanted: dict[str, str] | None = None
        async with gate:
            try:
                if phase == "deregister":
                    result = await client.deregister_callback(account, service)
                else:
                    password = canary()
                    run.canaries.add(password)
                    url, user = f"https://listener{i}.example.com/{service.lower()}", f"user{i}"
                    wanted = {"url": url, "username": user, "password": password}
                    result = await client.register_callback(account, service, url, username=user, password=password)
            except tskit.ThingSpaceError as exc:
                run.error(exc)
                notes = "; ".join(getattr(exc, "__notes__", ()))
                print(f"{phase} {account} {service} failed: {exc!r} {notes}", file=sys.stderr)
                unknown = any("outcome is unknown" in n for n in getattr(exc, "__notes__", ()))
                if holds(sim, account, service, wanted):
                    tally["lying failure" if not unknown else "failed, said unknown, had taken effect"] += 1

                else:
                    tally["failed, truthfully"] += 1
                return
            run.show("reprs", repr(result))
            tally[result.outcome] += 1
            if not holds(sim, account, service, wanted):
                tally["lying success"] += 1

    for phase in ("register", "rotate", "deregister"):
        tally: Counter[str] = Counter()
        started = time.perf_counter()
        await asyncio.gather(*(one(phase, account, service, i, tally) for account, service, i in keys))
        seconds = time.perf_counter() - started
        label = {"register": "registers", "rotate": "rotations (new password)", "deregister": "deregisters"}[phase]
        run.row(label, f"calls ({seconds:.1f} s)", count)
        outcomes = ", ".join(f"{tally[o]} {o}" for o in ("sent", "resent", "confirmed"))
        run.row(label, f"succeeded ({outcomes})", tally["sent"] + tally["resent"] + tally["confirmed"])
        run.row(label, "failed, truthfully", tally["failed, truthfully"])
        run.row(label, "failed, outcome said unknown", tally["failed, said unknown, had taken effect"])
        run.row(label, "lying successes", tally["lying success"], "0")
        run.row(label, "lying failures", tally["lying failure"], "0")


# -- 2b. two applies at once -------------------------------------------------------------------

APPLY_SERVICES = ("CarrierService", "DeviceUsage")


def concurrent_apply_part(
    run: Run, sim: Simulator, base_url: str, env: dict[str, str], names: list[str], tmp: Path
) -> None:
    """Two ``tskit apply`` processes started together on one desired state: one on the default journal,
    one on a journal of its own. Every listener must be registered once in all (0 doubled changes)."""
    lines = []
    for i, name in enumerate(names):
        for service in APPLY_SERVICES:
            lines += [f'["{name}".{service}]', f'url = "https://apply{i}.example.com/{service.lower()}"', ""]
    desired = tmp / "concurrent.toml"
    desired.write_text("\n".join(lines))
    wanted = {(name, service) for name in names for service in APPLY_SERVICES}
    paths = {f"/api/m2m/v1/callbacks/{name}": name for name in names}
    before = _registers(sim, paths)
    command = [sys.executable, "-m", "tskit", "apply", str(desired), "--yes", "--no-progress", "--concurrency", "16"]
    process_env = {**os.environ, **env, "THINGSPACE_BASE_URL": base_url}
    started = time.perf_counter()
    runs = [
        subprocess.Popen(command + extra, env=process_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for extra in ([], ["--journal", str(tmp / "concurrent.jsonl")])
    ]
    outputs = [r.communicate(timeout=900) for r in runs]
    seconds = time.perf_counter() - started
    for out, err in outputs:
        run.show("CLI output", out, err)
    took = _registers(sim, paths) - before
    held = sum(
        1
        for i, name in enumerate(names)
        for r in sim.registrations(name)
        if (name, r["serviceName"]) in wanted and r["url"] == f"https://apply{i}.example.com/{r['serviceName'].lower()}"
    )
    part = "two applies at once"
    run.row(part, f"listeners to change, one file, two processes ({seconds:.1f} s)", len(wanted))
    run.row(part, "applies that exited 0 (of 2)", sum(1 for r in runs if r.returncode == 0))
    run.row(part, "registers that took effect", sum(took.values()))
    run.row(part, "doubled changes", sum(max(0, count - len(APPLY_SERVICES)) for count in took.values()), "0")
    run.row(part, "listeners as desired afterwards", held)
    journals = [tmp / "concurrent.jsonl", *(Path(os.environ["TSKIT_CONFIG_DIR"]) / "journals").glob("apply-*.jsonl")]
    steps = [s for j in journals if j.exists() for s in Journal(j).steps()]
    seen = [s["reason"] for s in steps]
    for step in steps:
        if step["outcome"] != "done" and not step["reason"].startswith("already"):
            print(f"apply {step['account_name']} {step['service_name']}: {step['reason'][:300]}", file=sys.stderr)
    run.row(part, "steps found made by the other under the lock, not sent", sum(r.startswith("already") for r in seen))


def _registers(sim: Simulator, paths: dict[str, str]) -> Counter[str]:
    """Registers that took effect at the simulator (answered 200, whether or not the answer arrived), by account."""
    return Counter(
        paths[r.path] for r in list(sim.requests) if r.operation == "register" and r.status == 200 and r.path in paths
    )


# -- 3. bad input ------------------------------------------------------------------------------


def bad_inputs(count: int, rng: random.Random, uws: tuple[str, str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(call, arguments) pairs that must be refused; every field, every forbidden character."""
    good = {"account_name": "0000123456-00003", "service_name": "CarrierService",
            "url": "https://listener.example.com/cb", "username": "user", "password": "pw"}  # fmt: skip
    made = 0

    def with_char(field_name: str, char: str, where: int) -> dict[str, Any]:
        value = good[field_name]
        if field_name == "url":
            value = (
                "https://listener.example.com/c" + char + "b" if where else "https://list" + char + "ener.example.com/"
            )
        else:
            value = [char + value, value[:1] + char + value[1:], value + char][where]
        return {**good, field_name: value}

    user, uws_password, client_secret = uws
    fixed: list[dict[str, Any]] = [
        {**good, "username": user}, {**good, "password": uws_password}, {**good, "password": client_secret},
        {**good, "url": f"https://u:{canary()}@listener.example.com/"}, {**good, "url": "https://\u0301a.example/"},
        {**good, "url": "https://xn--zz.example/"}, {**good, "url": "ftp://listener.example.com/"},
        {**good, "url": "https://listener.example.com:8443/"}, {**good, "password": "p" * 41},
        {**good, "account_name": 12}, {**good, "url": None}, {**good, "service_name": "NoSuchService"},
        {**good, "username": uws_password}, {**good, "username": client_secret}, {**good, "username": user.upper()},
        {**good, "username": f" {user}"}, {**good, "username": "".join(chr(ord(c) + 0xFEE0) for c in user)},
        {**good, "password": f"{uws_password} "}, {**good, "password": uws_password.upper()},
        {**good, "url": "https://ex\u0430mple.com/"}, {**good, "url": "https://0x7f.1/"},
        {**good, "url": "https://exa_mple.com/"}, {**good, "url": "https://a..b.com/"},
        {**good, "url": f"https://{'a' * 64}.com/"}, {**good, "url": "https://ex%61mple.com/"},
    ]  # fmt: skip
    for args in fixed[:count]:
        yield "register", args
        made += 1
    for char in FORBIDDEN:
        for field_name in good:
            for where in range(3):
                calls = {"account_name": ("register", "list", "deregister"), "service_name": ("register", "deregister")}
                call = calls.get(field_name, ("register",))[where % len(calls.get(field_name, ("register",)))]
                if made >= count:
                    return
                yield call, with_char(field_name, char, where)
                made += 1
    while made < count:
        field_name = rng.choice(list(good))
        yield "register", with_char(field_name, rng.choice(FORBIDDEN), rng.randrange(3))
        made += 1


def bad_input_part(
    run: Run, ts: tskit.ThingSpace, sim: Simulator, count: int, rng: random.Random, uws: tuple[str, str, str]
) -> None:
    tally: Counter[str] = Counter()
    ts.list_callbacks("0000123456-00003")  # log in first: from here on, any request is a failure
    for call, args in bad_inputs(count, rng, uws):
        if isinstance(args.get("password"), str) and len(args["password"]) > 3:
            run.canaries.add(args["password"])
        before = len(sim.requests)
        try:
            if call == "list":
                ts.list_callbacks(args["account_name"])
            elif call == "deregister":
                ts.deregister_callback(args["account_name"], args["service_name"])
            else:
                ts.register_callback(**args)
        except tskit.ValidationError as exc:
            run.error(exc)
            tally["refused" if len(sim.requests) == before else "refused after a request"] += 1
        except Exception as exc:
            run.error(exc)
            tally["crashed"] += 1
        else:
            tally["sent"] += 1
    total = sum(tally.values())
    run.row("bad inputs", "generated", total, f"≥ {count:,}")
    run.row("bad inputs", "refused with zero requests", tally["refused"], f"≥ {total:,}")
    run.row("bad inputs", "sent to ThingSpace", tally["sent"] + tally["refused after a request"], "0")
    run.row("bad inputs", "crashes", tally["crashed"], "0")


def cli_part(run: Run, server: SimulatorServer, sim: Simulator, account: str) -> None:
    """The CLI against the served simulator: a listing, a register and arguments that are not UTF-8."""
    from tskit import cli

    password = canary()
    run.canaries.add(password)
    env = {**server.env(), "LISTENER_PASSWORD": password}
    commands = [
        ["list", account],
        ["list", account, "--format", "json"],
        ["register", account, "CarrierService", "https://listener.example.com/c", "--username", "u",
         "--password-env", "LISTENER_PASSWORD"],
        ["audit", account, "--expect", "CarrierService"],
        ["register", account, "CarrierService", "https://listener.example.com/\udcff"],
        ["list", "0000123456-\udcff"],
    ]  # fmt: skip
    refused = 0
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for argv in commands:
            out, err = io.StringIO(), io.StringIO()
            before = len(sim.requests)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli.main(argv)
            run.show("CLI output", out.getvalue(), err.getvalue())
            if any("\udc00" <= c <= "\udcff" for a in argv for c in a):
                refused += int(code == 2 and "UTF-8" in err.getvalue() and len(sim.requests) == before)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    run.row("bad inputs", "CLI arguments not UTF-8, refused clearly (of 2)", refused, "≥ 2")


# -- 4. the remaining surfaces: DataFrames, widgets, the listener ----------------------------


async def widget_part(run: Run, ts: tskit.ThingSpace, account: str) -> None:
    from tskit.widgets import CallbackManager

    manager = CallbackManager(ts)
    manager.account.value = account
    manager.refresh.click()
    if manager.pending is not None:
        await manager.pending
    password = canary()
    run.canaries.add(password)
    manager.url.value, manager.username.value, manager.password.value = "https://w.example.com/c", "w", password
    manager.register.click()
    if manager.pending is not None:
        await manager.pending

    def state(widget: Any) -> list[str]:
        parts = [repr(widget.get_state())]
        for child in getattr(widget, "children", ()):
            parts += state(child)
        return parts

    run.show("widget state", *state(manager))
    await ts.client.aclose()  # the connections this loop opened


def listener_part(run: Run, sim: Simulator, ts: tskit.ThingSpace, account: str, tmp: Path) -> int:
    from tskit.listener import Listener

    password = canary()
    run.canaries.add(password)
    store = tmp / "listener" / "messages.sqlite"
    store.parent.mkdir()
    with Listener(username="listener-user", password=password, store=store) as listener:
        ts.register_callback(account, "CarrierService", listener.url_for("CarrierService"),
                             username="listener-user", password=password, allow_any_port=True)  # fmt: skip
        for _ in range(3):
            sim.trigger(account, "CarrierService").wait()
        listener.wait_for(3)
        received = listener.count()
        frame = listener.messages
        run.show("DataFrames and their HTML", frame.to_string(), frame.to_html())
        run.show("reprs", repr(listener), repr(listener.raw()))
    for path in store.parent.iterdir():
        run.show("listener files", path.read_bytes().decode("latin-1"))
    return received


# -- 5. export and rotation under empty listings -----------------------------------------------

LISTING_SERVICES = ("CarrierService", "DeviceUsage")


def listing_accounts(count: int) -> list[str]:
    return [f"{7300000000 + i:010d}-00001" for i in range(count)]


def seed_listing_accounts(run: Run, sim: Simulator, names: list[str]) -> None:
    for i, name in enumerate(names):
        for service in LISTING_SERVICES:
            secret = canary()
            run.canaries.add(secret)
            sim.register(name, service, f"https://l{i}.example.com/{service.lower()}", "ts", secret)


def export_part(run: Run, ts: tskit.ThingSpace, sim: Simulator, names: list[str]) -> None:
    truth = {name: {r["serviceName"] for r in sim.registrations(name)} for name in names}
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PartialExportWarning)
        state = ts.export(names, concurrency=20, progress=False, allow_partial=True)
    seconds = time.perf_counter() - started
    written = state.accounts
    wrong = sum(1 for name in written if set(written[name]) != truth[name])
    emptied = sum(1 for name in written if not written[name] and truth[name])
    run.row("export, 5% empty listings", f"accounts exported ({seconds:.1f} s)", len(names))
    run.row("export, 5% empty listings", "written as they are", len(written) - wrong)
    run.row("export, 5% empty listings", "left out, each said unreadable or uncertain", len(state.unread))
    run.row(
        "export, 5% empty listings",
        "missing (neither written nor said)",
        len(names) - len(written) - len(state.unread),
        "0",
    )
    run.row("export, 5% empty listings", "wrongly exported as empty", emptied, "0")
    run.row("export, 5% empty listings", "wrongly exported with fewer listeners", wrong - emptied, "0")
    plan = ts.plan(state, prune=True, concurrency=20, progress=False)  # what `tskit apply --prune` would do
    deletes = sum(1 for step in plan.steps if step.action == "delete")
    run.row("export, 5% empty listings", "then plan --prune: deletes planned", deletes, "0")


def rotation_part(run: Run, ts: tskit.ThingSpace, sim: Simulator, names: list[str], tmp: Path) -> None:
    new = canary()
    run.canaries.add(new)
    started = time.perf_counter()
    result = ts.rotate_password(names, new_password=new, concurrency=20, progress=False, journal=tmp / "rotation.jsonl")
    seconds = time.perf_counter() - started
    run.show("reprs", repr(result))
    said = {(a, s) for a, s, _ in result.remaining_list}
    unsure = {a for a, s, _ in result.remaining_list if not s}
    held = {(name, r["serviceName"]): r["password"] for name in names for r in sim.registrations(name)}
    left = [key for key, password in held.items() if password != new]
    unreported = [key for key in left if key not in said and key[0] not in unsure]
    gone_falsely = [(a, s) for a, s, r in result.remaining_list if r == "no longer registered" and (a, s) in held]
    run.row("rotation, 5% empty listings", f"registrations ({seconds:.1f} s)", len(held))
    run.row("rotation, 5% empty listings", "on the new password", len(held) - len(left))
    run.row("rotation, 5% empty listings", "left on another password, said so", len(left) - len(unreported))
    run.row("rotation, 5% empty listings", "left on another password, not said", len(unreported), "0")
    run.row("rotation, 5% empty listings", "said no longer registered, but registered", len(gone_falsely), "0")
    run.row("rotation, 5% empty listings", "ok said while some are left", int(result.ok and bool(left)), "0")
    run.row("rotation, 5% empty listings", "lying rotations (the three above)",
            len(unreported) + len(gone_falsely) + int(result.ok and bool(left)), "0")  # fmt: skip


def listing_part(
    run: Run,
    sim: Simulator,
    server: SimulatorServer,
    names: list[str],
    credentials: tuple[str, str, str, str],
    tmp: Path,
    seed: int,
) -> None:
    client_id, client_secret, user, uws_password = credentials
    with FaultProxy(server.base_url, drop_after_rate=0.02, error_rate=0.03, corrupt_rate=0.02, empty_list_rate=0.05,
                    seed=seed + 1) as proxy:  # fmt: skip
        ts = tskit.connect(client_id=client_id, client_secret=client_secret, username=user, password=uws_password,
                           base_url=proxy.base_url, retry=retry_policy(), timeout=10)  # fmt: skip
        try:
            export_part(run, ts, sim, names)
            rotation_part(run, ts, sim, names, tmp)
            run.canaries |= set(ts.client.auth.secret_values())
        finally:
            ts.close()
    run.row("faults met", "empty listings (export and rotation)", proxy.applied["empty"])


def listener_burst_part(run: Run, tmp: Path, sizes: Sequence[int], wrong: int) -> None:
    """Bursts, held idle sockets and wrong passwords against ``tskit listen``; its log is a surface."""
    password = canary()
    run.canaries.add(password)
    scratch = tmp / "burst"
    scratch.mkdir()
    for f in burst_figures(scratch, sizes, wrong=wrong, password=password):
        counts = f.outcome.statuses
        if f.kind == "wrong":
            run.row("listener burst", f"{f.name}: answered 401 (slowed past 5)", counts[401])
            run.row("listener burst", f"{f.name}: answered 429 at once (4 already waiting)", counts[429])
            run.row("listener burst", f"{f.name}: log lines", f.log_lines)
            continue
        if f.kind == "idle":
            run.row("listener burst", f"{f.name}: % stored", 100 * f.stored / f.sent, "≥ 95")
        else:
            run.row("listener burst", f"{f.name}: stored", f.stored, f"≥ {min(LIMIT, f.sent)}")
        unanswered = f.sent - counts[200] - f.outcome.retry_after
        run.row("listener burst", f"{f.name}: neither 200 nor 503 with Retry-After", unanswered, "0")
        run.row("listener burst", f"{f.name}: acknowledged but not stored", f.acknowledged_not_stored, "0")
    for log in scratch.glob("*.log"):
        run.show("listener log", log.read_text())


# -- the run -----------------------------------------------------------------------------------


def measure(
    accounts: int,
    mutations: int,
    bad: int,
    seed: int,
    listing: int = 250,
    *,
    bursts: Sequence[int] = (300,),
    wrong: int = 0,
) -> Run:
    run = Run()
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="tskit-faults-"))
    config_dir = tmp / "config"
    os.environ["TSKIT_CONFIG_DIR"] = str(config_dir)
    logs = LogCapture()
    root = logging.getLogger()
    root.addHandler(logs)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        measure_into(run, tmp, accounts, mutations, bad, rng, seed, listing)
        listener_burst_part(run, tmp, bursts, wrong)
    finally:
        root.removeHandler(logs)
        root.setLevel(old_level)
    run.show("logs at DEBUG", *logs.lines)
    for path in sorted(config_dir.rglob("*")):
        if path.is_file():
            run.show("config folder", path.name, path.read_bytes().decode("latin-1"))
    found = Counter[str]()
    for surface, texts in run.surfaces.items():
        joined = "\n".join(texts).casefold()
        found[surface] = sum(1 for secret in run.canaries if secret and found_in(joined, secret))
    run.row("secrets", f"canary secrets searched ({len(run.canaries):,})", len(run.canaries))
    for surface in sorted(run.surfaces):
        shown = len(run.surfaces[surface])
        run.row("secrets", f"found in {surface} ({shown:,} text{'' if shown == 1 else 's'})", found[surface], "0")
    return run


def measure_into(
    run: Run, tmp: Path, accounts: int, mutations: int, bad: int, rng: random.Random, seed: int, listing: int = 250
) -> None:
    client_id, client_secret, user, uws_password = "faults-app", canary(), "faults-user", canary()
    run.canaries |= {client_secret, uws_password}
    faults = Faults(error_rate=0.10, rate_limit_rate=0.05, retry_after=0.01, drop_rate=0.02, seed=seed)
    sim = Simulator(faults=faults)
    names = seed_fleet(sim, max(accounts, (mutations + 1) // len(SERVICES)))
    rotated = listing_accounts(listing)
    sim.add_client(client_id, client_secret)
    sim.add_user(user, uws_password, accounts=[*names, *sim.accounts, *rotated])
    seed_listing_accounts(run, sim, rotated)
    for name in names:  # the fleet's listener passwords become canaries too
        for r in sim.registrations(name):
            if r["password"]:
                secret = canary()
                run.canaries.add(secret)
                sim.register(name, r["serviceName"], r["url"], r["username"], secret)
    with (
        sim.serve() as server,
        FaultProxy(server.base_url, drop_after_rate=0.02, error_rate=0.03, corrupt_rate=0.02, seed=seed) as proxy,
        expiring_sessions(sim, 1.0),
    ):
        ts = tskit.connect(client_id=client_id, client_secret=client_secret, username=user, password=uws_password,
                           base_url=proxy.base_url, retry=retry_policy(), timeout=10)  # fmt: skip
        try:
            audit_part(run, ts, sim, names[:accounts], tmp)
            client = tskit.ThingSpaceClient(
                tskit.Credentials(client_id, client_secret, user, uws_password),
                base_url=proxy.base_url, retry=retry_policy(), timeout=10,
            )  # fmt: skip
            asyncio.run(_mutations(run, client, sim, names, mutations))
            run.canaries |= set(ts.client.auth.secret_values()) | set(client.auth.secret_values())
            run.show("reprs", repr(ts), repr(ts.client), repr(ts.client.auth), repr(client), repr(client.auth))
            for name in names[:20]:
                frame = ts.list_callbacks(name)
                run.show("DataFrames and their HTML", frame.to_string(), frame.to_html())
        finally:
            ts.close()
        apply_names = names[-min(100, len(names) // 2) :]
        credentials = {"THINGSPACE_CLIENT_ID": client_id, "THINGSPACE_CLIENT_SECRET": client_secret,
                       "THINGSPACE_USERNAME": user, "THINGSPACE_PASSWORD": uws_password}  # fmt: skip
        concurrent_apply_part(run, sim, proxy.base_url, credentials, apply_names, tmp)
        run.row("faults met", "by the proxy (500, dropped answers, corrupt bodies)", sum(proxy.applied.values()))
        if rotated:
            login = (client_id, client_secret, user, uws_password)
            listing_part(run, sim, server, rotated, login, tmp, seed)
        run.row("faults met", "by the simulator (5xx, 429, dropped answers)", _simulator_faults(sim))
        cli_part(run, server, sim, names[0])
    faults.clear()  # the rest checks refusals and surfaces, on a simulator without faults
    with sim.serve() as server:
        clean = tskit.connect(client_id=client_id, client_secret=client_secret, username=user, password=uws_password,
                              base_url=server.base_url)  # fmt: skip
        try:
            bad_input_part(run, clean, sim, bad, rng, (user, uws_password, client_secret))
            asyncio.run(widget_part(run, clean, names[1]))
            received = listener_part(run, sim, clean, names[2], tmp)
            run.canaries |= set(clean.client.auth.secret_values())
        finally:
            clean.close()
    run.row("secrets", "listener messages received (of 3)", received, "≥ 3")


async def _mutations(run: Run, client: tskit.ThingSpaceClient, sim: Simulator, names: list[str], count: int) -> None:
    async with client:
        await mutation_part(run, client, sim, names, count)
        for name in names[:20]:
            with contextlib.suppress(tskit.ThingSpaceError):
                run.show("reprs", repr(await client.list_callbacks(name)))


def _simulator_faults(sim: Simulator) -> int:
    return sum(1 for r in sim.requests if r.status in (0, 429) or r.status >= 500)


def table(rows: list[Row]) -> str:
    lines = ["| part | measure | figure | goal |", "|---|---|---:|---|"]
    for r in rows:
        mark = "" if not r.goal else (" ✓" if r.ok else " ✗ MISSED")
        figure = f"{r.figure:,}" if isinstance(r.figure, int) else f"{r.figure:.2f}"
        lines.append(f"| {r.part} | {r.measure} | {figure} | {r.goal}{mark} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=500, help="accounts in the fleet audit")
    parser.add_argument("--mutations", type=int, default=800, help="registers, rotations and deregisters, each")
    parser.add_argument("--bad-inputs", type=int, default=2000, help="generated bad inputs (exactly this many)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault draws and generated input")
    parser.add_argument(
        "--listing-accounts", type=int, default=250, help="accounts exported and rotated under empty listings"
    )
    parser.add_argument("--bursts", default="300,1000,3000", help="listener burst sizes, comma-separated")
    parser.add_argument("--wrong", type=int, default=3000, help="wrong passwords sent to the listener from one source")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sizes = [int(n) for n in args.bursts.split(",") if n.strip()]
    run = measure(
        args.accounts, args.mutations, args.bad_inputs, args.seed, args.listing_accounts, bursts=sizes, wrong=args.wrong
    )
    print(table(run.rows))
    print(f"\n{time.perf_counter() - started:.0f} s in all", file=sys.stderr)
    return 0 if all(r.ok for r in run.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
