"""``daemonize=true``: the pid file, the socket, stopping by the pid file, restarting five
times over.

How servers are started, found and cleaned up: ``tests/support/proc_server.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from support import harness
from support.proc_server import (
    fcgi_json,
    kill_tagged,
    make_app,
    start_daemon,
)
from support.procfs import alive, eventually, read_pid, zombie_status


def test_daemonize_pidfile_and_kill(rundir: Path) -> None:
    """``daemonize=true pidfile=…``: the command returns at once with 0, the pidfile names the
    live daemon, ``kill `cat pidfile``` stops it and both pidfile and socket go away. A second
    start on the same pidfile fails naming it; a stale pidfile is replaced."""
    d = harness.instance_dir(rundir, "daemon")
    make_app(d)
    tag = uuid.uuid4().hex
    pidfile, sock, log = d / "app.pid", d / "app.sock", d / "err.log"
    words = [f"socket={sock}", f"pidfile={pidfile}", f"errlog={log}"]
    try:
        t0 = time.monotonic()
        done = start_daemon(d, words, tag)
        took = time.monotonic() - t0
        assert done.returncode == 0, done.stderr
        assert took < 10, f"the command took {took:.1f}s to return"
        eventually("the pidfile", pidfile.exists, 10)
        pid = read_pid(pidfile)
        assert alive(pid)
        eventually("the socket", lambda: harness.can_connect(str(sock)), 10)
        assert fcgi_json(str(sock))["ppid"] == pid

        # A second start with the same pidfile (another socket) is refused, clearly.
        other = d / "other.sock"
        second = start_daemon(d, [f"socket={other}", f"pidfile={pidfile}"], tag)
        assert second.returncode != 0
        assert str(pidfile) in second.stderr, second.stderr
        assert read_pid(pidfile) == pid and alive(pid)
        assert not other.exists()

        subprocess.run(["sh", "-c", f'kill `cat "{pidfile}"`'], check=True, timeout=10)
        eventually("the daemon to exit", lambda: not alive(pid), 15)
        how = zombie_status(pid)
        assert how in ("", "exit 0"), f"the daemon ended with {how}\n{harness.tail(log)}"
        eventually("the pidfile to go", lambda: not pidfile.exists(), 5)
        assert not sock.exists(), "the socket file was left behind"

        # A stale pidfile (a dead process's pid) is replaced.
        dead = subprocess.Popen(["true"])
        dead.wait()
        pidfile.write_text(f"{dead.pid}\n")
        done = start_daemon(d, words, tag)
        assert done.returncode == 0, done.stderr
        eventually("a new pid in the pidfile", lambda: read_pid(pidfile) != dead.pid, 10)
        pid2 = read_pid(pidfile)
        assert alive(pid2)
        eventually("the socket", lambda: harness.can_connect(str(sock)), 10)
        assert fcgi_json(str(sock))["ppid"] == pid2
        os.kill(pid2, signal.SIGTERM)
        eventually("the daemon to exit", lambda: not alive(pid2), 15)
        how = zombie_status(pid2)
        assert how in ("", "exit 0"), f"the daemon ended with {how}\n{harness.tail(log)}"
        assert not pidfile.exists(), f"pidfile left behind\n{harness.tail(log)}"
        assert not sock.exists(), f"socket left behind\n{harness.tail(log)}"
    finally:
        kill_tagged(tag)


def test_restart_five_times_keeps_pidfile_and_socket(rundir: Path) -> None:
    """kill the daemon, rm the pidfile and start a new one at once (the classic guide's restart
    script), 5 times: each new daemon keeps its pidfile and socket when the old one exits."""
    d = harness.instance_dir(rundir, "restart")
    make_app(d)
    tag = uuid.uuid4().hex
    pidfile, sock, log = d / "app.pid", d / "app.sock", d / "err.log"
    words = [f"socket={sock}", f"pidfile={pidfile}", f"errlog={log}", "minspare=1"]
    pids: list[int] = []
    try:
        for run in range(5):
            if pidfile.exists():
                subprocess.run(
                    ["sh", "-c", f'kill `cat "{pidfile}"`; rm -f "{pidfile}"'], timeout=10
                )
            done = start_daemon(d, words, tag)
            assert done.returncode == 0, f"run {run}: {done.stderr}\n{harness.tail(log)}"
            eventually(f"run {run}: the pidfile", pidfile.exists, 10)
            pids.append(read_pid(pidfile))
            eventually(f"run {run}: the socket", lambda: harness.can_connect(str(sock)), 10)
        eventually("the old daemons to exit", lambda: not any(alive(p) for p in pids[:-1]), 20)
        time.sleep(0.5)
        assert len(set(pids)) == 5, pids
        assert pidfile.exists() and read_pid(pidfile) == pids[-1], harness.tail(log)
        assert sock.exists(), f"socket removed by an old daemon\n{harness.tail(log)}"
        assert fcgi_json(str(sock))["ppid"] == pids[-1]
        os.kill(pids[-1], signal.SIGTERM)
        eventually("the last daemon to exit", lambda: not alive(pids[-1]), 15)
        assert not pidfile.exists() and not sock.exists()
    finally:
        kill_tagged(tag)
