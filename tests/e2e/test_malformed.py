"""Malformed input straight to the backend over raw sockets, no web server in between.

For every case the backend must (1) answer at the protocol level or close the connection within
one second, (2) log a line naming the error within one second, and (3) keep serving: a
well-formed request on a new connection succeeds afterwards.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from support import wire
from support.harness import Backend

REPLY_TIMEOUT = 1.0
#: What the backend logs for a protocol error (contract: one line, with the peer and the reason).
PROTOCOL_ERROR = r"protocol error"


@dataclass(frozen=True)
class Case:
    id: str
    protocol: str
    payload: Callable[[], bytes]
    half_close: bool = False  # send EOF (shutdown SHUT_WR) after the payload
    log: str = PROTOCOL_ERROR


def fcgi_params_over_limit() -> bytes:
    params = [*wire.cgi_params(), ("HTTP_X_HUGE", "x" * (300 * 1024))]
    return wire.fcgi_request(params)


def fcgi_truncated() -> bytes:
    # A PARAMS record announcing 100 bytes, only 10 of them sent, then EOF.
    return wire.fcgi_begin(1) + wire.fcgi_record(wire.FCGI_PARAMS, 1, b"x" * 100)[: 8 + 10]


def scgi_body(pairs: list[tuple[str, str]]) -> bytes:
    return wire.scgi_headers(pairs)


def scgi_length_digits() -> bytes:
    # 12 digits: more than any sane header block; must be refused before multiplying.
    return b"100000000000:" + scgi_body([("CONTENT_LENGTH", "0")])


def scgi_missing_comma() -> bytes:
    return wire.netstring(scgi_body([("CONTENT_LENGTH", "0"), ("SCGI", "1")]))[:-1] + b";"


def scgi_content_length_not_first() -> bytes:
    return wire.netstring(scgi_body([("SCGI", "1"), ("CONTENT_LENGTH", "0")]))


def ajp_bad_magic() -> bytes:
    return b"\x12\x35" + wire.ajp_forward_request()[2:]


def ajp_over_max_packet() -> bytes:
    # A length field of 9000 > the 8 KiB maximum packet (default on both ends).
    payload = wire.ajp_forward_request_payload(
        headers=[("Host", "localhost"), ("X-Pad", "p" * 8900)]
    )
    assert len(payload) > 9000 - 100
    return wire.ajp_packet(payload)


def ajp_truncated_then_eof() -> bytes:
    packet = wire.ajp_forward_request()
    return packet[: len(packet) // 2]


def ajp_string_overruns_packet() -> bytes:
    # A consistent packet length, but the req_uri string claims 500 bytes inside a short packet.
    head = bytes([wire.AJP_FORWARD_REQUEST, 2]) + wire.ajp_string("HTTP/1.1")
    return wire.ajp_packet(head + struct.pack(">H", 500) + b"/app/x\0")


CASES = [
    # FastCGI
    Case("fcgi-garbage", "fcgi", lambda: b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    Case("fcgi-wrong-version", "fcgi", lambda: wire.fcgi_begin(1, version=2)),
    Case("fcgi-truncated-record-eof", "fcgi", fcgi_truncated, half_close=True),
    Case("fcgi-params-over-limit", "fcgi", fcgi_params_over_limit),
    # SCGI
    Case("scgi-non-digit-length", "scgi", lambda: b"12a:CONTENT_LENGTH\x000\x00,"),
    Case("scgi-12-digit-length", "scgi", scgi_length_digits),
    Case("scgi-missing-comma", "scgi", scgi_missing_comma),
    Case("scgi-content-length-not-first", "scgi", scgi_content_length_not_first),
    # AJP13
    Case("ajp-bad-magic", "ajp", ajp_bad_magic),
    Case("ajp-packet-over-max", "ajp", ajp_over_max_packet),
    Case("ajp-truncated-forward-request-eof", "ajp", ajp_truncated_then_eof, half_close=True),
    Case("ajp-string-overruns-packet", "ajp", ajp_string_overruns_packet),
]


def send_payload(sock: socket.socket, payload: bytes, half_close: bool) -> None:
    try:
        sock.sendall(payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the backend may close before reading everything: that is a fine answer
    except TimeoutError:
        pass  # it stopped reading; whether it closed is judged by read_outcome()


def read_outcome(sock: socket.socket, timeout: float = REPLY_TIMEOUT) -> tuple[bytes, bool]:
    """(bytes received, closed?) within ``timeout`` seconds."""
    data = b""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def is_protocol_reply(protocol: str, data: bytes) -> bool:
    """Does ``data`` hold a complete protocol-level answer (an end of request/response)?"""
    if protocol == "fcgi":
        ends = (wire.FCGI_END_REQUEST, wire.FCGI_UNKNOWN_TYPE)
        return any(r.type in ends for r in wire.parse_fcgi_records(data))
    if protocol == "ajp":
        return any(p[:1] == bytes([wire.AJP_END_RESPONSE]) for p in wire.parse_ajp_packets(data))
    return data.startswith(b"Status:")  # SCGI: a CGI response (the connection then closes)


def assert_still_serving(backend: Backend) -> None:
    """A well-formed request on a new connection gets a 200 from the echo app."""
    with backend.connect() as sock:
        if backend.protocol == "fcgi":
            sock.sendall(wire.fcgi_request(wire.cgi_params(query="after=1")))
            resp = wire.read_fcgi_response(sock)
            assert resp.protocol_status == wire.FCGI_REQUEST_COMPLETE
            status, body = resp.cgi().status, resp.cgi().body
        elif backend.protocol == "scgi":
            sock.sendall(wire.scgi_request(wire.cgi_params(query="after=1")))
            cgi = wire.parse_cgi(wire.recv_all(sock))
            status, body = cgi.status, cgi.body
        else:
            ajp = wire.ajp_send_request(sock, uri="/app/ok", query="after=1")
            status, body = ajp.status, ajp.body
    assert status == 200, (status, body[:300])
    assert ["QUERY_STRING", "after=1"] in json.loads(body)["params"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input(case: Case, backend: Callable[..., Backend]) -> None:
    b = backend(case.protocol)
    since = len(b.log_lines())
    with b.connect(timeout=REPLY_TIMEOUT) as sock:
        send_payload(sock, case.payload(), case.half_close)
        data, closed = read_outcome(sock)
    assert closed or is_protocol_reply(case.protocol, data), (
        f"no answer and no close within {REPLY_TIMEOUT}s; got {data[:200]!r}"
    )
    line = b.wait_log(case.log, since=since, timeout=1.0)
    assert line, f"no log line matching {case.log!r}; log:\n" + "\n".join(b.log_lines()[since:])
    assert_still_serving(b)


# ----------------------------------------------------------------------------- FastCGI replies


def test_fcgi_unknown_role_gets_end_request(backend: Callable[..., Backend]) -> None:
    """FastCGI 1.0 §5.1: an unknown role is answered with FCGI_UNKNOWN_ROLE, not a close."""
    b = backend("fcgi")
    since = len(b.log_lines())
    with b.connect(timeout=REPLY_TIMEOUT) as sock:
        sock.sendall(wire.fcgi_begin(1, role=99, flags=wire.FCGI_KEEP_CONN))
        rec = wire.read_fcgi_record(sock)
        assert (rec.type, rec.request_id) == (wire.FCGI_END_REQUEST, 1), rec
        assert wire.end_request_body(rec.content)[1] == wire.FCGI_UNKNOWN_ROLE
        # KEEP_CONN was set: the same connection still serves a good request.
        sock.settimeout(5)
        sock.sendall(wire.fcgi_request(request_id=2, keep_conn=True))
        assert wire.read_fcgi_response(sock, request_id=2).cgi().status == 200
    assert b.wait_log(r"protocol error|unknown role", since=since), "\n".join(b.log_lines())
    assert_still_serving(b)


def test_fcgi_unknown_record_type_gets_unknown_type(backend: Callable[..., Backend]) -> None:
    """FastCGI 1.0 §4.2: a management record of unknown type gets FCGI_UNKNOWN_TYPE back."""
    b = backend("fcgi")
    since = len(b.log_lines())
    with b.connect(timeout=REPLY_TIMEOUT) as sock:
        sock.sendall(wire.fcgi_record(99, wire.FCGI_NULL_REQUEST_ID, b"whatever"))
        rec = wire.read_fcgi_record(sock)
        assert (rec.type, rec.request_id) == (wire.FCGI_UNKNOWN_TYPE, 0), rec
        assert rec.content[:1] == bytes([99]) and len(rec.content) == 8, rec
        # The connection is still good for a normal request.
        sock.settimeout(5)
        sock.sendall(wire.fcgi_request())
        assert wire.read_fcgi_response(sock).cgi().status == 200
    pattern = r"protocol error|unknown (record )?type"
    assert b.wait_log(pattern, since=since), "\n".join(b.log_lines())
    assert_still_serving(b)
