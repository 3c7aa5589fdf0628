"""The status page and ping (issue 16, item 1): php-fpm's fields in its text and JSON formats,
read by a parser written from php-fpm's documentation (tests/support/phpfpm.py); the worker
rows against the live processes; states while a request runs; every protocol; the allow-list;
through nginx with kept-alive connections."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from support import harness, phpfpm, procfs
from support.proc_server import Server, fcgi_json, ferrocgi, http_get, prefork
from support.procfs import eventually

STATUS = ["status_path=/status", "ping_path=/ping"]


def status_json(address: tuple[str, int] | str, query: str = "json&full") -> dict:
    reply = phpfpm.fetch(address, "/status", query)
    assert reply.status == 200, reply
    assert reply.headers["content-type"] == "application/json"
    return phpfpm.parse_json(reply.body)


def test_prefork_status_in_php_fpm_s_text_and_json(rundir: Path) -> None:
    words = prefork("minspare=2", "maxspare=3", "maxchildren=3", *STATUS)
    with ferrocgi(rundir, words) as server:
        for _ in range(5):
            fcgi_json(server.address)
        text = phpfpm.fetch(server.address, "/status", "full")
        assert text.status == 200 and text.headers["content-type"].startswith("text/plain")
        page = phpfpm.parse_text(text.body.decode())
        assert page.pool["process manager"] == "dynamic"
        assert page.pool["accepted conn"] == "5", "status requests are not the application's"
        assert int(page.pool["start since"]) >= 0
        # Spares may still be starting: the rows follow the workers.
        eventually(
            "a row per live worker",
            lambda: (
                {p["pid"] for p in status_json(server.address)["processes"]}
                == set(server.workers())
            ),
        )
        data = status_json(server.address)
        assert data["total processes"] == len(server.workers())
        assert data["idle processes"] + data["active processes"] == data["total processes"]
        assert sum(p["requests"] for p in data["processes"]) == 5
        served = [p for p in data["processes"] if p["requests"]]
        assert all(p["request uri"] == "/app/info" and p["request method"] == "GET" for p in served)
        assert all(p["rss"] > 1 << 20 for p in data["processes"])


def test_a_running_request_shows_on_its_worker_then_its_end(rundir: Path) -> None:
    words = prefork("minspare=2", "maxspare=3", "maxchildren=3", *STATUS)
    with ferrocgi(rundir, words) as server:
        slow = threading.Thread(
            target=fcgi_json, args=(server.address, "/app/sleep", "sleep=1.5"), daemon=True
        )
        slow.start()

        def running() -> dict | None:
            procs = status_json(server.address)["processes"]
            return next((p for p in procs if p["state"] == "Running"), None)

        eventually("the slow request running", lambda: running() is not None, 5)
        busy = running()
        assert busy is not None
        assert busy["request uri"] == "/app/sleep?sleep=1.5"
        assert busy["pid"] in server.workers()
        time.sleep(0.3)
        later = running()
        assert later and later["request duration"] > busy["request duration"]
        assert status_json(server.address)["active processes"] >= 1
        slow.join(10)

        def after() -> dict:
            return next(
                p for p in status_json(server.address)["processes"] if p["pid"] == busy["pid"]
            )

        eventually("the worker idle again", lambda: after()["state"] == "Idle", 5)
        done = after()
        assert done["requests"] == busy["requests"] + 1
        assert done["request duration"] >= 1_500_000, "the last request's duration, in µs"
        assert status_json(server.address)["max active processes"] >= 1


def test_threaded_rows_are_the_python_threads(rundir: Path) -> None:
    with ferrocgi(rundir, ["method=threaded", "threads=3", *STATUS]) as server:
        for _ in range(4):
            fcgi_json(server.address)
        data = status_json(server.address)
        assert data["process manager"] == "static"
        assert data["total processes"] == 3
        threads = set(procfs.threads(server.pid))
        assert {p["pid"] for p in data["processes"]} <= threads, "rows are thread ids"
        assert sum(p["requests"] for p in data["processes"]) == 4


@pytest.mark.parametrize("protocol", ["fcgi", "scgi", "ajp13"])
def test_status_and_ping_over_every_protocol(rundir: Path, protocol: str) -> None:
    with ferrocgi(rundir, [f"protocol={protocol}", *prefork(*STATUS)]) as server:
        pong = phpfpm.fetch(server.address, "/ping", protocol=protocol)
        assert (pong.status, pong.body) == (200, b"pong\n")
        page = phpfpm.fetch(server.address, "/status", protocol=protocol)
        assert page.status == 200
        assert phpfpm.parse_text(page.body.decode()).pool["process manager"] == "dynamic"
        html = phpfpm.fetch(server.address, "/status", "html", protocol=protocol)
        assert html.headers["content-type"].startswith("text/html")
        assert b"<table id=workers>" in html.body


def test_status_allow_from_refuses_other_clients_and_ping_stays_open(rundir: Path) -> None:
    words = [*STATUS, "status_allow_from=10.1.2.0/24"]
    with ferrocgi(rundir, words) as server:
        refused = phpfpm.fetch(server.address, "/status", remote_addr="127.0.0.1")
        assert refused.status == 403
        assert "not in status_allow_from" in server.log()
        ok = phpfpm.fetch(server.address, "/status", "json", remote_addr="10.1.2.3")
        assert ok.status == 200
        assert phpfpm.fetch(server.address, "/ping", remote_addr="192.0.2.1").body == b"pong\n"


def test_status_allow_from_defaults_to_allow_from(rundir: Path) -> None:
    with ferrocgi(rundir, [*STATUS, "allow_from=127.0.0.1"]) as server:
        assert phpfpm.fetch(server.address, "/status", remote_addr="127.0.0.1").status == 200
        assert phpfpm.fetch(server.address, "/status", remote_addr="198.51.100.7").status == 403


def test_client_chosen_uris_cannot_add_markup_to_the_html_page(rundir: Path) -> None:
    with ferrocgi(rundir, prefork("maxchildren=1", "maxspare=1", "minspare=1", *STATUS)) as server:
        fcgi_json(server.address, "/app/<script>alert(1)</script>")
        body = phpfpm.fetch(server.address, "/status", "html").body.decode()
        assert "<script>" not in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_status_through_nginx_keeps_its_upstream_connection(rundir: Path) -> None:
    with ferrocgi(rundir, ["status_path=/fcgi/status", "ping_path=/fcgi/ping"]) as server:
        with harness.start_nginx(rundir, server.backend) as nginx:
            before = server.backend.accepted()
            for _ in range(5):
                status, body = http_get(nginx.port, "/fcgi/status?json")
                assert status == 200, body
                assert phpfpm.parse_json(body)["pool"]
            assert http_get(nginx.port, "/fcgi/ping") == (200, b"pong\n")
            assert server.backend.accepted() - before <= 1, "one kept-alive upstream connection"


def restarts(address: tuple[str, int] | str, reason: str) -> int:
    page = phpfpm.parse_text(phpfpm.fetch(address, "/status").body.decode())
    return int(page.pool[f"restarts {reason}"])


def test_restarts_are_counted_by_reason(rundir: Path) -> None:
    words = prefork("maxchildren=2", "minspare=1", "maxspare=2", "maxrequests=2", *STATUS)
    with ferrocgi(rundir, words, name="maxrequests") as server:
        for _ in range(6):
            fcgi_json(server.address)
        eventually(
            "maxrequests restarts counted", lambda: restarts(server.address, "maxrequests") >= 2
        )
        assert restarts(server.address, "crash") == 0
    words = prefork("maxchildren=2", "minspare=1", "maxspare=2", "max_rss=64M", *STATUS)
    with ferrocgi(rundir, words, name="max_rss") as server:
        assert fcgi_json(server.address, "/app/hog", "mb=96")["held_mb"] == 96
        eventually("a max_rss restart counted", lambda: restarts(server.address, "max_rss") == 1)
        os_kill_one_worker(server)
        eventually("a crash counted", lambda: restarts(server.address, "crash") == 1)


def os_kill_one_worker(server: Server) -> None:
    eventually("a worker to kill", lambda: bool(server.workers()))
    os.kill(server.workers()[0], signal.SIGKILL)
