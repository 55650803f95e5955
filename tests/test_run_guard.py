"""The test steps cannot pass silently: skips stay where they belong, and a step that tests nothing fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_pytest(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_a_browser_only_browser_tests_are_skipped() -> None:
    # Collecting tests/browser loads its conftest, whose hook sees every item of the run.
    done = run_pytest(
        "tests/test_validate.py",
        "tests/browser",
        "-m",
        "not browser",
        TSKIT_CHROMIUM="/nonexistent/chromium",
    )
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" in summary
    assert "skipped" not in summary, summary


def test_browser_tests_are_skipped_without_a_browser_and_the_guard_fails_the_step() -> None:
    done = run_pytest(
        "-p", "tests.run_guard", "--max-skipped", "0", "tests/browser", "-m", "browser", TSKIT_CHROMIUM="/nonexistent"
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no test passed" in done.stdout
    assert "chromium is not installed" in done.stdout


def test_guard_counts_skips_and_passes(tmp_path: Path) -> None:
    (tmp_path / "test_some.py").write_text(
        "import pytest\n"
        "def test_one(): pass\n"
        "@pytest.mark.skip(reason='not here')\n"
        "def test_two(): pass\n"
        "@pytest.mark.skip(reason='nor here')\n"
        "def test_three(): pass\n"
    )
    guard = ("-p", "tests.run_guard", "-o", "addopts=", "--rootdir", str(tmp_path), str(tmp_path))
    assert run_pytest(*guard, "--max-skipped", "2").returncode == 0
    too_many = run_pytest(*guard, "--max-skipped", "1")
    assert too_many.returncode == 1
    assert "2 tests were skipped, at most 1 may be" in too_many.stdout
    assert "not here" in too_many.stdout


def test_a_step_that_collects_nothing_fails(tmp_path: Path) -> None:
    (tmp_path / "test_none.py").write_text("x = 1\n")
    done = run_pytest("-p", "tests.run_guard", "--max-skipped", "0", "-o", "addopts=", str(tmp_path))
    assert done.returncode != 0


def test_every_step_of_ci_run_is_guarded() -> None:
    steps = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if " -m pytest" in line]
    assert len(steps) >= 4
    for line in steps:
        assert "-p tests.run_guard --max-skipped" in line, line
