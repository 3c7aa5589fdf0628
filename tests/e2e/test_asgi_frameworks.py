"""ASGI frameworks on ferrocgi behind real web servers: Starlette (``tests/apps/starlette_app.py``)
and FastAPI (``tests/apps/fastapi_app.py``), both in the spec's validator. Django's ASGI handler
runs in test_apps.py (every Django test runs under WSGI and ASGI).

Starlette: routing with ``url_for`` under the mount prefix, lifespan state, a
``StreamingResponse``, a ``FileResponse`` sent through the pathsend extension, a background task
run after the response, a streamed upload. FastAPI: JSON in and out through a pydantic model, its
validation errors (422), a dependency, a multipart upload.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import asgi, harness
from support.asgi import Site
from support.procfs import eventually

MIB = 1024 * 1024
FILE_BYTES = random.Random(7).randbytes(3 * MIB + 17)
PREFORK = {"method": "prefork", "maxchildren": "2", "minspare": "2", "maxspare": "2"}

# (id, app, server, protocol, extra words)
SITES = {
    "starlette-nginx-fcgi": ("starlette_app:application", "nginx", "fcgi", {}),
    "starlette-apache-ajp-prefork": (
        "starlette_app:application",
        "apache",
        "ajp",
        {"script_name": "/app", **PREFORK},
    ),
    "fastapi-nginx-scgi": ("fastapi_app:application", "nginx", "scgi", {}),
    "fastapi-lighttpd-fcgi-prefork": ("fastapi_app:application", "lighttpd", "fcgi", PREFORK),
}


@pytest.fixture(scope="module")
def site(request: pytest.FixtureRequest, rundir: Path) -> Iterator[Site]:
    name: str = request.param
    app, server, protocol, extra = SITES[name]
    d = harness.make_dir(rundir / name)
    events, violations, data = d / "events.txt", d / "violations.txt", d / "file.bin"
    data.write_bytes(FILE_BYTES)
    env = {
        "ASGI_EVENTS": str(events),
        "ASGI_VALIDATOR_LOG": str(violations),
        "ASGI_FILE": str(data),
    }
    with contextlib.ExitStack() as stack:
        backend = stack.enter_context(
            harness.start_wsgi(rundir, app, protocol, env=env, extra=extra)
        )
        frontend = stack.enter_context(asgi.STARTERS[server](rundir, backend))
        yield Site(backend, frontend, events, violations)
    assert not violations.exists(), violations.read_text()


def sites(prefix: str) -> pytest.MarkDecorator:
    names = [n for n in SITES if n.startswith(prefix)]
    return pytest.mark.parametrize("site", names, indirect=True, scope="module")


starlette = sites("starlette")
fastapi = sites("fastapi")

# ----------------------------------------------------------------------------- Starlette


@starlette
def test_starlette_routing_knows_its_mount_point(site: Site) -> None:
    data = site.get("/items/42?q=x").json()
    prefix = site.frontend.prefix
    assert data["id"] == 42
    assert data["root_path"] == prefix
    assert data["path"] == prefix + "/items/42"
    assert data["url"].endswith(prefix + "/items/7")
    assert data["q"] == "x"
    assert site.get("/nowhere").status == 404


@starlette
def test_starlette_lifespan_state(site: Site) -> None:
    data = site.get("/state").json()
    assert data["greeting"] == "set by lifespan"
    assert f"startup {data['pid']}" in site.event_lines()


@starlette
def test_starlette_streaming_response(site: Site) -> None:
    reply = site.get("/stream")
    assert reply.status == 200
    assert reply.text() == "".join(f"line {i}\n" for i in range(100))


@starlette
def test_starlette_file_response_through_pathsend(site: Site) -> None:
    reply = site.get("/file")
    assert reply.status == 200
    # Apache's mod_proxy_ajp re-frames a streamed body as chunked, dropping the length.
    assert reply.header("Content-Length") in (str(len(FILE_BYTES)), None)
    assert hashlib.sha256(reply.body).hexdigest() == hashlib.sha256(FILE_BYTES).hexdigest()


@starlette
def test_starlette_background_task_runs_after_the_response(site: Site) -> None:
    token = uuid.uuid4().hex
    reply = site.get(f"/background?token={token}")
    assert (reply.status, reply.text()) == (200, "queued\n")
    eventually("the background task", lambda: f"background {token}" in site.event_lines(), 10)


@starlette
def test_starlette_streamed_upload(site: Site) -> None:
    data = random.Random(8).randbytes(6 * MIB)
    info = site.request("POST", "/upload", data).json()
    assert info == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


# ----------------------------------------------------------------------------- FastAPI


@fastapi
def test_fastapi_json_in_and_out(site: Site) -> None:
    body = json.dumps({"name": "widget", "price": 10.0, "tags": ["a"]}).encode()
    reply = site.request("POST", "/items", body, {"Content-Type": "application/json"})
    assert reply.status == 201, reply.body[:500]
    assert json.loads(reply.body) == {
        "created": {"name": "widget", "price": 10.0, "tags": ["a"]},
        "total": 12.0,
    }
    assert site.get("/items?limit=5").json() == {"items": [], "page": {"limit": 5, "offset": 0}}


@fastapi
def test_fastapi_validation_errors(site: Site) -> None:
    body = json.dumps({"name": "", "price": -1}).encode()
    reply = site.request("POST", "/items", body, {"Content-Type": "application/json"})
    assert reply.status == 422
    fields = sorted(e["loc"][-1] for e in json.loads(reply.body)["detail"])
    assert fields == ["name", "price"]
    assert site.get("/items?limit=1000").status == 422


@fastapi
def test_fastapi_upload(site: Site) -> None:
    data = random.Random(9).randbytes(2 * MIB)
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    ctype = f"multipart/form-data; boundary={boundary}"
    info = site.request("POST", "/upload", body, {"Content-Type": ctype}).json()
    assert info == {
        "filename": "d.bin",
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "content_type": "application/octet-stream",
    }
