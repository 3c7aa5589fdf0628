"""The systemd units docs/production.md shows, checked as systemd reads them and run as it would.

``systemd-analyze verify`` reads every shipped unit (the venv path in ExecStart pointed at this
suite's ferrocgi, the only change); then each service's ExecStart line runs as written, as its
User=, in its WorkingDirectory=, with what systemd would give it: RuntimeDirectory= made and
owned by the user, and for the socket-activated one the listening socket as fd 3 with
LISTEN_FDS=1 and LISTEN_PID. The production paths (/srv/mysite, /run/mysite) map to this
test's directories.
"""

from __future__ import annotations

import configparser
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from support import harness, wire

UNITS = harness.ROOT / "docs" / "systemd"
VENV_FERROCGI = "/srv/mysite/venv/bin/ferrocgi"
APP = "def application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'served by the unit']\n"  # noqa: E501

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root, as CI runs")


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_shipped_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    for f in UNITS.glob("ferrocgi*"):
        text = f.read_text().replace(VENV_FERROCGI, str(harness.ferrocgi_command()))
        (tmp_path / f.name).write_text(text)
    names = sorted(str(p) for p in tmp_path.iterdir())
    done = subprocess.run(["systemd-analyze", "verify", *names], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_socket_unit_starts_the_activated_service() -> None:
    """Without Service=, ferrocgi.socket would start ferrocgi.service (its own name)."""
    service = unit("ferrocgi.socket")["Socket"]["Service"]
    assert service == "ferrocgi-activated.service"
    assert (UNITS / service).is_file()
    assert unit(service)["Service"].get("RuntimeDirectory")


def project(rundir: Path) -> tuple[Path, Path]:
    """/srv/mysite (with mysite/wsgi.py) and /run, as this test's directories."""
    srv = harness.instance_dir(rundir, "srv")
    harness.make_dir(srv / "mysite")
    for name, text in [("__init__.py", ""), ("wsgi.py", APP)]:
        (srv / "mysite" / name).write_text(text)
        (srv / "mysite" / name).chmod(0o644)
    return srv, harness.instance_dir(rundir, "run")


def exec_start(name: str, srv: Path, run: Path) -> tuple[list[str], dict[str, str]]:
    """The unit's ExecStart as argv (production paths mapped), run as its User=; the
    RuntimeDirectory= it would get, made and owned by that user."""
    svc = unit(name)["Service"]
    line = svc["ExecStart"].replace(VENV_FERROCGI, str(harness.ferrocgi_command()))
    line = line.replace("/srv/mysite", str(srv)).replace("/run/", f"{run}/")
    user = pwd.getpwnam(svc["User"])
    if "RuntimeDirectory" in svc:
        runtime = harness.make_dir(run / svc["RuntimeDirectory"])
        os.chown(runtime, user.pw_uid, user.pw_gid)
    as_user = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": user.pw_dir}
    assert Path(svc["WorkingDirectory"]) == Path("/srv/mysite")
    return [*as_user, *shlex.split(line)], env


def fcgi_get(address: str) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(15)
        s.connect(address)
        s.sendall(wire.fcgi_request(wire.cgi_params(path="/")))
        return wire.read_fcgi_response(s).cgi().body


def test_the_service_unit_runs_as_written(rundir: Path) -> None:
    srv, run = project(rundir)
    argv, env = exec_start("ferrocgi.service", srv, run)
    sock = run / "mysite" / "mysite.sock"
    with harness.spawn("unit", argv, srv, env=env) as proc:
        harness.wait_until("the socket", proc, lambda: harness.can_connect(str(sock)))
        assert fcgi_get(str(sock)) == b"served by the unit"
        os.kill(proc.popen.pid, signal.SIGTERM)
        assert proc.popen.wait(timeout=15) == 0


def test_the_socket_activated_unit_runs_as_written(rundir: Path) -> None:
    srv, run = project(rundir)
    argv, env = exec_start("ferrocgi-activated.service", srv, run)
    sock_unit = unit("ferrocgi.socket")["Socket"]
    path = str(run / Path(sock_unit["ListenStream"]).name)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()
    owner = pwd.getpwnam(sock_unit["SocketUser"])
    os.chown(path, owner.pw_uid, owner.pw_gid)
    os.chmod(path, int(sock_unit["SocketMode"], 8))
    # fd 3, and LISTEN_PID naming the process that will run ferrocgi (exec keeps the pid).
    wrapper = ["sh", "-c", 'exec 3<&0 0</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"', "sh"]
    with listener, open(os.devnull, "rb"):
        popen = subprocess.Popen(
            [*wrapper, *argv], cwd=srv, env=env, stdin=listener.fileno(),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        try:
            assert fcgi_get(path) == b"served by the unit"
        finally:
            os.killpg(popen.pid, signal.SIGTERM)
            _, err = popen.communicate(timeout=15)
        assert popen.returncode == 0, err.decode(errors="replace")
        assert b"serving the socket passed by systemd" in err


@pytest.mark.parametrize("method", ["threaded", "prefork"])
def test_type_notify_ready_reloading_stopping(rundir: Path, method: str) -> None:
    """With NOTIFY_SOCKET (a datagram socket standing in for systemd's): READY=1 with a
    status once serving; RELOADING=1 then READY=1 around SIGHUP; STOPPING=1 on SIGTERM."""
    from support.proc_server import ferrocgi, prefork

    path = str(harness.instance_dir(rundir, "notify") / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(path)
        os.chmod(path, 0o666)
        systemd.settimeout(20)

        def next_message() -> dict[str, str]:
            lines = systemd.recv(4096).decode().splitlines()
            return dict(line.split("=", 1) for line in lines)

        words = prefork() if method == "prefork" else ["method=threaded"]
        with ferrocgi(rundir, words, env={"NOTIFY_SOCKET": path}) as srv:
            ready = next_message()
            assert ready["READY"] == "1" and method in ready["STATUS"], ready
            os.kill(srv.pid, signal.SIGHUP)
            reloading = next_message()
            assert reloading["RELOADING"] == "1" and "MONOTONIC_USEC" in reloading, reloading
            assert next_message()["READY"] == "1"
            os.kill(srv.pid, signal.SIGTERM)
            assert next_message()["STOPPING"] == "1"
