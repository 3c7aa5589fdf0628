"""A kept-alive FastCGI connection survives clients that hang up as soon as they have the body.

nginx (``fastcgi_keep_conn on``, upstream ``keepalive``) reads a response to its end and only
then gives the upstream connection back to its pool. A client that closes the moment it has
Content-Length bytes makes nginx abort an upstream connection whose response has not ended
yet ("client prematurely closed connection, so upstream connection is closed too"). The
response must therefore end (END_REQUEST) as soon as the application's iterable is exhausted,
before its ``close()`` runs, however long that takes (Django's ``close()`` sends
``request_finished``).
"""

from __future__ import annotations

from pathlib import Path

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
