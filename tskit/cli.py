"""The ``tskit`` command: ``tskit demo``, ``tskit list`` and ``tskit simulator``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from tskit._facade import ThingSpace

EPILOG = """\
Credentials come from THINGSPACE_CLIENT_ID, THINGSPACE_CLIENT_SECRET, THINGSPACE_USERNAME and
THINGSPACE_PASSWORD (and THINGSPACE_BASE_URL). With none of them set, tskit uses its embedded
ThingSpace simulator and its demo accounts 0000123456-00001, -00002 and -00003.
"""


def _show(frame: pd.DataFrame) -> str:
    return frame.to_string(index=False) if len(frame) else "(no callbacks registered)"


def _cmd_demo(args: argparse.Namespace) -> int:
    """A guided tour of the three calls, always against a fresh embedded simulator."""
    import tskit

    ts = tskit.connect(simulator=True)
    account = "0000123456-00003"
    print(f"Connected: {ts!r}\n")
    for name in ts.simulator.accounts if ts.simulator else []:
        print(f"Callbacks of {name}:\n{_show(ts.list_callbacks(name))}\n")
    result = ts.register_callback(
        account, "CarrierService", "https://listener.example.com/carrier", username="tsuser", password="s3cret"
    )
    print(f"Registered {result.service_name} for {result.account_name}:\n{_show(ts.list_callbacks(account))}\n")
    result = ts.deregister_callback(account, "CarrierService")
    print(f"Deregistered {result.service_name} for {result.account_name}:\n{_show(ts.list_callbacks(account))}\n")
    try:
        ts.list_callbacks("9999999999-00001")
    except tskit.ApiError as error:
        print(
            f"An account that does not exist gives ThingSpace's error code and message:\n  {error.error_code}\n"
            f"  {error.error_message}\n"
        )
    try:
        ts.register_callback(account, "CarierService", "https://listener.example.com:8443/x")
    except tskit.ValidationError as error:
        print(f"Bad input is refused before anything is sent:\n  {error}")
    return 0


def _connect(args: argparse.Namespace) -> ThingSpace:
    import tskit

    return tskit.connect(simulator=True if args.simulator else None)


def _cmd_list(args: argparse.Namespace) -> int:
    import pandas as pd

    import tskit

    ts = _connect(args)
    frames = [ts.list_callbacks(account) for account in args.accounts]
    frame = pd.concat(frames, ignore_index=True) if frames else tskit.callbacks_frame([])
    print(frame.to_csv(index=False) if args.format == "csv" else _show(frame), end="" if args.format == "csv" else "\n")
    return 0


def _cmd_simulator(args: argparse.Namespace) -> int:
    from tskit.simulator import Faults, Simulator, SimulatorConfig, SimulatorServer

    config = SimulatorConfig(
        reregister=args.reregister,
        deregister_missing=args.deregister_missing,
        empty_list=args.empty_list,
        enforce_listener_ports=not args.any_port,
    )
    faults = Faults(
        latency=args.latency,
        error_rate=args.error_rate,
        rate_limit_rate=args.rate_limit_rate,
        retry_after=args.retry_after,
        drop_rate=args.drop_rate,
        seed=args.seed,
    )
    server = SimulatorServer(Simulator(config, faults=faults, demo=not args.no_demo), host=args.host, port=args.port)
    server.bind()
    print("# Point tskit, or any ThingSpace client, at this simulator:")
    print(server.export_lines(), flush=True)
    print(f"ThingSpace simulator serving on {server.base_url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tskit`` command."""
    parser = argparse.ArgumentParser(
        prog="tskit",
        description="Manage Verizon ThingSpace callback listeners.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="a short tour of list, register and deregister on the simulator")
    demo.set_defaults(func=_cmd_demo)

    listing = commands.add_parser("list", help="list the callback listeners of one or more accounts")
    listing.add_argument("accounts", nargs="+", metavar="ACCOUNT", help="account name, e.g. 0000123456-00001")
    listing.add_argument("--format", choices=["table", "csv"], default="table", help="output format")
    listing.add_argument(
        "--simulator", action="store_true", help="use the embedded simulator even if credentials are set"
    )
    listing.set_defaults(func=_cmd_list)

    sim = commands.add_parser(
        "simulator",
        help="serve the ThingSpace simulator over HTTP",
        description="Serve the ThingSpace simulator over HTTP under production's paths "
        "(/api/ts/v1/oauth2/token, /api/m2m/v1/session/login, /api/m2m/v1/callbacks/...). "
        "It prints the export lines that point tskit, or any other client, at it.",
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    sim.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    sim.add_argument("--no-demo", action="store_true", help="start empty, without the demo accounts")
    sim.add_argument(
        "--reregister",
        choices=["replace", "error"],
        default="replace",
        help="registering a service that has a listener: replace it, or answer 400",
    )
    sim.add_argument(
        "--deregister-missing",
        choices=["error", "ok"],
        default="error",
        help="deregistering a service with no listener: answer 400, or 200",
    )
    sim.add_argument(
        "--empty-list",
        choices=["empty-body", "json-array"],
        default="empty-body",
        help="an account with no callbacks lists as an empty body (Verizon's docs) or []",
    )
    sim.add_argument("--any-port", action="store_true", help="accept listener URLs on any port")
    sim.add_argument("--latency", type=float, default=0.0, help="seconds added before every answer")
    sim.add_argument("--error-rate", type=_rate, default=0.0, help="share of callbacks calls answered 500")
    sim.add_argument("--rate-limit-rate", type=_rate, default=0.0, help="share answered 429 with Retry-After")
    sim.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds of those 429s")
    sim.add_argument("--drop-rate", type=_rate, default=0.0, help="share of connections dropped unanswered")
    sim.add_argument("--seed", type=int, default=None, help="seed for the fault draws")
    sim.set_defaults(func=_cmd_simulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tskit`` command; returns the exit code."""
    import tskit

    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except tskit.ThingSpaceError as error:
        print(f"tskit: {error}", file=sys.stderr)
        return 2 if isinstance(error, tskit.ValidationError) else 1
    return code


if __name__ == "__main__":
    sys.exit(main())
