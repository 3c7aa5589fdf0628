"""The signals a running ferrocgi obeys, threaded and prefork: SIGHUP (reload under load),
SIGTERM (finish what is in flight, stop promptly), SIGTTIN / SIGTTOU (the spare pool), SIGUSR1
(reopen the log files).

How servers are started, found and cleaned up: ``tests/support/proc_server.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support import harness
from support.harness import Frontend
from support.proc_server import (
    APP,
    APPS,
    FERROCGI,
    Load,
    clean_env,
    fcgi_json,
    ferrocgi,
    http_get,
    kill_tagged,
    make_app,
    prefork,
    start_daemon,
)
from support.procfs import alive, children, eventually, read_pid


def test_prefork_sighup_reload_under_load(rundir: Path, nginx: Callable[..., Frontend]) -> None:
    """SIGHUP under load: no request fails, the new code is served afterwards, the supervisor
    keeps its pid and the old workers exit."""
    with ferrocgi(rundir, prefork("minspare=2", "maxspare=4", "maxchildren=6")) as srv:
        front = nginx(srv.backend)
        srv.wait_workers(lambda n: n >= 2, "2 workers")
        old = srv.workers()
        with Load(front.port, "/fcgi/info?sleep=0.05", concurrency=3) as load:
            load.wait_requests(20)
            srv.set_version("2")
            since = srv.mark()
            os.kill(srv.pid, signal.SIGHUP)
            eventually(
                "version 2 to be served",
                lambda: any(d["version"] == "2" for d in load.served()),
                20,
            )
            load.wait_requests(30)
        srv.wait_log("SIGHUP", since)
        served = load.served()
        assert served[-1]["version"] == "2"
        # The last requests all come from the new generation.
        assert {d["version"] for d in served[-10:]} == {"2"}, served[-10:]
        assert all(d["ppid"] == srv.pid for d in served), "a worker of another supervisor"
        assert srv.proc.alive()
        assert not set(old) & {d["pid"] for d in served if d["version"] == "2"}
        eventually(f"old workers {old} to exit", lambda: not any(alive(p) for p in old), 15)
        failures = load.failures()
        assert not failures, f"{len(failures)} of {len(load.snapshot())} failed: {failures[:5]}"


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
@pytest.mark.parametrize("method", ["prefork", "threaded"])
def test_sighup_reload_under_load(
    rundir: Path, nginx: Callable[..., Frontend], method: str, interface: str
) -> None:
    """The same reload for both models and both interfaces, on a Unix socket; threaded: the one
    process drains, re-executes itself (same pid) and serves the new code."""
    words = prefork("minspare=2", "maxspare=4") if method == "prefork" else ["method=threaded"]
    with ferrocgi(
        rundir,
        [*words, "threads=4"] if method == "threaded" else words,
        transport="unix",
        app=APPS[interface],
    ) as srv:
        front = nginx(srv.backend)
        with Load(front.port, "/fcgi/info?sleep=0.05", concurrency=3) as load:
            load.wait_requests(20)
            srv.set_version("2")
            os.kill(srv.pid, signal.SIGHUP)
            eventually(
                "version 2 to be served",
                lambda: any(d["version"] == "2" for d in load.served()),
                20,
            )
            load.wait_requests(30)
        served = load.served()
        assert {d["version"] for d in served[-10:]} == {"2"}, served[-10:]
        if method == "threaded":
            assert {d["pid"] for d in served} == {srv.pid}, "served by another process"
        assert srv.proc.alive()
        assert Path(srv.backend.path).exists()
        failures = load.failures()
        assert not failures, f"{len(failures)} of {len(load.snapshot())} failed: {failures[:5]}"


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
@pytest.mark.parametrize("method", ["prefork", "threaded"])
def test_sigterm_finishes_slow_requests(
    rundir: Path, nginx: Callable[..., Frontend], method: str, interface: str
) -> None:
    """SIGTERM with three 2-second requests in flight: all three complete with 200, then the
    process exits 0 and removes its socket file."""
    words = prefork("minspare=3", "maxspare=4") if method == "prefork" else ["threads=4"]
    if method == "threaded":
        words = ["method=threaded", *words]
    with ferrocgi(rundir, words, transport="unix", app=APPS[interface]) as srv:
        front = nginx(srv.backend)
        if method == "prefork":
            srv.wait_workers(lambda n: n >= 3, "3 workers")
        results: list[tuple[int, bytes] | str] = []

        def one() -> None:
            try:
                results.append(http_get(front.port, "/fcgi/info?sleep=2"))
            except Exception as exc:  # noqa: BLE001
                results.append(repr(exc))

        since = srv.mark()
        threads = [threading.Thread(target=one) for _ in range(3)]
        for t in threads:
            t.start()
        eventually(
            "3 connections accepted",
            lambda: sum("accepted connection" in x for x in srv.backend.log_lines()[since:]) >= 3,
            5,
        )
        time.sleep(0.3)
        t0 = time.monotonic()
        os.kill(srv.pid, signal.SIGTERM)
        try:
            code = srv.proc.popen.wait(20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 20 s after SIGTERM:\n{srv.tail()}")
        took = time.monotonic() - t0
        for t in threads:
            t.join(20)
        assert len(results) == 3
        for r in results:
            assert not isinstance(r, str), f"a request failed: {r}\n{srv.tail()}"
            assert r[0] == 200, r
            assert json.loads(r[1])["slept"] == 2.0
        assert code == 0, f"exit status {code}\n{srv.tail()}"
        assert took < 10, f"exit took {took:.1f}s"
        assert not Path(srv.backend.path).exists(), "the socket file was left behind"
        if method == "prefork":
            assert not children(srv.pid)


def late_request(address: tuple[str, int] | str) -> str:
    """A FastCGI request on a new connection: ``refused``, ``served``, or what went wrong."""
    try:
        got = fcgi_json(address)
    except ConnectionRefusedError:
        return "refused"
    except (OSError, AssertionError) as e:
        return repr(e)
    return "served" if got.get("pid") else repr(got)


@pytest.mark.parametrize(
    ("method", "words", "expect"),
    [
        ("prefork", prefork("minspare=2", "maxspare=2", "threads=2"), "refused"),
        ("prefork-inline", prefork("minspare=2", "maxspare=2"), "served"),
        ("threaded", ["method=threaded", "threads=4"], "refused"),
    ],
)
def test_a_connection_arriving_during_a_stop_is_refused_or_served(
    rundir: Path, method: str, words: list[str], expect: str
) -> None:
    """While a stop finishes a 2 s request in flight, a new connection is refused at once (a
    front end tries the next server) or, where the socket is still held by a worker whose
    Python runs on its I/O thread (prefork with threads=1), taken and served when that worker
    gets back to its loop. Never queued on a socket nobody will take from, to be reset at an
    exit after the front end sent its request (nginx does not retry a POST it sent): a prefork
    worker inherits the supervisor's descriptors of the socket and must close those too."""
    with ferrocgi(rundir, words, transport="tcp") as srv:
        if method.startswith("prefork"):
            srv.wait_workers(lambda n: n >= 2, "2 workers")
        slow: list[Any] = []
        t = threading.Thread(target=lambda: slow.append(fcgi_json(srv.address, query="sleep=2")))
        since = srv.mark()
        t.start()
        srv.wait_log("accepted connection", since, 5)
        time.sleep(0.2)
        os.kill(srv.pid, signal.SIGTERM)
        srv.wait_log("stopping: no new connections", since, 5)
        time.sleep(0.3)
        assert srv.proc.popen.poll() is None, "the server stopped before its request ended"
        assert late_request(srv.address) == expect, srv.tail()
        t.join(10)
        assert slow and slow[0]["slept"] == 2.0, srv.tail()
        assert srv.proc.popen.wait(10) == 0, srv.tail()


