"""The recipes' Django project under /mysite/ behind Caddy, HAProxy and H2O, as the "Under a
URL prefix" sections of docs/caddy.md, docs/haproxy.md and docs/h2o.md show it (issue 17.3):
page and links, reverse() and the script prefix, the admin's CSS served by the front end under
the prefix (Caddy, H2O), CSRF login, 5 MiB upload, and a path outside the prefix that never
reaches Django."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import kit
import production
import pytest
from test_recipe_frontends import config

from support import harness

PREFIX = "/mysite"
RECIPES = {
    "caddy": ("caddy-prefix.Caddyfile", "Caddyfile"),
    "haproxy": ("haproxy-prefix.cfg", "haproxy.cfg"),
    "h2o": ("h2o-prefix.conf", None),
}


@dataclass
class Stack:
    server: str
    site: kit.Site


def runfcgi_words(server: str, swaps: dict[str, str]) -> list[str]:
    """The words of the doc's runfcgi line for the prefixed site: H2O's names the prefix
    (its own line in the prefix section), the others' is the page's first."""
    doc = (production.ROOT / "docs" / f"{server}.md").read_text()
    lines = [x for x in doc.splitlines() if x.startswith("./manage.py runfcgi ")]
    line = next((x for x in lines if "script_name=" in x), lines[0])
    for old, new in swaps.items():
        assert old in line, f"docs/{server}.md's runfcgi line no longer has {old!r}"
        line = line.replace(old, new)
    return line.split()[2:]


@pytest.fixture(scope="module", params=list(RECIPES))
def stack(request: pytest.FixtureRequest, rundir: Path, template: kit.Project) -> Iterator[Stack]:
    server = request.param
    project = kit.install_project(template, rundir / f"project-{server}")
    port = harness.free_port()
    # Relative: Django puts it under the script prefix, where the front ends serve it.
    env = {"MYSITE_PUBLIC_PORT": str(port), "MYSITE_STATIC_URL": "static/"}
    d = harness.instance_dir(rundir, f"{server}-prefix")
    values = {"RUN": str(d), "PORT": str(port), "SITE_DIR": str(project.dir)}
    with contextlib.ExitStack() as es:
        if server == "caddy":
            sock = d / "mysite.sock"
            swaps = {"/run/mysite/mysite.sock": str(sock), "myuser:caddy": "root:caddy"}
            address: kit.Address = str(sock)
            values["SOCKET"] = str(sock)
            harness.make_dir(d / "storage")
        else:
            fcgi_port = harness.free_port()
            swaps = {"port=3033": f"port={fcgi_port}"}
            address = (harness.LOOPBACK, fcgi_port)
            values["FCGI_PORT"] = str(fcgi_port)
        es.enter_context(kit.runfcgi(project, runfcgi_words(server, swaps), address, env=env))
        recipe, wrapper = RECIPES[server]
        conf = config(recipe, wrapper, d, values, recipe)
        es.enter_context(harness.run_webserver(server, d, conf, [port]))
        yield Stack(server, kit.Site("mysite", port, PREFIX, project.static_root))


@pytest.mark.parametrize("check", kit.CHECKS, ids=kit.CHECK_IDS)
def test_django_under_the_prefix(stack: Stack, check: Callable[[kit.Site], None]) -> None:
    if check is kit.check_admin_css and stack.server == "haproxy":
        pytest.skip("docs/haproxy.md leaves static files to another front end")
    check(stack.site)


def test_a_path_outside_the_prefix_never_reaches_django(stack: Stack) -> None:
    outside = kit.get(stack.site, "/about/")
    assert outside.status == 404, (outside.status, outside.text[:300])
    assert "about mysite" not in outside.text
