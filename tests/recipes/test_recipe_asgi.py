"""Django's ASGI handler over FastCGI: docs/asgi.md's lines, run as written.

``./manage.py runfcgi interface=asgi daemonize=false socket=… socket_mode=660 …`` behind the
same nginx as the FastCGI recipe (tests/webservers/recipes/nginx-fastcgi.conf, mounted at / and
at /prefix): the project's page, ``reverse()``, the admin's CSS from nginx, the admin login
with CSRF and an upload, all through ``ASGIHandler``. Then ``runfastcgi(interface="asgi", …)``
in a ``.fcgi``-style script.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import kit
import pytest

from support import harness

MOUNTS = ["root", "prefix"]


@dataclass
class Stack:
    server: kit.Runfcgi
    sites: dict[str, kit.Site]


@pytest.fixture(scope="module")
def stack(rundir: Path, template: kit.Project) -> Iterator[Stack]:
    project = kit.install_project(template, rundir / "myproject")
    port = harness.free_port()
    sock = rundir / "mysite.sock"
    # The line docs/asgi.md shows, with this test's socket path.
    words = [
        "interface=asgi",
        "daemonize=false",
        f"socket={sock}",
        "socket_mode=660",
        "socket_owner=root:nogroup",
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
        yield Stack(server, sites)


@pytest.mark.parametrize("check", kit.CHECKS, ids=kit.CHECK_IDS)
@pytest.mark.parametrize("mount", MOUNTS)
def test_site(stack: Stack, mount: str, check: Callable[[kit.Site], None]) -> None:
    check(stack.sites[mount])


def test_served_by_django_s_asgi_handler(stack: Stack) -> None:
    page = kit.expect(kit.get(stack.sites["root"], "/"), 200, "home page").text
    assert "ASGI" in page, page
    assert "serving the application as ASGI 3" in stack.server.log()


def test_sigterm_runs_a_clean_stop(stack: Stack) -> None:
    code = kit.stop_cleanly(stack.server)
    assert code == 0, stack.server.log()


def test_runfastcgi_interface_asgi(rundir: Path, template: kit.Project) -> None:
    """``runfastcgi(interface="asgi", …)`` from a script, as a shared host's .fcgi file has it."""
    project = kit.install_project(template, rundir / "scripted")
    sock = rundir / "scripted.sock"
    script = project.dir / "serve_asgi.py"
    script.write_text(
        "import os\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n"
        "from ferrocgi.django import runfastcgi\n"
        "runfastcgi(interface='asgi', method='threaded', daemonize='false',\n"
        f"           socket={str(sock)!r}, socket_mode='666')\n"
    )
    argv = [sys.executable, str(script)]
    with kit.launch(project, argv, str(sock), name="runfastcgi") as server:
        with kit.nginx(
            rundir,
            "nginx-fastcgi.conf",
            {
                "PORT": str(port := harness.free_port()),
                "SOCKET": str(sock),
                "STATIC_ROOT": str(project.static_root),
            },
        ):
            site = kit.Site("mysite", port, "", project.static_root)
            kit.check_page(site)
        assert "serving the application as ASGI 3" in server.log()
