"""ferrocgi: a FastCGI, SCGI and AJP13 server for WSGI applications, written in Rust.

Run an application with the ``ferrocgi`` command (``ferrocgi mysite.wsgi:application
socket=/run/mysite.sock``), with Django's ``manage.py runfcgi`` (add ``"ferrocgi.django"`` to
INSTALLED_APPS), or from Python with :func:`serve`.
"""

from ferrocgi._ferrocgi import ClientDisconnected, FileWrapper, RequestTimeout, __version__, serve

__all__ = ["ClientDisconnected", "FileWrapper", "RequestTimeout", "__version__", "serve"]
