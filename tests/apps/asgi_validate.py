"""An ASGI 3 validator, written from asgiref's specification (the HTTP and lifespan scopes):
the role ``wsgiref.validate`` plays for WSGI.

``validate(app)`` wraps an application. It checks what the *server* gives it (the scope's keys
and their types, every message ``receive()`` returns, the order of those messages) and what the
application sends (message types, required keys, types, ordering: no body before the start,
nothing after the final body). A violation raises ``AssertionError`` with ``ASGI validator:``
in its text and is also written to the file named by ``$ASGI_VALIDATOR_LOG`` (when set), so a
test can assert that a whole run had none.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

HTTP_VERSIONS = {"1.0", "1.1", "2", "3"}


def _fail(what: str) -> None:
    text = f"ASGI validator: {what}"
    path = os.environ.get("ASGI_VALIDATOR_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    raise AssertionError(text)


def _check(cond: bool, what: str) -> None:
    if not cond:
        _fail(what)


def _is_pair(item: Any, kind: type) -> bool:
    try:
        a, b = item
    except (TypeError, ValueError):
        return False
    return isinstance(a, kind) and isinstance(b, kind)


def _check_address(scope: Scope, key: str, port_optional: bool) -> None:
    value = scope.get(key)
    if value is None:
        return
    _check(len(value) == 2, f"scope[{key!r}] must be [host, port], not {value!r}")
    host, port = value
    _check(isinstance(host, str), f"scope[{key!r}] host must be str, not {host!r}")
    ok = isinstance(port, int) or (port_optional and port is None)
    _check(ok, f"scope[{key!r}] port must be int, not {port!r}")


def check_asgi_key(scope: Scope) -> None:
    asgi = scope.get("asgi")
    _check(isinstance(asgi, Mapping), f"scope['asgi'] must be a dict, not {asgi!r}")
    _check(asgi.get("version", "2.0") == "3.0", f"scope['asgi']['version'] must be '3.0': {asgi!r}")
    spec = asgi.get("spec_version", "2.0")
    _check(isinstance(spec, str), f"scope['asgi']['spec_version'] must be str: {spec!r}")


def check_http_scope(scope: Scope) -> None:
    _check(scope.get("type") == "http", f"scope type must be 'http', not {scope.get('type')!r}")
    check_asgi_key(scope)
    _check(
        scope.get("http_version") in HTTP_VERSIONS, f"http_version {scope.get('http_version')!r}"
    )
    method = scope.get("method")
    _check(isinstance(method, str) and method == method.upper(), f"method {method!r}")
    _check(isinstance(scope.get("scheme", "http"), str), "scheme must be str")
    path = scope.get("path")
    _check(isinstance(path, str), f"path must be str, not {path!r}")
    raw = scope.get("raw_path")
    _check(raw is None or isinstance(raw, bytes), f"raw_path must be bytes or None: {raw!r}")
    _check(isinstance(scope.get("query_string", b""), bytes), "query_string must be bytes")
    root = scope.get("root_path", "")
    _check(isinstance(root, str), f"root_path must be str: {root!r}")
    # Since spec 2.x the path includes the root path (what Django and Starlette rely on).
    _check(path.startswith(root), f"path {path!r} does not start with root_path {root!r}")
    headers = scope.get("headers")
    _check(isinstance(headers, Iterable), "headers must be an iterable")
    for h in headers:
        _check(_is_pair(h, bytes), f"header {h!r} must be a pair of bytes")
        _check(h[0] == h[0].lower(), f"header name {h[0]!r} must be lower-case")
    _check_address(scope, "client", port_optional=False)
    _check_address(scope, "server", port_optional=True)
    state = scope.get("state")
    _check(state is None or isinstance(state, dict), f"state must be a dict: {state!r}")


class HttpCycle:
    """One request's messages, checked as they pass."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive, self._send = receive, send
        self.body_done = False  # the server sent http.request with more_body False
        self.disconnected = False
        self.started = False
        self.ended = False

    async def receive(self) -> Message:
        msg = await self._receive()
        _check(isinstance(msg, dict), f"receive() returned {msg!r}, not a dict")
        kind = msg.get("type")
        if kind == "http.request":
            _check(not self.body_done, "http.request after the body's last chunk")
            _check(not self.disconnected, "http.request after http.disconnect")
            _check(isinstance(msg.get("body", b""), bytes), f"body must be bytes: {msg!r}")
            more = msg.get("more_body", False)
            _check(isinstance(more, bool), f"more_body must be bool: {msg!r}")
            self.body_done = not more
        elif kind == "http.disconnect":
            self.disconnected = True
        else:
            _fail(f"receive() returned an unknown message type {kind!r}")
        return msg

    async def send(self, msg: Message) -> None:
        _check(isinstance(msg, dict), f"send() given {msg!r}, not a dict")
        kind = msg.get("type")
        _check(not self.ended, f"{kind} sent after the response ended")
        if kind == "http.response.start":
            _check(not self.started, "http.response.start sent twice")
            _check(isinstance(msg.get("status"), int), f"status must be int: {msg!r}")
            for h in msg.get("headers", []):
                _check(_is_pair(h, bytes), f"response header {h!r} must be a pair of bytes")
            _check(isinstance(msg.get("trailers", False), bool), "trailers must be bool")
            self.started = True
        elif kind == "http.response.body":
            _check(self.started, "http.response.body before http.response.start")
            _check(isinstance(msg.get("body", b""), bytes), "response body must be bytes")
            more = msg.get("more_body", False)
            _check(isinstance(more, bool), f"more_body must be bool: {msg!r}")
            self.ended = not more
        elif kind == "http.response.pathsend":
            _check(self.started, "http.response.pathsend before http.response.start")
            _check(isinstance(msg.get("path"), str), "pathsend path must be str")
            self.ended = True
        else:
            _fail(f"send() given an unknown message type {kind!r}")
        await self._send(msg)


class LifespanCycle:
    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive, self._send = receive, send
        self.seen: list[str] = []

    async def receive(self) -> Message:
        msg = await self._receive()
        kind = msg.get("type")
        expected = ["lifespan.startup", "lifespan.shutdown"][len(self.seen) : len(self.seen) + 1]
        _check([kind] == expected, f"lifespan receive() gave {kind!r}, expected {expected}")
        self.seen.append(kind)
        return msg

    async def send(self, msg: Message) -> None:
        kind = msg.get("type", "")
        phase = kind.split(".")[1] if kind.count(".") == 2 else ""
        _check(phase in ("startup", "shutdown"), f"unknown lifespan message {kind!r}")
        _check(f"lifespan.{phase}" in self.seen, f"{kind} before lifespan.{phase} was received")
        if kind.endswith(".failed"):
            _check(isinstance(msg.get("message", ""), str), "failed message must be str")
        await self._send(msg)


def validate(app: App) -> App:
    async def validated(scope: Scope, receive: Receive, send: Send) -> None:
        _check(isinstance(scope, dict), f"scope must be a dict, not {type(scope)}")
        if scope.get("type") == "lifespan":
            check_asgi_key(scope)
            lc = LifespanCycle(receive, send)
            await app(scope, lc.receive, lc.send)
            return
        check_http_scope(scope)
        cycle = HttpCycle(receive, send)
        await app(scope, cycle.receive, cycle.send)

    return validated
