"""A preforked daemon on a Unix socket with a pidfile, behind Apache; stop and restart it.

Django's FastCGI guide: ``./manage.py runfcgi method=prefork socket=/home/user/mysite.sock
pidfile=django.pid``, ``kill `cat $PIDFILE``` and the restart script (``env -`` with only
PYTHONPATH), taken from docs/apache.md as shown and run twice in a row, with the project's
stock ``manage.py`` (``#!/usr/bin/env python3``). Apache's children are www-data, so the
daemon runs as www-data too (the guide's socket-security note: same user, or umask 0002 and
the same group). Django's runfcgi detaches
when an address is given; the pidfile is written after detaching and removed at exit; SIGTERM
is a graceful stop.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import kit
import pytest

from support import harness, procfs

MOUNTS = ["root", "prefix"]
# The site file's second virtual host: the site at /prefix.
PREFIX_HOST = "prefix.example.com"
USER = "www-data"
ROOT = Path(__file__).resolve().parents[2]
# The production paths docs/apache.md's restart script names, and what this test puts there.
DOC_PYTHON = "/srv/mysite/venv/bin/python"
DOC_PROJDIR = "/srv/mysite"
DOC_SOCKET = "/run/mysite/mysite.sock"


def restart_script_from_doc(projdir: Path) -> str:
    """The restart script exactly as docs/apache.md shows it, its two production paths
    (the venv's python, the socket, PROJDIR) pointed at this test's venv and project."""
    doc = (ROOT / "docs" / "apache.md").read_text()
    block = re.search(
        r"<!-- include: tests/webservers/recipes/restart.sh -->\n```sh\n(.*?)```", doc, re.S
    )
    assert block, "docs/apache.md shows no restart script"
    text = block.group(1)
    for path in (DOC_PYTHON, DOC_SOCKET, DOC_PROJDIR):
        assert path in text, f"the restart script no longer names {path}: update this test"
    text = text.replace(DOC_PYTHON, kit.PYTHON).replace(DOC_SOCKET, str(projdir / "mysite.sock"))
    return text.replace(DOC_PROJDIR, str(projdir))


def stock_manage_py(project: kit.Project) -> None:
    """``manage.py`` as ``django-admin startproject`` writes it: ``#!/usr/bin/env python3``."""
    manage = project.dir / "manage.py"
    lines = manage.read_text().splitlines(keepends=True)
    manage.write_text("#!/usr/bin/env python3\n" + "".join(lines[1:]))


@dataclass
class Stack:
    project: kit.Project
    server: kit.Runfcgi
    sites: dict[str, kit.Site]
    socket: Path
    pidfile: Path


@pytest.fixture(scope="module")
def stack(rundir: Path, template: kit.Project) -> Iterator[Stack]:
    project = kit.install_project(template, rundir / "myproject")
    sock = project.dir / "mysite.sock"
    pidfile = project.dir / "mysite.pid"
    stock_manage_py(project)
    restart = project.dir / "restart.sh"
    restart.write_text(restart_script_from_doc(project.dir))
    restart.chmod(0o755)
    kit.chown_tree(project.dir, USER)
    public_html = harness.make_dir(rundir / "public_html")
    port = harness.free_port()
    words = ["method=prefork", f"socket={sock}", "pidfile=mysite.pid"]
    with contextlib.ExitStack() as es:
        server = es.enter_context(
            kit.runfcgi(project, words, str(sock), pidfile=pidfile, user=USER)
        )
        es.enter_context(
            kit.apache(
                rundir,
                "apache-prefork.conf",
                {
                    "PORT": str(port),
                    "PUBLIC_HTML": str(public_html),
                    "STATIC_ROOT": str(project.static_root),
                    "SOCKET": str(sock),
                },
            )
        )
        sites = {
            "root": kit.Site("mysite", port, "", project.static_root),
            "prefix": kit.Site("mysite", port, "/prefix", project.static_root, host=PREFIX_HOST),
        }
        yield Stack(project, server, sites, sock, pidfile)


@pytest.mark.parametrize("check", kit.CHECKS, ids=kit.CHECK_IDS)
@pytest.mark.parametrize("mount", MOUNTS)
def test_site(stack: Stack, mount: str, check: Callable[[kit.Site], None]) -> None:
    check(stack.sites[mount])


def test_runfcgi_daemonizes_by_default(stack: Stack) -> None:
    try:
        code = stack.server.launcher.popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"runfcgi socket=… is still in the foreground after 10 s\n{stack.server.log()}")
    assert code == 0, stack.server.log()


def test_pidfile_names_the_daemon(stack: Stack) -> None:
    assert stack.pidfile.exists(), "pidfile=mysite.pid was not written"
    pid = procfs.read_pid(stack.pidfile)
    assert procfs.alive(pid), f"pidfile names {pid}, which is not running"
    assert pid != stack.server.launcher.pid, "the pidfile must name the detached process"


def test_prefork_workers_serve(stack: Stack) -> None:
    """method=prefork: requests are served by worker processes, children of the daemon."""
    master = procfs.read_pid(stack.pidfile)
    seen = {(i["pid"], i["ppid"]) for i in (kit.info(stack.sites["root"]) for _ in range(10))}
    assert all(pid != master and ppid == master for pid, ppid in seen), (master, seen)


def test_kill_cat_pidfile_stops_the_daemon(stack: Stack) -> None:
    """``kill `cat $PIDFILE``` (SIGTERM): a graceful stop that removes the pidfile."""
    pid = procfs.read_pid(stack.pidfile)
    subprocess.run(
        ["sh", "-c", 'kill `cat "$PIDFILE"`'], env={"PIDFILE": str(stack.pidfile)}, check=True
    )
    assert procfs.wait_gone([pid], 15), f"{pid} still running 15 s after SIGTERM"
    assert not harness.can_connect(str(stack.socket)), "the socket still accepts"
    assert not stack.pidfile.exists(), "the pidfile was left behind"


def test_restart_script_twice(stack: Stack) -> None:
    """docs/apache.md's restart script, twice in a row: each run replaces the daemon, and the old
    daemon's exit leaves the new one's pidfile and socket alone."""
    site = stack.sites["root"]
    pids: list[int] = []
    # manage.py with Django's stock first line, as a user's is: the script names the python.
    manage = stack.project.dir / "manage.py"
    ours = manage.read_text()
    manage.write_text("#!/usr/bin/env python3\n" + ours.split("\n", 1)[1])
    with contextlib.ExitStack() as es:
        es.callback(manage.write_text, ours)
        for run in (1, 2):
            started = es.enter_context(
                kit.launch(
                    stack.project,
                    ["./restart.sh"],
                    str(stack.socket),
                    user=USER,
                    name=f"restart-{run}",
                )
            )
            try:
                code = started.launcher.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pytest.fail(f"restart.sh run {run} did not return (no daemon)\n{started.log()}")
            assert code == 0, started.log()
            procfs.eventually("the pidfile", stack.pidfile.exists)
            pids.append(procfs.read_pid(stack.pidfile))
            assert procfs.alive(pids[-1])
            kit.check_page(site)
        assert pids[0] != pids[1]
        assert procfs.wait_gone([pids[0]], 15), "the first daemon is still running"
        kit.check_login(site)
        # The old daemon is gone: its exit must not have removed the new one's files.
        assert stack.pidfile.exists() and procfs.read_pid(stack.pidfile) == pids[1]
        assert harness.can_connect(str(stack.socket))
