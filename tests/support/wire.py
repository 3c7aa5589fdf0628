"""Hand-built FastCGI, SCGI and AJP13 messages (the web-server side) for raw-socket tests.

Deliberately independent of ferrocgi's Rust codecs: a second, minimal reading of the specs.

- FastCGI 1.0: records ``version type requestId(2) contentLength(2) paddingLength reserved``;
  name/value pairs with 1- or 4-byte lengths (high bit set = 4 bytes).
- SCGI: a netstring ``LEN:NAME\\0VALUE\\0...,`` with ``CONTENT_LENGTH`` first, then the body.
- AJP13: server-to-container packets start ``0x12 0x34 LEN(2)``, container-to-server ``'A' 'B'
  LEN(2)``; strings are ``LEN(2) BYTES 0x00`` (``0xFFFF`` = null).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

# ----------------------------------------------------------------------------- common


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_all(sock: socket.socket) -> bytes:
    """Everything until the peer closes."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class CgiResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


def parse_cgi(out: bytes) -> CgiResponse:
    """A CGI-style response (``Status:`` line, headers, blank line, body)."""
    ends = [(i, n) for i, n in ((out.find(b"\r\n\r\n"), 4), (out.find(b"\n\n"), 2)) if i >= 0]
    if not ends:
        raise ValueError(f"no end of headers in {out[:200]!r}")
    at, sep = min(ends)
    head, body = out[:at], out[at + sep :]
    headers: list[tuple[str, str]] = []
    status, reason = 200, "OK"
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        value = value.strip()
        if name.lower() == "status":
            code, _, reason = value.partition(" ")
            status = int(code)
        else:
            headers.append((name, value))
    return CgiResponse(status, reason, headers, body)


# ----------------------------------------------------------------------------- FastCGI

FCGI_VERSION_1 = 1
FCGI_BEGIN_REQUEST = 1
FCGI_ABORT_REQUEST = 2
FCGI_END_REQUEST = 3
FCGI_PARAMS = 4
FCGI_STDIN = 5
FCGI_STDOUT = 6
FCGI_STDERR = 7
FCGI_DATA = 8
FCGI_GET_VALUES = 9
FCGI_GET_VALUES_RESULT = 10
FCGI_UNKNOWN_TYPE = 11
FCGI_NULL_REQUEST_ID = 0

FCGI_RESPONDER = 1
FCGI_KEEP_CONN = 1

FCGI_REQUEST_COMPLETE = 0
FCGI_CANT_MPX_CONN = 1
FCGI_OVERLOADED = 2
FCGI_UNKNOWN_ROLE = 3

FCGI_MAX_CONTENT = 65535


def fcgi_record(
    rtype: int, request_id: int, content: bytes = b"", *, version: int = 1, padding: int = 0
) -> bytes:
    assert len(content) <= FCGI_MAX_CONTENT
    header = struct.pack(">BBHHBx", version, rtype, request_id, len(content), padding)
    return header + content + b"\0" * padding


def fcgi_stream(rtype: int, request_id: int, data: bytes) -> bytes:
    """``data`` as records of at most 65535 bytes, then the empty record that ends the stream."""
    out = b"".join(
        fcgi_record(rtype, request_id, data[i : i + FCGI_MAX_CONTENT])
        for i in range(0, len(data), FCGI_MAX_CONTENT)
    )
    return out + fcgi_record(rtype, request_id)


def fcgi_length(n: int) -> bytes:
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def fcgi_nv(name: bytes, value: bytes) -> bytes:
    return fcgi_length(len(name)) + fcgi_length(len(value)) + name + value


def fcgi_nv_decode(block: bytes) -> list[tuple[bytes, bytes]]:
    """The name-value pairs of a PARAMS block (the inverse of :func:`fcgi_nv`)."""

    def length(i: int) -> tuple[int, int]:
        if block[i] & 0x80:
            return struct.unpack(">I", block[i : i + 4])[0] & 0x7FFFFFFF, i + 4
        return block[i], i + 1

    out, i = [], 0
    while i < len(block):
        nl, i = length(i)
        vl, i = length(i)
        out.append((block[i : i + nl], block[i + nl : i + nl + vl]))
        i += nl + vl
    return out


