"""Every supported front end in front of the echo backend, checked end to end over HTTP.

One *path* = one web-server module + protocol + transport (or ``cgi-fcgi`` for FastCGI without
a web server). Each path is started once per module (module-scoped, parametrized fixture) and
runs the same checks: the CGI params the app saw, bodies in and out byte-exact, a custom status,
and keep-alive (with backend connection reuse where the front end does it).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support import harness, wire
from support.harness import Backend, Frontend, Reply, send

MIB = 1024 * 1024
BODY_1MIB = random.Random(20261122).randbytes(MIB)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def pattern(n: int) -> bytes:
    """What ``?bytes=N`` returns: byte i is i % 251."""
    return (bytes(range(251)) * (n // 251 + 1))[:n]


@dataclass(frozen=True)
class FrontPath:
    id: str
    server: str  # nginx | apache | lighttpd | caddy | haproxy | h2o | cgi-fcgi
    protocol: str  # fcgi | scgi | ajp
    transport: str  # tcp | unix
    # ok: streamed or buffered byte-exact; a status: the front end refuses chunked bodies with
    # it (Apache mod_proxy_scgi 411); n/a: no HTTP client.
    chunked: str = "ok"
    # The largest chunked body the front end forwards (HAProxy 2.6's FastCGI: one buffer,
    # tune.bufsize; it answers 400 past that); None: any size.
    chunked_max: int | None = None
    reuses_backend_conns: bool = False
    reason_404: str = "Custom"  # what the client sees for "404 Custom"
    # The front end splits SCRIPT_NAME/PATH_INFO at its mount point; H2O 2.2 sends
    # SCRIPT_NAME="" and the whole path (the app is told its prefix with script_name=).
    splits_path: bool = True
    # CONTENT_LENGTH sent with a chunked body besides none, "" or the real length (Caddy: -1).
    chunked_length: str | None = None
    backend_flags: dict[str, Any] = field(default_factory=dict)

    @property
    def http(self) -> bool:
        return self.server != "cgi-fcgi"


PATHS = [
    # FastCGI
    FrontPath("nginx-fcgi-tcp", "nginx", "fcgi", "tcp", reuses_backend_conns=True),
    FrontPath("nginx-fcgi-unix", "nginx", "fcgi", "unix", reuses_backend_conns=True),
    FrontPath("apache-fcgi-tcp", "apache", "fcgi", "tcp", reuses_backend_conns=True),
    FrontPath("apache-fcgi-unix", "apache", "fcgi", "unix", reuses_backend_conns=True),
    FrontPath("lighttpd-fcgi-tcp", "lighttpd", "fcgi", "tcp", reason_404="Not Found"),
    FrontPath("lighttpd-fcgi-unix", "lighttpd", "fcgi", "unix", reason_404="Not Found"),
    FrontPath(
        "caddy-fcgi-tcp", "caddy", "fcgi", "tcp", reason_404="Not Found", chunked_length="-1"
    ),
    FrontPath(
        "caddy-fcgi-unix", "caddy", "fcgi", "unix", reason_404="Not Found", chunked_length="-1"
    ),
    FrontPath("haproxy-fcgi-tcp", "haproxy", "fcgi", "tcp", chunked_max=8192),
    FrontPath("haproxy-fcgi-unix", "haproxy", "fcgi", "unix", chunked_max=8192),
    FrontPath("h2o-fcgi-tcp", "h2o", "fcgi", "tcp", splits_path=False),
    FrontPath("h2o-fcgi-unix", "h2o", "fcgi", "unix", splits_path=False),
    FrontPath("cgi-fcgi-tcp", "cgi-fcgi", "fcgi", "tcp", chunked="n/a"),
    FrontPath("cgi-fcgi-unix", "cgi-fcgi", "fcgi", "unix", chunked="n/a"),
    # SCGI
    FrontPath("nginx-scgi-tcp", "nginx", "scgi", "tcp"),
    FrontPath("apache-scgi-tcp", "apache", "scgi", "tcp", chunked="411"),
    FrontPath("lighttpd-scgi-tcp", "lighttpd", "scgi", "tcp", reason_404="Not Found"),
    # AJP13
    FrontPath("apache-ajp-tcp", "apache", "ajp", "tcp", reuses_backend_conns=True),
    FrontPath(
        "lighttpd-ajp-tcp",
        "lighttpd",
        "ajp",
        "tcp",
        reason_404="Not Found",
        backend_flags={"ajp_lighttpd_compat": True},
    ),
]
HTTP_PATHS = [p for p in PATHS if p.http]


class Client:
    """Sends one request through a path; ``prefix`` is where the app is mounted."""

    path: FrontPath
    backend: Backend
    prefix: str

    def request(
        self,
        method: str,
        target: str,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        raise NotImplementedError


class HttpClient(Client):
    def __init__(self, path: FrontPath, frontend: Frontend) -> None:
        self.path, self.frontend = path, frontend
        self.backend, self.prefix = frontend.backend, frontend.prefix

    def request(
        self,
        method: str,
        target: str,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        return harness.request_once(self.frontend, method, target, body, headers)


class CgiFcgiClient(Client):
    """FastCGI without a web server: ``cgi-fcgi -bind -connect`` under ``env -i``."""

    def __init__(self, path: FrontPath, backend: Backend) -> None:
        self.path, self.backend, self.prefix = path, backend, "/app"

    def request(
        self,
        method: str,
        target: str,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        assert body is None or isinstance(body, bytes), "cgi-fcgi has no chunked bodies"
        path, _, query = target.partition("?")
        env = {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": "cgi-fcgi",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "REMOTE_ADDR": "127.0.0.1",
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": self.prefix,
            "PATH_INFO": path[len(self.prefix) :],
            "QUERY_STRING": query,
            "REQUEST_URI": target,
        }
        if body is not None:
            env["CONTENT_LENGTH"] = str(len(body))
            env["CONTENT_TYPE"] = "application/octet-stream"
        for name, value in (headers or {}).items():
            env["HTTP_" + name.upper().replace("-", "_")] = value
        # env -i: cgi-fcgi forwards its whole environment as params.
        argv = ["env", "-i", *(f"{k}={v}" for k, v in env.items())]
        argv += ["cgi-fcgi", "-bind", "-connect", self.backend.cgi_fcgi_connect]
        done = subprocess.run(argv, input=body or b"", capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, (done.returncode, done.stderr)
        return parse_cgi(done.stdout)


def parse_cgi(out: bytes) -> Reply:
    cgi = wire.parse_cgi(out)
    return Reply(cgi.status, cgi.reason, cgi.headers, cgi.body)


def start_path(stack: contextlib.ExitStack, rundir: Path, path: FrontPath) -> Client:
    backend = stack.enter_context(
        harness.start_backend(rundir, path.protocol, path.transport, **path.backend_flags)
    )
    if path.server == "cgi-fcgi":
        return CgiFcgiClient(path, backend)
    starter = {
        "nginx": harness.start_nginx,
        "apache": harness.start_apache,
        "lighttpd": harness.start_lighttpd,
        "caddy": harness.start_caddy,
        "haproxy": harness.start_haproxy,
        "h2o": harness.start_h2o,
    }[path.server]
    return HttpClient(path, stack.enter_context(starter(rundir, backend)))


@pytest.fixture(scope="module")
def client(request: pytest.FixtureRequest, rundir: Path) -> Iterator[Client]:
    """The path's backend and front end, started once per module and path."""
    with contextlib.ExitStack() as stack:
        try:
            started = start_path(stack, rundir, request.param)
        except RuntimeError as exc:
            problem = str(exc)  # fail outside the except block: no chained traceback
        else:
            yield started
            return
    pytest.fail(problem, pytrace=False)


