"""The tskit command on a terminal, a closed pipe and an end of input: bars, quiet exits, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")


def clean_env(**more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("THINGSPACE_")}
    return {**env, **more}


def drain(master: int) -> bytes:
    """What is left to read from a pseudo-terminal's master side, which is then closed."""
    read = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other side closed: Linux reports EIO
            break
        if not chunk:
            break
        read += chunk
    os.close(master)
    return read


def on_pty(*argv: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """Run ``tskit argv`` with stderr on a pseudo-terminal that reports no size (as a bare pty does).

    ``env``: the command's environment (default: this one without ``THINGSPACE_*`` variables).
    """
    import pty

    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "tskit", *argv],
        stdin=subprocess.PIPE if stdin is not None else slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=clean_env() if env is None else env,
    )
    os.close(slave)
    out, _ = process.communicate(stdin, timeout=60)
    return process.returncode, out, drain(master)


def test_audit_draws_a_progress_bar_on_a_terminal() -> None:
    code, _out, terminal = on_pty("audit", "0000123456-00001", "0000123456-00002")
    assert code == 0 and b"Auditing" in terminal and b"2/2" in terminal, terminal


def test_no_progress_draws_none() -> None:
    code, _out, terminal = on_pty("audit", "0000123456-00001", "--no-progress")
    assert code == 0 and b"Auditing" not in terminal


def answer_on_pty(argv: list[str], keys: bytes, prompt: bytes = b"", **env: str) -> tuple[int, str]:
    """Run ``tskit argv`` with stdin on a pseudo-terminal, type ``keys`` at its prompt; (code, all output).

    With ``prompt``, the keys are typed once it shows (a password prompt flushes what was typed before it).
    """
    import pty
    import select

    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "tskit", *argv],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=clean_env(**env),
        start_new_session=True,  # no controlling terminal: getpass reads the pty given as stdin
    )
    os.close(slave)
    seen = b""
    while (prompt not in seen) if prompt else (b"?" not in seen and b":" not in seen.split(b"\n")[-1]):
        ready, _, _ = select.select([master], [], [], 30)
        assert ready, seen
        seen += os.read(master, 4096)
    os.write(master, keys)
    code = process.wait(timeout=60)
    seen += drain(master)
    return code, seen.decode(errors="replace")


def test_ctrl_d_at_the_deregister_question_changes_nothing() -> None:
    code, text = answer_on_pty(["deregister", "0000123456-00001", "CarrierService"], b"\x04")
    assert code == 0 and "Nothing was changed." in text and "Traceback" not in text, text


def test_ctrl_d_at_the_password_prompt_changes_nothing() -> None:
    # --yes: no question about the documentation name first; the password prompt is the only one
    argv = ["register", "0000123456-00003", "DeviceUsage", "https://l.example.com/u", "--yes"]
    code, text = answer_on_pty(argv, b"\x04", prompt=b"Listener password (empty for none): ")
    assert code == 1 and "Nothing was changed." in text and "Traceback" not in text, text
    assert "Registered" not in text


def test_a_closed_pipe_ends_quietly() -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written, as after `| head -1`
    done = subprocess.run(
        [sys.executable, "-m", "tskit", "services"], stdout=write, stderr=subprocess.PIPE, env=clean_env(), timeout=60
    )
    os.close(write)
    assert done.returncode == 141 and done.stderr == b"", done.stderr


@pytest.mark.server
@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_pipe_closed_early_on_a_long_output_exits_141(unbuffered: str, tmp_path: Path) -> None:
    from tskit import SERVICE_CATALOGUE
    from tskit.simulator import Simulator, demo_env, seed_fleet

    # Output that outgrows the pipe's buffer (64 KiB) many times over, so that the command is still
    # writing when its reader goes: four accounts with every service on a long URL, four listings.
    sim = Simulator()
    names = seed_fleet(sim, 4)
    for i, name in enumerate(names):
        for service in SERVICE_CATALOGUE:
            sim.register(name, service, f"https://listener-{i}.example.com/" + "p" * 1900, "ts", f"pw-{i}")
    assert sum(len(r["url"]) for name in names for r in sim.registrations(name)) > 2 * 65536
    accounts = tmp_path / "accounts.txt"
    accounts.write_text("\n".join(names) + "\n")
    with sim.serve() as server:
        env = {**clean_env(**demo_env(server.base_url)), "PYTHONUNBUFFERED": unbuffered}
        for fmt in ("table", "csv", "json"):
            argv = [sys.executable, "-m", "tskit", "list", "--accounts-file", str(accounts), "--format", fmt]
            with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as process:
                assert process.stdout is not None and process.stderr is not None
                assert process.stdout.readline()  # as `| head -1`: one line, then the reader goes away
                process.stdout.close()
                error = process.stderr.read()
                assert process.wait(timeout=60) == 141 and error == b"", (fmt, error)


def test_ctrl_c_during_an_audit_ends_the_progress_line_once() -> None:
    """A real Ctrl-C (SIGINT) while the bar waits on a slow ThingSpace: the bar's line ends, once."""
    import pty
    import select
    import signal

    simulator = subprocess.Popen(
        [sys.executable, "-m", "tskit", "simulator", "--latency", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(),
    )
    try:
        env: dict[str, str] = {}
        assert simulator.stdout is not None
        for line in simulator.stdout:  # the export lines it prints
            if line.startswith("export THINGSPACE_"):
                name, value = line.removeprefix("export ").strip().split("=", 1)
                env[name] = value.strip("'\"")
            if len(env) == 5:
                break
        master, slave = pty.openpty()
        audit = subprocess.Popen(
            [sys.executable, "-m", "tskit", "audit", "0000123456-00001"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=clean_env(**env),
            start_new_session=True,
        )
        os.close(slave)
        seen = b""
        while b"Auditing" not in seen:
            ready, _, _ = select.select([master], [], [], 30)
            assert ready, seen
            seen += os.read(master, 4096)
        audit.send_signal(signal.SIGINT)
        assert audit.wait(timeout=60) == 130
        seen += drain(master)
    finally:
        simulator.terminate()
        simulator.wait(timeout=60)
        if simulator.stdout is not None:
            simulator.stdout.close()
    drawn = seen[seen.index(b"\rAuditing") :]
    bar, _, after = drawn.partition(b"\r\n")  # the bar's line ended ...
    assert bar.endswith(b"account/s]"), drawn  # nothing else written on the bar's line
    assert not after.startswith(b"\r\n"), drawn  # ... once: no blank line
