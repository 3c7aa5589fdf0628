"""The access log (issue 16, item 2): a line per request with the right status and sizes under
concurrent load, through nginx and on every protocol; ``log_format=json``; rotation with
``mv`` + SIGUSR1 losing no line; client bytes that cannot forge a line; off by default."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support import harness, phpfpm, wire
from support.proc_server import fcgi_json, ferrocgi, http_get, prefork
from support.procfs import eventually

# The default format: the combined log, then duration, pid and queue wait.
LINE = re.compile(
    r'^(?P<h>\S+) - (?P<u>\S+) \[(?P<t>[^\]]+)\] "(?P<r>[^"]*)" (?P<s>\d{3}) (?P<b>\d+|-) '
    r'"(?P<f>[^"]*)" "(?P<a>[^"]*)" (?P<D>\d+)us pid=(?P<p>\d+) wait=(?P<w>\d+)us$'
)
JSON_KEYS = {
    "timestamp", "type", "remote_addr", "remote_user", "method", "uri", "protocol", "status",
    "bytes_out", "bytes_in", "referer", "user_agent", "duration_us", "queue_wait_us", "pid",
    "gateway", "outcome",
}  # fmt: skip


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_lines(path: Path, n: int, timeout: float = 15) -> list[str]:
    eventually(f"{n} lines in {path.name}", lambda: len(lines(path)) >= n, timeout)
    time.sleep(0.2)
    return lines(path)


@pytest.mark.parametrize("model", ["prefork", "threaded"])
def test_a_line_per_request_under_concurrent_load_through_nginx(rundir: Path, model: str) -> None:
    log = rundir / f"access-{model}.log"
    words = (
        prefork("maxchildren=3", "minspare=3", "maxspare=3")
        if model == "prefork"
        else ["method=threaded", "threads=8"]
    )
    with ferrocgi(rundir, [*words, f"access_log={log}"], name=model) as server:
        with harness.start_nginx(rundir, server.backend) as nginx:

            def one(i: int) -> tuple[int, int]:
                status, body = http_get(nginx.port, f"/fcgi/app/info?n={i}")
                return status, len(body)

            with ThreadPoolExecutor(20) as pool:
                results = list(pool.map(one, range(200)))
            assert all(s == 200 for s, _ in results)
            got = wait_lines(log, 200)
            workers = set(server.workers())
    assert len(got) == 200, got[-5:]
    parsed = [LINE.match(line) for line in got]
    assert all(parsed), [line for line, m in zip(got, parsed, strict=True) if not m][:3]
    ns = sorted(int(m["r"].split("?n=")[1].split(" ")[0]) for m in parsed if m)
    assert ns == list(range(200)), "each request exactly once"
    sizes = {n for _, n in results}
    for m in parsed:
        assert m is not None
        assert m["s"] == "200" and int(m["b"]) in sizes
        assert m["r"].startswith("GET /fcgi/app/info?n=") and m["r"].endswith(" HTTP/1.1")
        assert m["h"] == "127.0.0.1"
    if model == "prefork":
        assert {int(m["p"]) for m in parsed if m} <= workers


@pytest.mark.parametrize("protocol", ["fcgi", "scgi", "ajp13"])
def test_every_protocol_logs_its_requests(rundir: Path, protocol: str) -> None:
    log = rundir / f"access-{protocol}.log"
    fmt = "%(m)s %(U)s %(q)s %(s)s %(B)s %(I)s %(P)s %(e)s"
    words = [f"protocol={protocol}", f"access_log={log}", f"access_log_format={fmt}"]
    with ferrocgi(rundir, words, name=protocol) as server:
        reply = phpfpm.fetch(server.address, "/app/info", "x=1", protocol=protocol)
        assert reply.status == 200
        got = wait_lines(log, 1)
    gateway = {"fcgi": "fcgi", "scgi": "scgi", "ajp13": "ajp"}[protocol]
    assert got == [f"GET /app/info x=1 200 {len(reply.body)} 0 {gateway} ok"]


def test_json_lines_parse_with_the_documented_keys(rundir: Path) -> None:
    log = rundir / "access.json"
    with ferrocgi(rundir, [f"access_log={log}", "log_format=json"], name="json") as server:
        for _ in range(3):
            fcgi_json(server.address)
        got = wait_lines(log, 3)
        server_log = server.log().splitlines()
    records = [json.loads(line) for line in got]
    assert all(set(r) == JSON_KEYS for r in records), records[0]
    assert all(
        r["status"] == 200 and r["outcome"] == "ok" and r["type"] == "access" for r in records
    )
    assert all(r["uri"] == "/app/info" and r["gateway"] == "fcgi" for r in records)
    own = [json.loads(line) for line in server_log if line.startswith("{")]
    assert own, server_log[:5]
    assert any("listening on" in r.get("message", "") for r in own)
    assert all({"timestamp", "level", "target"} <= set(r) for r in own)


def test_rotation_with_mv_and_sigusr1_loses_no_line(rundir: Path) -> None:
    log = rundir / "rotate.log"
    words = prefork("maxchildren=2", "minspare=2", "maxspare=2", f"access_log={log}")
    with ferrocgi(rundir, words, name="rotate") as server:
        stop = threading.Event()
        sent: list[int] = []

        def load() -> None:
            while not stop.is_set():
                fcgi_json(server.address)
                sent.append(1)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        eventually("traffic", lambda: len(sent) > 50)
        log.rename(rundir / "rotate.log.1")
        os.kill(server.pid, signal.SIGUSR1)
        eventually("a new file after SIGUSR1", log.exists, 10)
        eventually("lines in the new file", lambda: len(lines(log)) > 50)
        stop.set()
        for t in threads:
            t.join(30)
        total = len(sent)
        eventually(
            "every line written",
            lambda: len(lines(log)) + len(lines(rundir / "rotate.log.1")) >= total,
        )
        time.sleep(0.3)
        both = lines(rundir / "rotate.log.1") + lines(log)
    assert len(both) == total, (len(both), total)
    assert all(LINE.match(line) for line in both), "no torn line"


def test_client_bytes_cannot_forge_a_line(rundir: Path) -> None:
    log = rundir / "forge.log"
    with ferrocgi(rundir, [f"access_log={log}"], name="forge") as server:
        evil = 'x" "y"\n6.6.6.6 - - [01/Jan/2026:00:00:00 +0000] "GET /admin HTTP/1.1" 200 1 "-" "z'
        params = [*wire.cgi_params(path="/app/info"), ("HTTP_USER_AGENT", evil)]
        with socket.create_connection(server.address, timeout=10) as s:
            s.sendall(wire.fcgi_request(params))
            assert wire.read_fcgi_response(s).cgi().status == 200
        got = wait_lines(log, 1)
    assert len(got) == 1, got
    m = LINE.match(got[0].replace('\\"', "'"))
    assert m, got[0]
    assert '\\"' in got[0] and "\\x0a6.6.6.6" in got[0]


def test_off_by_default(rundir: Path) -> None:
    with ferrocgi(rundir, [], name="off") as server:
        fcgi_json(server.address)
        time.sleep(0.2)
        assert not any('"GET /app/info' in line for line in server.log().splitlines())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch user")
def test_the_file_is_created_0640_for_the_user_it_drops_to(rundir: Path) -> None:
    d = harness.make_dir(rundir / "owned")
    d.chmod(0o777)
    log = d / "access.log"
    with ferrocgi(rundir, ["user=nobody", f"access_log={log}"], name="owned") as server:
        fcgi_json(server.address)
        wait_lines(log, 1)
        st = log.stat()
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert st.st_uid == pwd.getpwnam("nobody").pw_uid
        log.rename(d / "access.log.1")
        os.kill(server.pid, signal.SIGUSR1)
        eventually("the new file, made by nobody", log.exists, 10)
        fcgi_json(server.address)
        assert len(wait_lines(log, 1)) == 1
        assert log.stat().st_uid == pwd.getpwnam("nobody").pw_uid


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate is not installed")
def test_logrotate_as_the_docs_configure_it(rundir: Path) -> None:
    """docs/systemd/logrotate (shown in docs/production.md), its paths swapped for the test's,
    run by logrotate against a prefork server: the old lines in access.log.1, the new ones in
    a fresh access.log, none lost."""
    d = harness.make_dir(rundir / "logrotate")
    conf = (harness.ROOT / "docs" / "systemd" / "logrotate").read_text()
    for old, new in {"/var/log/mysite/": f"{d}/", "/run/mysite/": f"{d}/"}.items():
        assert old in conf
        conf = conf.replace(old, new)
    (d / "logrotate.conf").write_text(conf)
    log, pidfile = d / "access.log", d / "ferrocgi.pid"
    words = prefork("maxchildren=2", "minspare=2", "maxspare=2", f"access_log={log}")
    with ferrocgi(rundir, [*words, f"pidfile={pidfile}"], name="logrotate") as server:
        for _ in range(5):
            fcgi_json(server.address)
        wait_lines(log, 5)
        rotate = ["logrotate", "-f", "-s", str(d / "state"), str(d / "logrotate.conf")]
        out = subprocess.run(rotate, capture_output=True, text=True, timeout=30, check=False)
        assert out.returncode == 0, out.stderr
        assert len(lines(d / "access.log.1")) == 5
        eventually("a new access.log after the postrotate SIGUSR1", log.exists, 10)
        for _ in range(3):
            fcgi_json(server.address)
        assert len(wait_lines(log, 3)) == 3
        assert len(lines(d / "access.log.1")) == 5