@pytest.fixture(autouse=True)
def backend_log_stays_clean(client: Client) -> Iterator[None]:
    """Real front ends send well-formed traffic: the backend must log no protocol error for it."""
    since = len(client.backend.log_lines())
    yield
    errors = [line for line in client.backend.log_lines()[since:] if "protocol error" in line]
    assert not errors, "backend logged protocol errors:\n" + "\n".join(errors)


def over(paths: list[FrontPath]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize(
        "client", paths, ids=[p.id for p in paths], indirect=True, scope="module"
    )


def params_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in data["params"]]


def one(params: list[tuple[str, str]], name: str) -> str | None:
    """The value of param ``name`` (None if absent); it must not be sent twice."""
    values = [v for k, v in params if k == name]
    assert len(values) <= 1, f"{name} sent {len(values)} times: {values}"
    return values[0] if values else None


# ----------------------------------------------------------------------------- checks


@over(PATHS)
def test_params_seen_by_app(client: Client) -> None:
    target = f"{client.prefix}/some/path?x=1&y=two"
    data = client.request("GET", target, headers={"X-Test": "hello e2e"}).json()
    params = params_of(data)
    assert one(params, "REQUEST_METHOD") == "GET"
    assert one(params, "QUERY_STRING") == "x=1&y=two"
    uri = one(params, "REQUEST_URI")
    if client.path.protocol == "ajp":
        # AJP has no REQUEST_URI: it carries req_uri (path) and the query string separately;
        # the backend builds REQUEST_URI from them. Accept it with or without the query.
        assert uri in (target, target.partition("?")[0]), uri
    else:
        assert uri == target
    if client.path.protocol != "ajp" and client.path.splits_path:
        # The configs mount the app at the prefix and split the path there (AJP has neither).
        assert one(params, "SCRIPT_NAME") == client.prefix
        assert one(params, "PATH_INFO") == "/some/path"
    elif client.path.protocol != "ajp":
        assert (one(params, "SCRIPT_NAME"), one(params, "PATH_INFO")) == ("", target.split("?")[0])
    assert one(params, "HTTP_X_TEST") == "hello e2e"
    assert one(params, "SERVER_NAME"), "SERVER_NAME missing or empty"
    assert (one(params, "SERVER_PORT") or "").isdigit(), "SERVER_PORT missing or not a number"
    # GET: nginx FastCGI sends "", Apache mod_proxy_fcgi nothing, SCGI and lighttpd "0".
    assert one(params, "CONTENT_LENGTH") in (None, "", "0")


