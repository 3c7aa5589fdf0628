"""A Starlette application for tests/e2e/test_asgi_frameworks.py, in the spec's validator.

Lifespan (an async context manager) yields the state every request sees and appends
``startup PID`` / ``shutdown PID`` to ``$ASGI_EVENTS``. Routes: ``/hello``, ``/items/{id}``
(path parameter, ``url_for``, ``root_path``), ``/stream`` (``StreamingResponse`` over an async
generator), ``/file`` (``FileResponse`` of ``$ASGI_FILE``: sent with the pathsend extension
when the server offers it), ``/background`` (a ``BackgroundTask`` run after the response),
``/state`` (the lifespan state), ``/upload`` (the body's sha256 read with ``request.stream()``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncIterator

from asgi_validate import validate
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route


def _events(line: str) -> None:
    path = os.environ.get("ASGI_EVENTS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
    _events(f"startup {os.getpid()}")
    yield {"pid": os.getpid(), "greeting": "set by lifespan"}
    _events(f"shutdown {os.getpid()}")


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello from Starlette\n")


async def item(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "id": request.path_params["id"],
            "url": str(request.url_for("item", id=7)),
            "root_path": request.scope["root_path"],
            "path": request.url.path,
            "q": request.query_params.get("q"),
        }
    )


async def stream(request: Request) -> StreamingResponse:
    async def numbers() -> AsyncIterator[bytes]:
        for i in range(100):
            yield f"line {i}\n".encode()

    return StreamingResponse(numbers(), media_type="text/plain")


async def file(request: Request) -> FileResponse:
    return FileResponse(os.environ["ASGI_FILE"], media_type="application/octet-stream")


async def background(request: Request) -> PlainTextResponse:
    token = request.query_params["token"]
    return PlainTextResponse("queued\n", background=BackgroundTask(_events, f"background {token}"))


async def state(request: Request) -> JSONResponse:
    return JSONResponse({"pid": request.state.pid, "greeting": request.state.greeting})


async def upload(request: Request) -> JSONResponse:
    digest, n = hashlib.sha256(), 0
    async for chunk in request.stream():
        digest.update(chunk)
        n += len(chunk)
    return JSONResponse({"length": n, "sha256": digest.hexdigest()})


app = Starlette(
    routes=[
        Route("/hello", hello),
        Route("/items/{id:int}", item, name="item"),
        Route("/stream", stream),
        Route("/file", file),
        Route("/background", background),
        Route("/state", state),
        Route("/upload", upload, methods=["POST"]),
    ],
    lifespan=lifespan,
)
application = validate(app)
