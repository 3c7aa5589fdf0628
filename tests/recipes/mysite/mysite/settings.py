"""Settings of the recipes' example project, as a Django 5.2 project served by ferrocgi.

The recipes' tests vary a few things per deployment through the environment (a real site would
write them here): ``MYSITE_NAME`` (shown on the pages, tells installs apart),
``MYSITE_PUBLIC_PORT`` (comma-separated ports the browser uses: trusted CSRF origins, because
Debian's ``fastcgi_params`` send ``Host`` without the port), ``MYSITE_FORCE_SCRIPT_NAME``,
``MYSITE_STATIC_URL`` and ``MYSITE_STATIC_ROOT``.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "recipes-only-not-secret-0123456789abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["*"]

SITE_NAME = os.environ.get("MYSITE_NAME", "mysite")
CSRF_TRUSTED_ORIGINS = [
    f"http://{host}:{port.strip()}"
    for port in os.environ.get("MYSITE_PUBLIC_PORT", "").split(",")
    if port.strip()
    for host in ("127.0.0.1", "localhost", "www.example1.com", "www.example2.com")
]
if "MYSITE_FORCE_SCRIPT_NAME" in os.environ:
    # Django's FastCGI guide: "FORCE_SCRIPT_NAME = ''" when the web server's SCRIPT_NAME is
    # the rewrite target (lighttpd's /mysite.fcgi), or the public prefix of a second install.
    FORCE_SCRIPT_NAME = os.environ["MYSITE_FORCE_SCRIPT_NAME"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ferrocgi.django",
    "mysite",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mysite.urls"
# (MYSITE_WSGI_APPLICATION: the tests break it on purpose to see runfcgi fail fast.)
WSGI_APPLICATION = os.environ.get("MYSITE_WSGI_APPLICATION", "mysite.wsgi.application")

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "var" / "db.sqlite3",
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Django's FastCGI guide serves the admin's files under /media/ (its rewrite rules say so);
# the web server serves them from STATIC_ROOT, filled by `manage.py collectstatic`.
STATIC_URL = os.environ.get("MYSITE_STATIC_URL", "/media/")
STATIC_ROOT = Path(os.environ.get("MYSITE_STATIC_ROOT", BASE_DIR / "static"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Errors to stderr: ferrocgi's error log (or Apache's, under mod_fcgid).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["stderr"], "level": "WARNING"}},
}
