"""WSGI entry point (``WSGI_APPLICATION``): what ``runfcgi`` and ``runfastcgi()`` serve."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = get_wsgi_application()
