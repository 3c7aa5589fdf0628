"""Django integration: ``manage.py runfcgi`` and ``runfastcgi()``, as Django 1.x had them.

Add ``"ferrocgi.django"`` to ``INSTALLED_APPS`` for ``./manage.py runfcgi [key=value …]``;
a ``.fcgi`` script on a shared host calls ``runfastcgi(method="threaded", daemonize="false")``.
Both hand their words unchanged to ferrocgi's one option parser (Rust), with a loader for the
project's WSGI application (``settings.WSGI_APPLICATION``): ferrocgi calls it once the socket
is bound and privileges are dropped (``user=``), so the project's code never runs as root, and
before it serves or forks, so a broken project still fails at once. ``help`` prints every
option without loading the project.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ferrocgi import _ferrocgi, _words

__all__ = ["run", "runfastcgi"]

#: The flavor of the option parser: Django's words, no APP, daemonize by default when an
#: address is given.
FLAVOR = "django"


def load_application(interface: str = "wsgi") -> Callable[..., Any]:
    """The project's application for ``interface=``: WSGI as ``runserver`` finds it
    (``WSGI_APPLICATION``); for ``asgi``, ``ASGI_APPLICATION`` when the settings name one,
    else Django's own ASGI handler."""
    import django
    from django.db import connections

    django.setup(set_prefix=False)  # the handler sets the script prefix per request
    app = _asgi_application() if interface == "asgi" else _wsgi_application()
    # Nothing opened while loading may be shared with the processes ferrocgi forks.
    connections.close_all()
    return app


def _wsgi_application() -> Callable[..., Iterable[bytes]]:
    from django.core.servers.basehttp import get_internal_wsgi_application

    return get_internal_wsgi_application()


def _asgi_application() -> Callable[..., Any]:
    from django.conf import settings
    from django.core.asgi import get_asgi_application
    from django.utils.module_loading import import_string

    name = getattr(settings, "ASGI_APPLICATION", None)
    return import_string(name) if name else get_asgi_application()


def run(words: Sequence[str]) -> int:
    """Serve the project with these runfcgi words; returns the exit status. Help and bad
    words are answered before the project is loaded."""
    words = list(words)
    status = _ferrocgi.check(words, FLAVOR)
    if status is not None:
        return int(status)
    return int(_ferrocgi.main(words, FLAVOR, loader=load_application))


def runfastcgi(argset: Sequence[str] = (), **kwargs: Any) -> None:
    """Django's ``runfastcgi(argset=[], **kwargs)``: serve the project (settings from
    ``DJANGO_SETTINGS_MODULE``). Keywords become ``key=value`` words (``None`` is dropped,
    booleans are ``true``/``false``); ``argset`` words follow and win. A non-zero exit status
    raises ``SystemExit``."""
    status = run([*_words.words(kwargs), *argset])
    if status:
        raise SystemExit(status)
