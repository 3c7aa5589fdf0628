"""Limits that protect the server from its applications and its peers: request_timeout,
slow_request, max_body — each tripped, then another request proves the server still serves."""

from __future__ import annotations

from collections.abc import Callable

from support import wire
from support.harness import Backend


def fcgi_get(backend: Backend, query: str, timeout: float = 10.0) -> wire.FcgiResponse:
    with backend.connect(timeout=timeout) as sock:
        sock.sendall(
            wire.fcgi_request(
                params=[
                    ("REQUEST_METHOD", "GET"),
                    ("QUERY_STRING", query),
                    ("REQUEST_URI", "/?" + query),
                ]
            )
        )
        return wire.read_fcgi_response(sock)


def test_request_timeout_stops_the_request_logs_its_stack_and_serves_the_next(
    wsgi: Callable[..., Backend],
) -> None:
    b = wsgi("stuck:application", extra={"request_timeout": "1s"})
    since = len(b.log_lines())
    reply = fcgi_get(b, "spin")
    assert reply.cgi().status == 504
    line = b.wait_log(r"past request_timeout", since=since, timeout=5)
    assert line is not None, b.log()
    # The stack names the function that was stuck.
    assert "spin_in_python_marker" in b.log()
    assert fcgi_get(b, "").cgi().status == 200


def test_slow_request_logs_the_stack_without_stopping_the_request(
    wsgi: Callable[..., Backend],
) -> None:
    b = wsgi("stuck:application", extra={"slow_request": "300ms"})
    since = len(b.log_lines())
    reply = fcgi_get(b, "nap=1")
    assert reply.cgi().status == 200
    assert b.wait_log(r"slow request", since=since, timeout=2) is not None, b.log()
    assert "nap_marker" in b.log()


def test_request_timeout_in_prefork_workers(wsgi: Callable[..., Backend]) -> None:
    b = wsgi(
        "stuck:application", extra={"request_timeout": "1s", "method": "prefork", "threads": "1"}
    )
    since = len(b.log_lines())
    assert fcgi_get(b, "spin").cgi().status == 504
    assert b.wait_log(r"past request_timeout", since=since, timeout=5) is not None
    assert fcgi_get(b, "").cgi().status == 200


def test_a_wedged_threaded_process_reloads_and_keeps_serving(wsgi: Callable[..., Backend]) -> None:
    # time.sleep is C code: RequestTimeout cannot interrupt it, so the process is declared
    # wedged and reloads (re-executes with the socket inherited).
    b = wsgi(
        "stuck:application",
        extra={"request_timeout": "500ms", "graceful_timeout": "1s", "threads": "2"},
    )
    since = len(b.log_lines())
    with b.connect(timeout=30) as stuck:
        stuck.sendall(
            wire.fcgi_request(params=[("REQUEST_METHOD", "GET"), ("QUERY_STRING", "nap=60")])
        )
        assert b.wait_log(r"process is wedged", since=since, timeout=15) is not None, b.log()
        assert b.wait_log(r"re-executing", since=since, timeout=15) is not None, b.log()
        assert b.wait_log(r"listening on", since=since + 1, timeout=15) is not None, b.log()
    assert fcgi_get(b, "").cgi().status == 200
