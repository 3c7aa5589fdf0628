"""Where ferrocgi listens: Unix socket modes, ``allow_from``, systemd socket activation,
``fd=``, the CGI fallback, and a socket passed as fd 0 by lighttpd's ``bin-path``.

How servers are started, found and cleaned up: ``tests/support/proc_server.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from support import harness, procfs, wire
from support.harness import LOOPBACK
from support.proc_server import (
    APP,
    FERROCGI,
    PYTHON,
    clean_env,
    fcgi_exchange,
    fcgi_json,
    ferrocgi,
    get_json,
    http_get,
    kill_tagged,
    listening_socket,
    make_app,
)
from support.procfs import alive, eventually


@pytest.mark.parametrize(
    ("words", "mode"),
    [(["umask=002"], 0o775), (["socket_mode=660"], 0o660), ([], 0o755)],
    ids=["umask-002", "socket_mode-660", "default"],
)
def test_unix_socket_mode(rundir: Path, words: list[str], mode: int) -> None:
    with ferrocgi(rundir, ["method=threaded", *words], transport="unix", world_socket=False) as srv:
        st = os.stat(srv.backend.path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == mode, f"{oct(stat.S_IMODE(st.st_mode))} != {oct(mode)}"


@pytest.mark.parametrize("how", ["option", "environment"])
def test_allow_from(rundir: Path, how: str) -> None:
    """Only 127.0.0.1 may connect: 127.0.0.2 is closed without an answer (and logged)."""
    words = ["method=threaded", "host=0.0.0.0"]
    env = None
    if how == "option":
        words.append("allow_from=127.0.0.1")
    else:
        env = {"FCGI_WEB_SERVER_ADDRS": "127.0.0.1"}
    with ferrocgi(rundir, words, env=env) as srv:
        assert fcgi_json(srv.address)["version"] == "1"
        since = srv.mark()
        out = fcgi_exchange(srv.address, source="127.0.0.2")
        assert out == b"", f"127.0.0.2 got an answer: {out[:200]!r}"
        srv.wait_log(r"refused connection from 127\.0\.0\.2", since)
        assert fcgi_json(srv.address)["version"] == "1"


SYSTEMD_EXEC = """\
import os, sys
fd = int(sys.argv[1])
os.dup2(fd, 3)
os.close(fd)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
os.execv(sys.argv[2], sys.argv[2:])
"""


@pytest.mark.parametrize("method", ["threaded", "prefork"])
def test_systemd_socket_activation(rundir: Path, method: str) -> None:
    """A listening socket as fd 3 with LISTEN_FDS=1 and LISTEN_PID=<its pid>: served."""
    with listening_socket() as s:
        address = s.getsockname()
        fd = s.fileno()
        # What systemd does: the socket as fd 3, LISTEN_PID naming the exec'd process itself.
        wrapper = [PYTHON, "-c", SYSTEMD_EXEC, str(fd)]
        with ferrocgi(
            rundir,
            [f"method={method}"],
            transport="none",
            address=address,
            pass_fds=[fd],
            wrapper=wrapper,
        ) as srv:
            s.close()
            data = fcgi_json(srv.address)
            assert data["version"] == "1"
            srv.wait_log("serving the socket passed by systemd")


@pytest.mark.parametrize("method", ["threaded", "prefork"])
def test_fd_option(rundir: Path, method: str) -> None:
    with listening_socket() as s:
        address = s.getsockname()
        with ferrocgi(
            rundir,
            [f"method={method}", f"fd={s.fileno()}"],
            transport="none",
            address=address,
            pass_fds=[s.fileno()],
        ) as srv:
            s.close()
            assert fcgi_json(srv.address)["version"] == "1"


def test_cgi_fallback(rundir: Path) -> None:
    """No address and fd 0 a pipe: one request as plain CGI on stdout, exit 0."""
    d = harness.instance_dir(rundir, "cgi")
    app = make_app(d)
    body = b"x" * 12345
    env = clean_env(
        uuid.uuid4().hex,
        {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "REMOTE_ADDR": "127.0.0.1",
            "REQUEST_METHOD": "POST",
            "SCRIPT_NAME": "/app.fcgi",
            "PATH_INFO": "/echo",
            "QUERY_STRING": "a=1&b=2",
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/octet-stream",
        },
    )
    done = subprocess.run(
        [FERROCGI, APP, f"pythonpath={app}"],
        input=body,
        capture_output=True,
        env=env,
        cwd=d,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout.startswith(b"Status: 200 OK\r\n"), done.stdout[:200]
    cgi = wire.parse_cgi(done.stdout)
    assert cgi.status == 200
    assert ("Content-Type", "application/json") in cgi.headers, cgi.headers
    data = json.loads(cgi.body)
    assert data["length"] == len(body)
    assert data["method"] == "POST" and data["query"] == "a=1&b=2"


LIGHTTPD_SPAWN = """\
server.modules = ( "mod_fastcgi" )
server.document-root = "{run}/htdocs"
server.bind = "127.0.0.1"
server.port = {port}
server.pid-file = "{run}/lighttpd.pid"
server.errorlog = "{run}/error.log"
server.upload-dirs = ( "{run}/tmp" )
fastcgi.debug = 1
fastcgi.server = ( "/app" => ((
    "socket" => "{run}/spawn.sock",
    "bin-path" => "{script}",
    "max-procs" => 1,
    "check-local" => "disable",
)) )
"""


SPAWN_SCRIPT = """\
#!{python}
import sys

