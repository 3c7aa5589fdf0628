"""Fixtures for the recipes (tests/recipes): the Django project in tests/recipes/mysite,
deployed behind real web servers exactly as the docs (docs/*.md) describe.

- ``rundir`` (module): a fresh 0755 directory per test module (``FERROCGI_E2E_KEEP=1`` keeps
  the session dir).
- ``template`` (session): the recipes' project, migrated, static collected, superuser
  ``admin``/``admin``; recipes copy it with ``kit.install_project``.

Processes are started by ``tests/support/harness.py`` (web servers) and ``kit.runfcgi`` (Django),
and stopped at teardown by pid, pidfile and tag, whatever the outcome.
"""

from __future__ import annotations

from pathlib import Path

import kit
import pytest

from support import fixtures

# Shared with the other suite (tests/support/fixtures.py); pytest collects them from here.
session_dir = fixtures.session_dir_fixture("ferrocgi-recipes-")
rundir = fixtures.rundir
pytest_runtest_makereport = fixtures.pytest_runtest_makereport


@pytest.fixture(scope="session")
def template(session_dir: Path) -> kit.Project:
    return kit.prepare_template(session_dir / "template" / "myproject")
