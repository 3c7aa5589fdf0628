"""The console script as a user runs it: its command line (``ferrocgi``, ``python_m``), run
to its end (``run``) or serving (``serving``) with none of the test runner's ``FERROCGI_*``
option defaults, a user's project directory (``project``), and one raw FastCGI request to see
the environ the application got (``fcgi_env``, ``environ_via``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from support import harness, wire

APP_SOURCE = harness.APPS / "wsgi.py"


def project(rundir: Path, name: str = "project") -> Path:
    """A directory holding ``app.py`` (a copy of the suite's WSGI app), as a user's would."""
    d = harness.instance_dir(rundir, name)
    shutil.copy(APP_SOURCE, d / "app.py")
    (d / "app.py").chmod(0o644)
    return d


def clean_env() -> dict[str, str]:
    # FERROCGI_<NAME> variables are option defaults: none of the test runner's may leak in.
    return {k: v for k, v in os.environ.items() if not k.startswith("FERROCGI_")}


def ferrocgi(*args: str) -> list[str]:
    return [str(harness.ferrocgi_command()), *args]


def python_m(*args: str) -> list[str]:
    return [sys.executable, "-m", "ferrocgi", *args]


def run(
    argv: Sequence[str], timeout: float = 30, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``argv`` to its end in the test runner's environment less FERROCGI_*, in ``cwd``."""
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        check=False,
        cwd=cwd,
    )


@contextlib.contextmanager
def serving(rundir: Path, argv: Sequence[str], address: tuple[str, int] | str) -> Iterator[Any]:
    d = harness.instance_dir(rundir, "cli")
    with harness.spawn("ferrocgi", argv, d, env=clean_env()) as proc:
        harness.wait_until("the socket to accept", proc, lambda: harness.can_connect(address))
        yield proc


def fcgi_env(address: tuple[str, int] | str, path: str = "/env/x", query: str = "") -> Any:
    """One raw FastCGI request; returns the CGI response."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(address)
        params = wire.cgi_params(path="/app" + path, query=query)
        s.sendall(wire.fcgi_request(params))
        return wire.read_fcgi_response(s).cgi()


def environ_via(address: tuple[str, int] | str, path: str = "/env/x") -> dict[str, Any]:
    reply = fcgi_env(address, path)
    assert reply.status == 200, (reply.status, reply.body[:2000])
    data: dict[str, Any] = json.loads(reply.body)
    return data
