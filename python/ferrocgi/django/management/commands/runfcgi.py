"""``./manage.py runfcgi [key=value …]``: serve the project with ferrocgi (``runfcgi help``)."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ferrocgi.django import run

#: Options ``manage.py`` itself has already applied (``ManagementUtility`` pre-parses them).
DJANGO_OPTIONS = ("--settings", "--pythonpath")


def strip_django_options(words: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in DJANGO_OPTIONS:
            skip = True
        elif not word.startswith(tuple(f"{o}=" for o in DJANGO_OPTIONS)):
            out.append(word)
    return out


class Command(BaseCommand):
    help = (
        "Serve this project over FastCGI, SCGI or AJP13 with ferrocgi. Same words as Django's "
        "old runfcgi (method=threaded host=127.0.0.1 port=3033, socket=… pidfile=…); "
        "'runfcgi help' lists every option."
    )
    # Checks would import the URLconf; `help` must not load the project, and serving loads it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        # For call_command("runfcgi", "method=threaded", …); manage.py goes via run_from_argv.
        parser.add_argument("words", nargs="*", help="key=value options ('help' lists them)")

    def run_from_argv(self, argv: list[str]) -> None:
        # Every word after "runfcgi" goes to ferrocgi's parser unchanged: argparse must not
        # see them (it would take `-h` and reject `--max-body=1G`).
        sys.exit(run(strip_django_options(argv[2:])))

    def handle(self, *args: Any, **options: Any) -> None:
        status = run(options["words"])
        if status:
            sys.exit(status)
