"""ASGI 3 end to end: ferrocgi hosting ``tests/apps/asgi_app.py`` (a raw ASGI application in
the spec's validator, ``tests/apps/asgi_validate.py``) behind real web servers.

One *path* = one web server module + protocol + transport + process model in front of
ferrocgi, started once per module; every check goes through it over HTTP. The validator
writes any violation, the server's or the application's, to ``$ASGI_VALIDATOR_LOG``: after
each test that file must be empty.

Mount points as in test_wsgi.py: nginx ``/fcgi`` and ``/scgi``, Apache and lighttpd ``/app``
(AJP carries no SCRIPT_NAME: that path runs with ``script_name=/app``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support import asgi, harness, wire
from support.harness import Backend
from support.procfs import children, eventually

MIB = 1024 * 1024
BODY_8MIB = random.Random(18).randbytes(8 * MIB)
PREFORK = {"method": "prefork", "maxchildren": "2", "minspare": "2", "maxspare": "2"}


@dataclass(frozen=True)
class AsgiPath:
    id: str
    server: str  # nginx | apache | lighttpd
    protocol: str  # fcgi | scgi | ajp
    transport: str  # tcp | unix
    extra: dict[str, str] = field(default_factory=dict)
    #: The front end drops the backend connection when its client goes away mid-response
    #: (lighttpd buffers the whole response and does not notice).
    notices_client_abort: bool = True


PATHS = [
    AsgiPath("nginx-fcgi-tcp", "nginx", "fcgi", "tcp"),
    AsgiPath("nginx-fcgi-unix-prefork", "nginx", "fcgi", "unix", extra=PREFORK),
    AsgiPath("nginx-scgi-tcp", "nginx", "scgi", "tcp"),
    AsgiPath("apache-fcgi-tcp", "apache", "fcgi", "tcp"),
    AsgiPath("apache-ajp-tcp-prefork", "apache", "ajp", "tcp", {"script_name": "/app", **PREFORK}),
    AsgiPath("lighttpd-fcgi-tcp", "lighttpd", "fcgi", "tcp", notices_client_abort=False),
]


@dataclass
class Site(asgi.Site):
    """One path of PATHS, running (``path`` is keyword-only: the base's fields come first)."""

    path: AsgiPath = field(kw_only=True)


@contextlib.contextmanager
def asgi_server(
    rundir: Path, protocol: str, transport: str, extra: dict[str, str], name: str
) -> Iterator[tuple[Backend, Path, Path]]:
    d = harness.make_dir(rundir / f"asgi-{name}")
    events, violations = d / "events.txt", d / "violations.txt"
    env = {"ASGI_EVENTS": str(events), "ASGI_VALIDATOR_LOG": str(violations)}
    with harness.start_wsgi(
        rundir, "asgi_app:application", protocol, transport, threads=1, env=env, extra=extra
    ) as backend:
        yield backend, events, violations


@pytest.fixture(scope="module")
def site(request: pytest.FixtureRequest, rundir: Path) -> Iterator[Site]:
    path: AsgiPath = request.param
    with contextlib.ExitStack() as stack:
        backend, events, violations = stack.enter_context(
            asgi_server(rundir, path.protocol, path.transport, path.extra, path.id)
        )
        frontend = stack.enter_context(asgi.STARTERS[path.server](rundir, backend))
        yield Site(backend, frontend, events, violations, path=path)


@pytest.fixture(autouse=True)
def validator_stays_quiet(request: pytest.FixtureRequest) -> Iterator[None]:
    if "site" not in request.fixturenames:
        yield
        return
    site: Site = request.getfixturevalue("site")
    yield
    found = site.violations_found()
    assert not found, "ASGI validator:\n" + found


every_path = pytest.mark.parametrize(
    "site", PATHS, ids=[p.id for p in PATHS], indirect=True, scope="module"
)


def expect_log(site: Site, pattern: str, since: int, timeout: float = 5.0) -> str:
    line = site.backend.wait_log(pattern, since, timeout)
    assert line is not None, f"no log line matching {pattern!r}:\n" + "\n".join(
        site.backend.log_lines()[since:][-60:]
    )
    return line


# ----------------------------------------------------------------------------- scope


@every_path
def test_scope(site: Site) -> None:
    reply = site.request("GET", "/scope/a%20b/%C3%A9?x=1&y=two", headers={"X-Test": "hello asgi"})
    scope = reply.json()
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["root_path"] == site.prefix
    # The path is decoded text and includes root_path (latin-1 here stands for its bytes).
    assert scope["path"] == site.prefix + "/scope/a b/é"
    if site.path.protocol != "ajp":  # AJP sends the decoded path; ferrocgi cannot re-encode
        assert scope["raw_path"] == site.prefix + "/scope/a%20b/%C3%A9"
    assert scope["query_string"] == "x=1&y=two"
    headers = dict(scope["headers"])
    assert headers["x-test"] == "hello asgi"
    assert all(name == name.lower() for name, _ in scope["headers"])
    assert scope["client"][0] == "127.0.0.1"
    assert isinstance(scope["server"][1], int)
    server = scope["extensions"]["ferrocgi.server"]
    assert server["interface"] == "asgi"
    assert server["protocol"] == site.path.protocol
    assert "http.response.pathsend" in scope["extensions"]


@every_path
def test_state_from_lifespan(site: Site) -> None:
    state = site.get("/state").json()
    assert state["started"] is True
    assert f"startup {state['pid']}" in site.event_lines()


# ----------------------------------------------------------------------------- bodies


@every_path
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_request_body_streams_in_chunks(site: Site, framing: str) -> None:
    body: bytes | Iterable[bytes] = BODY_8MIB
    if framing == "chunked":
        body = (BODY_8MIB[i : i + 65536] for i in range(0, len(BODY_8MIB), 65536))
    echo = site.request("POST", "/echo", body).json()
    assert echo["length"] == len(BODY_8MIB)
    assert echo["sha256"] == hashlib.sha256(BODY_8MIB).hexdigest()
    assert echo["chunks"] > 1  # given as it arrived, not collected first


@every_path
def test_streamed_response(site: Site) -> None:
    reply = site.get("/stream?n=100&size=1000")
    assert reply.status == 200
    assert reply.body == b"".join(bytes([65 + i % 26]) * 1000 for i in range(100))


@every_path
def test_large_streamed_response(site: Site) -> None:
    """64 MiB in 64 KiB messages: the front end's pace holds the application back (the
    connection's queue fills and send() waits), and every byte arrives."""
    reply = site.get("/stream?n=1024&size=65536")
    assert reply.status == 200
    assert len(reply.body) == 1024 * 65536
    assert reply.body[-65536:] == bytes([65 + 1023 % 26]) * 65536


# ----------------------------------------------------------------------------- errors


@every_path
def test_exception_before_the_response_is_a_500_with_the_traceback_logged(site: Site) -> None:
    since = len(site.backend.log_lines())
    assert site.get("/raise").status == 500
    expect_log(site, r"RuntimeError: asgi_app: raised on purpose", since)
    assert site.get("/scope").status == 200


@every_path
def test_a_response_left_unfinished_is_a_500(site: Site) -> None:
    since = len(site.backend.log_lines())
    assert site.get("/incomplete").status == 500
    expect_log(site, r"returned without completing its response", since)


@every_path
def test_body_before_start_is_refused(site: Site) -> None:
    since = len(site.backend.log_lines())
    assert site.get("/bad-order").status == 500
    expect_log(site, r"http.response.body sent before http.response.start", since)


@every_path
def test_a_response_goes_out_while_its_task_keeps_running(site: Site) -> None:
    """The response's end is handed to the web server when the task next waits, not when it
    returns: the client has the whole response while the application still runs."""
    name = uuid.uuid4().hex
    reply = site.get(f"/linger?name={name}&s=1.5")
    assert reply.status == 200 and reply.json() == {"lingering": True}
    assert f"lingered {name}" not in site.event_lines()
    eventually("the task to finish", lambda: f"lingered {name}" in site.event_lines(), 10)


# ----------------------------------------------------------------------------- disconnect


@every_path
def test_disconnect_reaches_the_application(site: Site) -> None:
    if not site.path.notices_client_abort:
        pytest.skip("lighttpd buffers the response and never notices the client leaving")
    name = uuid.uuid4().hex
    conn = site.frontend.connection()
    conn.request("GET", site.prefix + f"/disconnect?name={name}")
    resp = conn.getresponse()
    assert resp.status == 200
    resp.read(5000)
    conn.close()
    eventually("http.disconnect seen", lambda: f"disconnect {name}" in site.event_lines(), 10)


# ----------------------------------------------------------------------------- one loop


def cgi_body(raw: bytes) -> bytes:
    records = wire.parse_fcgi_records(raw)
    stdout = b"".join(r.content for r in records if r.type == wire.FCGI_STDOUT)
    return wire.parse_cgi(stdout).body


def fcgi_get(address: tuple[str, int], path: str, query: str) -> bytes:
    with socket.create_connection(address, timeout=30) as s:
        s.sendall(wire.fcgi_request(wire.cgi_params(path=path, query=query)))
        return wire.recv_all(s)


def test_many_requests_run_concurrently_on_one_loop(rundir: Path) -> None:
    """200 requests that each sleep 0.2 s, on one process with threads=1: the loop runs them
    together (one after another they would take 40 s)."""
    with asgi_server(rundir, "fcgi", "tcp", {}, "concurrency") as (backend, _, _):
        assert isinstance(backend.address, tuple)
        addr = backend.address
        results: list[bytes] = []
        lock = threading.Lock()

        def one() -> None:
            out = fcgi_get(addr, "/sleep", "s=0.2")
            with lock:
                results.append(out)

        threads = [threading.Thread(target=one) for _ in range(200)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
    assert len(results) == 200
    bad = [r[:300] for r in results if b"Status: 200" not in r]
    assert not bad, (len(bad), bad[:3])
    pids = {json.loads(cgi_body(r))["pid"] for r in results}
    assert len(pids) == 1
    assert elapsed < 2.0, f"200 concurrent sleeps took {elapsed:.2f} s"


def test_graceful_stop_runs_lifespan_shutdown_in_every_worker(rundir: Path) -> None:
    with asgi_server(rundir, "fcgi", "tcp", dict(PREFORK), "shutdown") as (backend, events, _):
        workers = children(backend.proc.pid)
        eventually("2 workers", lambda: len(children(backend.proc.pid)) == 2, 10)
        workers = children(backend.proc.pid)
        eventually(
            "startup in each worker",
            lambda: all(f"startup {w}" in events.read_text() for w in workers),
            10,
        )
        backend.proc.popen.send_signal(signal.SIGTERM)
        backend.proc.popen.wait(15)
    lines = events.read_text().splitlines()
    for w in workers:
        assert f"shutdown {w}" in lines, lines
    assert "lifespan shutdown complete" in backend.log()


# ----------------------------------------------------------------------------- operations


def test_request_timeout_cancels_the_task_and_logs_its_stack(rundir: Path) -> None:
    words = {"request_timeout": "1s", "slow_request": "300ms"}
    with asgi_server(rundir, "fcgi", "tcp", words, "timeout") as (backend, _, _):
        assert isinstance(backend.address, tuple)
        slow: list[bytes] = []
        t = threading.Thread(
            target=lambda: slow.append(fcgi_get(backend.address, "/sleep", "s=30"))
        )
        start = time.monotonic()
        t.start()
        # Meanwhile the loop serves others.
        assert b"Status: 200" in fcgi_get(backend.address, "/sleep", "s=0")
        t.join(15)
        took = time.monotonic() - start
        log = backend.log()
    assert slow and b"Status: 500" in slow[0], slow
    assert took < 10, took
    assert "slow request (past slow_request)" in log
    assert "request past request_timeout; cancelling its task" in log
    assert "asgi_app.py" in log.split("request past request_timeout", 1)[1], log


def run_to_exit(rundir: Path, name: str, words: list[str], env: dict[str, str]) -> tuple[int, str]:
    """ferrocgi with the raw app, expected to stop at start-up: its exit status and stderr."""
    d = harness.make_dir(rundir / name)
    argv = harness.wsgi_argv(
        "asgi_app:application",
        f"127.0.0.1:{harness.free_port()}",
        {"pythonpath": str(harness.APPS)},
    )
    full = {**os.environ, **env}
    done = subprocess.run(
        [*argv, *words], cwd=d, env=full, capture_output=True, text=True, timeout=30
    )
    return done.returncode, done.stderr


def test_lifespan_startup_failed_stops_the_server_with_the_app_s_message(rundir: Path) -> None:
    code, err = run_to_exit(rundir, "lifespan-fail", [], {"ASGI_LIFESPAN": "fail"})
    assert code != 0
    assert "the application's lifespan startup failed: database unreachable" in err, err


def test_lifespan_on_requires_support(rundir: Path) -> None:
    code, err = run_to_exit(
        rundir, "lifespan-on", ["lifespan=on"], {"ASGI_LIFESPAN": "unsupported"}
    )
    assert code != 0
    assert "lifespan=on, but the application did not complete lifespan startup" in err, err
    assert "asgi_app: no lifespan here" in err, err


def test_lifespan_auto_serves_an_app_without_it(rundir: Path) -> None:
    extra = {"loop": "asyncio"}
    with contextlib.ExitStack() as stack:
        backend = stack.enter_context(
            harness.start_wsgi(
                rundir, "asgi_app:application", env={"ASGI_LIFESPAN": "unsupported"}, extra=extra
            )
        )
        assert isinstance(backend.address, tuple)
        assert b"Status: 200" in fcgi_get(backend.address, "/sleep", "s=0")
        log = backend.log()
    assert "does not support the lifespan protocol" in log
    assert "ASGI application on an asyncio event loop" in log


def test_status_page_counts_asgi_requests(rundir: Path) -> None:
    with asgi_server(rundir, "fcgi", "tcp", {"status_path": "/status"}, "status") as (b, _, _):
        assert isinstance(b.address, tuple)
        for _ in range(5):
            assert b"Status: 200" in fcgi_get(b.address, "/sleep", "s=0")
        raw = cgi_body(fcgi_get(b.address, "/status", "json"))
    status = json.loads(raw)
    assert status["accepted conn"] >= 5


def test_cgi_mode_serves_one_asgi_request(rundir: Path) -> None:
    """Started without a socket (fd 0 not one), as a CGI program: one request, then exit, with
    lifespan around it."""
    env = {
        **os.environ,
        "PYTHONPATH": str(harness.APPS),
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/sleep",
        "QUERY_STRING": "s=0",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    done = subprocess.run(
        [str(harness.ferrocgi_command()), "asgi_app:application"],
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=rundir,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"Status: 200"), done.stdout
    assert json.loads(body)["pid"] > 0
    assert b"lifespan shutdown complete" in done.stderr


def test_serve_from_code(rundir: Path) -> None:
    """``ferrocgi.serve(app, bind, ...)`` with an ASGI application."""
    port = harness.free_port()
    code = (
        "import sys, ferrocgi\n"
        f"sys.path.insert(0, {str(harness.APPS)!r})\n"
        "import asgi_app\n"
        f"ferrocgi.serve(asgi_app.application, '127.0.0.1:{port}', method='threaded')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=rundir, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    try:
        eventually("the server to listen", lambda: harness.can_connect(("127.0.0.1", port)), 20)
        assert b"Status: 200" in fcgi_get(("127.0.0.1", port), "/sleep", "s=0")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert b"serving the application as ASGI 3" in err


def test_forcing_the_wrong_interface_is_warned_about(rundir: Path) -> None:
    with contextlib.ExitStack() as stack:
        backend = stack.enter_context(
            harness.start_wsgi(rundir, "wsgi:application", extra={"interface": "asgi"})
        )
        log = backend.log()
    assert "serving the application as ASGI 3" in log
    assert "interface=asgi, but the application's call is not a coroutine function" in log