def test_prefork_sigterm_right_after_start_stops_promptly(rundir: Path) -> None:
    """SIGTERM as soon as the supervisor has forked its workers: every worker must stop
    (a worker not yet listening for SIGTERM must not miss it), so the process exits at once,
    not after graceful_timeout. Six tries, each bounded."""
    for attempt in range(6):
        d = harness.instance_dir(rundir, "early-term")
        app = make_app(d)
        tag = uuid.uuid4().hex
        sock = d / "app.sock"
        argv = [
            FERROCGI,
            APP,
            f"pythonpath={app}",
            f"socket={sock}",
            *prefork("minspare=6", "maxspare=6"),
        ]
        try:
            with harness.spawn("ferrocgi", argv, d, env=clean_env(tag)) as proc:
                err = d / "ferrocgi.stderr"
                harness.wait_until(
                    "a worker", proc, lambda e=err: "started worker" in e.read_text(), 15
                )
                t0 = time.monotonic()
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    code = proc.popen.wait(10)
                except subprocess.TimeoutExpired:
                    pytest.fail(
                        f"attempt {attempt}: still running 10 s after SIGTERM (workers "
                        f"{children(proc.pid)} ignored it?)\n{harness.tail(err)}",
                        pytrace=False,
                    )
                assert code == 0, harness.tail(err)
                assert time.monotonic() - t0 < 5
                assert not sock.exists()
        finally:
            kill_tagged(tag)


