"""Pages the recipes' tests read: links built by {% url %} and reverse(), uploads, versions."""

import hashlib
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import get_script_prefix, reverse
from django.views.decorators.csrf import csrf_exempt

from mysite import version


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "mysite/home.html", {"site": settings.SITE_NAME})


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
