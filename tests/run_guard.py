"""A pytest plugin that fails a test step which ran nothing, or skipped more than it may.

A step of ``.ci/run`` that collects tests but skips them all still exits 0 in plain pytest, so a
broken skip condition (a missing browser, a missing package) would turn the suite green without
testing anything. Load this plugin with ``-p tests.run_guard`` and set the allowance:

    pytest -p tests.run_guard --max-skipped 0 tests/browser -m browser

The step then fails (exit code 1) when no test passed, or when more tests were skipped than
``--max-skipped`` allows; the reasons of the skips are printed.

Under pytest-xdist (``-n``) the controller judges the whole run from every worker's reports; a
worker, which sees only its share, judges nothing.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("run guard")
    group.addoption(
        "--max-skipped",
        type=int,
        default=None,
        help="fail the run when more than this many tests are skipped, or when no test passed",
    )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    allowed = session.config.getoption("--max-skipped")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if allowed is None or reporter is None or hasattr(session.config, "workerinput"):
        return
    passed = [r for r in reporter.stats.get("passed", []) if getattr(r, "when", "call") == "call"]
    skipped = reporter.stats.get("skipped", [])
    problems = []
    if not passed:
        problems.append("no test passed: this step tested nothing")
    if len(skipped) > allowed:
        problems.append(f"{len(skipped)} tests were skipped, at most {allowed} may be")
    if not problems:
        return
    lines = ["run guard: " + "; ".join(problems)]
    for report in skipped[:20]:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        lines.append(f"  skipped {report.nodeid}: {reason}")
    reporter.write_line("\n".join(lines), red=True, bold=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
