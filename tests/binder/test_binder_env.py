"""The closest check of a Binder build available here.

repo2docker would make an environment from ``binder/runtime.txt`` and ``binder/requirements.txt``
alone, run from the repository root. This test does the same in a fresh virtual environment
(no Docker here), adds only the test runner (pytest, nbval), and runs every notebook with nbval.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.binder
ROOT = Path(__file__).resolve().parents[2]


def runtime_python() -> str:
    text = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert text.startswith("python-"), f"binder/runtime.txt should read python-X.Y, not {text!r}"
    return text.removeprefix("python-")


def find_python(version: str) -> str | None:
    """An interpreter of exactly ``version`` that runs (pyenv's shims exist for versions not enabled)."""
    candidates = [
        shutil.which(f"python{version}"),
        f"/usr/bin/python{version}",
        f"/usr/local/bin/python{version}",
        *map(str, sorted(Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}"))),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            done = subprocess.run([candidate, "--version"], capture_output=True, text=True)
            if done.returncode == 0 and done.stdout.startswith(f"Python {version}"):
                return candidate
    return None


def test_runtime_is_one_tskit_supports() -> None:
    major, minor = (int(p) for p in runtime_python().split(".")[:2])
    assert (major, minor) >= (3, 11)


@pytest.mark.timeout(900)  # a whole Jupyter stack is installed: minutes, more on a busy machine
def test_notebooks_pass_in_an_environment_made_from_binder_files_alone(tmp_path: Path) -> None:
    version = runtime_python()
    python = find_python(version)
    if python is None:
        pytest.skip(f"no python{version} on this machine for binder/runtime.txt")
    venv = tmp_path / "binder-env"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", "binder/requirements.txt"], cwd=ROOT, check=True)
    subprocess.run([*pip, "pytest", "nbval"], cwd=ROOT, check=True)  # the test runner, not part of Binder
    config = tmp_path / "pytest.ini"
    config.write_text("[pytest]\n")
    done = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pytest",
            "-c",
            str(config),
            "--rootdir",
            str(ROOT),
            "-p",
            "no:cacheprovider",
            "--nbval-lax",
            "--nbval-current-env",
            "--nbval-sanitize-with",
            "tests/nbval_sanitize.cfg",
            "notebooks/",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "TSKIT_CONFIG_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    for name in notebooks:
        assert f"notebooks/{name}" in done.stdout
    version_line = subprocess.run([str(venv / "bin" / "python"), "--version"], capture_output=True, text=True)
    assert version_line.stdout.startswith(f"Python {version}")
    assert sys.version_info >= (3, 11)
