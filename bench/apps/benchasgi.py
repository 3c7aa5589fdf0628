"""The ASGI application every benchmarked ASGI server loads (the ASGI twin of benchapp.py):
one callable, routed on the last path segment.

* ``/ahello``: ``Hello, world!`` (13 bytes).
* ``/apayload``: 64 KiB of bytes.
* ``/apost``: reads the request body as it streams and answers its length (16 KiB POSTs).
* ``/astream``: a streamed response of 100 body messages of 100 bytes.
* ``/adjango``: an async Django view rendering the bench template, through ``ASGIHandler``.
* ``/asleep``: ``await asyncio.sleep(0.01)`` (an awaited database or upstream call), then
  ``Hello, world!``: what one event loop is for (measured at 256 connections).
"""

import asyncio
import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

HELLO = b"Hello, world!"
PAYLOAD = bytes(i % 251 for i in range(64 * 1024))
CHUNK = b"x" * 99 + b"\n"
_django = get_asgi_application()


async def _answer(send: Any, body: bytes, ctype: bytes = b"text/plain") -> None:
    headers = [(b"content-type", ctype), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        msg = await receive()
        await send({"type": msg["type"] + ".complete"})
        if msg["type"] == "lifespan.shutdown":
            return


async def application(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    name = scope["path"].rstrip("/").rsplit("/", 1)[-1]
    if name == "ahello":
        return await _answer(send, HELLO)
    if name == "apayload":
        return await _answer(send, PAYLOAD, b"application/octet-stream")
    if name == "apost":
        total, more = 0, True
        while more:
            msg = await receive()
            total += len(msg.get("body", b""))
            more = msg.get("more_body", False)
        return await _answer(send, str(total).encode())
    if name == "astream":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        for _ in range(100):
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        return await send({"type": "http.response.body", "body": b""})
    if name == "asleep":
        await asyncio.sleep(0.010)
        return await _answer(send, HELLO)
    if name == "adjango":
        scope = dict(scope, path="/adjango/", root_path="", raw_path=b"/adjango/")
        return await _django(scope, receive, send)
    await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"not found\n"})
