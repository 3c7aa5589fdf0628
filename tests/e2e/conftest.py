"""Fixtures for ferrocgi's end-to-end tests.

Fixtures (all processes are stopped at teardown, by pid, whatever the outcome):

- ``rundir`` (module): a fresh 0755 directory for the test module, under a 0755 session dir
  (``$FERROCGI_E2E_TMP`` or /tmp). Kept after the run when ``FERROCGI_E2E_KEEP=1``.
- ``free_port()``: a free 127.0.0.1 port.
- ``backend(protocol="fcgi", transport="tcp", **flags) -> Backend``: starts the echo example
  (``transport`` is ``"tcp"`` or ``"unix"``; flags: ``app``, ``ajp_lighttpd_compat``,
  ``ajp_max_packet``, ``multiplex``, ``log_level``, ``extra_args``).
- ``wsgi(app="wsgi:application", protocol="fcgi", transport="tcp", **flags) -> Backend``:
  ferrocgi itself serving a WSGI app from ``tests/apps`` (flags: ``threads``, ``script_name``,
  ``debug``, ``max_body``, ``spool_threshold``, ``ajp_lighttpd_compat``, ``log_level``,
  ``pythonpath``, ``env``).
- ``nginx(backend)``, ``apache(backend)``, ``lighttpd(backend) -> Frontend``: private
  foreground instances of each web server in front of ``backend``.

When a test fails, the stderr and error logs of every process still running are attached to
its report. A missing backend binary makes the test *error*, never skip: CI builds it first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import fixtures, harness
from support.harness import Backend, Frontend

# Shared with the other suite (tests/support/fixtures.py); pytest collects them from here.
session_dir = fixtures.session_dir_fixture("ferrocgi-e2e-")
rundir = fixtures.rundir
pytest_runtest_makereport = fixtures.pytest_runtest_makereport


@pytest.fixture
def free_port() -> Callable[[], int]:
    return harness.free_port


def _start(stack: contextlib.ExitStack, cm: contextlib.AbstractContextManager[Any]) -> Any:
    try:
        return stack.enter_context(cm)
    except RuntimeError as exc:
        problem = str(exc)
    # Setup problems (binary missing, server refused its config) fail the test, never skip it.
    pytest.fail(problem, pytrace=False)


@pytest.fixture
def backend(rundir: Path) -> Iterator[Callable[..., Backend]]:
    with contextlib.ExitStack() as stack:

        def start(protocol: str = "fcgi", transport: str = "tcp", **flags: Any) -> Backend:
            return _start(stack, harness.start_backend(rundir, protocol, transport, **flags))

        yield start


@pytest.fixture
def wsgi(rundir: Path) -> Iterator[Callable[..., Backend]]:
    """``wsgi(app="wsgi:application", protocol="fcgi", transport="tcp", **flags)``: ferrocgi
    serving a WSGI app from ``tests/apps`` (flags: see ``harness.start_wsgi``)."""
    with contextlib.ExitStack() as stack:

        def start(
            app: str = "wsgi:application",
            protocol: str = "fcgi",
            transport: str = "tcp",
            **flags: Any,
        ) -> Backend:
            return _start(stack, harness.start_wsgi(rundir, app, protocol, transport, **flags))

        yield start


def _frontend_fixture(starter: Callable[..., Any]) -> Any:
    @pytest.fixture
    def fixture(rundir: Path) -> Iterator[Callable[..., Frontend]]:
        with contextlib.ExitStack() as stack:

            def start(backend: Backend, port: int | None = None) -> Frontend:
                return _start(stack, starter(rundir, backend, port))

            yield start

    return fixture


nginx = _frontend_fixture(harness.start_nginx)
apache = _frontend_fixture(harness.start_apache)
lighttpd = _frontend_fixture(harness.start_lighttpd)
