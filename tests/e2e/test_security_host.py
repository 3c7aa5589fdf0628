"""The Python host under hostile or broken input (security findings), against the real server.

Each test is named after the finding it guards (docs/security.md, "Threat model"). Requests go
over raw FastCGI (``wire.py``): the params are what a front end relays from HTTP clients.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from support import harness, wire
from support.harness import Backend

APP = "security_app:application"


def fcgi(srv: Backend, params: list[tuple[str, str]]) -> tuple[wire.CgiResponse, int]:
    """One request; the CGI response and FCGI_END_REQUEST's protocol status."""
    with srv.connect(timeout=15) as s:
        s.sendall(wire.fcgi_request(params))
        records = wire.parse_fcgi_records(wire.recv_all(s))
    end = [r for r in records if r.type == wire.FCGI_END_REQUEST]
    assert end, records
    stdout = b"".join(r.content for r in records if r.type == wire.FCGI_STDOUT)
    return wire.parse_cgi(stdout), wire.end_request_body(end[-1].content)[1]


def test_repeated_headers_are_joined_in_linear_time(wsgi: Callable[..., Backend]) -> None:
    """Thousands of repeats of one header (a client's choice) are joined once, as HTTP says
    (", ", and "; " for cookies), not by re-copying the value at each repeat."""
    srv = wsgi(app=APP, extra={"max_params": "8192", "max_params_bytes": "1M"})
    n = 3000
    params = wire.cgi_params(path="/app/headers")
    params += [("HTTP_X_DUP", f"v{i}") for i in range(n)]
    params += [("HTTP_COOKIE", f"c{i}=1") for i in range(n)]
    reply, status = fcgi(srv, params)
    assert (reply.status, status) == (200, 0)
    env = json.loads(reply.body)
    assert env["HTTP_X_DUP"] == ", ".join(f"v{i}" for i in range(n))
    assert env["HTTP_COOKIE"] == "; ".join(f"c{i}=1" for i in range(n))


def test_close_raising_after_a_complete_body_ends_the_response_normally(
    wsgi: Callable[..., Backend],
) -> None:
    """PEP 3333's close() raising once the body is complete: the client gets the response
    whole (FCGI_REQUEST_COMPLETE, no reset); the error is logged with its traceback."""
    srv = wsgi(app=APP)
    reply, status = fcgi(srv, wire.cgi_params(path="/app/close_raises"))
    assert (reply.status, reply.body, status) == (200, b"complete body", 0)
    assert srv.wait_log("close failed on purpose", timeout=5)
    assert srv.wait_log(r"close\(\) raised after a complete body", timeout=5)


def python_312() -> str | None:
    """A Python 3.12, where interned strings are immortal (3.13 made them mortal again):
    pyenv's, else one on PATH (a pyenv shim may name a version not selected: each is tried)."""
    candidates: list[str] = []
    for root in (os.environ.get("PYENV_ROOT"), "/root/.pyenv"):
        if root and Path(root, "versions").is_dir():
            found = sorted(Path(root, "versions").glob("3.12.*/bin/python3"), reverse=True)
            candidates += [str(p) for p in found]
    candidates += [c for c in [shutil.which("python3.12")] if c]
    check = "import sys; assert sys.version_info[:2] == (3, 12)"
    for c in candidates:
        if subprocess.run([c, "-c", check], capture_output=True, timeout=30).returncode == 0:
            return c
    return None


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def rss_growth(srv: Backend, names: Callable[[int], list[str]], requests: int) -> int:
    """KiB the server grew while serving ``requests`` requests carrying ``names(i)``."""
    pid = srv.proc.popen.pid
    before = rss_kib(pid)
    with srv.connect(timeout=30) as s:
        for i in range(requests):
            params = wire.cgi_params(path="/app/headers") + [(n, "1") for n in names(i)]
            s.sendall(wire.fcgi_request(params, keep_conn=True))
            wire.read_fcgi_response(s)
    return rss_kib(pid) - before


