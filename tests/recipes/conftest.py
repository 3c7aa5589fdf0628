"""Fixtures for the recipes (tests/recipes): the Django project in tests/recipes/mysite,
deployed behind real web servers exactly as the docs (docs/*.md) describe.

- ``rundir`` (module): a fresh 0755 directory per test module (``FERROCGI_E2E_KEEP=1`` keeps
  the session dir).
- ``template`` (session): the recipes' project, migrated, static collected, superuser
  ``admin``/``admin``; recipes copy it with ``kit.install_project``.

Processes are started by ``tests/e2e/harness.py`` (web servers) and ``kit.runfcgi`` (Django),
and stopped at teardown by pid, pidfile and tag, whatever the outcome.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import kit  # noqa: E402

import harness  # noqa: E402


@pytest.fixture(scope="session")
def recipes_session_dir() -> Iterator[Path]:
    with harness.session_tmpdir("ferrocgi-recipes-") as path:
        yield path


@pytest.fixture(scope="module")
def rundir(recipes_session_dir: Path, request: pytest.FixtureRequest) -> Path:
    name = request.module.__name__.rpartition(".")[2]
    return harness.make_dir(recipes_session_dir / name)


@pytest.fixture(scope="session")
def template(recipes_session_dir: Path) -> kit.Project:
    return kit.prepare_template(recipes_session_dir / "template" / "myproject")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        for proc in harness.LIVE:
            report.sections.append((f"{proc.name} (pid {proc.pid}) logs", proc.dump()))
    return report