def test_prefork_sigttin_sigttou_change_the_spare_pool(rundir: Path) -> None:
    with ferrocgi(rundir, prefork("minspare=1", "maxspare=1", "maxchildren=5")) as srv:
        srv.wait_workers(lambda n: n == 1, "1 worker")
        since = srv.mark()
        os.kill(srv.pid, signal.SIGTTIN)
        srv.wait_log("SIGTTIN: one more worker", since)
        srv.wait_workers(lambda n: n == 2, "2 workers after SIGTTIN", 10)
        time.sleep(1.5)
        assert len(srv.workers()) == 2
        since = srv.mark()
        os.kill(srv.pid, signal.SIGTTOU)
        srv.wait_log("SIGTTOU: one fewer worker", since)
        srv.wait_workers(lambda n: n == 1, "1 worker after SIGTTOU", 10)


@pytest.mark.parametrize("method", ["prefork", "threaded"])
def test_sigusr1_reopens_log_files(rundir: Path, method: str) -> None:
    """Daemonized with errlog=FILE: after ``mv FILE FILE.1`` and SIGUSR1, FILE is recreated
    and new lines (from the process that serves the request) go there."""
    d = harness.instance_dir(rundir, f"usr1-{method}")
    make_app(d)
    tag = uuid.uuid4().hex
    log, pidfile, sock = d / "err.log", d / "app.pid", d / "app.sock"
    try:
        done = start_daemon(
            d,
            [
                f"method={method}",
                f"socket={sock}",
                f"pidfile={pidfile}",
                f"errlog={log}",
                "log_level=debug",
                "minspare=1",
                "maxspare=1",
            ],
            tag,
        )
        assert done.returncode == 0, done.stderr
        eventually("the socket", lambda: harness.can_connect(str(sock)), 15)
        fcgi_json(str(sock))
        eventually("a log line", lambda: "accepted connection" in log.read_text(), 5)
        pid = read_pid(pidfile)
        log.rename(d / "err.log.1")
        os.kill(pid, signal.SIGUSR1)
        eventually("err.log to be recreated", log.exists, 5)
        eventually("the reopen to be logged", lambda: "SIGUSR1" in log.read_text(), 5, fail=False)
        before = (d / "err.log.1").read_text()
        fcgi_json(str(sock))
        eventually(
            "the request to be logged in the new file",
            lambda: "accepted connection" in log.read_text(),
            5,
        )
        assert "SIGUSR1: reopening log files" in log.read_text() + before
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        eventually("the daemon to stop", lambda: not alive(pid), 15)
    finally:
        kill_tagged(tag)
