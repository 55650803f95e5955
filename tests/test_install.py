"""What an install brings: the extras name themselves when missing, the sdist carries its tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _without(module: str, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where ``module`` cannot be imported."""
    blocker = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] == {module!r}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    return subprocess.run([sys.executable, "-c", blocker + code], capture_output=True, text=True)


@pytest.mark.parametrize("module", ["ipywidgets", "itables", "anywidget"])
def test_widgets_without_their_extra_name_it(module: str) -> None:
    done = _without(module, "import tskit.widgets")
    assert done.returncode == 1
    assert "pip install 'thingspace-tskit[widgets]'" in done.stderr
    assert "MissingExtraError" in done.stderr


def test_the_listener_without_its_extra_names_it(tmp_path: Path) -> None:
    code = f"import tskit; tskit.Listener(store={str(tmp_path / 'm.db')!r})"
    done = _without("uvicorn", code)
    assert done.returncode == 1 and "pip install 'thingspace-tskit[server]'" in done.stderr


def test_the_cli_names_the_extra_as_a_usage_error() -> None:
    done = _without("uvicorn", "import sys; from tskit.cli import main; sys.exit(main(['simulator']))")
    assert done.returncode == 2
    assert done.stderr.startswith("tskit simulator: ") and "thingspace-tskit[server]" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_client_works_without_the_extras() -> None:
    code = "import tskit; print(len(tskit.connect().list_callbacks('0000123456-00001')))"
    for module in ("uvicorn", "ipywidgets", "itables"):
        done = _without(module, code)
        assert (done.returncode, done.stdout) == (0, "2\n"), done.stderr


def test_core_dependencies_are_the_clients_only() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    for heavy in ("uvicorn", "httptools", "ipywidgets", "jupyter", "voila", "playwright", "mypy"):
        assert heavy not in core
    assert {"server", "widgets", "notebook", "dev"} <= set(project["optional-dependencies"])
    assert "Development Status :: 4 - Beta" in project["classifiers"]
    assert "Programming Language :: Python :: 3.11" in project["classifiers"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_the_sdist_carries_its_tests_with_their_conftest(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"from setuptools import build_meta; print(build_meta.build_sdist({str(tmp_path)!r}))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    with tarfile.open(tmp_path / done.stdout.strip().splitlines()[-1]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"LICENSE", "pyproject.toml", "tests/conftest.py", "tests/test_install.py", "tests/__init__.py"} <= names
    assert {"notebooks/quickstart.ipynb", "tskit/py.typed"} <= names
    assert not any("__pycache__" in name for name in names)
    # what the README's commands need: the demo, the test run and what they source or run
    assert {".ci/demo", ".ci/run", ".ci/setup.sh", ".ci/matrix", ".ci/find-python", ".ci/sdist"} <= names
    # the documentation site the README links to, buildable from the sdist
    assert {"mkdocs.yml", "docs/index.md", "docs/hooks.py", "voila.json", "binder/requirements.txt"} <= names
    assert not any(name.startswith((".ci/artifacts", ".venv", "site/")) for name in names)


def test_the_sdists_tests_run_from_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"from setuptools import build_meta; print(build_meta.build_sdist({str(tmp_path)!r}))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    with tarfile.open(tmp_path / done.stdout.strip().splitlines()[-1]) as sdist:
        sdist.extractall(tmp_path / "unpacked", filter="data")
    [root] = (tmp_path / "unpacked").iterdir()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *("-p", "no:nbval", "-p", "no:playwright", "-p", "no:base_url"),  # not needed: ~3 s of CPU less
            "tests/test_validate.py",
            "tests/test_frames.py",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "TSKIT_CONFIG_DIR": str(tmp_path / "config")},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "error" not in run.stdout.lower().split("passed")[-1]


def test_the_project_urls_name_source_issues_and_documentation() -> None:
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert {"Source", "Issues", "Documentation"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())


def test_the_classifiers_claim_only_the_pythons_ci_runs() -> None:
    """Each Python a classifier names runs the unit suite in .ci/run (its own .venv or .ci/matrix)."""
    classifiers = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["classifiers"]
    claimed = {c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Programming Language :: Python :: 3.")}
    matrix = (ROOT / ".ci" / "matrix").read_text()
    run = (ROOT / ".ci" / "run").read_text()
    tested = {"3.11"} | {v for v in ("3.11", "3.12", "3.13", "3.14") if f"version={v}" in matrix}
    assert claimed == tested and "bash .ci/matrix" in run
    assert 'pin="pandas~=2.2.0"' in matrix  # the lowest pandas pyproject declares
    assert "pandas>=2.2" in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def test_the_build_needs_a_setuptools_that_reads_the_license_fields() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "MIT" and meta["project"]["license-files"] == ["LICENSE"]
    # PEP 639's license expression and license-files: setuptools 77 is the first to read them
    [setuptools] = [r for r in meta["build-system"]["requires"] if r.startswith("setuptools")]
    assert setuptools == "setuptools>=77"


def test_the_readme_says_how_to_add_the_apps_to_the_demo_install() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e '.[notebook]'" in readme
    assert readme.index("pip install -e '.[notebook]'") < readme.index("voila notebooks/callback_manager.ipynb")
