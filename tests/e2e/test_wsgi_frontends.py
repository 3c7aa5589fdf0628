"""The WSGI host behind Caddy 2 (``reverse_proxy`` with ``transport fastcgi``) and H2O 2.2
(``fastcgi.connect``), mounted at /fcgi.

Caddy splits the path at /fcgi (``split``) and sends ``CONTENT_LENGTH=-1`` with a chunked body,
streamed; H2O sends SCRIPT_NAME="" and the whole path, so ferrocgi is told the mount with
``script_name=/fcgi``. Either way the application sees itself mounted at /fcgi and gets a
chunked upload whole, with its real length.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from support import harness

BODY = bytes(range(256)) * 4096  # 1 MiB
FRONT_ENDS = {
    "caddy": (harness.start_caddy, {}),
    "h2o": (harness.start_h2o, {"script_name": "/fcgi"}),
}


@pytest.mark.parametrize("transport", ["tcp", "unix"])
@pytest.mark.parametrize("server", sorted(FRONT_ENDS))
def test_wsgi_app_behind(rundir: Path, server: str, transport: str) -> None:
    start, extra = FRONT_ENDS[server]
    with harness.start_wsgi(rundir, transport=transport, extra=extra) as backend:
        with start(rundir, backend) as front:
            conn = front.connection()
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
