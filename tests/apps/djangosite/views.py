"""Views for the test site: a page, where the app thinks it is mounted, and an upload."""

import hashlib

from django.core.files.storage import default_storage
from django.http import HttpRequest, HttpResponse, JsonResponse
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
