"""Cherokee 1.2's FastCGI stream for a chunked request body, replayed byte for byte.

Cherokee is not packaged for Debian, so its streams are rebuilt here from the captured layout
(docs/protocols.md, "Cherokee"): params without CONTENT_LENGTH and with
``CONTENT_TRANSFER_ENCODING=chunked``, an empty STDIN at once, the body still chunk-encoded in
STDIN records (sometimes after 8 zero bytes), then a second empty STDIN. flup answers such a
request with an empty body; ferrocgi gives the application the real body and its length, and
the kept-alive connection goes on serving.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest

from support import harness, wire

BODY = b"hello chunked world"


def cherokee_request(body: bytes, *, zero_bytes: bool, request_id: int = 1) -> bytes:
    """The request as Cherokee writes it, for ``body`` sent in two chunks."""
    params = [
        (k, v)
        for k, v in wire.cgi_params("POST", "/app/echo", "mode=readn&n=7")
        if k != "CONTENT_LENGTH"
    ]
    params.append(("CONTENT_TRANSFER_ENCODING", "chunked"))
    half = len(body) // 2
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:]))
    chunked += b"0\r\n"  # as captured: the final CRLF is missing
    out = wire.fcgi_begin(request_id, wire.FCGI_RESPONDER, wire.FCGI_KEEP_CONN)
    out += wire.fcgi_stream(wire.FCGI_PARAMS, request_id, wire.fcgi_params(params))
    out += wire.fcgi_record(wire.FCGI_STDIN, request_id, b"")
    if zero_bytes:
        out += bytes(8)
    out += wire.fcgi_record(wire.FCGI_STDIN, request_id, chunked)
    out += wire.fcgi_record(wire.FCGI_STDIN, request_id, b"")
    return out


@pytest.mark.parametrize("zero_bytes", [False, True], ids=["plain", "zero-bytes"])
@pytest.mark.parametrize("method", ["threaded", "prefork"])
def test_cherokee_chunked_body_reaches_the_application(
    rundir: Path, method: str, zero_bytes: bool
) -> None:
    extra = {"method": method} if method == "prefork" else {}
    with harness.start_wsgi(rundir, extra=extra) as backend:
        with socket.create_connection(backend.address, timeout=10) as s:
            for body in (BODY, b"x" * 5000):
                s.sendall(cherokee_request(body, zero_bytes=zero_bytes))
                reply = wire.read_fcgi_response(s).cgi()
                assert reply.status == 200, reply.body[:500]
                echo = json.loads(reply.body)
                assert echo["length"] == len(body)
                assert echo["sha256"] == hashlib.sha256(body).hexdigest()
                assert echo["content_length"] == str(len(body))
        assert "protocol error" not in backend.log()
