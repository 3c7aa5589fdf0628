from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

ROWS = [
    {"id": i, "name": f"item {i}", "price": i * 1.25, "tags": ["a", "b", "c"][: i % 4]} for i in range(20)
]


def page(request: HttpRequest) -> HttpResponse:
    return render(request, "page.html", {"title": "ferrocgi bench", "rows": ROWS, "path": request.path})


async def apage(request: HttpRequest) -> HttpResponse:
    """The same page from an async view (the ASGI rows' ``/adjango``)."""
    return render(request, "page.html", {"title": "ferrocgi bench", "rows": ROWS, "path": request.path})
