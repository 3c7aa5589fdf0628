"""Shared hosting: the classic guide's ``.htaccess`` + ``mysite.fcgi`` under Apache mod_fcgid.

Apache starts ``mysite.fcgi`` itself, as www-data, with the listening socket as fd 0;
``runfastcgi(method="threaded", daemonize="false")`` serves it (no host/port/socket: the
spawned mode). The import path is the only change to the classic guide's script. One install at the
web root, one in ``/prefix/``: Django finds the prefix from REDIRECT_URL. After a code change,
``touch mysite.fcgi`` must get the new code served (mod_fcgid itself restarts nothing on a
touch: the spawned process has to notice its script changed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import kit
import pytest

import harness

USER = "www-data"
INSTALLS = {"root": "", "prefix": "/prefix"}


@dataclass
class Stack:
    sites: dict[str, kit.Site]
    projects: dict[str, kit.Project]
    scripts: dict[str, Path]


@pytest.fixture(scope="module")
def stack(rundir: Path, template: kit.Project) -> Iterator[Stack]:
    port = harness.free_port()
    htdocs = harness.make_dir(rundir / "htdocs")
    sites, projects, scripts = {}, {}, {}
    for name, prefix in INSTALLS.items():
        project = kit.install_project(template, rundir / f"{name}-project")
        kit.chown_tree(project.dir, USER)  # sqlite writes (sessions, last_login)
        webdir = harness.make_dir(htdocs / prefix.lstrip("/")) if prefix else htdocs
        kit.render("htaccess", webdir / ".htaccess", {})
        script = kit.render(
            "mysite.fcgi",
            webdir / "mysite.fcgi",
            {"PYTHON": kit.PYTHON, "PROJDIR": str(project.dir), "STATIC_URL": f"{prefix}/media/"},
            0o755,
        )
        # collectstatic into the web directory, where the !-f condition serves it.
        shutil.copytree(project.static_root, webdir / "media")
        kit.world_readable(webdir / "media")
        sites[name] = kit.Site("mysite", port, prefix, project.static_root)
        projects[name] = project
        scripts[name] = script
    run = rundir / "apache"
    harness.make_dir(run)
    fcgid = harness.make_dir(run / "fcgid")
    shutil.chown(fcgid, USER, USER)
    with kit.apache(rundir, "apache-fcgid.conf", {"PORT": str(port), "HTDOCS": str(htdocs)}):
        yield Stack(sites, projects, scripts)


@pytest.mark.parametrize("check", kit.CHECKS, ids=kit.CHECK_IDS)
@pytest.mark.parametrize("mount", list(INSTALLS))
def test_site(stack: Stack, mount: str, check: Callable[[kit.Site], None]) -> None:
    check(stack.sites[mount])


def test_touch_serves_the_new_code(stack: Stack) -> None:
    site, project, script = stack.sites["root"], stack.projects["root"], stack.scripts["root"]
    assert kit.info(site)["version"] == 1
    project.set_version(2)
    os.utime(script)  # touch mysite.fcgi
    with contextlib.suppress(AssertionError):
        kit.eventually("version 2 after touch", lambda: kit.info(site)["version"] == 2, 15)
    assert kit.info(site)["version"] == 2, "touch mysite.fcgi: the old code is still served"
