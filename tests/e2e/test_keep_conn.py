"""Kept-alive FastCGI connections behind nginx: they survive clients that hang up as soon as
they have the body, and a request body never waits for a delayed ACK.

nginx (``fastcgi_keep_conn on``, upstream ``keepalive``) reads a response to its end and only
then gives the upstream connection back to its pool. A client that closes the moment it has
Content-Length bytes makes nginx abort an upstream connection whose response has not ended
yet ("client prematurely closed connection, so upstream connection is closed too"). The
response must therefore end (END_REQUEST) as soon as the application's iterable is exhausted,
before its ``close()`` runs, however long that takes (Django's ``close()`` sends
``request_finished``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import time
from pathlib import Path

import pytest

from support import harness

REQUESTS = 300
DROPPED = "upstream connection is closed too"


def test_quick_clients_do_not_cost_upstream_connections(rundir: Path) -> None:
    """300 requests to an app whose close() takes 20 ms, from a client that closes right after
    the body: nginx never drops the upstream connection, ferrocgi accepts only the few
    connections of nginx's pool, and close() still runs for every request."""
    test_dir = harness.make_dir(rundir / "keep-conn")
    env = {"WSGI_TEST_DIR": str(test_dir)}
    with harness.start_wsgi(rundir, threads=4, env=env) as backend:
        with harness.start_nginx(rundir, backend) as nginx:
            path = f"{nginx.prefix}/slow-close?close=0.02&size=100&token=t"
            for _ in range(REQUESTS):
                assert harness.impatient_get(nginx.port, path) == b"y" * 100
            records = test_dir / "records" / "t"
            harness.wait_until(
                "every close() to have run",
                backend.proc,
                lambda: records.exists() and len(records.read_text().splitlines()) == REQUESTS,
            )
            errors = (nginx.proc.logs[0].parent / "error.log").read_text()
            assert DROPPED not in errors, errors[-2000:]
            assert backend.accepted() <= 8, f"{backend.accepted()} connections for {REQUESTS}"


POSTS = 30
#: Linux delays an ACK by 40 ms at least; a stall on every POST costs more than this in all.
STALLS = (POSTS - 1) * 0.040


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_request_bodies_do_not_wait_for_a_delayed_ack(rundir: Path, interface: str) -> None:
    """nginx (default ``client_body_buffer_size``) sends a request with a 16 KiB body in two
    writes over TCP, the second held back by Nagle's algorithm until the first is acknowledged;
    on a kept-alive connection that has answered before, the kernel delays that ACK (40 ms)
    unless the server asks for it at once. 30 POSTs in a row on one kept-alive client
    connection: each answered right, none stalled."""
    body = bytes(range(256)) * 64
    app = "asgi_app:application" if interface == "asgi" else "wsgi:application"
    with (
        harness.start_wsgi(rundir, app, "fcgi", "tcp", threads=4) as backend,
        harness.start_nginx(rundir, backend) as nginx,
    ):
        conn = http.client.HTTPConnection(harness.LOOPBACK, nginx.port, timeout=10)
        start = time.monotonic()
        for _ in range(POSTS):
            conn.request("POST", f"{nginx.prefix}/echo", body=body)
            reply = conn.getresponse()
            assert reply.status == 200
            echo = json.loads(reply.read())
            assert echo["sha256"] == hashlib.sha256(body).hexdigest(), echo
        elapsed = time.monotonic() - start
        conn.close()
        assert elapsed < STALLS / 2, f"{POSTS} POSTs took {elapsed:.2f} s"
