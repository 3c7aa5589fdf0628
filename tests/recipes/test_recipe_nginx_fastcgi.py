"""nginx + FastCGI: `manage.py runfcgi daemonize=false socket=… maxrequests=1`.

Django's FastCGI guide's debugging line ("run without daemonizing, good for debugging") plus
docs/nginx.md's ``socket_mode=660 socket_owner=USER:GROUP``: the socket is let in to the group
nginx's workers run as (this private nginx, started by root without a ``user`` line, runs them
as ``nobody:nogroup``; Debian's packaged one as ``www-data``). Debian's ``fastcgi_params``
send ``Host`` without the port, so the settings list the
test port in ``CSRF_TRUSTED_ORIGINS`` (``MYSITE_PUBLIC_PORT``).
"""

from __future__ import annotations

import contextlib
import grp
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import kit
import pytest

from support import harness

MOUNTS = ["root", "prefix"]
WORKERS_GROUP = "nogroup"


@dataclass
class Stack:
    server: kit.Runfcgi
    sites: dict[str, kit.Site]
    socket: Path


@pytest.fixture(scope="module")
def stack(rundir: Path, template: kit.Project) -> Iterator[Stack]:
    project = kit.install_project(template, rundir / "myproject")
    port = harness.free_port()
    sock = rundir / "mysite.sock"
    words = [
        "daemonize=false",
        f"socket={sock}",
        "socket_mode=660",
        f"socket_owner=root:{WORKERS_GROUP}",
        "maxrequests=1",
    ]
    with contextlib.ExitStack() as es:
        server = es.enter_context(
            kit.runfcgi(project, words, str(sock), env={"MYSITE_PUBLIC_PORT": str(port)})
        )
        es.enter_context(
            kit.nginx(
                rundir,
                "nginx-fastcgi.conf",
                {"PORT": str(port), "SOCKET": str(sock), "STATIC_ROOT": str(project.static_root)},
            )
        )
        sites = {
            "root": kit.Site("mysite", port, "", project.static_root),
            "prefix": kit.Site("mysite", port, "/prefix", project.static_root),
        }
        yield Stack(server, sites, sock)


@pytest.mark.parametrize("check", kit.CHECKS, ids=kit.CHECK_IDS)
@pytest.mark.parametrize("mount", MOUNTS)
def test_site(stack: Stack, mount: str, check: Callable[[kit.Site], None]) -> None:
    check(stack.sites[mount])


def test_daemonize_false_stays_in_foreground(stack: Stack) -> None:
    assert stack.server.launcher.alive(), "daemonize=false: runfcgi must stay in the foreground"


def test_socket_mode_and_owner_let_only_nginx_s_group_in(stack: Stack) -> None:
    st = stack.socket.stat()
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert (st.st_uid, st.st_gid) == (0, grp.getgrnam(WORKERS_GROUP).gr_gid), st


def test_sigterm_stops_cleanly(stack: Stack) -> None:
    """Ctrl-C / SIGTERM on the foreground server: a graceful stop, exit status 0."""
    code = kit.stop_cleanly(stack.server)
    log = stack.server.log()
    assert "Fatal Python error" not in log, log
    assert code == 0, log
