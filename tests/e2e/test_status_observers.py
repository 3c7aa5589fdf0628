"""The status page as a person sees it (issue 16): headless Chromium (a Debian package
scripts/lib.sh installs) renders ``?html`` through nginx. Its screenshot is kept with the test
artifacts: ``$FERROCGI_ARTIFACTS`` or ``target/test-artifacts/status-page.png`` (the one in
docs/img/ was taken this way). Prometheus scraping ``?openmetrics`` is in
tests/recipes/test_recipe_status.py, with the configuration docs/operations.md shows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from support import harness
from support.proc_server import fcgi_json, ferrocgi, prefork
from support.procfs import eventually

ARTIFACTS = Path(os.environ.get("FERROCGI_ARTIFACTS", harness.ROOT / "target" / "test-artifacts"))
WORDS = prefork("minspare=2", "maxspare=3", "maxchildren=3", "status_path=/fcgi/status")


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
        # Requests that take a while, until the supervisor has seen a worker busy and grown
        # the pool to maxchildren (a quick one can begin and end between two of its looks).
        def busy_then_count() -> bool:
            fcgi_json(server.address, query="sleep=0.05")
            return len(server.workers()) == 3

        eventually("three workers", busy_then_count)
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
