"""Minimal Django settings for ferrocgi's end-to-end tests (``tests/e2e/test_apps.py``).

Everything that depends on the test run comes from the environment:

- ``DJANGO_TEST_DIR``: holds ``db.sqlite3`` and ``media/`` (uploads).
- ``DJANGO_STATIC_ROOT``: where ``collectstatic`` puts the files the web server serves.
- ``DJANGO_CSRF_TRUSTED_ORIGINS``: comma-separated. Debian's ``fastcgi_params`` replace the
  Host header by ``$host``, without the port, so on a test port the browser's Origin
  (``http://127.0.0.1:PORT``) only passes the CSRF check when it is listed here.
"""

import os
from pathlib import Path

TEST_DIR = Path(os.environ["DJANGO_TEST_DIR"])

SECRET_KEY = "ferrocgi-tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
CSRF_TRUSTED_ORIGINS = [
    o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "djangosite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
WSGI_APPLICATION = "djangosite.wsgi.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": TEST_DIR / "db.sqlite3"}}
USE_TZ = True
# Absolute: served by the web server, whatever SCRIPT_NAME the app is mounted at.
STATIC_URL = "/static/"
STATIC_ROOT = os.environ.get("DJANGO_STATIC_ROOT") or str(TEST_DIR / "static")
MEDIA_ROOT = TEST_DIR / "media"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["stderr"], "level": "WARNING"}},
}
