"""The fixtures and report hook both suites share; each suite's ``conftest.py`` imports them
by name (pytest collects fixtures and hooks from a conftest's namespace).

- ``session_dir`` (session): ``session_dir_fixture(PREFIX)`` makes it, one per suite: a 0755
  directory (``$FERROCGI_E2E_TMP`` or /tmp), removed at the end unless ``FERROCGI_E2E_KEEP=1``.

- ``rundir`` (module): a fresh 0755 directory for the test module under ``session_dir``.
- ``pytest_runtest_makereport``: when a test fails, the logs of every process still running
  (``harness.LIVE``) are attached to its report.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import harness


def session_dir_fixture(prefix: str) -> Any:
    """The ``session_dir`` fixture of a suite whose run directories start with ``prefix``."""

    @pytest.fixture(scope="session", name="session_dir")
    def fixture() -> Iterator[Path]:
        with harness.session_tmpdir(prefix) as path:
            yield path

    return fixture


@pytest.fixture(scope="module")
def rundir(session_dir: Path, request: pytest.FixtureRequest) -> Path:
    name = request.module.__name__.rpartition(".")[2]
    return harness.make_dir(session_dir / name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        for proc in harness.LIVE:
            report.sections.append((f"{proc.name} (pid {proc.pid}) logs", proc.dump()))
    return report
