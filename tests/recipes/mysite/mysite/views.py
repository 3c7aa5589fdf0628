"""Pages the recipes' tests read: links built by {% url %} and reverse(), uploads, versions."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import get_script_prefix, reverse
from django.views.decorators.csrf import csrf_exempt

from mysite import version

PROTOCOLS = {"fcgi": "FastCGI", "scgi": "SCGI", "ajp": "AJP13", "cgi": "CGI"}


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def describe_server(server: Mapping[str, Any]) -> dict[str, str]:
    """What ``environ["ferrocgi.server"]`` says about the server running this request, in words."""
    threads = plural(server["threads"], "Python thread", "Python threads")
    if server["method"] == "prefork":
        processes = plural(server["processes"], "worker process", "worker processes")
        workers = f"up to {processes}, {threads} each"
    else:
        workers = f"one process, {threads}"
    return {
        "protocol": PROTOCOLS.get(server["protocol"], server["protocol"]),
        "method": server["method"],
        "interface": str(server.get("interface", "wsgi")).upper(),
        "workers": workers,
        "version": server["version"],
        "status_path": server.get("status_path") or "",
    }


def server_of(request: HttpRequest) -> Mapping[str, Any] | None:
    """ferrocgi's ``ferrocgi.server`` mapping: in the WSGI environ, or (ASGI) among the
    scope's extensions."""
    scope = getattr(request, "scope", None) or {}
    return request.META.get("ferrocgi.server") or scope.get("extensions", {}).get("ferrocgi.server")


def home(request: HttpRequest) -> HttpResponse:
    server = server_of(request)
    context = {
        "site": settings.SITE_NAME,
        "server": describe_server(server) if server is not None else None,
        "software": request.META.get("SERVER_SOFTWARE", "an unknown WSGI server"),
        "pid": os.getpid(),
    }
    return render(request, "mysite/home.html", context)


def about(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"about {settings.SITE_NAME}\n", content_type="text/plain")


def info(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "site": settings.SITE_NAME,
            "version": version.VERSION,
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "script_prefix": get_script_prefix(),
            "reverse_about": reverse("about"),
            "path": request.path,
            "path_info": request.path_info,
            "SCRIPT_NAME": request.META.get("SCRIPT_NAME"),
            "PATH_INFO": request.META.get("PATH_INFO"),
        }
    )


@csrf_exempt
def upload(request: HttpRequest) -> JsonResponse:
    f = request.FILES["file"]
    digest = hashlib.sha256()
    for chunk in f.chunks():
        digest.update(chunk)
    return JsonResponse({"name": f.name, "size": f.size, "sha256": digest.hexdigest()})
