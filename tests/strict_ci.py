"""Under CI a skip is a failure: CI must have everything the tests need.

A developer's machine may lack ../shared/data or Chromium, and the tests that
need them say so and skip. On CI (`CI=true`, as most CI systems set it) the
same skip would let a suite pass without running what it promises, so each
skipped test is reported as failed, with the skip's own reason. Expected
failures (xfail) are not skips and stay as they are.
"""

from __future__ import annotations

import os

import pytest

TRUE_VALUES = ("1", "true", "yes")


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in TRUE_VALUES


def _failed_skip(report) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, where nothing may be missing: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and under_ci():
        _failed_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and under_ci():  # a module-level pytest.skip(allow_module_level=True)
        _failed_skip(report)
