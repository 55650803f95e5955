"""Start ``tskit simulator`` in its own process, so that server and client do not share one GIL."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


@contextmanager
def simulator_process(*options: str) -> Iterator[dict[str, str]]:
    """Yield the ``THINGSPACE_*`` variables of a simulator server running on loopback."""
    args: Sequence[str] = [sys.executable, "-m", "tskit", "simulator", "--port", "0", *options]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            assert proc.stdout is not None
            env: dict[str, str] = {}
            while len(env) < 5:
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError("the simulator did not start")
                if line.startswith("export "):
                    key, _, value = line.removeprefix("export ").strip().partition("=")
                    env[key] = value
            yield env
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
