"""The WSGI host behind H2O 2.2 (``fastcgi.connect``).

H2O sends SCRIPT_NAME="" and the whole path in PATH_INFO; with ``script_name=/fcgi`` the
application sees itself mounted at /fcgi, as behind the other front ends.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from support import harness

BODY = bytes(range(256)) * 4096  # 1 MiB


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_wsgi_app_behind_h2o(rundir: Path, transport: str) -> None:
    extra = {"script_name": "/fcgi"}
    with harness.start_wsgi(rundir, transport=transport, extra=extra) as backend:
        with harness.start_h2o(rundir, backend) as h2o:
            conn = h2o.connection()
            env = harness.send(conn, "GET", "/fcgi/env/some/path?x=1").json()
            assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/fcgi", "/env/some/path")
            assert env["QUERY_STRING"] == "x=1"
            chunks = (BODY[i : i + 65536] for i in range(0, len(BODY), 65536))
            reply = harness.send(conn, "POST", "/fcgi/echo", chunks)
            conn.close()
    assert reply.status == 200, reply.body[:500]
    echo = json.loads(reply.body)
    assert echo["length"] == len(BODY)
    assert echo["sha256"] == hashlib.sha256(BODY).hexdigest()
    assert echo["content_length"] == str(len(BODY))
