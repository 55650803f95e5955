"""The ``tskit`` command: list, register, deregister, audit, desired state, the listener, the simulator, a demo.

One module per job: ``_main`` (the parser, running a command, exit codes), ``_common`` (connecting,
account lists, questions), ``_options`` and ``_render`` (shared options, tables, CSV and JSON),
``_words`` (the library's errors in the command line's words), then one module per command group:
``_callbacks`` (list, services, register, deregister), ``_audit``, ``_state`` (export, plan, apply,
rotate), ``_listen``, ``_simulator``, ``_login`` (reset-login) and ``_demo``.
"""

from tskit.cli._common import EMBEDDED_NOTICE, EXIT_FINDINGS, EXIT_UNREADABLE, NothingChanged, UsageError
from tskit.cli._main import build_parser, main
from tskit.cli._words import cli_vocabulary, cli_words

__all__ = [
    "EMBEDDED_NOTICE",
    "EXIT_FINDINGS",
    "EXIT_UNREADABLE",
    "NothingChanged",
    "UsageError",
    "build_parser",
    "cli_vocabulary",
    "cli_words",
    "main",
]
