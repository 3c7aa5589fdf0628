"""What a new user meets first, run exactly as the README and the docs write it.

Each test runs the console script the way a person types it, in the directory a person would
be in (the project directory, not the test runner's), and checks what they see: that it
serves, or the message that tells them what to do.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from support import harness
from support.cli import clean_env, environ_via, ferrocgi, project, run


def test_working_directory_is_on_sys_path(rundir: Path) -> None:
    """In the directory holding app.py, ``ferrocgi app:application --port N`` serves it
    (no pythonpath=), as gunicorn and Granian users expect."""
    d = project(rundir)
    port = harness.free_port()
    argv = ferrocgi("app:application", "--port", str(port))
    with harness.spawn("ferrocgi", argv, d, env=clean_env()) as proc:
        address = (harness.LOOPBACK, port)
        harness.wait_until("the socket to accept", proc, lambda: harness.can_connect(address))
        assert environ_via(address)["PATH_INFO"] == "/env/x"
        listening = [x for x in proc.logs[0].read_text().splitlines() if "listening on" in x]
    # Each line (one per prefork worker) names the address once; it used to repeat it.
    assert listening, "no 'listening on' line"
    assert all(x.count(f"127.0.0.1:{port}") == 1 for x in listening), listening


def test_a_missing_module_says_where_it_looked(rundir: Path) -> None:
    """A module that is nowhere on sys.path: the directories searched and the fix."""
    d = harness.instance_dir(rundir, "empty")
    done = run(ferrocgi("mysite.wsgi", "--port", str(harness.free_port())), cwd=d)
    assert done.returncode == 1, done
    assert "ModuleNotFoundError: No module named 'mysite'" in done.stderr
    assert f"in any of these directories: {d}, " in done.stderr, done.stderr
    assert "pythonpath=DIR" in done.stderr


def test_a_file_name_gets_a_did_you_mean(rundir: Path) -> None:
    """``ferrocgi app.py``: a file name where a module was expected."""
    d = project(rundir)
    done = run(ferrocgi("app.py", "--port", str(harness.free_port())))
    assert done.returncode == 1, done
    assert "did you mean app:application?" in done.stderr, done.stderr
    assert d.exists()


def test_a_port_held_by_another_program_is_said_at_once(rundir: Path) -> None:
    """Not a ferrocgi on its way out (the restart-script case, which is waited for): an error
    at once, naming the holder."""
    import socket

    d = project(rundir)
    with socket.socket() as other:
        other.bind((harness.LOOPBACK, 0))
        other.listen()
        port = other.getsockname()[1]
        done = run(ferrocgi("app:application", "--port", str(port)), cwd=d)
    assert done.returncode == 1, done
    assert f"127.0.0.1:{port} is already in use (held by pid {os.getpid()}" in done.stderr
    assert "waiting up to" not in done.stderr


def test_a_socket_in_a_missing_directory_names_the_directory(rundir: Path) -> None:
    d = project(rundir)
    missing = d / "no-such-dir"
    done = run(ferrocgi("app:application", f"socket={missing}/app.sock"), cwd=d)
    assert done.returncode == 1, done
    assert f"the directory {missing} does not exist" in done.stderr, done.stderr


@pytest.mark.parametrize("method", ["threaded", "prefork"])
def test_ctrl_c_is_a_quick_stop_without_a_traceback(rundir: Path, method: str) -> None:
    """Ctrl-C (SIGINT to the foreground process group, as a terminal sends it): a log line,
    exit status 0, the socket and the pid file removed; no KeyboardInterrupt traceback."""
    d = project(rundir)
    sock, pidfile = d / "app.sock", d / "app.pid"
    argv = ferrocgi("app:application", f"socket={sock}", f"pidfile={pidfile}", f"method={method}")
    with harness.spawn("ferrocgi", argv, d, env=clean_env()) as proc:
        # Ready when every process says it listens (prefork: its two workers).
        want = 1 if method == "threaded" else 2

        def ready() -> bool:
            return proc.logs[0].read_text().count("listening on") >= want

        harness.wait_until("'listening on'", proc, ready)
        os.killpg(proc.popen.pid, signal.SIGINT)
        status = proc.popen.wait(timeout=15)
        log = proc.logs[0].read_text()
    assert status == 0, log
    assert "SIGINT: quick stop" in log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    assert not sock.exists() and not pidfile.exists()
