"""Start-up as root: the privilege drop, and the files root creates (security findings).

Each test is named after the finding it guards (docs/security.md, "Threat model"). They start
the real console script as root, the way init systems and shared hosts do, and look at the
result from outside: the ids the application runs with, the files on disk.
"""

from __future__ import annotations

import grp
import os
import pwd
import signal
import subprocess
from pathlib import Path

import pytest
from test_process import FERROCGI, fcgi_json, ferrocgi, make_app, prefork

import harness

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root, as CI runs")

NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrgid(NOBODY.pw_gid)

METHODS = {"threaded": ["method=threaded"], "prefork": prefork()}


def ids(server_address: tuple[str, int] | str) -> dict[str, object]:
    data: dict[str, object] = fcgi_json(server_address, "/app/ids")
    return data


@pytest.mark.parametrize("method", METHODS)
def test_user_without_group_drops_root_group(rundir: Path, method: str) -> None:
    """``user=nobody`` alone: uid, gid and supplementary groups are all nobody's own."""
    with ferrocgi(rundir, ["user=nobody", *METHODS[method]]) as srv:
        got = ids(srv.address)
    want_groups = sorted(set(os.getgrouplist("nobody", NOBODY.pw_gid)))
    assert got["uids"] == [NOBODY.pw_uid] * 3, got
    assert got["gids"] == [NOBODY.pw_gid] * 3, got
    assert got["groups"] == want_groups, got


@pytest.mark.parametrize("method", METHODS)
def test_group_only_drops_root_supplementary_groups(rundir: Path, method: str) -> None:
    """``group=`` alone: the gids and the supplementary groups are that group only."""
    with ferrocgi(rundir, [f"group={NOGROUP.gr_name}", *METHODS[method]]) as srv:
        got = ids(srv.address)
    assert got["uids"] == [0, 0, 0], got
    assert got["gids"] == [NOGROUP.gr_gid] * 3, got
    assert got["groups"] == [NOGROUP.gr_gid], got


def test_user_without_a_passwd_entry_needs_a_group(tmp_path: Path) -> None:
    """A numeric uid unknown to the user database has no primary group to default to: a clear
    error before serving, not a process left in group root."""
    app = make_app(tmp_path)
    r = subprocess.run(
        [FERROCGI, "proc_app:application", f"pythonpath={app}", "port=0", "user=54321"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert r.returncode != 0
    assert "give group= too" in r.stderr, r.stderr


@pytest.mark.parametrize("method", METHODS)
def test_application_is_imported_after_the_privilege_drop(rundir: Path, method: str) -> None:
    """The application's module-level code runs as the target user, never as root."""
    with ferrocgi(rundir, ["user=nobody", *METHODS[method]]) as srv:
        got = ids(srv.address)
    assert got["import_euid"] == NOBODY.pw_uid, got


def test_an_application_that_fails_to_import_still_fails_fast(rundir: Path) -> None:
    """Binding before the import must not turn a broken application into a server that
    starts: the import error, with its traceback, ends the process before it serves."""
    d = harness.instance_dir(rundir, "broken")
    app = make_app(d)
    (app / "broken.py").write_text("raise RuntimeError('broken at import')\n")
    (app / "broken.py").chmod(0o644)
    sock = d / "s.sock"
    r = subprocess.run(
        [FERROCGI, "broken:application", f"pythonpath={app}", f"socket={sock}", "user=nobody"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=d,
    )
    assert r.returncode == 1, r
    assert "RuntimeError: broken at import" in r.stderr
    assert "cannot load the application broken:application" in r.stderr
    assert "listening on" not in r.stderr
    # The directory is root's: the socket file stays (said at start-up), but nothing serves it.
    assert "cannot be removed at exit" in r.stderr
    assert not harness.can_connect(str(sock))


def tasks(pid: int) -> int:
    """Threads of ``pid``: RLIMIT_NPROC counts every task of the user, threads included."""
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def set_nproc(pid: int, soft: int) -> None:
    """Sets ``pid``'s soft RLIMIT_NPROC as its own uid (54321) may: a root without
    CAP_SYS_RESOURCE (as in some containers) may not change another user's limits."""
    as_user = ["setpriv", "--reuid=54321", "--regid=54321", "--clear-groups"]
    subprocess.run([*as_user, "prlimit", f"--pid={pid}", f"--nproc={soft}:"], check=True)


def test_supervisor_survives_fork_failure(rundir: Path) -> None:
    """fork() failing (EAGAIN: the user's process limit) neither ends the supervisor nor
    leaves its workers unsupervised: it logs, backs off and retries, and the pool fills again
    once forking works. The uid has no other processes, so the limit counts only ours."""
    words = prefork("minspare=2", "maxspare=2", "maxchildren=2", "user=54321", "group=54321")
    with ferrocgi(rundir, words) as srv:
        srv.wait_workers(lambda n: n == 2, "2 workers")
        assert fcgi_json(srv.address)["ppid"] == srv.pid
        first, second = srv.workers()
        # The supervisor may fork only while the uid has fewer tasks than now, less the
        # worker about to be killed: its replacement's fork fails.
        limit = tasks(srv.pid) + tasks(first)
        set_nproc(srv.pid, limit)
        os.kill(second, signal.SIGKILL)
        srv.wait_log("cannot start a worker; retrying", timeout=15)
        assert fcgi_json(srv.address)["ppid"] == srv.pid
        set_nproc(srv.pid, 4096)
        srv.wait_workers(lambda n: n == 2, "the pool to fill once forking works", 20)
        assert fcgi_json(srv.address)["ppid"] == srv.pid
