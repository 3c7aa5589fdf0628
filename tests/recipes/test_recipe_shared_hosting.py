"""Shared hosting: Django's FastCGI guide's ``.htaccess`` + ``mysite.fcgi`` under Apache mod_fcgid.

Apache starts ``mysite.fcgi`` itself, as www-data, with the listening socket as fd 0;
``runfastcgi(method="threaded", daemonize="false")`` serves it (no host/port/socket: the
spawned mode). The import path is the only change to the guide's script; the test takes it
from docs/shared-hosting.md as shown, its production paths pointed at this test's venv and
project. One install at the web root, one in ``/prefix/`` (its own settings say
``STATIC_URL = "/prefix/media/"``): Django finds the prefix from REDIRECT_URL. After a code
change, ``touch mysite.fcgi`` must get the new code served (mod_fcgid itself restarts nothing
on a touch: the spawned process has to notice its script changed).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import kit
import pytest

from support import harness, procfs

USER = "www-data"
INSTALLS = {"root": "", "prefix": "/prefix"}
ROOT = Path(__file__).resolve().parents[2]
# The production paths docs/shared-hosting.md's mysite.fcgi names (replaced in this order).
DOC_PYTHON = "/srv/mysite/venv/bin/python"
DOC_PROJDIR = "/srv/mysite"


def script_from_doc(projdir: Path) -> str:
    """``mysite.fcgi`` exactly as docs/shared-hosting.md shows it, its production paths (the
    venv's python, the project) pointed at this test's venv and project."""
    doc = (ROOT / "docs" / "shared-hosting.md").read_text()
    block = re.search(
        r"<!-- include: tests/webservers/recipes/mysite.fcgi -->\n```python\n(.*?)```", doc, re.S
    )
    assert block, "docs/shared-hosting.md shows no mysite.fcgi"
    text = block.group(1)
    for path in (DOC_PYTHON, DOC_PROJDIR):
        assert path in text, f"mysite.fcgi no longer names {path}: update this test"
    return text.replace(DOC_PYTHON, kit.PYTHON).replace(DOC_PROJDIR, str(projdir))


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
        if prefix:
            settings = project.dir / "mysite" / "settings.py"
            settings.write_text(settings.read_text() + f'STATIC_URL = "{prefix}/media/"\n')
        script = webdir / "mysite.fcgi"
        script.write_text(script_from_doc(project.dir))
        script.chmod(0o755)
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
        procfs.eventually("version 2 after touch", lambda: kit.info(site)["version"] == 2, 15)
    assert kit.info(site)["version"] == 2, "touch mysite.fcgi: the old code is still served"
