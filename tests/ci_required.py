"""Under CI=true, a test that skips because PostgreSQL, the platform specs, the browser or the
Japanese font is missing FAILS instead: .ci/run installs and starts all of them, so such a
skip means CI is not testing what it claims, and a green run would hide it.

Outside CI (a laptop without PostgreSQL) the same tests still skip and say why. Skips for
optional extras (the alternative embedding models) stay skips everywhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator

import pytest

# What .ci/run provides; a skip whose reason names one of these is a failure under CI.
REQUIRED_IN_CI = re.compile(
    r"postgres|platform spec|playwright|chromium|japanese font", re.IGNORECASE
)


def in_ci(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get("CI", "").strip().lower() == "true"


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not (in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return report
    reason = _reason(report)
    if item.get_closest_marker("postgres") is not None or REQUIRED_IN_CI.search(reason):
        report.outcome = "failed"
        report.longrepr = f"CI=true: this test must run in CI, it skipped instead: {reason}"
    return report
