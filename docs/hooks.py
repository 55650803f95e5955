"""MkDocs hooks of tskit's documentation site (``hooks:`` in mkdocs.yml).

- the notebooks of ``notebooks/`` become pages (mkdocs-jupyter renders them as committed);
- the CLI reference is generated from ``tskit.cli.build_parser``, the error table from the error
  classes and the table of reasons from ``tskit.Reason``, ``tskit.FileReason`` and the remedies, so
  none can drift from the code;
- once built, every link between the site's pages, and every anchor, is checked offline (no
  network): a broken one fails the build.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import os
import pkgutil
import posixpath
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[1]
CLI_MARKER = "<!-- tskit: cli reference -->"
ERRORS_MARKER = "<!-- tskit: error table -->"
REASONS_MARKER = "<!-- tskit: reasons table -->"
#: The width the CLI's help is wrapped at on the page, whatever the terminal that builds the site.
HELP_COLUMNS = "100"


# -- the notebooks ---------------------------------------------------------------------------


@event_priority(100)  # before mkdocs-jupyter's own on_files turns .ipynb files into pages
def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add ``notebooks/*.ipynb`` (outside ``docs/``) as ``notebooks/<name>.ipynb`` pages."""
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        files.append(
            File(
                f"notebooks/{notebook.name}",
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files


# -- generated reference pages ---------------------------------------------------------------


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Fill the generated parts of the reference pages."""
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if ERRORS_MARKER in markdown:
        markdown = markdown.replace(ERRORS_MARKER, error_table())
    if REASONS_MARKER in markdown:
        markdown = markdown.replace(REASONS_MARKER, reasons_table())
    return markdown


@contextlib.contextmanager
def _columns(width: str) -> Iterator[None]:
    """Make argparse wrap its help at ``width`` columns (it reads ``COLUMNS``)."""
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = width
    try:
        yield
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """Each command's name, its one-line help and its parser, in the order the parser lists them."""
    found: dict[str, tuple[str, argparse.ArgumentParser]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                found[name] = (helps.get(name, ""), sub)
    return found


def cli_reference() -> str:
    """The ``tskit`` command's help and every command's, as Markdown."""
    from tskit.cli import build_parser

    with _columns(HELP_COLUMNS):
        parser = build_parser()
        parts = ["### `tskit`", "", "```text", parser.format_help().rstrip(), "```", ""]
        for name, (summary, sub) in _subcommands(parser).items():
            parts += [f"### `tskit {name}`", "", summary.rstrip(".") + "." if summary else "", ""]
            parts += ["```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def _public_modules() -> list[Any]:
    """``tskit`` and its public packages: what a user imports errors from."""
    import tskit

    modules = [tskit]
    for info in pkgutil.walk_packages(tskit.__path__, "tskit."):
        if info.ispkg and not any(p.startswith("_") for p in info.name.split(".")):
            modules.append(importlib.import_module(info.name))
    return modules


def _exports(module: Any) -> list[str]:
    """The names a module exports: its ``__all__``, or its names without a leading underscore."""
    names = getattr(module, "__all__", None)
    return list(names) if names is not None else [n for n in dir(module) if not n.startswith("_")]


def _public_name(cls: type, modules: list[Any]) -> str:
    """The shortest public import path of ``cls`` (``tskit.ValidationError``), or ``""``."""
    names = [
        f"{m.__name__}.{cls.__name__}"
        for m in modules
        if cls.__name__ in _exports(m) and getattr(m, cls.__name__, None) is cls
    ]
    return min(names, key=lambda n: (n.count("."), n)) if names else ""


def _attributes(cls: type) -> list[str]:
    """The names listed under ``Attributes:`` in a Google-style docstring."""
    lines = inspect.getdoc(cls) or ""
    names: list[str] = []
    inside = False
    for line in lines.splitlines():
        if line.strip() == "Attributes:":
            inside = True
            continue
        if inside:
            if line and not line.startswith(" "):
                break
            head = line.strip().split(":", 1)
            if (
                len(head) == 2
                and line.startswith("    ")
                and not line.startswith("        ")
                and head[0].isidentifier()
            ):
                names.append(head[0])
    return names


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def error_table() -> str:
    """Every public exception class of tskit: what it is a kind of, what it means, its attributes.

    A class listed is exported by ``tskit`` or one of its public packages. One with two public
    parents (``LoginThrottled``) is listed under each.
    """
    from tskit import ThingSpaceError

    modules = _public_modules()
    names: dict[type, str] = {}
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__.startswith("tskit"):
                name = _public_name(cls, modules)
                if name:
                    names[cls] = name

    def parents(cls: type) -> list[type]:
        return [base for base in cls.__bases__ if base in names]

    def row(cls: type) -> str:
        kinds = [names.get(b, b.__name__) for b in cls.__bases__]
        meaning = (inspect.getdoc(cls) or "").split("\n\n", 1)[0]
        attributes = ", ".join(f"`{a}`" for a in _attributes(cls))
        return f"| `{names[cls]}` | {', '.join(f'`{k}`' for k in kinds)} | {_cell(meaning)} | {attributes} |"

    def tree(cls: type) -> list[str]:
        children = sorted((c for c in names if cls in parents(c)), key=lambda c: names[c])
        return [row(cls), *(line for child in children for line in tree(child))]

    header = ["| error | a kind of | meaning | attributes |", "|---|---|---|---|"]
    roots = sorted((c for c in names if not parents(c)), key=lambda c: names[c])
    ours = [line for root in roots if issubclass(root, ThingSpaceError) for line in tree(root)]
    others = [line for root in roots if not issubclass(root, ThingSpaceError) for line in tree(root)]
    lines = ["### ThingSpaceError and its kinds", "", *header, *ours, ""]
    lines += ["### Other errors and warnings", "", *header, *others, ""]
    return "\n".join(lines)


def reasons_table() -> str:
    """Every reason an error can carry, with what to do; then every remedy action."""
    from tskit import FileReason, Reason
    from tskit._reasons import ACTIONS, WHAT_TO_DO

    def rows(enum: type[Reason] | type[FileReason]) -> list[str]:
        return [
            f"| `{member.value}` | `{enum.__name__}.{member.name}` | {_cell(WHAT_TO_DO[member])} |" for member in enum
        ]

    header = ["| reason | member | what to do |", "|---|---|---|"]
    lines = ["### Reasons (`error.reason`)", "", *header, *rows(Reason), ""]
    lines += ["### File reasons (`FileError.reason`, `JournalError.reason`)", "", *header, *rows(FileReason), ""]
    lines += ["### Remedies (`error.remedy.action`)", "", "| action | means |", "|---|---|"]
    lines += [f"| `{action}` | {_cell(means)} |" for action, means in ACTIONS.items()]
    return "\n".join([*lines, ""])


# -- links, checked offline once the site is built -------------------------------------------


class _Links(HTMLParser):
    """The ids of one HTML page and the links it makes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for key in ("id", "name"):
            if found.get(key):
                self.ids.add(str(found[key]))
        wanted = {"a": "href", "img": "src", "link": "href", "script": "src", "iframe": "src"}.get(tag)
        if wanted and found.get(wanted):
            self.links.append(str(found[wanted]))


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def broken_links(site: Path) -> list[str]:
    """Every link between the built pages that leads nowhere: a missing file or a missing anchor."""
    pages = {p.relative_to(site).as_posix(): _parse(p) for p in site.rglob("*.html")}
    broken = []
    for page, parsed in sorted(pages.items()):
        for link in parsed.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue  # another site: not checked (no network here)
            if not parts.path:
                target = page
            elif parts.path.startswith("/"):  # from the site's root (the 404 page's links)
                target = unquote(parts.path).lstrip("/") or "index.html"
                if (site / target).is_dir() or parts.path.endswith("/"):
                    target = posixpath.normpath(posixpath.join(target, "index.html"))
            else:
                target = posixpath.normpath(posixpath.join(posixpath.dirname(page), unquote(parts.path)))
                if (site / target).is_dir() or parts.path.endswith("/"):
                    target = posixpath.normpath(posixpath.join(target, "index.html"))
            if target.startswith("..") or not (site / target).is_file():
                broken.append(f"{page}: {link} (no file {target})")
                continue
            anchor = unquote(parts.fragment)
            if anchor and target.endswith(".html") and anchor not in pages[target].ids:
                broken.append(f"{page}: {link} (no anchor #{anchor} in {target})")
    return broken


def on_post_build(config: MkDocsConfig) -> None:
    """Fail the build on a broken link or anchor between the site's pages."""
    broken = broken_links(Path(config["site_dir"]))
    if broken:
        raise PluginError("broken links in the site:\n  " + "\n  ".join(broken))
