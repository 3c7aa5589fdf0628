"""Python keywords to the ``name=value`` words of ferrocgi's one option parser."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Options whose value is octal: an int given for them (``socket_mode=0o660``) is written in
#: octal, as the option expects.
OCTAL = {"socket_mode", "umask"}


def word(name: str, value: Any) -> str:
    """One ``name=value`` word: booleans are ``true``/``false``, ints of octal options octal."""
    if value is True:
        text = "true"
    elif value is False:
        text = "false"
    elif name in OCTAL and isinstance(value, int):
        text = format(value, "o")
    else:
        text = str(value)
    return f"{name}={text}"


def words(options: Mapping[str, Any]) -> list[str]:
    """The words for these keywords, in order; ``None`` means not given."""
    return [word(k, v) for k, v in options.items() if v is not None]


def bind_words(bind: str | None) -> list[str]:
    """``HOST:PORT``, ``[IPV6]:PORT``, ``unix:PATH`` or ``fd:N`` as host/port, socket or fd."""
    if bind is None:
        return []
    if bind.startswith("unix:"):
        return [f"socket={bind[5:]}"]
    if bind.startswith("fd:"):
        return [f"fd={bind[3:]}"]
    host, sep, port = bind.rpartition(":")
    if not sep or not host:
        raise ValueError(f"bind={bind!r}: give HOST:PORT, unix:PATH or fd:N (e.g. 127.0.0.1:9000)")
    return [f"host={host.strip('[]')}", f"port={port}"]
