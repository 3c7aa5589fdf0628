"""ferrocgi: a FastCGI, SCGI and AJP13 server for WSGI applications, written in Rust.

Run an application with the ``ferrocgi`` command (``ferrocgi mysite.wsgi:application
socket=/run/mysite.sock``), with Django's ``manage.py runfcgi`` (add ``"ferrocgi.django"`` to
INSTALLED_APPS), or from Python with :func:`serve`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ferrocgi import _ferrocgi, _words
from ferrocgi._ferrocgi import ClientDisconnected, FileWrapper, RequestTimeout, __version__

__all__ = ["ClientDisconnected", "FileWrapper", "RequestTimeout", "__version__", "serve"]


def serve(app: Callable[..., Iterable[bytes]], bind: str | None = None, **options: Any) -> None:
    """Serve the WSGI callable ``app`` until SIGTERM (graceful stop) or SIGINT (quick stop).

    ``bind`` is ``HOST:PORT``, ``unix:PATH`` or ``fd:N``; every other keyword is an option of
    ``ferrocgi help``, with the same meaning and default (``method="threaded"``,
    ``socket_mode=0o660``, ``max_body="100M"``, ``debug=True``). The keywords become the same
    ``name=value`` words the command and ``runfastcgi()`` pass to the one option parser. A bad
    option or a failed start prints the reason and raises ``SystemExit`` with ferrocgi's exit
    status (2: bad option, 1: failed).
    """
    words = [*_words.bind_words(bind), *_words.words(options)]
    status = _ferrocgi.main(words, "embedded", app=app)
    if status:
        raise SystemExit(status)
