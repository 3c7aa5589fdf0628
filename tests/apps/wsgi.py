"""WSGI applications for ferrocgi's end-to-end tests (``tests/e2e/test_wsgi.py``).

``application`` dispatches on the first segment of PATH_INFO (``/env/...`` → ``env``), or on
``?app=NAME`` when given. Every route is wrapped in :func:`wsgiref.validate.validator`, so each
response also passes PEP 3333 validation, except the ``raw_*`` routes that deliberately break
the protocol (bad ``start_response`` arguments) or that use what the validator forbids
(``wsgi.input.read()`` without a size, which PEP 3333 allows; ``wsgi.file_wrapper`` returned
as is, so the server's fast path for real files is the one tested).

Validator warnings are turned into errors: a warning becomes an exception, so a 500.

Environment:

- ``WSGI_TEST_DIR``: a directory the tests share with the app. ``records/`` receives one
  file per ``close()`` call of the ``closing`` route (named after ``?token=``), and
  ``big.bin`` is the file ``file_wrapper`` serves.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
App = Callable[[Environ, StartResponse], Iterable[bytes]]

JSON = [("Content-Type", "application/json")]
TEXT = [("Content-Type", "text/plain; charset=utf-8")]


def query(environ: Environ) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def test_dir() -> Path:
    return Path(os.environ["WSGI_TEST_DIR"])


def json_reply(start_response: StartResponse, data: Any, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(data, sort_keys=True).encode()
    start_response(status, [*JSON, ("Content-Length", str(len(body)))])
    return [body]


# ----------------------------------------------------------------------------- routes


def env(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """The environ as JSON: str values as they are, the rest as ``{"type": ..., "value": ...}``."""
    out: dict[str, Any] = {}
    for key, value in environ.items():
        assert isinstance(key, str), key
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool | int | tuple | type(None)):
            out[key] = {"type": type(value).__name__, "value": value}
        else:
            out[key] = {"type": type(value).__name__}
    return json_reply(start_response, out)


def _digest(pieces: Iterable[bytes]) -> tuple[int, str, int]:
    h, n, count = hashlib.sha256(), 0, 0
    for piece in pieces:
        assert isinstance(piece, bytes), type(piece)
        h.update(piece)
        n += len(piece)
        count += 1
    return n, h.hexdigest(), count


def _read_n(stream: Any, n: int) -> Iterator[bytes]:
    while piece := stream.read(n):
        yield piece


def _readline_n(stream: Any, n: int) -> Iterator[bytes]:
    while line := stream.readline(n):
        assert len(line) <= n, (len(line), n)
        yield line


def _readline(stream: Any) -> Iterator[bytes]:
    while line := stream.readline():
        assert line.endswith(b"\n") or b"\n" not in line, line[-20:]
        yield line


def echo(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Reads the body one way (``?mode=``), answers its length and sha256."""
    q = query(environ)
    mode, n = q.get("mode", "readn"), int(q.get("n", "65536"))
    stream = environ["wsgi.input"]
    pieces: Iterable[bytes]
    if mode == "read":
        pieces = [stream.read()]  # validator-free route only (see raw_echo)
    elif mode == "readn":
        pieces = _read_n(stream, n)
    elif mode == "readline":
        pieces = _readline(stream)
    elif mode == "readline_n":
        pieces = _readline_n(stream, n)
    elif mode == "readlines":
        pieces = stream.readlines()
    elif mode == "iter":
        pieces = iter(stream)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    length, sha, count = _digest(pieces)
    # Past the end, every read gives b"".
    assert stream.read(1) == b"" and stream.readline() == b"", "data after the end"
    return json_reply(
        start_response,
        {
            "mode": mode,
            "length": length,
            "sha256": sha,
            "pieces": count,
            "content_length": environ.get("CONTENT_LENGTH"),
        },
    )


