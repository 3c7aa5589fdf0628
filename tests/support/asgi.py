"""What the ASGI suites (tests/e2e/test_asgi.py, test_asgi_frameworks.py) share: a running
ASGI application behind a front end, the files its test apps write, and the front ends'
starters by name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from support import harness
from support.harness import Backend, Frontend, ThroughFrontend

STARTERS = {
    "nginx": harness.start_nginx,
    "apache": harness.start_apache,
    "lighttpd": harness.start_lighttpd,
}


@dataclass
class Site(ThroughFrontend):
    """ferrocgi serving an ASGI test app behind ``frontend``."""

    backend: Backend
    frontend: Frontend
    events: Path  # $ASGI_EVENTS
    violations: Path  # $ASGI_VALIDATOR_LOG

    def event_lines(self) -> list[str]:
        return self.events.read_text().splitlines() if self.events.exists() else []

    def violations_found(self) -> str:
        return self.violations.read_text() if self.violations.exists() else ""
