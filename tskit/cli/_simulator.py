"""``tskit simulator``: its options, and serving the simulator in the foreground.

Every behaviour Verizon does not document is an option here, marked "(simulator's own)" in its
help, with the same name and default as its :class:`~tskit.simulator.SimulatorConfig` field.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import tskit.simulator as simulators
from tskit._stop_signals import StopRequest, stop_signals
from tskit.simulator import Faults, Simulator, SimulatorConfig, seed_fleet

_DEFAULTS = SimulatorConfig()


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port; give 0 to 65535 (0: any free port)")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds; give 0 or more")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not a number of accounts; give 0 or more")
    return value


def _status(text: str) -> int:
    value = int(text)
    if not 400 <= value <= 599:
        raise argparse.ArgumentTypeError("must be an HTTP error status, 400 to 599")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``tskit simulator`` to its parser."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--no-demo", action="store_true", help="start empty, without the demo accounts")
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="behave like the API console's simulator: any credentials log in, any token is accepted and never "
        "expires, TestAccount-1 for reads and TestAccount-2 for register",
    )
    parser.add_argument(
        "--fleet",
        type=_count,
        default=0,
        metavar="N",
        help="add N generated accounts 7000000000-00001, 7000000001-00001, ... for audits",
    )
    parser.add_argument(
        "--fleet-file",
        metavar="FILE",
        default=None,
        help="write the --fleet accounts' names to FILE, one per line (for tskit audit --accounts-file FILE)",
    )
    own = parser.add_argument_group("behaviours Verizon does not document (the simulator's own choices)")
    _add_own(
        own,
        "reregister",
        "registering a service that has a listener: replace it, or answer 400 (default: %(default)s)",
        choices=["replace", "error"],
    )
    _add_own(
        own,
        "deregister_missing",
        "deregistering a service with no listener: answer 400, or 200 (default: %(default)s)",
        choices=["error", "ok"],
    )
    _add_own(
        own,
        "empty_list",
        "an account with no callbacks lists as an empty body (Verizon's docs) or [] (default: %(default)s)",
        choices=["empty-body", "json-array"],
    )
    _add_own(own, "login_failure_status", "HTTP status of a refused login (default: %(default)s)", type=_status)
    _add_own(
        own, "login_failure_code", "error code of a refused login, after 'UnifiedWebService.' (default: %(default)s)"
    )
    _add_own(
        own,
        "session_expired_status",
        "HTTP status for a missing, unknown or expired session token; production was seen answering 401 "
        "(default: %(default)s)",
        type=_status,
    )
    _add_own(
        own,
        "session_expired_code",
        "error code of an expired session token (default: %(default)s, Verizon's documented code)",
    )
    _add_own(
        own,
        "stale_password_window",
        "after a re-registration, messages carry the old password this long (production: 540-840; "
        "default: %(default)s)",
        type=_seconds,
        metavar="SECONDS",
    )
    _add_own(
        own,
        "delivery_policy",
        "callback resends: one ~1.3 s later (observed) or three at 5-minute intervals (documented)",
        choices=["observed", "documented"],
    )
    own.add_argument("--any-port", action="store_true", help="accept listener URLs on any port")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--latency", type=_seconds, default=0.0, help="seconds added before every answer")
    faults.add_argument("--error-rate", type=_rate, default=0.0, help="share of callbacks calls answered 500")
    faults.add_argument("--rate-limit-rate", type=_rate, default=0.0, help="share answered 429 with Retry-After")
    faults.add_argument("--retry-after", type=_seconds, default=1.0, help="Retry-After seconds of those 429s")
    faults.add_argument("--drop-rate", type=_rate, default=0.0, help="share of connections dropped unanswered")
    faults.add_argument("--seed", type=int, default=None, help="seed for the fault draws")


def _add_own(group: argparse._ArgumentGroup, field: str, help: str, **options: Any) -> None:
    """Add the option of one of the simulator's own behaviours: named after its field, with its default."""
    group.add_argument(f"--{field.replace('_', '-')}", default=getattr(_DEFAULTS, field), help=help, **options)


def config_from(args: argparse.Namespace) -> SimulatorConfig:
    """The :class:`SimulatorConfig` the options describe."""
    return SimulatorConfig(
        reregister=args.reregister,
        deregister_missing=args.deregister_missing,
        empty_list=args.empty_list,
        enforce_listener_ports=not args.any_port,
        login_failure_status=args.login_failure_status,
        login_failure_code=args.login_failure_code,
        session_expired_status=args.session_expired_status,
        session_expired_code=args.session_expired_code,
        stale_password_window=args.stale_password_window,
        delivery_policy=args.delivery_policy,
        sandbox=args.sandbox,
    )


def run(args: argparse.Namespace) -> int:
    """Serve the simulator in the foreground until Ctrl-C."""
    faults = Faults(
        latency=args.latency,
        error_rate=args.error_rate,
        rate_limit_rate=args.rate_limit_rate,
        retry_after=args.retry_after,
        drop_rate=args.drop_rate,
        seed=args.seed,
    )
    if args.fleet_file is not None and not args.fleet:
        print("tskit simulator: --fleet-file needs --fleet N (the accounts to write)", file=sys.stderr)
        return 2
    simulator = Simulator(config_from(args), faults=faults, demo=not args.no_demo)
    if args.fleet:
        names = seed_fleet(simulator, args.fleet)
        if args.fleet_file is not None:
            try:
                Path(args.fleet_file).write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
            except OSError as exc:
                problem = exc.strerror or exc
                print(f"tskit simulator: --fleet-file: cannot write {args.fleet_file}: {problem}", file=sys.stderr)
                return 2
    with stop_signals() as request:  # a Ctrl-C from here on stops the server even before it serves
        return _serve(args, simulator, request)


def _serve(args: argparse.Namespace, simulator: Simulator, request: StopRequest) -> int:
    # looked up only now: the server needs uvicorn, the [server] extra (tskit.simulator imports it on demand)
    server = simulators.SimulatorServer(simulator, host=args.host, port=args.port)
    try:
        server.bind()
    except OSError as exc:
        print(f"tskit simulator: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print("# Point tskit, or any ThingSpace client, at this simulator:")
    print(server.export_lines(), flush=True)
    mode = " in sandbox mode (TestAccount-1, TestAccount-2; any credentials)" if args.sandbox else ""
    print(f"ThingSpace simulator serving on {server.base_url}{mode} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        request.raise_if_requested()
        server.run()  # Ctrl-C ends it with 130, as every other command
    finally:
        server.stop()
        simulator.close()
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``simulator`` to the ``tskit`` command."""
    sim = commands.add_parser(
        "simulator",
        help="serve the ThingSpace simulator over HTTP",
        description="Serve the ThingSpace simulator over HTTP under production's paths "
        "(/api/ts/v1/oauth2/token, /api/m2m/v1/session/login, /api/m2m/v1/callbacks/...). "
        "It prints the export lines that point tskit, or any other client, at it.",
    )
    add_arguments(sim)
    sim.set_defaults(func=run)
