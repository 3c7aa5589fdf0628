"""The WSGI application every benchmarked server loads: one callable, routed on the last
path segment so the same process serves all five benchmark apps.

* ``/hello``: ``Hello, world!`` (13 bytes).
* ``/payload``: 64 KiB of bytes (GET).
* ``/post``: reads the request body in 64 KiB pieces and answers its length.
* ``/django``: a Django template view (``benchsite``), through Django's WSGI handler.
* ``/io``: waits 10 ms off the CPU (``time.sleep``, standing in for a database query or an
  upstream call), then answers like ``/hello``: what threads are for.
"""

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

StartResponse = Callable[..., Any]
Environ = dict[str, Any]

HELLO = b"Hello, world!"
IO_WAIT = 0.010
PAYLOAD = bytes(i % 251 for i in range(64 * 1024))
_django = get_wsgi_application()


def _plain(start_response: StartResponse, body: bytes, ctype: str = "text/plain") -> list[bytes]:
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def application(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    if not path:  # nginx's scgi_params send no SCRIPT_NAME/PATH_INFO
        path = environ.get("REQUEST_URI", "").split("?", 1)[0]
    name = path.rstrip("/").rsplit("/", 1)[-1]
    if name == "hello":
        return _plain(start_response, HELLO)
    if name == "payload":
        return _plain(start_response, PAYLOAD, "application/octet-stream")
    if name == "post":
        stream = environ["wsgi.input"]
        left = int(environ.get("CONTENT_LENGTH") or 0)
        total = 0
        while left > 0:
            piece = stream.read(min(left, 65536))
            if not piece:
                break
            total += len(piece)
            left -= len(piece)
        return _plain(start_response, str(total).encode())
    if name == "io":
        time.sleep(IO_WAIT)
        return _plain(start_response, HELLO)
    if name == "django":
        environ["SCRIPT_NAME"] = ""
        environ["PATH_INFO"] = "/django/"
        return _django(environ, start_response)
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"not found\n"]
