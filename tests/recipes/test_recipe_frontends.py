"""Caddy, HAProxy and H2O as docs/caddy.md, docs/haproxy.md and docs/h2o.md show them.

Each doc shows a production config (tests/webservers/recipes/); the test takes the doc's text,
replaces its production paths and addresses with the test's (tests/recipes/production.py),
wraps it in the harness-only lines a private server needs (tests/webservers/harness/) and
runs a WSGI application behind it: the app at / with the split the doc promises, the static
files served by the front end where the doc serves them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import kit
import production
import pytest

from support import harness

STATIC_TEXT = "served by the front end\n"


def site_dir(d: Path) -> Path:
    """``/srv/mysite`` of the docs: ``static/hello.txt`` in it, readable by every user."""
    site = harness.make_dir(d / "srv-mysite")
    static = harness.make_dir(site / "static")
    (static / "hello.txt").write_text(STATIC_TEXT)
    for p in (site, static, static / "hello.txt"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return site


def config(recipe: str, wrapper: str | None, d: Path, values: dict[str, str], name: str) -> Path:
    text = production.derive(recipe)
    if wrapper:
        text = production.wrap(wrapper, text)
    return harness.fill(text, d / name, values)


@pytest.mark.parametrize("server", ["caddy", "haproxy", "h2o"])
def test_the_docs_config_serves_the_app(rundir: Path, server: str) -> None:
    transport = "unix" if server == "caddy" else "tcp"
    with harness.start_wsgi(rundir, transport=transport) as backend:
        d = harness.instance_dir(rundir, server)
        port = harness.free_port()
        values = {"RUN": str(d), "PORT": str(port), "SITE_DIR": str(site_dir(d))}
        if transport == "unix":
            values["SOCKET"] = backend.path
        else:
            values["FCGI_PORT"] = str(backend.port)
        if server == "caddy":
            harness.make_dir(d / "storage")
            conf = config("caddy.Caddyfile", "Caddyfile", d, values, "Caddyfile")
        elif server == "haproxy":
            conf = config("haproxy.cfg", "haproxy.cfg", d, values, "haproxy.cfg")
        else:
            conf = config("h2o.conf", None, d, values, "h2o.conf")
        with harness.run_webserver(server, d, conf, [port]):
            conn = harness.http.client.HTTPConnection(harness.LOOPBACK, port, timeout=30)
            env = harness.send(conn, "GET", "/env/some/path?x=1").json()
            assert env["PATH_INFO"] == "/env/some/path" and env["SCRIPT_NAME"] == ""
            assert env["QUERY_STRING"] == "x=1"
            if server != "haproxy":
                static = harness.send(conn, "GET", "/static/hello.txt")
                assert (static.status, static.body.decode()) == (200, STATIC_TEXT)
            conn.close()


# ---- the recipes' Django project behind each, as the docs start it ----


@dataclass
class DjangoStack:
    server: str
    site: kit.Site


def start_front_end(
    es: contextlib.ExitStack, server: str, d: Path, port: int, backend: dict[str, str]
) -> None:
    values = {"RUN": str(d), "PORT": str(port), **backend}
    recipe, wrapper = {
        "caddy": ("caddy.Caddyfile", "Caddyfile"),
        "haproxy": ("haproxy.cfg", "haproxy.cfg"),
        "h2o": ("h2o.conf", None),
    }[server]
    if server == "caddy":
        harness.make_dir(d / "storage")
    conf = config(recipe, wrapper, d, values, recipe)
    es.enter_context(harness.run_webserver(server, d, conf, [port]))


def runfcgi_words(server: str, swaps: dict[str, str]) -> list[str]:
    """The words of the ``./manage.py runfcgi`` line docs/SERVER.md shows, its production
    address (and socket owner) swapped for the test's; every swap must find its text."""
    doc = (production.ROOT / "docs" / f"{server}.md").read_text()
    line = next(x for x in doc.splitlines() if x.startswith("./manage.py runfcgi "))
    for old, new in swaps.items():
        assert old in line, f"docs/{server}.md's runfcgi line no longer has {old!r}"
        line = line.replace(old, new)
    return line.split()[2:]


@pytest.fixture(scope="module", params=["caddy", "haproxy", "h2o"])
def django_stack(
    request: pytest.FixtureRequest, rundir: Path, template: kit.Project
) -> Iterator[DjangoStack]:
    """The project started with the runfcgi line its doc shows (socket for Caddy, TCP for the
    others), STATIC_URL "/static/" as the docs' configs serve it."""
    server = request.param
    project = kit.install_project(template, rundir / f"project-{server}")
    port = harness.free_port()
    env = {"MYSITE_PUBLIC_PORT": str(port), "MYSITE_STATIC_URL": "/static/"}
    d = harness.instance_dir(rundir, f"{server}-django")
    with contextlib.ExitStack() as es:
        if server == "caddy":
            sock = d / "mysite.sock"
            swaps = {"/run/mysite/mysite.sock": str(sock), "myuser:caddy": "root:caddy"}
            address: kit.Address = str(sock)
            backend = {"SOCKET": str(sock)}
        else:
            fcgi_port = harness.free_port()
            swaps = {"port=3033": f"port={fcgi_port}"}
            address = (harness.LOOPBACK, fcgi_port)
            backend = {"FCGI_PORT": str(fcgi_port)}
        words = runfcgi_words(server, swaps)
        es.enter_context(kit.runfcgi(project, words, address, env=env))
        backend["SITE_DIR"] = str(project.dir)
        start_front_end(es, server, d, port, backend)
        yield DjangoStack(server, kit.Site("mysite", port, "", project.static_root))


@pytest.mark.parametrize("check", kit.CHECKS, ids=kit.CHECK_IDS)
def test_django_behind(django_stack: DjangoStack, check: Callable[[kit.Site], None]) -> None:
    if check is kit.check_admin_css and django_stack.server == "haproxy":
        pytest.skip("docs/haproxy.md leaves static files to another front end")
    check(django_stack.site)