from ferrocgi import _ferrocgi

sys.exit(_ferrocgi.main({words!r}, "cli"))
"""


@pytest.mark.parametrize("method", ["threaded", "prefork"])
def test_spawned_by_lighttpd_and_restarted_on_touch(rundir: Path, method: str) -> None:
    """lighttpd ``bin-path`` starts the script with its socket as fd 0; after the code changes
    and the script is touched, the process exits gracefully and the new code is served."""
    d = harness.instance_dir(rundir, f"lighttpd-spawn-{method}")
    for sub in ("htdocs", "tmp"):
        harness.make_dir(d / sub)
    app = make_app(d)
    tag = uuid.uuid4().hex
    script = d / "app.fcgi"
    words = [APP, f"pythonpath={app}", f"method={method}", "log_level=debug", "minspare=1"]
    if method == "threaded":
        words.remove("minspare=1")
    script.write_text(SPAWN_SCRIPT.format(python=PYTHON, words=words))
    script.chmod(0o755)
    port = harness.free_port()
    conf = d / "lighttpd.conf"
    conf.write_text(LIGHTTPD_SPAWN.format(run=d, port=port, script=script))
    err = d / "error.log"
    try:
        argv = [shutil.which("lighttpd") or "/usr/sbin/lighttpd", "-D", "-f", str(conf)]
        with harness.spawn("lighttpd", argv, d, logs=[err], env=clean_env(tag)) as proc:
            harness.wait_until(
                "lighttpd to accept", proc, lambda: harness.can_connect((LOOPBACK, port))
            )
            first = get_json(port, "/app/info")
            assert first["version"] == "1"
            spawned = first["pid"] if method == "threaded" else first["ppid"]
            assert procfs.stat(spawned) is not None and procfs.stat(spawned)[1] == proc.pid  # type: ignore[index]
            (app / "version.txt").write_text("2\n")
            time.sleep(1.1)  # a new mtime, whatever the file system's granularity
            # A slow request in flight when the script changes must still complete.
            slow: list[object] = []
            t = threading.Thread(
                target=lambda: slow.append(http_get(port, "/app/info?sleep=2", timeout=30))
            )
            t.start()
            time.sleep(0.5)
            script.touch()
            eventually("the spawned process to exit", lambda: not alive(spawned), 15, fail=False)
            exited = not alive(spawned)
            t.join(30)
            statuses: list[object] = []
            t0 = time.monotonic()
            got: dict[str, Any] | None = None
            while time.monotonic() < t0 + 20:
                try:
                    status, body = http_get(port, "/app/info", timeout=10)
                except OSError as exc:
                    statuses.append(repr(exc))
                    continue
                statuses.append(status)
                if status == 200 and json.loads(body)["version"] == "2":
                    got = json.loads(body)
                    break
                time.sleep(0.2)
            took = time.monotonic() - t0
            log = harness.tail(err)
            assert slow and slow[0][0] == 200, f"the request in flight: {slow}"  # type: ignore[index]
            assert json.loads(slow[0][1])["version"] == "1"  # type: ignore[index]
            assert exited, f"the spawned process {spawned} did not exit after touch\n{log}"
            assert "child exited: 0" in log, log
            assert got is not None, f"new code never served; statuses {statuses[-10:]}\n{log}"
            # lighttpd notices the exit in its once-a-second maintenance; a request arriving
            # before that finds the socket closed, disables the backend (1 s) and gets a 503.
            # That window is lighttpd's; it must stay short.
            assert took < 5, f"{took:.1f}s to serve the new code: {statuses}\n{log}"
            assert all(s in (200, 503) for s in statuses), statuses
    finally:
        kill_tagged(tag)