def test_client_chosen_header_names_do_not_leak_on_python_312(
    wsgi: Callable[..., Backend], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.12 makes interned strings immortal: header names past the key cache must be
    plain strings, or every name a client makes up stays in memory for good."""
    python = python_312()
    if python is None:
        pytest.skip("no Python 3.12 on PATH or in pyenv")
    # The extension is abi3: the suite's installed package runs under the newer interpreter.
    site = next((Path(sys.executable).parent.parent / "lib").glob("python3.*/site-packages"))

    def argv(app: str, bind: str, options: dict[str, str]) -> list[str]:
        return [python, "-m", "ferrocgi", *harness._cli_argv(app, bind, options)[1:]]

    monkeypatch.setattr(harness, "wsgi_argv", argv)
    srv = wsgi(app=APP, env={"PYTHONPATH": str(site)})
    per, requests = 200, 400
    # Warm up (the key cache fills, allocator pools settle), then the control: known names.
    rss_growth(srv, lambda i: [f"HTTP_X_WARM_{j}" for j in range(per)], 50)
    control = rss_growth(srv, lambda i: [f"HTTP_X_SAME_{j}" for j in range(per)], requests)
    fresh = rss_growth(srv, lambda i: [f"HTTP_X_{i}_{j}" for j in range(per)], requests)
    assert fresh < control + 4096, f"{per * requests} new names: +{fresh} KiB (control +{control})"


def test_queued_jobs_past_queue_timeout_get_503_and_aborted_ones_do_not_run(
    rundir: Path,
) -> None:
    """One Python thread busy for 2.5 s: a request queued behind it longer than queue_timeout
    is answered 503 without running; one the web server aborted while it waited is not run
    at all."""
    import threading
    import time

    from support.proc_server import fcgi_exchange, ferrocgi

    words = ["method=threaded", "threads=1", "queue_timeout=1s"]
    with ferrocgi(rundir, words) as srv:
        busy = threading.Thread(target=fcgi_exchange, args=(srv.address, "/app/info", "sleep=2.5"))
        busy.start()
        time.sleep(0.3)
        # Queued, then abandoned: the web server sends FCGI_ABORT_REQUEST.
        aborted = socket.create_connection(srv.address)
        aborted.sendall(wire.fcgi_request(wire.cgi_params(path="/app/info"), keep_conn=True))
        time.sleep(0.2)
        aborted.sendall(wire.fcgi_record(wire.FCGI_ABORT_REQUEST, 1))
        # Queued too, and still waiting when the busy request ends, 2 s later.
        records = wire.parse_fcgi_records(fcgi_exchange(srv.address, "/app/info"))
        late = wire.parse_cgi(b"".join(r.content for r in records if r.type == wire.FCGI_STDOUT))
        with aborted:
            end = wire.read_fcgi_response(aborted)
        assert not end.stdout, end
        busy.join()
        assert late.status == 503, late
        srv.wait_log("request aborted while it waited for a thread; not run")
        srv.wait_log("waited longer than queue_timeout")


def test_a_request_blocked_writing_to_a_slow_front_end_is_not_wedged(
    wsgi: Callable[..., Backend],
) -> None:
    """Past request_timeout, a request whose thread waits for the front end to take response
    bytes is not 'stuck outside Python': the process is not declared wedged (and restarted)
    while write_timeout has not run out; other requests are served meanwhile."""
    import time

    srv = wsgi(extra={"request_timeout": "1s"})
    with srv.connect(timeout=30) as stalled:
        params = wire.cgi_params(path="/app/big", query="bytes=50000000")
        stalled.sendall(wire.fcgi_request(params))
        stalled.recv(1)  # the response has begun; now read nothing for a while
        time.sleep(7.5)  # request_timeout + the 5 s wedged grace, and more
        reply, status = fcgi(srv, wire.cgi_params(path="/app/env"))
        assert (reply.status, status) == (200, 0)
    assert "wedged" not in srv.log()


def test_thread_local_data_of_ended_runtime_threads_is_freed(rundir: Path) -> None:
    """A prefork worker with threads=1 runs requests on its runtime's threads, which come
    and go (a send that must wait moves the runtime to another thread; idle ones end after
    10 s). When such a thread ends, its Python thread state, and with it its
    threading.local data (a database connection, say), must go too."""
    import time

    from support.proc_server import fcgi_json, ferrocgi, prefork

    def slow_big() -> None:
        """A large response read slowly, so the worker's sends wait for room."""
        with socket.create_connection(srv.address) as s:
            params = wire.cgi_params(path="/app/big", query="bytes=8000000")
            s.sendall(wire.fcgi_request(params))
            while chunk := s.recv(65536):
                del chunk
                time.sleep(0.002)

    words = prefork("minspare=1", "maxspare=1", "maxchildren=1")
    with ferrocgi(rundir, words) as srv:
        threads = set()
        for _ in range(4):
            threads.add(fcgi_json(srv.address, "/app/local")["thread"])
            slow_big()
        peak = fcgi_json(srv.address, "/app/local")["live"]
        assert len(threads) > 1 and peak > 1, (threads, peak)
        time.sleep(12)  # tokio ends runtime threads idle for 10 s
        live = fcgi_json(srv.address, "/app/local")["live"]
        assert live < peak, f"per-thread objects alive: {peak} before, {live} after"


def test_spooled_bodies_share_max_spool_and_close_releases_one(rundir: Path) -> None:
    """Spool files are bounded together by max_spool: an upload that would pass it gets 503
    while others hold the budget; wsgi.input.close() gives a body's share back at once."""
    import threading
    import time

    from support.proc_server import ferrocgi

    def post(path: str, query: str = "") -> int:
        body = b"u" * 800_000
        params = wire.cgi_params("POST", path, query, body_length=len(body))
        with socket.create_connection(srv.address, timeout=30) as s:
            s.sendall(wire.fcgi_request(params, body))
            out = wire.recv_all(s)
        stdout = b"".join(
            r.content for r in wire.parse_fcgi_records(out) if r.type == wire.FCGI_STDOUT
        )
        return wire.parse_cgi(stdout).status

    words = ["method=threaded", "threads=4", "spool_threshold=64K", "max_spool=1M"]
    with ferrocgi(rundir, words) as srv:
        for holder, then in [("/app/info", 503), ("/app/drop", 200)]:
            held = threading.Thread(target=post, args=(holder, "sleep=2"))
            held.start()
            time.sleep(0.7)  # the first body is spooled and held by its request
            assert post("/app/echo") == then, holder
            held.join()
            assert post("/app/echo") == 200  # the budget is back once the request ended
        srv.wait_log("would pass max_spool; answered 503")


def test_file_wrapper_dups_the_descriptor_before_running_python_code(
    wsgi: Callable[..., Backend],
) -> None:
    """wsgi.file_wrapper: the descriptor fileno() gave is duplicated before tell() (Python
    code) runs; a tell() that closes the file and opens another must not make ferrocgi send
    the other file."""
    srv = wsgi(app=APP)
    reply, status = fcgi(srv, wire.cgi_params(path="/app/file_wrapper"))
    assert (reply.status, reply.body, status) == (200, b"right file", 0)


def test_a_request_timeout_set_as_a_request_ends_does_not_hit_the_next_request(
    wsgi: Callable[..., Backend],
) -> None:
    """The RequestTimeout is set while the thread waits, outside Python, for a slow front end
    to take a response that is a list (sent from Rust, no Python code in between); the request
    then ends without running Python again, so the exception stays pending in the thread. The
    next request on that thread (there is one) must not get it."""
    import time

    srv = wsgi(app=APP, extra={"request_timeout": "1s"}, threads=1)
    with srv.connect(timeout=30) as slow:
        slow.sendall(wire.fcgi_request(wire.cgi_params(path="/app/chunks")))
        slow.recv(1)
        time.sleep(2.5)  # past request_timeout, the thread waiting for room to write
        wire.recv_all(slow)
    srv.wait_log("past request_timeout", timeout=5)
    reply, status = fcgi(srv, wire.cgi_params(path="/app/headers"))
    assert (reply.status, status) == (200, 0), reply
