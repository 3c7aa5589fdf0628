"""A WSGI app for the Python host's security tests (``tests/e2e/test_security_host.py``).

Routes (the first segment of PATH_INFO):

- ``/close_raises``: a complete body from an iterable whose ``close()`` raises.
- ``/file_wrapper``: ``wsgi.file_wrapper`` around a file-like object whose ``tell()`` closes
  its file and opens another (which takes the freed descriptor number); the body must be the
  first file's content, ``right file``.
- ``/chunks``: 300 chunks of 64 KiB in a list (sent from Rust: no Python code runs between
  them).
- ``/headers``: ``{"HTTP_X_DUP", "HTTP_COOKIE"}`` as the environ has them, as JSON.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class SwapsOnTell:
    """``fileno()`` names a real file; ``tell()`` closes it and opens another, so the number
    ``fileno()`` gave now means the other file."""

    def __init__(self, right: Path, wrong: Path) -> None:
        self.file = open(right, "rb")  # noqa: SIM115 - closed by tell() on purpose
        self.wrong = wrong
        self.other: Any = None

    def fileno(self) -> int:
        return self.file.fileno()

    def tell(self) -> int:
        self.file.close()
        self.other = open(self.wrong, "rb")  # noqa: SIM115 - closed by close()
        return 0

    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        if self.other is not None:
            self.other.close()


def file_wrapper(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    d = Path(tempfile.mkdtemp())
    (d / "right").write_bytes(b"right file")
    (d / "wrong").write_bytes(b"WRONG FILE")
    start_response("200 OK", [("Content-Type", "text/plain")])
    wrapped: Iterable[bytes] = environ["wsgi.file_wrapper"](SwapsOnTell(d / "right", d / "wrong"))
    return wrapped


class CloseRaises:
    def __iter__(self) -> Iterator[bytes]:
        yield b"complete body"

    def close(self) -> None:
        raise RuntimeError("close failed on purpose")


def application(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    route = environ.get("PATH_INFO", "").lstrip("/").split("/")[0]
    if route == "close_raises":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
        return CloseRaises()
    if route == "file_wrapper":
        return file_wrapper(environ, start_response)
    if route == "chunks":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"x" * 65536] * 300
    if route == "headers":
        data = {k: environ.get(k) for k in ("HTTP_X_DUP", "HTTP_COOKIE")}
        body = json.dumps(data).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such route\n"]
