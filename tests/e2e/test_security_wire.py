"""Hostile or broken peers on the wire (security findings), against the real server.

Each test is named after the finding it guards (docs/security.md, "Threat model"). Bytes are
sent raw (``wire.py``), since a real web server would not send them; memory is read from
``/proc`` while the peer sends.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

from support import harness, wire
from support.harness import Backend, Frontend, send


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def scgi_get(srv: Backend, path: str, query: str = "") -> wire.CgiResponse:
    with srv.connect(timeout=15) as s:
        params = [p for p in wire.cgi_params(path=path, query=query) if p[0] != "CONTENT_LENGTH"]
        s.sendall(wire.scgi_request(params))
        return wire.parse_cgi(wire.recv_all(s))


def push(s: socket.socket, total: int) -> tuple[int, bool]:
    """Sends up to ``total`` bytes; returns what was sent and whether the server closed."""
    chunk, sent = b"x" * (1 << 20), 0
    try:
        while sent < total:
            s.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        return sent, True
    return sent, False


def test_scgi_bytes_after_content_length_are_not_buffered(
    wsgi: Callable[..., Backend],
) -> None:
    """A peer that keeps sending after an SCGI request's body, while the request runs, costs
    no memory and is closed; other clients are served meanwhile."""
    srv = wsgi(protocol="scgi")
    pid = srv.proc.popen.pid
    assert scgi_get(srv, "/app/env").status == 200
    with srv.connect(timeout=10) as s:
        params = [
            p
            for p in wire.cgi_params(path="/app/slow", query="chunks=2&delay=4")
            if p[0] != "CONTENT_LENGTH"
        ]
        s.sendall(wire.scgi_request(params))
        time.sleep(0.3)
        before = rss_kib(pid)
        sent, closed = push(s, 64 << 20)
        grown = rss_kib(pid) - before
        assert scgi_get(srv, "/app/env").status == 200
    assert grown < 8 << 10, f"RSS grew by {grown} KiB while the peer sent {sent} bytes"
    assert closed, f"the server took {sent} bytes after the body without closing"
    assert srv.wait_log("keeps sending after the request's end", timeout=5)


def test_ajp_header_names_with_underscores_are_dropped(
    wsgi: Callable[..., Backend], apache: Callable[..., Frontend]
) -> None:
    """Through real Apache mod_proxy_ajp: ``X_Remote_User`` must not arrive as
    HTTP_X_REMOTE_USER (which ``RequestHeader unset X-Remote-User`` would not have removed)."""
    front = apache(wsgi(protocol="ajp", script_name="/app"))
    conn = front.connection()
    headers = {"X_Remote_User": "admin", "X-Other": "kept"}
    env = send(conn, "GET", "/app/env", headers=headers).json()
    assert "HTTP_X_REMOTE_USER" not in env, env
    assert env["HTTP_X_OTHER"] == "kept"


def test_ajp_secret_file_keeps_the_secret_out_of_ps(
    rundir: Path, wsgi: Callable[..., Backend]
) -> None:
    """``ajp_secret_file=``: requests need the secret, and the command line does not show it."""
    secret_file = harness.instance_dir(rundir, "secret") / "ajp-secret"
    secret_file.write_text("s3cret-from-file\n")
    secret_file.chmod(0o600)
    srv = wsgi(protocol="ajp", script_name="/app", extra={"ajp_secret_file": str(secret_file)})
    cmdline = Path(f"/proc/{srv.proc.popen.pid}/cmdline").read_bytes()
    assert b"s3cret-from-file" not in cmdline
    for secret, status in [("s3cret-from-file", 200), ("wrong", 403), (None, 403)]:
        with srv.connect() as s:
            s.sendall(wire.ajp_forward_request(uri="/app/env", secret=secret))
            assert wire.read_ajp_response(s).status == status, secret


def test_path_info_rebuilt_from_request_uri_has_no_dot_segments(
    wsgi: Callable[..., Backend], nginx: Callable[..., Frontend]
) -> None:
    """nginx matches its locations on the normalised path; with ``script_name=`` ferrocgi
    rebuilds PATH_INFO from REQUEST_URI, which must not bring back what nginx resolved."""
    front = nginx(wsgi(script_name="/fcgi"))
    env = send(front.connection(), "GET", "/fcgi/env/admin/%2e%2e/x").json()
    assert env["REQUEST_URI"] == "/fcgi/env/admin/%2e%2e/x"
    assert env["PATH_INFO"] == "/env/x", env["PATH_INFO"]


def test_allow_from_refusals_are_rate_limited_in_the_log(rundir: Path) -> None:
    """A burst of connections from outside allow_from: each is closed, the log gets a line a
    second (with how many went unlogged), not a line each; allowed peers are served."""
    from support.proc_server import fcgi_exchange, fcgi_json, ferrocgi

    words = ["method=threaded", "host=0.0.0.0", "allow_from=::ffff:127.0.0.1"]
    with ferrocgi(rundir, words) as srv:
        since = srv.mark()
        for _ in range(200):
            assert fcgi_exchange(srv.address, source="127.0.0.2", timeout=5) == b""
        assert fcgi_json(srv.address)["version"] == "1"
        srv.wait_log(r"refused connection from 127\.0\.0\.2", since)
        lines = [x for x in srv.backend.log_lines()[since:] if "refused connection" in x]
    assert 1 <= len(lines) < 20, len(lines)


def test_allow_from_with_a_unix_socket_is_an_error_at_start_up(rundir: Path) -> None:
    """allow_from cannot guard a Unix socket: said at once, not silently ignored."""
    from support.cli import ferrocgi, run

    sock = harness.instance_dir(rundir, "unix") / "s.sock"
    done = run(ferrocgi("wsgi:application", f"socket={sock}", "allow_from=127.0.0.1"))
    assert done.returncode == 2, done
    assert "applies to TCP peers only" in done.stderr
    assert not sock.exists()


def test_idle_connections_do_not_pin_prefork_workers(rundir: Path) -> None:
    """50 connections that never send a request, against 2 single-threaded prefork workers:
    a real request is still served (an accepted connection counts as busy only briefly)."""
    from support.proc_server import fcgi_exchange, ferrocgi, prefork

    words = prefork("minspare=2", "maxspare=2", "maxchildren=2")
    with ferrocgi(rundir, words) as srv:
        srv.wait_workers(lambda n: n == 2, "2 workers")
        idle = [socket.create_connection(srv.address) for _ in range(50)]
        try:
            out = fcgi_exchange(srv.address, "/app/info", timeout=10)
            records = wire.parse_fcgi_records(out)
            assert records and records[-1].type == wire.FCGI_END_REQUEST, out[:200]
        finally:
            for s in idle:
                s.close()
