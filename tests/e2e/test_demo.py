"""The demo (issue 14, item 16): its home page says what serves it and links to the admin and
(issue 16, item 5) to ferrocgi's status page.

``scripts/demo.sh`` is run as the README shows it (with ``PORT=``), and its page fetched through
the nginx it starts. The values on the page come from ``environ["ferrocgi.server"]``, which
ferrocgi fills from its options; a second test serves the same Django project with other
options (SCGI, prefork) and checks the page follows them.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import sys
from pathlib import Path

import pytest

from support import harness, wire

ROOT = harness.ROOT
MYSITE = ROOT / "tests" / "recipes" / "mysite"
#: The demo starts ``runfcgi method=threaded`` without ``threads=``: the default (``ferrocgi
#: help``: threads "threaded: maxchildren if set, else 16").
DEFAULT_THREADED_THREADS = 16


def ferrocgi_version() -> str:
    import ferrocgi

    return str(ferrocgi.__version__)


def wait_for_text(proc: harness.Proc, path: Path, pattern: str, timeout: float) -> re.Match[str]:
    found: list[re.Match[str]] = []

    def check() -> bool:
        m = re.search(pattern, path.read_text(errors="replace"))
        if m:
            found.append(m)
        return m is not None

    harness.wait_until(repr(pattern), proc, check, timeout=timeout)
    return found[0]


def http_get(port: int, path: str) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection(harness.LOOPBACK, port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Location") or "", resp.read().decode()
    finally:
        conn.close()


def test_demo_home_page_says_what_serves_it(rundir: Path) -> None:
    """``PORT=N scripts/demo.sh``: the home page, through nginx, names the protocol, the
    process model, the workers and ferrocgi's version, and links to the admin."""
    wheel = os.environ.get("FERROCGI_WHEEL")
    if not wheel:
        pytest.fail("FERROCGI_WHEEL is not set: run the suite with scripts/test.sh", pytrace=False)
    d = harness.make_dir(rundir / "demo")
    port = harness.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERROCGI_")}
    # Its own venv beside the suite's (made once, then reused): demo.sh installs the wheel
    # into it, and makes it with the system python3 and the pinned Django whatever the suite's.
    env.update(PORT=str(port), FERROCGI_WHEEL=wheel, FERROCGI_VENV=f"{sys.prefix}-demo")
    with harness.spawn("demo", ["bash", str(ROOT / "scripts" / "demo.sh")], d, env=env) as proc:
        out = d / "demo.stdout"
        up = wait_for_text(proc, out, r"ferrocgi demo is up: (http://\S+)", timeout=600)
        assert up.group(1) == f"http://127.0.0.1:{port}/"
        site_pid = int(wait_for_text(proc, out, r"runfcgi .* \(pid (\d+)\)", timeout=5).group(1))

        status, _, page = http_get(port, "/")
        assert status == 200, page
        assert f"The demo site is served by ferrocgi {ferrocgi_version()}</h1>" in page, page
        assert '<b id="protocol">FastCGI</b>' in page, page
        assert '<b id="method">threaded</b>' in page, page
        workers = f"one process, {DEFAULT_THREADED_THREADS} Python threads"
        assert f'<b id="workers">{workers}</b>' in page, page
        assert f"(this page: pid {site_pid})" in page, page
        assert '<a id="admin" href="/admin/">' in page, page
        status, location, _ = http_get(port, "/admin/")
        assert (status, location) == (302, "/admin/login/?next=/admin/")
        # Issue 16, item 5: the status page, linked from the home page, through nginx.
        assert '<a id="status" href="/status?html">' in page, page
        status, _, status_page = http_get(port, "/status?html")
        assert status == 200 and "<table id=workers>" in status_page, status_page
        assert status_page.count("<tr><td>") == DEFAULT_THREADED_THREADS, status_page
        proc.stop()
    assert proc.popen.returncode == 143, proc.dump()
    assert "stopped nginx and the Django site" in out.read_text()


def test_home_page_follows_the_options_prefork_scgi(rundir: Path) -> None:
    """The same project under ``method=prefork maxchildren=3 threads=2 protocol=scgi``."""
    project = rundir / "mysite-prefork"
    shutil.copytree(MYSITE, project, ignore=shutil.ignore_patterns("__pycache__"))
    extra = {"method": "prefork", "maxchildren": "3", "minspare": "1", "maxspare": "2"}
    with harness.start_wsgi(
        rundir,
        "mysite.wsgi:application",
        "scgi",
        threads=2,
        pythonpath=project,
        env={"MYSITE_NAME": "prefork site"},
        extra=extra,
    ) as backend:
        params = [(k, v) for k, v in wire.cgi_params(path="/") if k != "CONTENT_LENGTH"]
        params = [(k, "" if k == "SCRIPT_NAME" else v) for k, v in params]
        with socket.create_connection(backend.address, timeout=30) as s:
            s.sendall(wire.scgi_request(params))
            reply = wire.parse_cgi(wire.recv_all(s))
        page = reply.body.decode()
        assert reply.status == 200, (reply.status, page[:2000])
        assert f"prefork site is served by ferrocgi {ferrocgi_version()}</h1>" in page, page
        assert '<b id="protocol">SCGI</b>' in page, page
        assert '<b id="method">prefork</b>' in page, page
        workers = "up to 3 worker processes, 2 Python threads each"
        assert f'<b id="workers">{workers}</b>' in page, page
        pid = int(re.search(r"this page: pid (\d+)", page).group(1))  # type: ignore[union-attr]
        assert pid != backend.proc.pid, "prefork: a worker, not the supervisor, answers"
