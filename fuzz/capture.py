#!/usr/bin/env python3
"""Capture fuzz seeds from real front ends: ``fuzz/seeds/<target>/``.

Runs each real web server (nginx, Apache httpd, lighttpd; started by ``tests/support/harness.py``)
in front of a small *recording TCP proxy* that forwards to the Rust echo backend
(``target/debug/examples/echo``). Every connection the web server opens is recorded (the bytes
it sent, front end -> backend), and each stream is saved as a seed for each fuzz target it fits:

==================  =====================================================================
target              seed
==================  =====================================================================
fastcgi_records     ``0x00`` (config selector: no multiplexing, default limits) + stream
fastcgi_params      cut byte + the PARAMS content of one request (raw name-value pairs)
scgi_netstring      the stream
ajp_forward_request the stream (FORWARD_REQUEST, CPING, body packets...)
ajp_body_chunk      selector + the body packets after one FORWARD_REQUEST. The target builds
                    its own FORWARD_REQUEST: selector 0 = no Content-Length (chunked, ends at
                    an empty packet), 1 = Content-Length 0, 3 = Content-Length 20000, and
                    N with N % 4 == 2 = Content-Length N: bodies of other sizes are also
                    saved cut to 254 bytes with selector 254. Both body formats (standard
                    and lighttpd's, no inner length) go here: the target runs both.
==================  =====================================================================

Requests driven through every front end: GET with a repeated header (``X-Dup: a`` and
``X-Dup: b``) and an underscore header, POST of 20000 bytes, a chunked POST, a POST of 254
bytes, and a final GET (nginx FastCGI keeps the connection: several requests per stream).
Big bodies are trimmed in the saved seeds (to ``TRIM`` bytes), rewriting the framing and the
declared length so each seed stays a valid stream (FastCGI: STDIN records and CONTENT_LENGTH;
SCGI: the netstring and CONTENT_LENGTH; AJP: the body packets and the Content-Length header);
the 20000-byte AJP bodies are kept whole once for ``ajp_body_chunk`` (selector 3). The
``ajp_forward_request`` target reads standard AJP body packets only, so lighttpd's streams are
saved there without their body (Content-Length 0 + the empty packet lighttpd sends then).

Usage (needs ``cargo build --examples``, nginx, apache2 and lighttpd installed)::

    python3 fuzz/capture.py [--out fuzz/seeds] [--keep]

Seeds are named ``<frontend>-<protocol>-<n>`` (n = connection number); identical seeds are
written once. Existing files with other names are left alone.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = str(ROOT / "tests")
if TESTS not in os.environ.get("PYTHONPATH", "").split(os.pathsep):  # see tests/support/__init__.py
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")]))
    os.execv(sys.executable, [sys.executable, *sys.argv])
from support import harness, wire  # noqa: E402
from support.wire import ajp_packet, fcgi_record, parse_fcgi_records  # noqa: E402

TRIM = 2048
BIG = 20000
SMALL = 254  # 254 % 4 == 2: the ajp_body_chunk selector 254 means Content-Length 254


# --------------------------------------------------------------------------- recording proxy


class RecordingProxy:
    """Accepts on 127.0.0.1:<free port>, forwards each connection to ``target`` and records
    what the client (the web server) sent on it, in order of connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((harness.LOOPBACK, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.streams: list[bytearray] = []
        self.threads: list[threading.Thread] = []
        self.closing = False
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            rec = bytearray()
            with self.lock:
                self.streams.append(rec)
            for a, b, r in ((client, upstream, rec), (upstream, client, None)):
                t = threading.Thread(target=self._pump, args=(a, b, r), daemon=True)
                t.start()
                self.threads.append(t)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, rec: bytearray | None) -> None:
        try:
            while data := src.recv(65536):
                if rec is not None:
                    rec.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def take(self) -> list[bytes]:
        """The streams recorded so far (call after the front end stopped)."""
        for t in self.threads:
            t.join(2)
        with self.lock:
            out = [bytes(s) for s in self.streams if s]
            self.streams.clear()
        self.threads.clear()
        return out

    def close(self) -> None:
        self.closing = True
        self.sock.close()


# --------------------------------------------------------------------------- client side


def body(n: int) -> bytes:
    return bytes((i * 7 + 3) % 256 for i in range(n))


def drive(front: harness.Frontend, log: list[str]) -> None:
    """The request mix, on one client keep-alive connection where possible."""
    p = front.prefix
    reqs: list[tuple[str, str, bytes | None, bool]] = [
        ("GET", f"{p}/get/path?x=1&y=%C3%A9", None, False),
        ("POST", f"{p}/post?big=1", body(BIG), False),
        ("POST", f"{p}/chunked", None, True),
        ("POST", f"{p}/small", body(SMALL), False),
        ("GET", f"{p}/last", None, False),
    ]
    conn = front.connection(timeout=15)
    for method, url, data, chunked in reqs:
        conn.putrequest(method, url, skip_accept_encoding=True)
        conn.putheader("X-Dup", "a")
        conn.putheader("X-Dup", "b")
        conn.putheader("X_Under", "u")
        conn.putheader("Cookie", "session=abc; theme=dark")
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
            conn.putheader("Content-Type", "application/octet-stream")
            conn.endheaders()
            for piece in (b"first chunk;", body(3000), b"last"):
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            conn.send(b"0\r\n\r\n")
        elif data is not None:
            conn.putheader("Content-Type", "application/octet-stream")
            conn.putheader("Content-Length", str(len(data)))
            conn.endheaders()
            conn.send(data)
        else:
            conn.endheaders()
        try:
            r = conn.getresponse()
            r.read()
            log.append(f"    {method} {url}{' (chunked)' if chunked else ''}: {r.status}")
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = front.connection(timeout=15)
        except (OSError, http.client.HTTPException) as e:
            log.append(f"    {method} {url}: {e!r}")
            conn.close()
            conn = front.connection(timeout=15)
    conn.close()


# --------------------------------------------------------------------------- FastCGI


def fcgi_trim(stream: bytes, keep: int = TRIM) -> tuple[bytes, list[bytes]]:
    """The stream with each request's STDIN cut to ``keep`` bytes (CONTENT_LENGTH rewritten,
    PARAMS re-sent as one record + the empty one), and the PARAMS block of each request."""
    out, blocks = bytearray(), []
    params: dict[int, bytearray] = {}
    sent: dict[int, int] = {}
    for record in parse_fcgi_records(stream):
        typ, rid, content = record.type, record.request_id, record.content
        if typ == 4:  # FCGI_PARAMS
            if content:
                params.setdefault(rid, bytearray()).extend(content)
                continue
            block = bytes(params.pop(rid, b""))
            blocks.append(block)
            pairs = wire.fcgi_nv_decode(block)
            fixed = []
            for n, v in pairs:
                if n == b"CONTENT_LENGTH" and v.isdigit() and int(v) > keep:
                    v = str(keep).encode()
                fixed.append((n, v))
            if fixed:
                out += fcgi_record(4, rid, b"".join(wire.fcgi_nv(n, v) for n, v in fixed))
            out += fcgi_record(4, rid, b"")
            sent[rid] = 0
        elif typ == 5 and content:  # FCGI_STDIN
            room = keep - sent.get(rid, 0)
            if room > 0:
                out += fcgi_record(5, rid, content[:room])
                sent[rid] = sent.get(rid, 0) + min(room, len(content))
        else:
            out += fcgi_record(typ, rid, content)
    return bytes(out), blocks


# --------------------------------------------------------------------------- SCGI


def scgi_trim(stream: bytes, keep: int = TRIM) -> bytes:
    colon = stream.index(b":")
    n = int(stream[:colon])
    head = stream[colon + 1 : colon + 1 + n]
    rest = stream[colon + 2 + n :]  # after the ','
    fields = head.split(b"\0")[:-1]
    pairs = list(zip(fields[0::2], fields[1::2], strict=True))
    fixed = []
    cl = None
    for k, v in pairs:
        if k == b"CONTENT_LENGTH" and v.isdigit():
            cl = min(int(v), keep)
            v = str(cl).encode()
        fixed.append((k, v))
    head = b"".join(k + b"\0" + v + b"\0" for k, v in fixed)
    return b"%d:%s," % (len(head), head) + rest[: cl if cl is not None else keep]


# --------------------------------------------------------------------------- AJP13


def ajp_packets(stream: bytes) -> list[bytes]:
    """Payloads of each whole ``12 34 LEN payload`` packet (web server -> container)."""
    return wire.parse_ajp_packets(stream, wire.AJP_SERVER_MAGIC)


def ajp_set_content_length(fr: bytes, value: int) -> bytes:
    """Rewrite the Content-Length header (coded 0xA008) of a FORWARD_REQUEST payload."""
    i = 2  # prefix code 2, method

    def skip_str(i: int) -> int:
        (n,) = struct.unpack(">H", fr[i : i + 2])
        return i + 2 if n == 0xFFFF else i + 2 + n + 1

    for _ in range(5):  # protocol, req_uri, remote_addr, remote_host, server_name
        i = skip_str(i)
    i += 3  # port (2), is_ssl (1)
    (count,) = struct.unpack(">H", fr[i : i + 2])
    i += 2
    for _ in range(count):
        (code,) = struct.unpack(">H", fr[i : i + 2])
        if code & 0xFF00 == 0xA000:
            name_end = i + 2
        else:
            name_end = skip_str(i)
        value_end = skip_str(name_end)
        if code == 0xA008:
            v = str(value).encode()
            return fr[:name_end] + struct.pack(">H", len(v)) + v + b"\0" + fr[value_end:]
        i = value_end
    return fr


def ajp_body_data(payload: bytes, lighttpd: bool) -> bytes:
    return payload if lighttpd else payload[2:]


def ajp_body_packet(data: bytes, lighttpd: bool) -> bytes:
    """A body packet in the front end's format (lighttpd's has no inner length)."""
    return ajp_packet(data) if lighttpd else wire.ajp_body_packet(data)


def ajp_requests(stream: bytes) -> list[tuple[bytes, list[bytes]]]:
    """(FORWARD_REQUEST payload, body packet payloads) per request; CPINGs dropped."""
    out: list[tuple[bytes, list[bytes]]] = []
    for p in ajp_packets(stream):
        if p[:1] == b"\x02":
            out.append((p, []))
        elif p[:1] == b"\x0a":
            continue
        elif out:
            out[-1][1].append(p)
    return out


def content_length(fr: bytes) -> int | None:
    i = fr.find(b"\xa0\x08")
    if i < 0:
        return None
    (n,) = struct.unpack(">H", fr[i + 2 : i + 4])
    return int(fr[i + 4 : i + 4 + n])


def ajp_trim(stream: bytes, lighttpd: bool, keep: int = TRIM) -> bytes:
    """The stream with each body cut to ``keep`` bytes (Content-Length rewritten; a chunked
    body keeps its closing empty packet)."""
    out = bytearray()
    for fr, bodies in ajp_requests_with_cping(stream):
        if fr is None:
            out += ajp_packet(b"\x0a")
            continue
        cl = content_length(fr)
        if cl is not None and cl > keep:
            fr = ajp_set_content_length(fr, keep)
        out += ajp_packet(fr)
        left = keep
        for b in bodies:
            data = ajp_body_data(b, lighttpd)
            if not data:
                out += ajp_packet(b)
                continue
            if left <= 0:
                continue
            out += ajp_body_packet(data[:left], lighttpd)
            left -= len(data[:left])
    return bytes(out)


def ajp_requests_with_cping(stream: bytes) -> list[tuple[bytes | None, list[bytes]]]:
    out: list[tuple[bytes | None, list[bytes]]] = []
    for p in ajp_packets(stream):
        if p[:1] == b"\x0a":
            out.append((None, []))
        elif p[:1] == b"\x02":
            out.append((p, []))
        elif out and out[-1][0] is not None:
            out[-1][1].append(p)
    return out


def body_chunk_seeds(stream: bytes, lighttpd: bool) -> list[bytes]:
    """ajp_body_chunk inputs: selector + the body packets of one request, as that target's
    own FORWARD_REQUEST expects them (its Content-Length follows the selector)."""
    seeds = []
    for fr, bodies in ajp_requests(stream):
        if not bodies:  # nothing for this target (its own head + no input)
            continue
        cl = content_length(fr)
        raw = b"".join(ajp_packet(b) for b in bodies)
        if cl is None:  # chunked (Apache): no Content-Length, ends at the empty packet
            seeds.append(b"\x00" + raw)
            # and trimmed (same FORWARD_REQUEST, so the body packets start at the same offset)
            seeds.append(b"\x00" + ajp_trim(ajp_packet(fr) + raw, lighttpd)[4 + len(fr) :])
        elif cl == 0:
            seeds.append(b"\x01" + raw)
        elif cl <= 255 and cl % 4 == 2:
            seeds.append(bytes([cl]) + raw)
        else:
            if cl == BIG:
                seeds.append(b"\x03" + raw)
            # Cut to SMALL bytes: selector SMALL means Content-Length SMALL.
            seeds.append(bytes([SMALL]) + ajp_trim_bodies(bodies, lighttpd, SMALL))
    return seeds


def ajp_trim_bodies(bodies: list[bytes], lighttpd: bool, keep: int) -> bytes:
    out, left = bytearray(), keep
    for b in bodies:
        data = ajp_body_data(b, lighttpd)
        if data and left > 0:
            out += ajp_body_packet(data[:left], lighttpd)
            left -= len(data[:left])
    return bytes(out)


# --------------------------------------------------------------------------- main


class Seeds:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.seen: set[tuple[str, str]] = set()
        self.count: dict[str, int] = {}

    def add(self, target: str, name: str, data: bytes) -> None:
        digest = hashlib.sha1(data).hexdigest()
        if (target, digest) in self.seen or not data:
            return
        self.seen.add((target, digest))
        d = self.out / target
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
        self.count[target] = self.count.get(target, 0) + 1


SETUPS = [
    # (front end, protocol, backend kwargs)
    ("nginx", "fcgi", {}),
    ("apache", "fcgi", {}),
    ("lighttpd", "fcgi", {}),
    ("nginx", "scgi", {}),
    ("apache", "scgi", {}),
    ("lighttpd", "scgi", {}),
    ("apache", "ajp", {}),
    ("lighttpd", "ajp", {"ajp_lighttpd_compat": True}),
]


def save(seeds: Seeds, front: str, proto: str, streams: list[bytes]) -> None:
    lighttpd = front == "lighttpd"
    for n, s in enumerate(streams, 1):
        name = f"{front}-{proto}-{n}"
        if proto == "fcgi":
            trimmed, blocks = fcgi_trim(s)
            seeds.add("fastcgi_records", name, b"\x00" + trimmed)
            for k, block in enumerate(blocks, 1):
                seeds.add(
                    "fastcgi_params", f"{name}-req{k}", bytes([min(len(block) // 2, 255)]) + block
                )
        elif proto == "scgi":
            seeds.add("scgi_netstring", name, scgi_trim(s))
        else:
            # The ajp_forward_request target reads standard body packets only. lighttpd's have no
            # inner length (they go to ajp_body_chunk): keep its FORWARD_REQUESTs with the body
            # dropped (Content-Length 0, then the empty packet lighttpd sends for no body).
            if lighttpd:
                fwd = ajp_trim(s, lighttpd, keep=0)
                if not fwd.endswith(b"\x12\x34\x00\x00"):
                    fwd += ajp_packet(b"")
            else:
                fwd = ajp_trim(s, lighttpd)
            seeds.add("ajp_forward_request", name, fwd)
            for k, seed in enumerate(body_chunk_seeds(s, lighttpd), 1):
                seeds.add("ajp_body_chunk", f"{name}-body{k}", seed)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=ROOT / "fuzz" / "seeds")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    args = ap.parse_args()

    rundir = Path(tempfile.mkdtemp(prefix="ferrocgi-capture-", dir="/var/tmp"))
    rundir.chmod(0o755)
    seeds = Seeds(args.out)
    starters = {
        "nginx": harness.start_nginx,
        "apache": harness.start_apache,
        "lighttpd": harness.start_lighttpd,
    }
    try:
        for front, proto, kw in SETUPS:
            log: list[str] = []
            with harness.start_backend(rundir, proto, **kw) as backend:
                proxy = RecordingProxy(backend.address)  # type: ignore[arg-type]
                try:
                    via = harness.Backend(
                        backend.proc,
                        proto,
                        "tcp",
                        (harness.LOOPBACK, proxy.port),
                        backend.stderr_path,
                    )
                    with starters[front](rundir, via) as fe:
                        drive(fe, log)
                        time.sleep(0.3)
                    streams = proxy.take()
                finally:
                    proxy.close()
            sizes = ", ".join(str(len(s)) for s in streams)
            print(f"{front} {proto}: {len(streams)} connection(s) [{sizes} bytes]")
            print("\n".join(log))
            save(seeds, front, proto, streams)
    finally:
        if args.keep:
            print(f"run dir kept: {rundir}")
        else:
            shutil.rmtree(rundir, ignore_errors=True)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    for t, n in sorted(seeds.count.items()):
        print(f"seeds written: {t}: {n}")
    print(f"fuzz/seeds total: {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
