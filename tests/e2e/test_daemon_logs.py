"""Where the log goes: detached, in the foreground, and as root (first contact and security).

Each test runs the console script as a user (or an init script, as root) would and looks at
the result from outside: what the terminal showed, the files on disk, their modes and owners.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from support import harness
from support.cli import clean_env, ferrocgi, project, run
from support.procfs import eventually

NOBODY = pwd.getpwnam("nobody")


def start_detached(d: Path, *words: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """``ferrocgi app:application --daemonize true WORDS``; returns the run and the pid."""
    pidfile = d / "app.pid"
    done = run(
        ferrocgi("app:application", "--daemonize", "true", f"pidfile={pidfile}", *words), cwd=d
    )
    assert done.returncode == 0, done
    eventually("the pid file", pidfile.exists, 10)
    return done, int(pidfile.read_text())


def stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    eventually("the daemon to stop", lambda: not Path(f"/proc/{pid}").exists(), 15)


def test_daemonize_says_its_pid_and_where_it_logs(rundir: Path) -> None:
    d = project(rundir)
    port = harness.free_port()
    done, pid = start_detached(d, "--port", str(port), f"errlog={d}/err.log")
    try:
        line = f"ferrocgi: running in the background as pid {pid}; logs: {d}/err.log"
        assert line in done.stderr, done.stderr
        eventually("the log", lambda: "listening on" in (d / "err.log").read_text(), 10)
    finally:
        stop(pid)


def test_daemonize_without_errlog_logs_somewhere_named(rundir: Path) -> None:
    """Never to nowhere: syslog when /dev/log exists, else ferrocgi.log where it started."""
    d = project(rundir)
    done, pid = start_detached(d, "--port", str(harness.free_port()))
    try:
        if Path("/dev/log").exists():
            assert "logs: syslog (/dev/log)" in done.stderr, done.stderr
        else:
            assert f"logs: {d}/ferrocgi.log" in done.stderr, done.stderr
            log = d / "ferrocgi.log"
            eventually("the log", lambda: "listening on" in log.read_text(), 10)
    finally:
        stop(pid)


def test_errlog_applies_in_the_foreground(rundir: Path) -> None:
    """errlog= in the foreground: the log goes to the file from the start, not only after the
    first SIGUSR1."""
    d = project(rundir)
    port = harness.free_port()
    argv = ferrocgi("app:application", "--port", str(port), f"errlog={d}/err.log")
    with harness.spawn("ferrocgi", argv, d, env=clean_env()) as proc:
        address = (harness.LOOPBACK, port)
        harness.wait_until("the socket to accept", proc, lambda: harness.can_connect(address))
        eventually("the log", lambda: "listening on" in (d / "err.log").read_text(), 10)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, as CI runs")
def test_log_files_created_as_root_belong_to_the_user_and_links_are_not_followed(
    rundir: Path,
) -> None:
    """As root with user=nobody: the log file is created 0640 and owned by nobody (so SIGUSR1
    can reopen it after the drop); a symbolic link planted at the path is not followed."""
    d = project(rundir)
    os.chown(d, NOBODY.pw_uid, NOBODY.pw_gid)  # the user may create the next file (logrotate)
    victim = d / "victim"
    victim.write_text("precious\n")
    (d / "planted.log").symlink_to(victim)
    bad = run(
        ferrocgi("app:application", "--port", "0", "user=nobody", f"errlog={d}/planted.log"), cwd=d
    )
    assert bad.returncode == 1, bad
    assert f"cannot open log file {d}/planted.log" in bad.stderr
    assert victim.read_text() == "precious\n"

    port = harness.free_port()
    log = d / "err.log"
    argv = ferrocgi("app:application", "--port", str(port), "user=nobody", f"errlog={log}")
    with harness.spawn("ferrocgi", argv, d, env=clean_env()) as proc:
        address = (harness.LOOPBACK, port)
        harness.wait_until("the socket to accept", proc, lambda: harness.can_connect(address))
        # Signal handlers are in place once every process says it listens (two workers).
        eventually("the log", lambda: log.read_text().count("listening on") >= 2, 10)
        st = log.stat()
        assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
        assert (st.st_uid, st.st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid)
        log.rename(d / "err.log.1")
        os.kill(proc.popen.pid, signal.SIGUSR1)
        eventually("a new log after SIGUSR1", log.exists, 10)
        assert "cannot reopen" not in (d / "err.log.1").read_text()


def test_daemonizing_closes_inherited_descriptors(rundir: Path) -> None:
    """A descriptor the starting shell left open (inheritable) does not live on in the
    daemon; the daemon still serves."""
    d = project(rundir)
    leaked = d / "leaked-by-the-shell"
    port = harness.free_port()
    with open(leaked, "w") as f:
        pidfile = d / "app.pid"
        argv = ferrocgi("app:application", "--port", str(port), "--daemonize", "true")
        argv.append(f"pidfile={pidfile}")
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=30,
            env=clean_env(),
            cwd=d,
            pass_fds=(f.fileno(),),
        )
    assert done.returncode == 0, done
    eventually("the pid file", pidfile.exists, 10)
    pid = int(pidfile.read_text())
    try:
        eventually("serving", lambda: harness.can_connect((harness.LOOPBACK, port)), 10)
        fds = []
        for p in Path(f"/proc/{pid}/fd").iterdir():
            # A descriptor can close between the listing and the look (the probe's connection).
            with contextlib.suppress(FileNotFoundError):
                fds.append(os.readlink(p))
        assert str(leaked) not in fds, fds
    finally:
        stop(pid)


def test_daemonize_with_an_application_that_does_not_import_fails_the_command(
    rundir: Path,
) -> None:
    """The application loads after detaching (and after the privilege drop): the command still
    waits for it, and says it failed, with exit status 1, where the error went."""
    d = project(rundir)
    (d / "broken.py").write_text("raise RuntimeError('broken at import')\n")
    done = run(
        ferrocgi("broken:application", "--port", str(harness.free_port()), "--daemonize",
                 "true", f"errlog={d}/err.log"),
        cwd=d,
    )  # fmt: skip
    assert done.returncode == 1, done
    assert f"stopped while starting; its error is in the log: {d}/err.log" in done.stderr
    assert "running in the background" not in done.stderr
    assert "RuntimeError: broken at import" in (d / "err.log").read_text()
