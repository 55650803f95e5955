"""``tskit demo``: a short tour of tskit on a fresh embedded simulator."""

from __future__ import annotations

import argparse

import tskit
from tskit import ApiError, ValidationError
from tskit.audit import text_summary
from tskit.cli._render import show
from tskit.cli._words import cli_words

DEMO_NEXT = """
What next (from a checkout, the command is .venv/bin/tskit):
  tskit --help                      every command: list, register, audit, export, plan, apply, listen, ...
  tskit services                    the callback services and what each sends
  .venv/bin/pip install -e '.[notebook]'
                                    adds the simulator server, the listener, JupyterLab and the apps; then
  tskit simulator                   a simulator that keeps its state between commands: set the
                                    THINGSPACE_* variables it prints, then run any command against it
  .venv/bin/jupyter lab notebooks/quickstart.ipynb
  For Verizon's ThingSpace, set THINGSPACE_CLIENT_ID, THINGSPACE_CLIENT_SECRET, THINGSPACE_USERNAME
  and THINGSPACE_PASSWORD: every command then works on your accounts."""


def cmd_demo(args: argparse.Namespace) -> int:
    """A guided tour of the three calls and an audit, always against a fresh embedded simulator."""
    with tskit.connect(simulator=True) as ts:
        account = "0000123456-00003"
        accounts = ts.simulator.accounts if ts.simulator else []
        print(f"Connected: {ts!r}\n")
        for name in accounts:
            print(f"Callbacks of {name}:\n{show(ts.list_callbacks(name))}")
        result = ts.register_callback(
            account, "CarrierService", "https://listener.example.com/carrier", username="tsuser", password="s3cret"
        )
        print(f"Registered {result.service_name} for {result.account_name}:\n{show(ts.list_callbacks(account))}")
        result = ts.deregister_callback(account, "CarrierService")
        print(f"Deregistered {result.service_name} for {result.account_name}:\n{show(ts.list_callbacks(account))}")
        try:
            ts.list_callbacks("9999999999-00001")
        except ApiError as error:
            print(
                f"An account that does not exist gives ThingSpace's error code and message:\n  {error.error_code}\n"
                f"  {error.error_message}\n"
            )
        try:
            ts.register_callback(account, "CarierService", "https://listener.example.com:8443/x")
        except ValidationError as error:
            print(f"Bad input is refused before anything is sent:\n  {cli_words(error)}\n")
        print("An audit of every demo account, expecting CarrierService:")
        print(text_summary(ts.audit(accounts, ["CarrierService"], progress=False), limit=None, command=True))
    print(DEMO_NEXT)
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``demo`` to the ``tskit`` command."""
    demo = commands.add_parser("demo", help="a short tour of tskit on the embedded simulator")
    demo.set_defaults(func=cmd_demo)
