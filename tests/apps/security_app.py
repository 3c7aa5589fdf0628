"""A WSGI app for the Python host's security tests (``tests/e2e/test_security_host.py``).

Routes (the first segment of PATH_INFO):

- ``/close_raises``: a complete body from an iterable whose ``close()`` raises.
- ``/headers``: ``{"HTTP_X_DUP", "HTTP_COOKIE"}`` as the environ has them, as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


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
    if route == "headers":
        data = {k: environ.get(k) for k in ("HTTP_X_DUP", "HTTP_COOKIE")}
        body = json.dumps(data).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such route\n"]