@over(PATHS)
def test_get_has_empty_body(client: Client) -> None:
    data = client.request("GET", f"{client.prefix}/empty").json()
    assert data["body_length"] == 0
    assert data["body_sha256"] == EMPTY_SHA256


@over(PATHS)
def test_post_1mib_byte_exact(client: Client) -> None:
    reply = client.request(
        "POST",
        f"{client.prefix}/upload",
        body=BODY_1MIB,
        headers={"Content-Type": "application/octet-stream"},
    )
    data = reply.json()
    assert one(params_of(data), "CONTENT_LENGTH") == str(MIB)
    assert data["body_length"] == MIB
    assert data["body_sha256"] == hashlib.sha256(BODY_1MIB).hexdigest()


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@over(HTTP_PATHS)
def test_post_1mib_chunked(client: Client) -> None:
    # A front end that refuses the body answers at once and closes: send it a small one, so
    # the client is done writing before that.
    size = MIB if client.path.chunked == "ok" else 1000
    body = BODY_1MIB[: min(size, client.path.chunked_max or size)]
    reply = client.request(
        "POST",
        f"{client.prefix}/upload-chunked",
        body=chunks(body),
        headers={"Content-Type": "application/octet-stream"},
    )
    if client.path.chunked != "ok":
        # Documented refusal (Apache mod_proxy_scgi): the backend never sees the request.
        assert reply.status == int(client.path.chunked), (reply.status, reply.body[:300])
        return
    data = reply.json()
    # CONTENT_LENGTH is the length where the front end buffers (nginx, lighttpd), absent where
    # it streams (Apache mod_proxy_fcgi), -1 from Caddy; the body must be whole either way.
    sent = (None, "", str(len(body)), client.path.chunked_length)
    assert one(params_of(data), "CONTENT_LENGTH") in sent
    assert data["body_length"] == len(body)
    assert data["body_sha256"] == hashlib.sha256(body).hexdigest()


@over(PATHS)
def test_response_4mib_byte_exact(client: Client) -> None:
    n = 4 * MIB
    if isinstance(client, CgiFcgiClient):
        # libfcgi 2.4.2's cgi-fcgi intermittently loses record sync on multi-megabyte responses
        # (measured: 6 in 150 runs against ferrocgi, 3 in 150 against flup; the same bytes
        # parse cleanly every time with wire.py). 1 MiB never failed in 300 runs.
        n = MIB
    reply = client.request("GET", f"{client.prefix}/big?bytes={n}")
    assert reply.status == 200, (reply.status, reply.body[:300])
    assert reply.header("Content-Type") == "application/octet-stream"
    assert len(reply.body) == n
    assert reply.body == pattern(n)


@over(PATHS)
def test_custom_status(client: Client) -> None:
    reply = client.request("GET", f"{client.prefix}/status?status=404%20Custom")
    assert reply.status == 404
    # nginx, Apache and cgi-fcgi keep the app's reason phrase; lighttpd writes its own.
    assert reply.reason == client.path.reason_404


@over(HTTP_PATHS)
def test_50_requests_on_one_keepalive_connection(client: Client) -> None:
    assert isinstance(client, HttpClient)
    n = 50
    before = client.backend.accepted()
    conn = client.frontend.connection()
    try:
        first_sock = None
        for i in range(n):
            reply = send(conn, "GET", f"{client.prefix}/ka?i={i}")
            assert reply.status == 200, (i, reply.status, reply.body[:300])
            assert ["QUERY_STRING", f"i={i}"] in reply.json()["params"]
            if first_sock is None:
                first_sock = conn.sock
            # http.client silently reconnects when the server closed the connection.
            assert conn.sock is first_sock, f"front end closed the client connection after {i}"
    finally:
        conn.close()
    seen = client.backend.accepted() - before
    # The readiness probe alone guarantees one line, if the backend logs its accepts at all.
    assert client.backend.accepted() >= 1, "no 'accepted connection' lines in the backend log"
    if client.path.reuses_backend_conns:
        assert seen < n, f"{seen} backend connections for {n} requests: no reuse"
