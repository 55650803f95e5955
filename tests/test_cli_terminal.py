"""The tskit command on a terminal, a closed pipe and an end of input: bars, quiet exits, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")


def clean_env(**more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("THINGSPACE_")}
    return {**env, **more}


def on_pty(*argv: str, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
    """Run ``tskit argv`` with stderr on a pseudo-terminal that reports no size (as a bare pty does)."""
    import pty

    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "tskit", *argv],
        stdin=subprocess.PIPE if stdin is not None else slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=clean_env(),
    )
    os.close(slave)
    out, _ = process.communicate(stdin, timeout=60)
    terminal = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        terminal += chunk
    os.close(master)
    return process.returncode, out, terminal


def test_audit_draws_a_progress_bar_on_a_terminal() -> None:
    code, _out, terminal = on_pty("audit", "0000123456-00001", "0000123456-00002")
    assert code == 0 and b"Auditing" in terminal and b"2/2" in terminal, terminal


def test_no_progress_draws_none() -> None:
    code, _out, terminal = on_pty("audit", "0000123456-00001", "--no-progress")
    assert code == 0 and b"Auditing" not in terminal
