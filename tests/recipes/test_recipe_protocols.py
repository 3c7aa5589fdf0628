"""``./manage.py runfcgi protocol=scgi`` (and ``protocol=ajp``) behind Apache
(mod_proxy_scgi, mod_proxy_ajp) and nginx (scgi_pass), the site at / and at /prefix.

AJP has no SCRIPT_NAME: the /prefix install runs with ferrocgi's ``script_name=/prefix``.
nginx's scgi_params send ``Host`` without the port: ``MYSITE_PUBLIC_PORT`` lists it in
CSRF_TRUSTED_ORIGINS.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import kit
import pytest

from support import harness

FRONTS = ["apache-scgi", "apache-ajp", "nginx-scgi"]
MOUNTS = ["root", "prefix"]


def _backend(
    es: contextlib.ExitStack, project: kit.Project, protocol: str, *extra: str, env=None
) -> int:
    port = harness.free_port()
    words = [f"protocol={protocol}", "host=127.0.0.1", f"port={port}", *extra]
    es.enter_context(kit.runfcgi(project, words, ("127.0.0.1", port), env=env))
    return port


@pytest.fixture(scope="module", params=FRONTS)
def sites(
    request: pytest.FixtureRequest, rundir: Path, template: kit.Project
) -> Iterator[dict[str, kit.Site]]:
    front: str = request.param
    d = harness.make_dir(rundir / front)
    project = kit.install_project(template, d / "myproject")
    port = harness.free_port()
    # Apache: the site file's second virtual host; nginx: the same server block.
    prefix_host: str | None = "prefix.example.com"
    static = str(project.static_root)
    with contextlib.ExitStack() as es:
        if front == "apache-scgi":
            scgi = _backend(es, project, "scgi")
            values = {"PORT": str(port), "STATIC_ROOT": static}
            es.enter_context(kit.apache(d, "apache-scgi.conf", {**values, "SCGI_PORT": str(scgi)}))
        elif front == "apache-ajp":
            ajp = _backend(es, project, "ajp")
            ajp_prefix = _backend(es, project, "ajp", "script_name=/prefix")
            values = {
                "PORT": str(port),
                "STATIC_ROOT": static,
                "AJP_PORT": str(ajp),
                "PREFIX_AJP_PORT": str(ajp_prefix),
            }
            es.enter_context(kit.apache(d, "apache-ajp.conf", values))
        else:
            prefix_host = None
            scgi = _backend(es, project, "scgi", env={"MYSITE_PUBLIC_PORT": str(port)})
            values = {"PORT": str(port), "SCGI_PORT": str(scgi), "STATIC_ROOT": static}
            es.enter_context(kit.nginx(d, "nginx-scgi.conf", values))
        yield {
            "root": kit.Site("mysite", port, "", project.static_root),
            "prefix": kit.Site("mysite", port, "/prefix", project.static_root, host=prefix_host),
        }


@pytest.mark.parametrize("check", kit.CHECKS, ids=kit.CHECK_IDS)
@pytest.mark.parametrize("mount", MOUNTS)
def test_site(sites: dict[str, kit.Site], mount: str, check: Callable[[kit.Site], None]) -> None:
    check(sites[mount])
