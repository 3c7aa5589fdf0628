"""Views for the test site: a page, where the app thinks it is mounted, an upload, and async
views for the ASGI runs (``asgi.py``): a view that awaits, a response streamed from an async
iterator, and a slow view that records being cancelled when the client goes away. Every
``request_finished`` signal and every cancellation is appended to ``$DJANGO_EVENTS``."""

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

from django.core.files.storage import default_storage
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        "<!doctype html><title>ferrocgi django test</title><h1>Hello from Django</h1>"
    )


def where(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "reverse": reverse("where"),
            "admin": reverse("admin:index"),
            "script_name": request.META.get("SCRIPT_NAME"),
            "path": request.path,
            "path_info": request.path_info,
        }
    )


@csrf_exempt
def upload(request: HttpRequest) -> JsonResponse:
    f = request.FILES["file"]
    name = default_storage.save(f"uploads/{f.name}", f)
    with default_storage.open(name, "rb") as stored:
        data = stored.read()
    return JsonResponse(
        {
            "name": name,
            "path": default_storage.path(name),
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "content_length": request.META.get("CONTENT_LENGTH"),
        }
    )


def _event(line: str) -> None:
    path = os.environ.get("DJANGO_EVENTS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def _finished(sender: object, **kwargs: object) -> None:
    _event("request_finished")


request_finished.connect(_finished, dispatch_uid="djangosite-events")


async def async_view(request: HttpRequest) -> JsonResponse:
    await asyncio.sleep(0.01)
    return JsonResponse({"async": True, "path": request.path, "method": request.method})


async def async_stream(request: HttpRequest) -> StreamingHttpResponse:
    async def lines() -> AsyncIterator[bytes]:
        for i in range(50):
            await asyncio.sleep(0)
            yield f"chunk {i}\n".encode()

    return StreamingHttpResponse(lines(), content_type="text/plain")


async def async_slow(request: HttpRequest) -> JsonResponse:
    token = request.GET.get("token", "")
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        _event(f"cancelled {token}")
        raise
    return JsonResponse({"slept": True})
