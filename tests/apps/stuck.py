"""Applications that take too long, for the request_timeout / slow_request tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]


def spin_in_python_marker() -> None:
    """Busy Python code: RequestTimeout interrupts it at its next bytecode."""
    while True:
        pass


def nap_marker(seconds: float) -> None:
    time.sleep(seconds)


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    what = environ.get("QUERY_STRING", "")
    if what == "spin":
        spin_in_python_marker()
    elif what.startswith("nap="):
        nap_marker(float(what[4:]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]
