"""A raw ASGI 3 application for tests/e2e/test_asgi.py, wrapped in the spec's validator
(``asgi_validate.py``). Routes (after the mount prefix):

- ``/scope``: the scope as JSON (bytes as latin-1 text).
- ``/echo``: reads the body as it streams; its length, sha256 and the number of chunks.
- ``/stream?n=N&size=S``: N body messages of S bytes (``more_body``), then the end.
- ``/sleep?s=SECONDS``: ``await asyncio.sleep``, then the pid.
- ``/disconnect?name=NAME``: starts a response, sends a chunk every 50 ms and listens on
  ``receive()``; when ``http.disconnect`` arrives it writes NAME to ``$ASGI_EVENTS`` and stops.
- ``/linger?name=NAME&s=SECONDS``: answers, then keeps running (``await asyncio.sleep``) and
  writes ``lingered NAME`` to ``$ASGI_EVENTS`` when done.
- ``/raise``: raises before answering; ``/incomplete``: starts a response and returns.
- ``/bad-order``: sends a body before the start (the server must refuse it).
- ``/state``: the lifespan state this request's scope carries.

Lifespan: startup puts ``{"pid", "started"}`` in the state and appends ``startup PID`` to
``$ASGI_EVENTS``; shutdown appends ``shutdown PID``. ``$ASGI_LIFESPAN=fail`` answers
``lifespan.startup.failed`` ("database unreachable"); ``=unsupported`` raises on the lifespan
scope, as Django does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

from asgi_validate import validate


def _events(line: str) -> None:
    path = os.environ.get("ASGI_EVENTS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


async def _json(send: Any, data: Any, status: int = 200) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(scope: Any, receive: Any, send: Any) -> None:
    mode = os.environ.get("ASGI_LIFESPAN", "")
    if mode == "unsupported":
        raise ValueError("asgi_app: no lifespan here")
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup" and mode == "fail":
            await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
            return
        if msg["type"] == "lifespan.startup":
            scope["state"].update(pid=os.getpid(), started=True)
            _events(f"startup {os.getpid()}")
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            _events(f"shutdown {os.getpid()}")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _echo(receive: Any, send: Any) -> None:
    digest, length, chunks = hashlib.sha256(), 0, 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return
        digest.update(msg["body"])
        length += len(msg["body"])
        chunks += 1
        if not msg.get("more_body"):
            break
    await _json(send, {"length": length, "sha256": digest.hexdigest(), "chunks": chunks})


async def _stream(query: dict[str, str], send: Any) -> None:
    n, size = int(query.get("n", "100")), int(query.get("size", "10"))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    for i in range(n):
        await send(
            {"type": "http.response.body", "body": bytes([65 + i % 26]) * size, "more_body": True}
        )
    await send({"type": "http.response.body", "body": b""})


async def _disconnect(query: dict[str, str], receive: Any, send: Any) -> None:
    while (await receive())["type"] != "http.request":
        pass
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    gone = asyncio.ensure_future(receive())
    while not gone.done():
        await send({"type": "http.response.body", "body": b"tick\n" * 100, "more_body": True})
        await asyncio.sleep(0.05)
    if gone.result()["type"] == "http.disconnect":
        _events(f"disconnect {query.get('name', '')}")


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await _lifespan(scope, receive, send)
    path = scope["path"][len(scope["root_path"]) :]
    query = dict(urllib.parse.parse_qsl(scope["query_string"].decode()))
    if path.startswith("/scope"):
        return await _json(send, _plain({k: v for k, v in scope.items() if k != "state"}))
    if path == "/echo":
        return await _echo(receive, send)
    if path == "/stream":
        return await _stream(query, send)
    if path == "/sleep":
        await asyncio.sleep(float(query.get("s", "0.2")))
        return await _json(send, {"pid": os.getpid()})
    if path == "/disconnect":
        return await _disconnect(query, receive, send)
    if path == "/linger":
        await _json(send, {"lingering": True})
        await asyncio.sleep(float(query.get("s", "1")))
        return _events(f"lingered {query.get('name', '')}")
    if path == "/raise":
        raise RuntimeError("asgi_app: raised on purpose")
    if path == "/incomplete":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        return None
    if path == "/bad-order":
        await send({"type": "http.response.body", "body": b"too early"})
    if path == "/state":
        return await _json(send, scope.get("state"))
    return await _json(send, {"error": "no such path", "path": path}, status=404)


# The validator sits between the server and the app: the bad-order route must reach the
# server unchecked, to test the server's own refusal.
validated = validate(app)


async def application(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"].endswith("/bad-order"):
        return await app(scope, receive, send)
    return await validated(scope, receive, send)
