"""Browser tests: Voilà serves a notebook on 127.0.0.1, Playwright drives Debian's chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TSKIT_ARTIFACTS", ROOT / ".ci" / "artifacts"))
CHROMIUM = os.environ.get("TSKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A hook in this conftest sees every collected item of the run, not only this folder's:
    # only the browser tests may be skipped for want of a browser.
    if Path(CHROMIUM).exists():
        return
    skip = pytest.mark.skip(reason="Debian's chromium is not installed (apt-get install chromium)")
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    # Debian's chromium, not a downloaded one; flags that keep it off the (closed) network.
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        # scroll bars drawn, as a person's browser draws them: a table scrolled sideways shows it
        "ignore_default_args": ["--hide-scrollbars"],
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"voila exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError("voila did not start in time")


@contextlib.contextmanager
def serving(config_dir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Voilà serving notebooks/ on a free loopback port; yields its base URL and stops it after.

    Without ``env`` the apps use the embedded simulator (no THINGSPACE_* variables reach them).
    """
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("THINGSPACE_")}
    environ.update(env or {})
    environ["TSKIT_CONFIG_DIR"] = str(config_dir)
    log = (config_dir / "voila.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voila",
            str(ROOT / "notebooks"),
            "--no-browser",
            f"--port={port}",
            "--Voila.ip=127.0.0.1",
            "--ServerApp.allow_root=True",
            "--show_tracebacks=True",
            # ?theme=dark on a page's URL shows it in JupyterLab's dark theme
            "--VoilaConfiguration.allow_theme_override=YES",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environ,
        cwd=ROOT,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def voila(tmp_path: Path) -> Iterator[str]:
    """Voilà serving notebooks/ for one test, on the embedded simulator."""
    with serving(tmp_path) as url:
        yield url


@pytest.fixture(scope="module")
def shared_voila(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Voilà serving notebooks/ for a module's tests (each page still gets a kernel of its own)."""
    with serving(tmp_path_factory.mktemp("voila")) as url:
        yield url
