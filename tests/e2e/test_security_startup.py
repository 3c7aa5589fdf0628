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

from support import harness
from support.proc_server import FERROCGI, fcgi_json, ferrocgi, make_app, prefork
from support.procfs import eventually

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


def test_internal_variables_and_inherited_sockets_do_not_reach_the_application(
    rundir: Path,
) -> None:
    """After a reload (re-execution with the socket inherited): the FERROCGI_* variables the
    old program passed are not in the application's os.environ, and the inherited listening
    socket is close-on-exec (programs the application runs do not get it)."""
    with ferrocgi(rundir, ["method=threaded"]) as srv:
        since = srv.mark()
        srv.set_version("2")
        os.kill(srv.pid, signal.SIGHUP)
        srv.wait_log("listening on", since, timeout=20)
        eventually("version 2", lambda: fcgi_json(srv.address)["version"] == "2", 20)
        assert fcgi_json(srv.address, "/app/ids")["ferrocgi_env"] == []
        listening = [
            fd
            for fd in Path(f"/proc/{srv.pid}/fd").iterdir()
            if os.readlink(fd).startswith("socket:") and is_listening(srv.pid, fd.name)
        ]
        assert listening, "no listening socket found"
        for fd in listening:
            flags = int(Path(f"/proc/{srv.pid}/fdinfo/{fd.name}").read_text().split()[3], 8)
            assert flags & os.O_CLOEXEC, f"fd {fd.name} flags {flags:o}"


def is_listening(pid: int, fd: str) -> bool:
    inode = os.readlink(f"/proc/{pid}/fd/{fd}")[len("socket:[") : -1]
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] == inode:
                return True
    return False


def test_socket_mode_and_owner_are_set_without_following_links(rundir: Path) -> None:
    """As root in a directory another user could write: the socket's mode comes from bind
    itself (no chmod by path afterwards) and its owner is changed with AT_SYMLINK_NOFOLLOW, so
    a swapped-in link cannot make root chmod or chown another file (seen with strace)."""
    d = harness.instance_dir(rundir, "sock")
    app = make_app(d)
    sock = d / "app.sock"
    trace = d / "strace.out"
    argv = [
        "strace", "-f", "-o", str(trace), "-e", "trace=chmod,fchmodat,chown,lchown,fchownat",
        FERROCGI, "proc_app:application", f"pythonpath={app}", f"socket={sock}",
        "socket_mode=660", "socket_owner=nobody:nogroup", "method=threaded",
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        eventually("the socket", lambda: harness.can_connect(str(sock)), 20)
        st = sock.stat()
        assert (st.st_mode & 0o777, st.st_uid) == (0o660, NOBODY.pw_uid), oct(st.st_mode)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # ferrocgi stops; strace ends with it
        proc.wait(timeout=15)
    calls = [x for x in trace.read_text().splitlines() if str(sock) in x]
    assert not [x for x in calls if "chmod" in x], calls
    chowns = [x for x in calls if "chown" in x]
    assert chowns and all("AT_SYMLINK_NOFOLLOW" in x for x in chowns), calls
