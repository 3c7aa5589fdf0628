"""A WSGI app for ferrocgi's process-model tests (``tests/e2e/test_prefork.py``,
``test_signals.py``, ``test_daemon.py``, ``test_sockets.py``; started by
``tests/support/proc_server.py``).

The tests copy this module into a per-test directory, next to a ``version.txt`` it reads once,
at import time: changing that file and reloading shows whether the new code is served.

Routes (by the last segment of PATH_INFO):

- ``/info?sleep=S``: sleeps S seconds, answers ``{"pid", "ppid", "version", "slept"}`` as JSON.
- ``/exit?code=N``: the process ends at once with ``os._exit(N)`` (a crashing worker).
- ``/echo`` (any method): ``{"method", "query", "length", "content_length", "pid"}``: the body
  is read to its end and measured.
- ``/local``: ``{"live", "thread"}``: how many per-thread objects (kept in a
  ``threading.local``, as a database connection would be) are alive in this process, after
  making this thread's if it had none.
- ``/drop?sleep=S``: closes ``wsgi.input`` without reading it, then sleeps S seconds.
- ``/big?bytes=N``: N bytes in 64 KiB chunks (a response that fills the connection's queue).
- ``/hog?mb=N``: keeps N MiB more allocated (and touched) for the life of the process;
  answers ``{"pid", "held_mb"}``.
- ``asgi_application``: the same ``/info`` and ``/exit`` as an ASGI application (the sleep is
  ``await asyncio.sleep``), for the same tests under ``interface=asgi``.
- ``/ids``: the process's ids now (real, effective, saved uid and gid; supplementary groups),
  the effective uid the module was imported with, and the environment's ``FERROCGI_*`` names.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

VERSION = Path(__file__).with_name("version.txt").read_text().strip()
LOCAL = threading.local()


class PerThread:
    """Counts its live instances: one per thread that served ``/local`` and still exists."""

    live = 0

    def __init__(self) -> None:
        PerThread.live += 1

    def __del__(self) -> None:
        PerThread.live -= 1


IMPORT_EUID = os.geteuid()
HOGGED: list[bytearray] = []


def _reply(start_response: Callable[..., Any], data: dict[str, Any]) -> list[bytes]:
    body = json.dumps(data, sort_keys=True).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    route = environ.get("PATH_INFO", "").rstrip("/").rpartition("/")[2]
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if route == "exit":
        os._exit(int(query.get("code", "3")))
    if route == "local":
        if not hasattr(LOCAL, "obj"):
            LOCAL.obj = PerThread()
        return _reply(start_response, {"live": PerThread.live, "thread": threading.get_ident()})
    if route == "drop":
        environ["wsgi.input"].close()
        time.sleep(float(query.get("sleep", "0")))
        return _reply(start_response, {"dropped": True})
    if route == "big":
        n = int(query.get("bytes", "0"))
        start_response("200 OK", [("Content-Length", str(n))])
        return (b"x" * min(65536, n - i) for i in range(0, n, 65536))
    if route == "hog":
        HOGGED.append(bytearray(b"x" * (int(query.get("mb", "1")) << 20)))
        held = sum(len(b) for b in HOGGED) >> 20
        return _reply(start_response, {"pid": os.getpid(), "held_mb": held})
    if route == "ids":
        return _reply(
            start_response,
            {
                "uids": list(os.getresuid()),
                "gids": list(os.getresgid()),
                "groups": sorted(os.getgroups()),
                "import_euid": IMPORT_EUID,
                "ferrocgi_env": sorted(k for k in os.environ if k.startswith("FERROCGI_")),
            },
        )
    if route == "echo":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        return _reply(
            start_response,
            {
                "method": environ["REQUEST_METHOD"],
                "query": environ.get("QUERY_STRING", ""),
                "length": len(body),
                "content_length": environ.get("CONTENT_LENGTH"),
                "pid": os.getpid(),
            },
        )
    slept = float(query.get("sleep", "0"))
    if slept:
        time.sleep(slept)
    return _reply(
        start_response,
        {"pid": os.getpid(), "ppid": os.getppid(), "version": VERSION, "slept": slept},
    )


async def asgi_application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    route = scope["path"].rstrip("/").rpartition("/")[2]
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if route == "exit":
        os._exit(int(query.get("code", "3")))
    slept = float(query.get("sleep", "0"))
    if slept:
        await asyncio.sleep(slept)
    data = {"pid": os.getpid(), "ppid": os.getppid(), "version": VERSION, "slept": slept}
    body = json.dumps(data, sort_keys=True).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
