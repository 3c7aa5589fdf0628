"""Apache + an external threaded FastCGI server on TCP + Django's FastCGI guide's mod_rewrite rules.

The guide: ``./manage.py runfcgi method=threaded host=127.0.0.1 port=3033`` and the
``<VirtualHost>`` with ``Alias /media``, ``RewriteRule ^/(media.*)$ /$1 [QSA,L,PT]``,
``RewriteCond %{REQUEST_FILENAME} !-f`` and ``RewriteRule ^/(.*)$ /mysite.fcgi/$1 [QSA,L]``;
mod_proxy_fcgi replaces ``FastCGIExternalServer`` (tests/webservers/recipes/apache-threaded.conf).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import kit
import pytest

from support import harness

MOUNTS = ["root", "prefix"]
# The site file's second virtual host: the site at /prefix.
PREFIX_HOST = "prefix.example.com"


@dataclass
class Stack:
    server: kit.Runfcgi
    sites: dict[str, kit.Site]


@pytest.fixture(scope="module")
def stack(rundir: Path, template: kit.Project) -> Iterator[Stack]:
    project = kit.install_project(template, rundir / "myproject")
    public_html = harness.make_dir(rundir / "public_html")
    fcgi_port, port = harness.free_port(), harness.free_port()
    words = ["method=threaded", "host=127.0.0.1", f"port={fcgi_port}"]
    with contextlib.ExitStack() as es:
        server = es.enter_context(kit.runfcgi(project, words, ("127.0.0.1", fcgi_port)))
        es.enter_context(
            kit.apache(
                rundir,
                "apache-threaded.conf",
                {
                    "PORT": str(port),
                    "PUBLIC_HTML": str(public_html),
                    "STATIC_ROOT": str(project.static_root),
                    "FCGI_PORT": str(fcgi_port),
                },
            )
        )
        yield Stack(
            server,
            {
                "root": kit.Site("mysite", port, "", project.static_root),
                "prefix": kit.Site(
                    "mysite", port, "/prefix", project.static_root, host=PREFIX_HOST
                ),
            },
        )


@pytest.mark.parametrize("check", kit.CHECKS, ids=kit.CHECK_IDS)
@pytest.mark.parametrize("mount", MOUNTS)
def test_site(stack: Stack, mount: str, check: Callable[[kit.Site], None]) -> None:
    check(stack.sites[mount])


def test_a_file_in_public_html_is_served_by_apache(stack: Stack, rundir: Path) -> None:
    """The ``!-f`` condition: an existing file is not sent to Django."""
    (rundir / "public_html" / "robots.txt").write_text("User-agent: *\n")
    resp = kit.get(stack.sites["root"], "/robots.txt")
    assert (resp.status, resp.body) == (200, b"User-agent: *\n")


def test_runfcgi_daemonizes_by_default(stack: Stack) -> None:
    """Django's rule: with host/port given, runfcgi detaches; the command returns 0 at once
    and the daemon keeps serving."""
    try:
        code = stack.server.launcher.popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(
            "manage.py runfcgi method=threaded host=127.0.0.1 port=N is still in the "
            f"foreground after 10 s (it should daemonize)\n{stack.server.log()}"
        )
    assert code == 0, stack.server.log()
    kit.check_page(stack.sites["root"])
    assert kit.tagged_pids(stack.server.tag), "no daemon left running"
