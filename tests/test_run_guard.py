"""The test steps cannot pass silently: skips stay where they belong, and a step that tests nothing fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# For runs of a few tests written here: the notebook and browser plugins cost ~3 s of CPU a process.
BARE = ("-o", "addopts=", "-p", "no:nbval", "-p", "no:playwright", "-p", "no:base_url")


def run_pytest(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    # a run of its own: not a worker of the pytest-xdist run this test may be part of
    outer = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=cwd,
        env={**outer, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_a_browser_only_browser_tests_are_skipped() -> None:
    # Collecting tests/browser loads its conftest, whose hook sees every item of the run. The other
    # module is one of quick tests: this run is the suite's second of them, so nothing heavy.
    done = run_pytest(
        "tests/test_errors.py",
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


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_guard_counts_skips_and_passes(tmp_path: Path, workers: list[str]) -> None:
    # under pytest-xdist (.ci/run's unit step) the skips of every worker count, wherever they ran
    (tmp_path / "test_some.py").write_text(
        "import pytest\n"
        "def test_one(): pass\n"
        "@pytest.mark.skip(reason='not here')\n"
        "def test_two(): pass\n"
        "@pytest.mark.skip(reason='nor here')\n"
        "def test_three(): pass\n"
    )
    guard = ("-p", "tests.run_guard", *BARE, "--rootdir", str(tmp_path), *workers, str(tmp_path))
    assert run_pytest(*guard, "--max-skipped", "2").returncode == 0
    too_many = run_pytest(*guard, "--max-skipped", "1")
    assert too_many.returncode == 1
    assert "2 tests were skipped, at most 1 may be" in too_many.stdout
    assert "not here" in too_many.stdout


def test_a_step_that_collects_nothing_fails(tmp_path: Path) -> None:
    (tmp_path / "test_none.py").write_text("x = 1\n")
    done = run_pytest("-p", "tests.run_guard", "--max-skipped", "0", *BARE, str(tmp_path))
    assert done.returncode != 0


def test_under_xdist_a_step_whose_tests_all_skip_fails(tmp_path: Path) -> None:
    # each worker sees only its share: the step is judged once, on the whole run
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n@pytest.mark.parametrize('n', range(4))\ndef test_skipped(n): pytest.skip('no browser')\n"
    )
    done = run_pytest("-p", "tests.run_guard", "--max-skipped", "0", *BARE, "-n", "2", str(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no test passed" in done.stdout and "4 tests were skipped, at most 0 may be" in done.stdout


def test_every_step_of_ci_run_is_guarded() -> None:
    steps = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if " -m pytest" in line]
    assert len(steps) >= 4
    for line in steps:
        assert "-p tests.run_guard --max-skipped" in line, line
    [unit] = [line for line in steps if line.rstrip().endswith(" tests")]
    assert " -n " in unit  # the unit step on every core
