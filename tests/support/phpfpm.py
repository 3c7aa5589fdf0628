"""php-fpm's status page format, as php-fpm's documentation describes it, and a client that
asks a server for its status page over FastCGI, SCGI or AJP.

The parser knows nothing of ferrocgi: it reads what php-fpm's manual ("FPM status page") and
its sample pool configuration (www.conf, pm.status_path) document — ``name: value`` lines for the
pool, then, with ``full``, one block per process after a line of asterisks; the JSON format has
the same names, processes under ``processes``. The tests hold ferrocgi's page to it, so a
collector written for php-fpm reads ferrocgi unchanged.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

from support import wire

# The pool fields php-fpm documents, in its order.
POOL_FIELDS = [
    "pool",
    "process manager",
    "start time",
    "start since",
    "accepted conn",
    "listen queue",
    "max listen queue",
    "listen queue len",
    "idle processes",
    "active processes",
    "total processes",
    "max active processes",
    "max children reached",
    "slow requests",
]
# The per-process fields of ``full``.
PROCESS_FIELDS = [
    "pid",
    "state",
    "start time",
    "start since",
    "requests",
    "request duration",
    "request method",
    "request uri",
    "content length",
    "user",
    "script",
    "last request cpu",
    "last request memory",
]
# php-fpm's process states.
STATES = {"Idle", "Running", "Reading headers", "Info", "Finishing", "Ending"}


@dataclass
class Status:
    pool: dict[str, str]
    processes: list[dict[str, str]]


def parse_text(text: str) -> Status:
    """The plain-text page: ``name:<spaces>value`` lines; ``full`` adds blocks after ``****``."""
    blocks: list[dict[str, str]] = [{}]
    for line in text.splitlines():
        if not line.strip():
            continue
        if set(line.strip()) == {"*"}:
            blocks.append({})
            continue
        name, sep, value = line.partition(":")
        assert sep, f"not a 'name: value' line: {line!r}"
        blocks[-1][name.strip()] = value.strip()
    pool, processes = blocks[0], blocks[1:]
    missing = [f for f in POOL_FIELDS if f not in pool]
    assert not missing, f"pool fields missing: {missing}"
    for p in processes:
        missing = [f for f in PROCESS_FIELDS if f not in p]
        assert not missing, f"process fields missing: {missing}"
        assert p["state"] in STATES, p["state"]
    return Status(pool, processes)


def parse_json(body: bytes) -> dict[str, Any]:
    """``?json``: the same names, numbers as numbers, processes (``full``) under ``processes``."""
    data: dict[str, Any] = json.loads(body)
    for f in POOL_FIELDS:
        assert f in data, f"pool field {f!r} missing"
    for f in POOL_FIELDS[2:]:
        assert isinstance(data[f], int), (f, data[f])
    for p in data.get("processes", []):
        for f in PROCESS_FIELDS:
            assert f in p, f"process field {f!r} missing"
        for f in ("pid", "requests", "request duration", "content length", "last request memory"):
            assert isinstance(p[f], int), (f, p[f])
        assert p["state"] in STATES, p["state"]
    return data


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def _params(path: str, query: str, remote_addr: str) -> list[tuple[str, str]]:
    return [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", remote_addr),
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", path),
        ("PATH_INFO", ""),
        ("QUERY_STRING", query),
        ("REQUEST_URI", path + ("?" + query if query else "")),
    ]


def _cgi_reply(stdout: bytes) -> Reply:
    cgi = wire.parse_cgi(stdout)
    headers = {k.lower(): v for k, v in cgi.headers}
    return Reply(cgi.status, headers, cgi.body)


def fetch(
    address: tuple[str, int] | str,
    path: str,
    query: str = "",
    protocol: str = "fcgi",
    remote_addr: str = "127.0.0.1",
) -> Reply:
    """One GET of ``path?query`` on a new connection, as a web server would send it."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(15)
        s.connect(address)
        if protocol == "ajp13":
            r = wire.ajp_send_request(s, uri=path, query=query or None, remote_addr=remote_addr)
            return Reply(r.status, {k.lower(): v for k, v in r.headers}, r.body)
        if protocol == "scgi":
            s.sendall(wire.scgi_request(_params(path, query, remote_addr)))
            return _cgi_reply(wire.recv_all(s))
        s.sendall(wire.fcgi_request(_params(path, query, remote_addr)))
        return _cgi_reply(wire.read_fcgi_response(s).stdout)
