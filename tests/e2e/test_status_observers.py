"""The status page as its readers see it (issue 16): Prometheus scraping ``?openmetrics``
through nginx, and headless Chromium rendering ``?html``. Its screenshot is kept with the test
artifacts: ``$FERROCGI_ARTIFACTS`` or ``target/test-artifacts/status-page.png`` (the one in
docs/img/ was taken this way). Both are Debian packages that scripts/lib.sh installs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from support import harness
from support.proc_server import fcgi_json, ferrocgi, http_get, prefork
from support.procfs import eventually

ARTIFACTS = Path(os.environ.get("FERROCGI_ARTIFACTS", harness.ROOT / "target" / "test-artifacts"))
WORDS = prefork("minspare=2", "maxspare=3", "maxchildren=3", "status_path=/fcgi/status")

PROMETHEUS_YML = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: ferrocgi
    metrics_path: /fcgi/status
    params:
      openmetrics: [""]
    static_configs:
      - targets: ["127.0.0.1:@NGINX_PORT@"]
"""


def prom_query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        data = json.load(r)
    assert data["status"] == "success", data
    return data["data"]["result"]


def scalar(port: int, expr: str) -> float | None:
    result = prom_query(port, expr)
    return float(result[0]["value"][1]) if result else None


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed")
def test_prometheus_scrapes_the_openmetrics_page_through_nginx(rundir: Path) -> None:
    with ferrocgi(rundir, WORDS) as server, harness.start_nginx(rundir, server.backend) as nginx:
        d = harness.instance_dir(rundir, "prometheus")
        conf = harness.fill(PROMETHEUS_YML, d / "prometheus.yml", {"NGINX_PORT": str(nginx.port)})
        port = harness.free_port()
        argv = [
            "prometheus",
            f"--config.file={conf}",
            f"--storage.tsdb.path={d / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with harness.spawn("prometheus", argv, d) as proc:
            harness.wait_until(
                "prometheus ready", proc, lambda: harness.can_connect(("127.0.0.1", port))
            )
            eventually("the target up", lambda: scalar(port, 'up{job="ferrocgi"}') == 1.0, 30)
            metric = 'ferrocgi_accepted_connections_total{job="ferrocgi"}'
            eventually("the counter scraped", lambda: scalar(port, metric) is not None, 15)
            before = scalar(port, metric)
            assert before is not None
            for _ in range(25):
                assert http_get(nginx.port, "/fcgi/app/info")[0] == 200
            eventually(
                "the counter grown by the traffic",
                lambda: (scalar(port, metric) or 0) >= before + 25,
                15,
            )
            buckets = prom_query(port, 'ferrocgi_request_duration_seconds_bucket{le="+Inf"}')
            assert buckets and float(buckets[0]["value"][1]) >= 25
            assert scalar(port, 'sum(ferrocgi_processes{state="idle"})') is not None


def chromium(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    argv = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={home / 'profile'}",
        *args,
    ]
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(argv, capture_output=True, text=True, timeout=90, env=env, check=False)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_chromium_renders_the_html_page_with_its_worker_table(rundir: Path) -> None:
    with ferrocgi(rundir, WORDS) as server, harness.start_nginx(rundir, server.backend) as nginx:
        for _ in range(7):
            fcgi_json(server.address)
        eventually("three workers", lambda: len(server.workers()) == 3)
        time.sleep(0.5)
        home = harness.make_dir(rundir / "chromium")
        url = f"http://127.0.0.1:{nginx.port}/fcgi/status?html&refresh=0"
        dom = chromium("--dump-dom", url, home=home)
        assert dom.returncode == 0, dom.stderr[-2000:]
        table = re.search(r'<table id="workers">.*?</table>', dom.stdout, re.S)
        assert table, dom.stdout[:2000]
        rows = re.findall(r"<tr><td>(\d+)</td>", table.group(0))
        assert {int(pid) for pid in rows} == set(server.workers())
        assert "pool 127.0.0.1:" in dom.stdout
        shot = harness.make_dir(ARTIFACTS) / "status-page.png"
        out = chromium(f"--screenshot={shot}", "--window-size=1100,520", url, home=home)
        assert out.returncode == 0 and shot.stat().st_size > 10_000, out.stderr[-2000:]
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
