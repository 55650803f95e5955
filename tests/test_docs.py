"""The documentation site's generated parts and its offline link check; the README stays short."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tskit_docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_reference_has_every_command_and_option() -> None:
    from tskit.cli import build_parser

    reference = hooks().cli_reference()
    commands = hooks()._subcommands(build_parser())
    assert {"list", "register", "audit", "listen", "plan", "apply", "rotate"} <= set(commands)
    for name, (_, parser) in commands.items():
        assert f"### `tskit {name}`" in reference
        for action in parser._actions:
            for flag in action.option_strings:
                if action.help != "==SUPPRESS==":
                    assert flag in reference, (name, flag)


def test_the_error_table_has_every_error_with_its_attributes() -> None:
    table = hooks().error_table()
    for name in ("tskit.ValidationError", "tskit.ApiError", "tskit.RequestTimeout", "tskit.listener.StoreFailed"):
        assert f"| `{name}` |" in table
    [api_row] = [line for line in table.splitlines() if line.startswith("| `tskit.ApiError` |")]
    assert "`status_code`, `error_code`" in api_row


def test_the_error_table_lists_public_errors_only_and_a_throttle_under_both_its_kinds() -> None:
    table = hooks().error_table()
    listed = [line.split("|")[1].strip().strip("`") for line in table.splitlines() if line.startswith("| `")]
    for private in ("_Stopped", "auth.flow.Closed", "TakenOver", "DamagedRecord", "TooLarge", "auth.leader"):
        assert not any(private in name for name in listed), private
    assert all(not part.startswith("_") for name in listed for part in name.split("."))
    rows = table.splitlines()
    at = [i for i, line in enumerate(rows) if line.startswith("| `tskit.LoginThrottled` |")]
    assert len(at) == 2  # right under each of its two kinds
    assert [rows[i - 1].split("|")[1].strip() for i in at] == ["`tskit.AuthenticationError`", "`tskit.RateLimitError`"]
    assert "`tskit.AuthenticationError`, `tskit.RateLimitError`" in rows[at[0]]


def test_the_link_check_finds_missing_pages_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "index.html").write_text(
        '<h2 id="here">x</h2><a href="a/">ok</a><a href="#here">ok</a><a href="#gone">bad</a>'
        '<a href="https://example.com/x">elsewhere</a><a href="b/">bad</a>'
    )
    (tmp_path / "a" / "index.html").write_text('<a href="../index.html#here">ok</a><a href="../#nope">bad</a>')
    broken = hooks().broken_links(tmp_path)
    assert len(broken) == 3
    assert any("#gone" in b for b in broken) and any("b/" in b for b in broken) and any("#nope" in b for b in broken)


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:\n", 1)[1]  # the last section of the file
    listed = set(re.findall(r"[\w/-]+\.(?:md|ipynb)", nav))
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    notebooks = {f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert pages | notebooks == listed


def test_the_readme_is_short_and_its_links_lead_somewhere() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "bash .ci/demo" in readme and "bash .ci/run" in readme
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not target.startswith("https://"):
            assert (ROOT / target).exists(), target
