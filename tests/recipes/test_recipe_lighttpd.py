"""lighttpd: Django's FastCGI guide's fastcgi.server / alias.url / url.rewrite-once block,
two sites chosen by ``$HTTP["host"]``, and two Django installs under one site.

lighttpd runs as root here (no ``server.username``), so the sockets need no special mode.
It sends ``SCRIPT_NAME=/mysite.fcgi`` and no SCRIPT_URL; the guide's answer is
``FORCE_SCRIPT_NAME`` (``''`` at the root, ``'/prefix'`` for the install at /prefix). The
browser is on port 80 as far as the sites know: the Host header names no port.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import kit
import pytest

from support import harness

INSTALLS = {
    # name: (Host, public prefix, FORCE_SCRIPT_NAME)
    "site1": ("www.example1.com", "", ""),
    "site2": ("www.example2.com", "", ""),
    "site2b": ("www.example2.com", "/prefix", "/prefix"),
}


@pytest.fixture(scope="module")
def sites(rundir: Path, template: kit.Project) -> Iterator[dict[str, kit.Site]]:
    port = harness.free_port()
    values = {"PORT": str(port)}
    result = {}
    with contextlib.ExitStack() as es:
        for name, (host, prefix, force) in INSTALLS.items():
            project = kit.install_project(template, rundir / name / "myproject")
            sock = rundir / name / "mysite.sock"
            env = {"MYSITE_NAME": name, "MYSITE_FORCE_SCRIPT_NAME": force}
            words = ["method=threaded", f"socket={sock}"]
            es.enter_context(kit.runfcgi(project, words, str(sock), env=env))
            values[f"{name.upper()}_SOCKET"] = str(sock)
            values[f"{name.upper()}_STATIC"] = str(project.static_root)
            result[name] = kit.Site(name, port, prefix, project.static_root, host=host)
        for sub in ("htdocs", "site1", "site2"):
            harness.make_dir(rundir / "lighttpd" / sub)
        es.enter_context(kit.lighttpd(rundir, "lighttpd-sites.conf", values))
        yield result


@pytest.mark.parametrize("check", kit.CHECKS, ids=kit.CHECK_IDS)
@pytest.mark.parametrize("install", list(INSTALLS))
def test_site(sites: dict[str, kit.Site], install: str, check: Callable[[kit.Site], None]) -> None:
    check(sites[install])
