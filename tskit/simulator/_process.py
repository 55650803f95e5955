"""Run ``tskit simulator`` in a child process, e.g. for integration tests of other clients."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def simulator_process(*options: str, timeout: float = 10.0) -> Iterator[dict[str, str]]:
    """Start ``tskit simulator --port 0`` in its own process and stop it on exit.

    Args:
        options: More command-line options, e.g. ``"--latency", "0.05"``.
        timeout: Seconds to wait for the process to stop after SIGTERM before killing it.

    Yields:
        The ``THINGSPACE_*`` variables the simulator printed, ready for ``os.environ`` or a
        subprocess's ``env``.
    """
    args = [sys.executable, "-m", "tskit", "simulator", "--port", "0", *options]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            env: dict[str, str] = {}
            while len(env) < 5:
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"tskit simulator did not start: {proc.stderr.read().strip()}")
                if line.startswith("export "):
                    key, _, value = line.removeprefix("export ").strip().partition("=")
                    env[key] = value
            yield env
        finally:
            proc.send_signal(signal.SIGTERM)  # not SIGINT: a script run with `&` or nohup ignores it, and so its child
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