def fcgi_params(pairs: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(fcgi_nv(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs)


def fcgi_begin(
    request_id: int = 1, role: int = FCGI_RESPONDER, flags: int = 0, *, version: int = 1
) -> bytes:
    body = struct.pack(">HB5x", role, flags)
    return fcgi_record(FCGI_BEGIN_REQUEST, request_id, body, version=version)


def cgi_params(
    method: str = "GET", path: str = "/app/ok", query: str = "", body_length: int = 0
) -> list[tuple[str, str]]:
    """A minimal, realistic set of CGI params for one request."""
    return [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REQUEST_METHOD", method),
        ("SCRIPT_NAME", "/app"),
        ("PATH_INFO", path.removeprefix("/app")),
        ("QUERY_STRING", query),
        ("REQUEST_URI", path + ("?" + query if query else "")),
        ("CONTENT_LENGTH", str(body_length)),
    ]


def fcgi_request(
    params: Sequence[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    request_id: int = 1,
    keep_conn: bool = False,
) -> bytes:
    """BEGIN_REQUEST (responder), PARAMS stream, STDIN stream."""
    if params is None:
        params = cgi_params(body_length=len(body))
    flags = FCGI_KEEP_CONN if keep_conn else 0
    return (
        fcgi_begin(request_id, FCGI_RESPONDER, flags)
        + fcgi_stream(FCGI_PARAMS, request_id, fcgi_params(params))
        + fcgi_stream(FCGI_STDIN, request_id, body)
    )


@dataclass
class FcgiRecord:
    version: int
    type: int
    request_id: int
    content: bytes


def read_fcgi_record(sock: socket.socket) -> FcgiRecord:
    version, rtype, rid, clen, plen = struct.unpack(">BBHHBx", recv_exact(sock, 8))
    content = recv_exact(sock, clen + plen)[:clen]
    return FcgiRecord(version, rtype, rid, content)


def parse_fcgi_records(data: bytes) -> list[FcgiRecord]:
    """Complete records at the start of ``data`` (a trailing partial record is ignored)."""
    out, i = [], 0
    while i + 8 <= len(data):
        version, rtype, rid, clen, plen = struct.unpack(">BBHHBx", data[i : i + 8])
        if i + 8 + clen + plen > len(data):
            break
        out.append(FcgiRecord(version, rtype, rid, data[i + 8 : i + 8 + clen]))
        i += 8 + clen + plen
    return out


@dataclass
class FcgiResponse:
    stdout: bytes
    stderr: bytes
    app_status: int
    protocol_status: int

    def cgi(self) -> CgiResponse:
        return parse_cgi(self.stdout)


def end_request_body(content: bytes) -> tuple[int, int]:
    """(appStatus, protocolStatus) of an FCGI_END_REQUEST body."""
    app_status, protocol_status = struct.unpack(">IB3x", content)
    return app_status, protocol_status


def read_fcgi_response(sock: socket.socket, request_id: int = 1) -> FcgiResponse:
    stdout, stderr = [], []
    while True:
        rec = read_fcgi_record(sock)
        assert rec.version == FCGI_VERSION_1, rec
        assert rec.request_id == request_id, rec
        if rec.type == FCGI_STDOUT:
            stdout.append(rec.content)
        elif rec.type == FCGI_STDERR:
            stderr.append(rec.content)
        elif rec.type == FCGI_END_REQUEST:
            app_status, protocol_status = end_request_body(rec.content)
            return FcgiResponse(b"".join(stdout), b"".join(stderr), app_status, protocol_status)
        else:
            raise AssertionError(f"unexpected record {rec}")


# ----------------------------------------------------------------------------- SCGI


def netstring(data: bytes) -> bytes:
    return str(len(data)).encode() + b":" + data + b","


def scgi_headers(pairs: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(k.encode("latin-1") + b"\0" + v.encode("latin-1") + b"\0" for k, v in pairs)


def scgi_request(params: Sequence[tuple[str, str]] | None = None, body: bytes = b"") -> bytes:
    """``CONTENT_LENGTH`` first, then ``SCGI=1`` and the CGI params, then the body."""
    if params is None:
        params = [p for p in cgi_params(body_length=len(body)) if p[0] != "CONTENT_LENGTH"]
    pairs = [("CONTENT_LENGTH", str(len(body))), ("SCGI", "1"), *params]
    return netstring(scgi_headers(pairs)) + body


# ----------------------------------------------------------------------------- AJP13

AJP_SERVER_MAGIC = b"\x12\x34"  # web server -> container
AJP_CONTAINER_MAGIC = b"AB"  # container -> web server

AJP_FORWARD_REQUEST = 2
AJP_SHUTDOWN = 7
AJP_PING = 8
AJP_CPING = 10
AJP_SEND_BODY_CHUNK = 3
AJP_SEND_HEADERS = 4
AJP_END_RESPONSE = 5
AJP_GET_BODY_CHUNK = 6
AJP_CPONG_REPLY = 9

AJP_METHODS = {"OPTIONS": 1, "GET": 2, "HEAD": 3, "POST": 4, "PUT": 5, "DELETE": 6}
AJP_REQUEST_HEADERS = {
    "accept": 0xA001,
    "accept-charset": 0xA002,
    "accept-encoding": 0xA003,
    "accept-language": 0xA004,
    "authorization": 0xA005,
    "connection": 0xA006,
    "content-type": 0xA007,
    "content-length": 0xA008,
    "cookie": 0xA009,
    "cookie2": 0xA00A,
    "host": 0xA00B,
    "pragma": 0xA00C,
    "referer": 0xA00D,
    "user-agent": 0xA00E,
}
AJP_RESPONSE_HEADERS = {
    0xA001: "Content-Type",
    0xA002: "Content-Language",
    0xA003: "Content-Length",
    0xA004: "Date",
    0xA005: "Last-Modified",
    0xA006: "Location",
    0xA007: "Set-Cookie",
    0xA008: "Set-Cookie2",
    0xA009: "Servlet-Engine",
    0xA00A: "Status",
    0xA00B: "WWW-Authenticate",
}
AJP_ATTR_QUERY_STRING = 0x05
AJP_ATTR_SECRET = 0x0C
AJP_ATTR_REQ_ATTRIBUTE = 0x0A
AJP_ATTR_ARE_DONE = 0xFF

#: Data bytes per standard body packet in an 8 KiB packet (8192 - 4 header - 2 length).
AJP_MAX_BODY_CHUNK = 8186


def ajp_string(s: str | None) -> bytes:
    if s is None:
        return b"\xff\xff"
    b = s.encode("latin-1")
    return struct.pack(">H", len(b)) + b + b"\0"


def ajp_packet(payload: bytes, magic: bytes = AJP_SERVER_MAGIC) -> bytes:
    return magic + struct.pack(">H", len(payload)) + payload


def ajp_forward_request_payload(
    method: str = "GET",
    uri: str = "/app/ok",
    query: str | None = None,
    headers: Sequence[tuple[str, str]] = (("Host", "localhost"),),
    *,
    protocol: str = "HTTP/1.1",
    remote_addr: str = "127.0.0.1",
    server_name: str = "localhost",
    server_port: int = 80,
    is_ssl: bool = False,
    secret: str | None = None,
) -> bytes:
    out = bytes([AJP_FORWARD_REQUEST, AJP_METHODS[method]])
    out += ajp_string(protocol) + ajp_string(uri) + ajp_string(remote_addr)
    out += ajp_string(None) + ajp_string(server_name)
    out += struct.pack(">HBH", server_port, int(is_ssl), len(headers))
    for name, value in headers:
        code = AJP_REQUEST_HEADERS.get(name.lower())
        out += struct.pack(">H", code) if code else ajp_string(name)
        out += ajp_string(value)
    if query is not None:
        out += bytes([AJP_ATTR_QUERY_STRING]) + ajp_string(query)
    if secret is not None:
        out += bytes([AJP_ATTR_SECRET]) + ajp_string(secret)
    return out + bytes([AJP_ATTR_ARE_DONE])


def ajp_forward_request(*args: object, **kwargs: object) -> bytes:
    return ajp_packet(ajp_forward_request_payload(*args, **kwargs))  # type: ignore[arg-type]


def ajp_body_packet(data: bytes) -> bytes:
    """A standard (Apache-style) body packet: ``12 34 LEN DLEN(2) DATA``; empty = end of body."""
    if not data:
        return ajp_packet(b"")
    return ajp_packet(struct.pack(">H", len(data)) + data)


def read_ajp_packet(sock: socket.socket) -> bytes:
    head = recv_exact(sock, 4)
    assert head[:2] == AJP_CONTAINER_MAGIC, f"bad magic from container: {head!r}"
    (length,) = struct.unpack(">H", head[2:])
    return recv_exact(sock, length)


def parse_ajp_packets(data: bytes, magic: bytes = AJP_CONTAINER_MAGIC) -> list[bytes]:
    """Complete packets at the start of ``data``: the container's (``AB``), or with
    ``magic=AJP_SERVER_MAGIC`` the web server's."""
    out, i = [], 0
    while i + 4 <= len(data) and data[i : i + 2] == magic:
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if i + 4 + length > len(data):
            break
        out.append(data[i + 4 : i + 4 + length])
        i += 4 + length
    return out


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.i = data, 0

    def u8(self) -> int:
        self.i += 1
        return self.data[self.i - 1]

    def u16(self) -> int:
        self.i += 2
        return int(struct.unpack(">H", self.data[self.i - 2 : self.i])[0])

    def string(self) -> str | None:
        n = self.u16()
        if n == 0xFFFF:
            return None
        s = self.data[self.i : self.i + n].decode("latin-1")
        self.i += n + 1
        return s


@dataclass
class AjpResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    reuse: bool


def read_ajp_response(sock: socket.socket, body: bytes = b"") -> AjpResponse:
    """Read SEND_HEADERS, SEND_BODY_CHUNKs and END_RESPONSE; answer GET_BODY_CHUNK from ``body``.

    The caller has already sent the FORWARD_REQUEST (and the first body packet, if any).
    """
    status, reason, headers, chunks = 0, "", [], []
    while True:
        payload = read_ajp_packet(sock)
        cur = _Cursor(payload)
        kind = cur.u8()
        if kind == AJP_SEND_HEADERS:
            status = cur.u16()
            reason = cur.string() or ""
            for _ in range(cur.u16()):
                if payload[cur.i] == 0xA0:
                    name = AJP_RESPONSE_HEADERS[cur.u16()]
                else:
                    name = cur.string() or ""
                headers.append((name, cur.string() or ""))
        elif kind == AJP_SEND_BODY_CHUNK:
            n = cur.u16()
            chunks.append(payload[cur.i : cur.i + n])
        elif kind == AJP_GET_BODY_CHUNK:
            want = cur.u16()
            piece, body = body[:want], body[want:]
            sock.sendall(ajp_body_packet(piece))
        elif kind == AJP_END_RESPONSE:
            reuse = cur.u8() == 1
            return AjpResponse(status, reason, headers, b"".join(chunks), reuse)
        else:
            raise AssertionError(f"unexpected AJP packet {payload[:32]!r}")


def ajp_send_request(sock: socket.socket, body: bytes = b"", **kwargs: object) -> AjpResponse:
    """One AJP request, Apache style: the first body chunk goes out unsolicited."""
    headers = [("Host", "localhost")]
    if body:
        headers.append(("Content-Length", str(len(body))))
    sock.sendall(ajp_forward_request(headers=headers, **kwargs))
    if body:
        first, body = body[:AJP_MAX_BODY_CHUNK], body[AJP_MAX_BODY_CHUNK:]
        sock.sendall(ajp_body_packet(first))
    return read_ajp_response(sock, body)


def chunks_of(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]