def write(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """The legacy ``write()`` callable, then more chunks from the iterable."""
    w = start_response("200 OK", TEXT)
    w(b"written-1;")
    w(b"written-2;")
    return [b"returned-3"]


def lazy(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    """A generator app: start_response is only called when the server starts iterating.

    It first says 200, yields nothing, then changes its mind (allowed with ``exc_info`` while
    no body byte is out): the client must see the status it finally set.
    """
    start_response("200 OK", TEXT)
    yield b""
    try:
        raise LookupError("changed my mind")
    except LookupError:
        start_response("203 Changed Mind", [*TEXT, ("X-Lazy", "final")], sys.exc_info())
    yield b"lazy body"


def exc_after_headers(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    """start_response with ``exc_info`` once the headers are out: the server re-raises it."""
    start_response("200 OK", TEXT)
    yield b"partial body, then an error;"
    try:
        raise KeyError("exc_info_reraised_marker")
    except KeyError:
        start_response("500 Internal Server Error", TEXT, sys.exc_info())
    yield b"never sent"


def slow(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    """``?chunks=5&delay=0.2``: chunks spaced out in time; nginx is asked not to buffer."""
    q = query(environ)
    chunks, delay = int(q.get("chunks", "5")), float(q.get("delay", "0.2"))
    start_response("200 OK", [*TEXT, ("X-Accel-Buffering", "no")])
    for i in range(chunks):
        if i:
            time.sleep(delay)
        yield f"chunk {i} at {time.monotonic():.3f}\n".encode()


def fail_before_start_response(environ: Environ, start_response: StartResponse) -> list[bytes]:
    raise RuntimeError("boom before start_response")


def fail_after_headers(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", TEXT)
    yield b"the beginning of a body"
    raise RuntimeError("boom_after_headers_marker")


class Closing:
    """An iterable with ``close()`` that records each call in ``records/<token>``.

    ``?token=T&chunks=N&size=S&delay=D&fail=K``: N chunks of S bytes, D seconds apart; raises
    at chunk K when given. The record says how many chunks were produced and how it ended.
    """

    def __init__(self, environ: Environ, start_response: StartResponse) -> None:
        q = query(environ)
        self.token = q["token"]
        self.chunks, self.size = int(q.get("chunks", "3")), int(q.get("size", "10"))
        self.delay = float(q.get("delay", "0"))
        self.fail = int(q["fail"]) if "fail" in q else None
        self.produced, self.outcome = 0, "running"
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

    def __iter__(self) -> Iterator[bytes]:
        try:
            for i in range(self.chunks):
                if i == self.fail:
                    raise RuntimeError(f"closing app fails at chunk {i}")
                if i and self.delay:
                    time.sleep(self.delay)
                self.produced += 1
                yield b"x" * self.size
            self.outcome = "complete"
        except GeneratorExit:
            self.outcome = "stopped"
            raise
        except BaseException as exc:
            self.outcome = f"raised {type(exc).__name__}"
            raise

    def close(self) -> None:
        records = test_dir() / "records"
        records.mkdir(exist_ok=True)
        with open(records / self.token, "a") as f:
            f.write(json.dumps({"produced": self.produced, "outcome": self.outcome}) + "\n")


class SlowClose:
    """One chunk with a Content-Length, and a ``close()`` that takes ``?close=S`` seconds (as
    Django's does work there: ``request_finished``). ``close()`` appends ``closed <token>`` to
    ``records/<token>`` when ``?token=`` is given."""

    def __init__(self, environ: Environ, start_response: StartResponse) -> None:
        q = query(environ)
        self.delay, self.token = float(q.get("close", "0.02")), q.get("token")
        self.body = b"y" * int(q.get("size", "100"))
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(self.body)))]
        start_response("200 OK", headers)

    def __iter__(self) -> Iterator[bytes]:
        yield self.body

    def close(self) -> None:
        time.sleep(self.delay)
        if self.token:
            records = test_dir() / "records"
            records.mkdir(exist_ok=True)
            with open(records / self.token, "a") as f:
                f.write(f"closed {self.token}\n")


def errors(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Writes ``wsgi-errors-line <token>`` to ``wsgi.errors`` (one line per call style)."""
    token = query(environ)["token"]
    err = environ["wsgi.errors"]
    err.write(f"wsgi-errors-line {token} write\n")
    err.writelines([f"wsgi-errors-line {token} writelines\n"])
    err.flush()
    start_response("200 OK", TEXT)
    return [b"logged"]


def big(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """``?bytes=N``: byte i is i % 251, in 64 KiB chunks yielded one by one, or returned as
    one list with ``&list=1`` (many more chunks than a connection's queue holds)."""
    q = query(environ)
    n = int(q.get("bytes", str(10 * 1024 * 1024)))
    start_response(
        "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))]
    )
    block = bytes(range(251)) * 262  # 65762 bytes, a multiple of 251
    pieces = (block[: min(len(block), n - sent)] for sent in range(0, n, len(block)))
    return list(pieces) if q.get("list") == "1" else pieces


ROUTES: dict[str, App] = {
    "env": env,
    "echo": echo,
    "write": write,
    "lazy": lazy,
    "exc-after-headers": exc_after_headers,
    "slow": slow,
    "fail-before-start": fail_before_start_response,
    "fail-after-headers": fail_after_headers,
    "closing": Closing,
    "slow-close": SlowClose,
    "errors": errors,
    "big": big,
}
VALIDATED: dict[str, App] = {name: validator(app) for name, app in ROUTES.items()}


# ----------------------------------------------------------------------------- raw routes


def raw_echo(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """``echo`` without the validator: ``?mode=read`` calls ``read()`` without a size."""
    return echo(environ, start_response)


def raw_file(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """``wsgi.file_wrapper`` over ``$WSGI_TEST_DIR/big.bin``, returned as is."""
    path = test_dir() / "big.bin"
    f = open(path, "rb")
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(path.stat().st_size)),
        ],
    )
    wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](f, 65536)
    return wrapper


BAD_START_RESPONSE: dict[str, tuple[Any, Any]] = {
    "non-str-header": ("200 OK", [("Content-Type", "text/plain"), ("X-Number", 42)]),
    "bytes-header-name": ("200 OK", [(b"X-Bytes", "v")]),
    "newline-in-header": ("200 OK", [("Content-Type", "text/plain"), ("X-Bad", "a\nInjected: 1")]),
    "hop-by-hop": ("200 OK", [("Content-Type", "text/plain"), ("Connection", "close")]),
    "bad-status": ("OK 200", [("Content-Type", "text/plain")]),
    "status-not-str": (200, [("Content-Type", "text/plain")]),
}


def raw_bad_start_response(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """``?kind=``: calls start_response with the bad arguments named by ``kind``."""
    status, headers = BAD_START_RESPONSE[query(environ)["kind"]]
    start_response(status, headers)
    return [b"should never be sent"]


RAW_ROUTES: dict[str, App] = {
    "raw-echo": raw_echo,
    "raw-file": raw_file,
    "raw-bad-start-response": raw_bad_start_response,
}


def application(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    name = query(environ).get("app") or environ.get("PATH_INFO", "").lstrip("/").split("/")[0]
    if name in RAW_ROUTES:
        return RAW_ROUTES[name](environ, start_response)
    app = VALIDATED.get(name)
    if app is None:
        return (
            VALIDATED["env"](environ, start_response) if name == "" else not_found(start_response)
        )
    return app(environ, start_response)


def not_found(start_response: StartResponse) -> list[bytes]:
    start_response("404 Not Found", TEXT)
    return [b"no such test app\n"]
