"""docs/operations.md as written: the recipes' project started with its runfcgi line
(``status_path=/status ping_path=/ping``), behind docs/nginx.md's site with the status
locations the doc adds, scraped by Prometheus with the doc's configuration, and read with the
doc's ``ferrocgi status`` line."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import kit
import production
import pytest

from support import harness, phpfpm
from support.proc_server import http_get
from support.procfs import eventually

DOC = production.ROOT / "docs" / "operations.md"
SOCKET = "/run/mysite/mysite.sock"


def doc_line(prefix: str, swaps: dict[str, str]) -> list[str]:
    """The words of the first line of docs/operations.md starting with ``prefix``, its
    production paths swapped for the test's (every swap must find its text)."""
    line = next(x for x in DOC.read_text().splitlines() if x.startswith(prefix))
    for old, new in swaps.items():
        assert old in line, f"docs/operations.md's {prefix!r} line no longer has {old!r}"
        line = line.replace(old, new)
    return line.split()


@dataclass
class Stack:
    port: int
    socket: Path
    site: kit.Site
    access_log: Path


def site_with_status() -> str:
    """docs/nginx.md's site with docs/operations.md's locations where the doc says: above
    ``location /`` (and the /prefix location above it), inside the server block."""
    site = production.derive("nginx-fastcgi.conf")
    snippet = production.derive("nginx-status.conf")
    anchor = "    # STATIC_URL"
    assert site.count(anchor) == 1, "docs/nginx.md's site changed: move the anchor"
    indented = "".join("    " + line if line.strip() else line for line in snippet.splitlines(True))
    return site.replace(anchor, indented + "\n" + anchor)


@pytest.fixture(scope="module")
def stack(rundir: Path, template: kit.Project) -> Iterator[Stack]:
    project = kit.install_project(template, rundir / "myproject")
    port = harness.free_port()
    sock = rundir / "mysite.sock"
    swaps = {
        SOCKET: str(sock),
        "socket_owner=myuser:www-data": "socket_owner=root:nogroup",
        "/var/log/mysite/access.log": str(rundir / "access.log"),
    }
    words = doc_line("./manage.py runfcgi ", swaps)[2:]
    d = harness.make_dir(rundir / "nginx")
    for sub in ("tmp", "logs"):
        harness.make_dir(d / sub)
    values = {"RUN": str(d), "PORT": str(port), "SOCKET": str(sock)}
    values["STATIC_ROOT"] = str(project.static_root)
    conf = harness.fill(production.wrap("nginx.conf", site_with_status()), d / "nginx.conf", values)
    with contextlib.ExitStack() as es:
        es.enter_context(
            kit.runfcgi(project, words, str(sock), env={"MYSITE_PUBLIC_PORT": str(port)})
        )
        es.enter_context(harness.run_webserver("nginx", d, conf, [port]))
        site = kit.Site("mysite", port, "", project.static_root)
        yield Stack(port, sock, site, rundir / "access.log")


def test_the_status_page_in_php_fpm_s_formats_through_nginx(stack: Stack) -> None:
    kit.expect(kit.get(stack.site, "/"), 200, "the site")
    status, body = http_get(stack.port, "/status")
    assert status == 200, body
    page = phpfpm.parse_text(body.decode())
    assert page.pool["pool"] == str(stack.socket)
    assert page.pool["process manager"] == "dynamic"
    assert int(page.pool["accepted conn"]) >= 1
    status, body = http_get(stack.port, "/status?json&full")
    data = phpfpm.parse_json(body)
    assert len(data["processes"]) == data["total processes"] >= 1
    assert any(p["request uri"] == "/" for p in data["processes"])


def test_the_location_keeps_other_clients_out_and_ping_answers(stack: Stack) -> None:
    status, _ = http_get(stack.port, "/status", source="127.0.0.2")
    assert status == 403, "nginx's deny all: 127.0.0.2 is not allowed"
    assert http_get(stack.port, "/ping", source="127.0.0.2") == (200, b"pong\n")


def test_ferrocgi_status_as_the_doc_writes_it(stack: Stack) -> None:
    argv = doc_line("ferrocgi status ", {SOCKET: str(stack.socket)})
    out = subprocess.run(
        [str(harness.ferrocgi_command()), *argv[1:]], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"pool {stack.socket} · dynamic · up "), out.stdout
    assert re.search(r"^\s+\d+\s+(Idle|Running)\s", out.stdout, re.M), out.stdout


def prom_ready(port: int) -> bool:
    """Prometheus answers 503 until its storage is open: ``/-/ready`` says when."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def prom_scalar(port: int, expr: str) -> float | None:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        result = json.load(r)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed")
def test_prometheus_scrapes_with_the_doc_s_configuration(stack: Stack, rundir: Path) -> None:
    d = harness.make_dir(rundir / "prometheus")
    conf = harness.fill(
        production.derive("prometheus.yml"), d / "prometheus.yml", {"PORT": str(stack.port)}
    )
    port = harness.free_port()
    argv = [
        "prometheus",
        f"--config.file={conf}",
        f"--storage.tsdb.path={d / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with harness.spawn("prometheus", argv, d) as proc:
        harness.wait_until("prometheus ready", proc, lambda: prom_ready(port), timeout=60)
        eventually("the target up", lambda: prom_scalar(port, 'up{job="mysite"}') == 1.0, 30)
        metric = 'ferrocgi_accepted_connections_total{job="mysite"}'
        eventually("the counter scraped", lambda: prom_scalar(port, metric) is not None, 15)
        before = prom_scalar(port, metric) or 0
        for _ in range(20):
            kit.expect(kit.get(stack.site, "/about/"), 200, "about")
        eventually(
            "the counter grown by the traffic",
            lambda: (prom_scalar(port, metric) or 0) >= before + 20,
            15,
        )
        count = prom_scalar(port, 'ferrocgi_request_duration_seconds_count{job="mysite"}')
        assert count is not None and count >= 20


def test_the_access_log_the_doc_turns_on(stack: Stack) -> None:
    kit.expect(kit.get(stack.site, "/about/?from=test"), 200, "about")
    eventually(
        "the request's access line",
        lambda: any(
            '"GET /about/?from=test HTTP/1.1" 200 ' in line
            for line in stack.access_log.read_text().splitlines()
        ),
    )
