"""WSGI (PEP 3333) end to end: ferrocgi hosting ``tests/apps/wsgi.py`` behind real web servers.

One *path* = one web server module + protocol + transport in front of ferrocgi. Each path is
started once per module (module-scoped, parametrized fixture) and every check runs through it
over HTTP; nothing is mocked. The apps are wrapped in ``wsgiref.validate.validator`` (with its
warnings turned into errors), so each normal response is also PEP 3333-valid, and the backend
log must stay free of validator complaints and protocol errors.

Mount points come from the existing configs: nginx ``/fcgi`` and ``/scgi``, Apache and
lighttpd ``/app``. AJP sends no SCRIPT_NAME, so that path runs with ``script_name=/app``
(rule 1 of ``crates/ferrocgi-py/src/paths.rs``).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support import harness
from support.harness import Backend, Frontend, Reply, send

MIB = 1024 * 1024
BODY_8MIB = random.Random(3333).randbytes(8 * MIB)
#: Text-like body for the line-reading modes: lines of 1..200 bytes, some without "\n" at the end.
LINES_BODY = (
    b"".join(
        bytes(random.Random(i).choices(b"abcdefghij \t\r", k=i % 200)) + b"\n" for i in range(12000)
    )
    + b"no newline at the end"
)
MAX_BODY = 16 * MIB


def pattern(n: int) -> bytes:
    """What ``big?bytes=N`` returns: byte i is i % 251."""
    return (bytes(range(251)) * (n // 251 + 1))[:n]


@dataclass(frozen=True)
class WsgiPath:
    id: str
    server: str  # nginx | apache | lighttpd
    protocol: str  # fcgi | scgi | ajp
    transport: str  # tcp | unix
    flags: dict[str, Any] = field(default_factory=dict)
    #: The reason phrase the client sees for "203 Changed Mind" (lighttpd writes its own).
    reason_203: str = "Changed Mind"
    #: The front end passes response chunks on as they come. The shared configs leave Apache
    #: at ``flushpackets=off`` and lighttpd at ``server.stream-response-body = 0``: both
    #: collect the response first. nginx streams (the app sends ``X-Accel-Buffering: no``).
    streams_response: bool = True
    #: A second request is served while a slow one runs. Not under prefork with one thread
    #: per worker when the front end keeps backend connections alive (nginx, Apache): a
    #: kept-alive connection belongs to the worker that accepted it, and a request sent on a
    #: busy worker's connection waits for it (as under flup and uWSGI).
    serves_meanwhile: bool = True
    #: The front end drops the backend connection when its client goes away mid-response.
    #: lighttpd, buffering the whole response, never writes to the client before the end and
    #: so does not notice: the app runs to completion (and close() is still called once).
    notices_client_abort: bool = True


#: Prefork workers serving one request at a time, which run the application on their I/O
#: thread (no hand-over to a Python thread): the same conformance on that code path.
PREFORK: dict[str, Any] = {
    "threads": 1,
    "extra": {"method": "prefork", "maxchildren": "2", "minspare": "2", "maxspare": "2"},
}

PATHS = [
    WsgiPath("nginx-fcgi-tcp", "nginx", "fcgi", "tcp"),
    WsgiPath(
        "nginx-fcgi-tcp-prefork", "nginx", "fcgi", "tcp", flags=PREFORK, serves_meanwhile=False
    ),
    WsgiPath("nginx-fcgi-unix", "nginx", "fcgi", "unix"),
    WsgiPath("nginx-scgi-tcp", "nginx", "scgi", "tcp"),
    WsgiPath("apache-fcgi-tcp", "apache", "fcgi", "tcp", streams_response=False),
    WsgiPath(
        "apache-ajp-tcp",
        "apache",
        "ajp",
        "tcp",
        flags={"script_name": "/app"},
        streams_response=False,
    ),
    WsgiPath(
        "apache-ajp-tcp-prefork",
        "apache",
        "ajp",
        "tcp",
        flags={"script_name": "/app", **PREFORK},
        streams_response=False,
        serves_meanwhile=False,
    ),
    WsgiPath(
        "lighttpd-fcgi-tcp",
        "lighttpd",
        "fcgi",
        "tcp",
        reason_203="Non-Authoritative Information",
        streams_response=False,
        notices_client_abort=False,
    ),
]


@dataclass
class Site(harness.ThroughFrontend):
    """One path: ferrocgi + its front end; ``prefix`` is where the app is mounted."""

    path: WsgiPath
    backend: Backend
    frontend: Frontend
    shared: Path  # $WSGI_TEST_DIR

    def url(self, route: str) -> str:
        return self.prefix + route


@pytest.fixture(scope="module")
def shared_dir(rundir: Path) -> Path:
    """``$WSGI_TEST_DIR``: ``big.bin`` (10 MiB, random) and ``records/`` for close() calls."""
    d = harness.make_dir(rundir / "shared")
    harness.make_dir(d / "records")
    (d / "big.bin").write_bytes(random.Random(10).randbytes(10 * MIB))
    return d


@pytest.fixture(scope="module")
def site(request: pytest.FixtureRequest, rundir: Path, shared_dir: Path) -> Iterator[Site]:
    """The path's ferrocgi and front end, started once per module and path."""
    path: WsgiPath = request.param
    starter = {
        "nginx": harness.start_nginx,
        "apache": harness.start_apache,
        "lighttpd": harness.start_lighttpd,
    }[path.server]
    with contextlib.ExitStack() as stack:
        try:
            backend = stack.enter_context(
                harness.start_wsgi(
                    rundir,
                    "wsgi:application",
                    path.protocol,
                    path.transport,
                    max_body=MAX_BODY,
                    env={"WSGI_TEST_DIR": str(shared_dir)},
                    **path.flags,
                )
            )
            frontend = stack.enter_context(starter(rundir, backend))
        except RuntimeError as exc:
            problem = str(exc)  # fail outside the except block: no chained traceback
        else:
            yield Site(path, backend, frontend, shared_dir)
            return
    pytest.fail(problem, pytrace=False)


#: Lines that must never appear in the backend log: validator complaints (raised in __del__,
#: so they do not fail the request) and protocol errors (real front ends send valid traffic).
UNEXPECTED_LOG = re.compile(
    r"protocol error|Exception ignored|WSGIWarning|garbage collected without being closed"
)


@pytest.fixture(autouse=True)
def backend_log_stays_clean(request: pytest.FixtureRequest) -> Iterator[None]:
    if "site" not in request.fixturenames:
        yield
        return
    site: Site = request.getfixturevalue("site")
    since = len(site.backend.log_lines())
    yield
    time.sleep(0.05)  # a __del__ complaint is written when the request's objects go away
    bad = [line for line in site.backend.log_lines()[since:] if UNEXPECTED_LOG.search(line)]
    assert not bad, "backend log:\n" + "\n".join(bad)


def over(paths: list[WsgiPath]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize(
        "site", paths, ids=[p.id for p in paths], indirect=True, scope="module"
    )


every_path = over(PATHS)


def expect_log(site: Site, pattern: str, since: int, timeout: float = 5.0) -> str:
    line = site.backend.wait_log(pattern, since, timeout)
    assert line is not None, f"no log line matching {pattern!r}:\n" + "\n".join(
        site.backend.log_lines()[since:][-60:]
    )
    return line


def log_text_since(site: Site, since: int) -> str:
    return "\n".join(site.backend.log_lines()[since:])


# ----------------------------------------------------------------------------- environ


@every_path
def test_environ(site: Site) -> None:
    conn = site.frontend.connection()
    try:
        conn.putrequest("GET", site.url("/env/some/path?x=1&y=two"))
        conn.putheader("X-Test", "hello wsgi")
        conn.putheader("X-Dup", "a")
        conn.putheader("X-Dup", "b")
        conn.endheaders()
        resp = conn.getresponse()
        reply = Reply(resp.status, resp.reason, resp.getheaders(), resp.read())
    finally:
        conn.close()
    env = reply.json()
    assert all(isinstance(k, str) for k in env)
    cgi = {k: v for k, v in env.items() if "." not in k}
    assert all(isinstance(v, str) for v in cgi.values()), cgi
    assert env["SCRIPT_NAME"] == site.prefix
    assert env["PATH_INFO"] == "/env/some/path"
    assert env["QUERY_STRING"] == "x=1&y=two"
    assert env["REQUEST_METHOD"] == "GET"
    # ferrocgi always states the real body length, "0" for a GET.
    assert env["CONTENT_LENGTH"] == "0"
    assert "HTTP_CONTENT_LENGTH" not in env and "HTTP_CONTENT_TYPE" not in env
    assert env["HTTP_X_TEST"] == "hello wsgi"
    # nginx sends a repeated header as two params; ferrocgi joins them as HTTP does.
    assert env["HTTP_X_DUP"] == "a, b"
    assert env["SERVER_NAME"]
    assert env["SERVER_PORT"].isdigit()
    assert env["SERVER_PROTOCOL"].startswith("HTTP/1.")
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == {"type": "tuple", "value": [1, 0]}
    prefork = site.path.flags.get("extra", {}).get("method") == "prefork"
    assert env["wsgi.multithread"] == {"type": "bool", "value": not prefork}
    assert env["wsgi.multiprocess"] == {"type": "bool", "value": prefork}
    assert env["wsgi.run_once"] == {"type": "bool", "value": False}
    assert env["wsgi.input_terminated"] == {"type": "bool", "value": True}
    assert "wsgi.file_wrapper" in env


@every_path
def test_environ_path_is_decoded_latin1(site: Site) -> None:
    """PATH_INFO is percent-decoded, its bytes as latin-1 code points (PEP 3333)."""
    env = site.get("/env/a%20b/%C3%A9").json()
    assert env["SCRIPT_NAME"] == site.prefix
    assert env["PATH_INFO"] == "/env/a b/" + "é".encode().decode("latin-1")
    if site.path.protocol != "ajp":  # AJP has no REQUEST_URI; ferrocgi rebuilds it
        assert env["REQUEST_URI"] == site.url("/env/a%20b/%C3%A9")


# ----------------------------------------------------------------------------- request bodies

READ_MODES = ["readn", "readn-small", "readline", "readline_n", "readlines", "iter", "read"]


@every_path
@pytest.mark.parametrize("mode", READ_MODES)
def test_wsgi_input_read_modes(site: Site, mode: str) -> None:
    route = {
        "readn": "/echo?mode=readn&n=65536",
        "readn-small": "/echo?mode=readn&n=1000",
        "readline": "/echo?mode=readline",
        "readline_n": "/echo?mode=readline_n&n=50",
        "readlines": "/echo?mode=readlines",
        "iter": "/echo?mode=iter",
        "read": "/raw-echo?mode=read",  # read() without a size: the validator forbids it
    }[mode]
    data = site.request("POST", route, LINES_BODY, {"Content-Type": "text/plain"}).json()
    assert data["content_length"] == str(len(LINES_BODY))
    assert data["length"] == len(LINES_BODY)
    assert data["sha256"] == hashlib.sha256(LINES_BODY).hexdigest()
    if mode in ("readline", "readlines", "iter"):
        assert data["pieces"] == LINES_BODY.count(b"\n") + 1


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@every_path
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_upload_8mib(site: Site, framing: str) -> None:
    """Byte-exact; CONTENT_LENGTH is right even when the front end streams a chunked body
    without one (Apache mod_proxy_fcgi, mod_proxy_ajp): Django-style apps rely on it."""
    body: bytes | Iterator[bytes] = BODY_8MIB if framing == "content-length" else chunks(BODY_8MIB)
    reply = site.request(
        "POST", "/echo?mode=readn", body, {"Content-Type": "application/octet-stream"}
    )
    data = reply.json()
    assert data["content_length"] == str(len(BODY_8MIB))
    assert data["length"] == len(BODY_8MIB)
    assert data["sha256"] == hashlib.sha256(BODY_8MIB).hexdigest()


@every_path
def test_max_body_answers_413(site: Site) -> None:
    since = len(site.backend.log_lines())
    body = b"z" * (MAX_BODY + 1)
    reply = site.request("POST", "/echo", body, {"Content-Type": "application/octet-stream"})
    assert reply.status == 413, (reply.status, reply.body[:300])
    expect_log(site, r"too large", since)
    # The server keeps serving.
    assert site.get("/env/after-413").json()["PATH_INFO"] == "/env/after-413"


# ----------------------------------------------------------------------------- responses


@every_path
def test_response_10mib(site: Site) -> None:
    n = 10 * MIB
    reply = site.get(f"/big?bytes={n}")
    assert reply.status == 200
    assert len(reply.body) == n
    assert reply.body == pattern(n)


@every_path
def test_list_response_10mib(site: Site) -> None:
    """A list of 160 chunks: far more than a connection's queue holds, so sending it waits
    for the connection loop (under prefork, on the worker's I/O thread itself)."""
    n = 10 * MIB
    reply = site.get(f"/big?bytes={n}&list=1")
    assert reply.status == 200
    assert reply.body == pattern(n)


@every_path
def test_file_wrapper_10mib(site: Site) -> None:
    reply = site.get("/raw-file")
    assert reply.status == 200, (reply.status, reply.body[:300])
    expected = (site.shared / "big.bin").read_bytes()
    assert len(reply.body) == len(expected)
    assert hashlib.sha256(reply.body).digest() == hashlib.sha256(expected).digest()


@every_path
def test_write_callable(site: Site) -> None:
    reply = site.get("/write")
    assert reply.status == 200
    assert reply.body == b"written-1;written-2;returned-3"


@every_path
def test_lazy_start_response_final_status_wins(site: Site) -> None:
    reply = site.get("/lazy")
    assert (reply.status, reply.reason) == (203, site.path.reason_203), reply.body[:300]
    assert reply.header("X-Lazy") == "final"
    assert reply.body == b"lazy body"


@every_path
def test_streaming_is_progressive(site: Site) -> None:
    """5 chunks 200 ms apart reach the client as they are produced (where the front end
    streams), and another request is served meanwhile (see ``serves_meanwhile``)."""
    arrivals: list[float] = []
    other_done: list[float] = []
    start = time.monotonic()

    def other_request() -> None:
        time.sleep(0.2)
        assert site.get("/env/meanwhile").status == 200
        other_done.append(time.monotonic() - start)

    helper = threading.Thread(target=other_request)
    conn = site.frontend.connection()
    try:
        conn.request("GET", site.url("/slow?chunks=5&delay=0.2"))
        helper.start()
        resp = conn.getresponse()
        assert resp.status == 200
        lines = []
        while line := resp.readline():
            arrivals.append(time.monotonic() - start)
            lines.append(line)
    finally:
        conn.close()
        helper.join(10)
    assert [line.split()[:2] for line in lines] == [[b"chunk", str(i).encode()] for i in range(5)]
    # The app spent >= 0.8 s producing the response; the other request was not queued behind.
    assert other_done, "the concurrent request failed"
    if site.path.serves_meanwhile:
        assert other_done[0] < 0.7, f"concurrent request done at {other_done}"
    if site.path.streams_response:
        assert arrivals[0] < 0.6, f"first chunk after {arrivals[0]:.2f}s: {arrivals}"
        assert arrivals[-1] - arrivals[0] > 0.6, f"chunks arrived together: {arrivals}"


# ----------------------------------------------------------------------------- failures


def fetch_broken(site: Site, route: str) -> tuple[int | None, bytes, BaseException | None]:
    """(status, body read, the error that cut the response short, if any)."""
    conn = site.frontend.connection(timeout=15)
    status, body = None, b""
    try:
        conn.request("GET", site.url(route))
        resp = conn.getresponse()
        status = resp.status
        try:
            body = resp.read()
        except http.client.IncompleteRead as exc:
            return status, exc.partial, exc
    except (http.client.HTTPException, ConnectionError) as exc:
        return status, body, exc
    finally:
        conn.close()
    return status, body, None


@every_path
def test_error_before_start_response_is_500_with_traceback_in_log(site: Site) -> None:
    since = len(site.backend.log_lines())
    reply = site.get("/fail-before-start")
    assert reply.status == 500
    assert b"Traceback" not in reply.body and b"boom" not in reply.body  # debug is off
    expect_log(site, r"application error", since)
    log = log_text_since(site, since)
    assert "fail_before_start_response" in log
    assert "RuntimeError: boom before start_response" in log


@every_path
@pytest.mark.parametrize(
    "route, marker",
    [
        ("/fail-after-headers", "boom_after_headers_marker"),
        ("/exc-after-headers", "exc_info_reraised_marker"),
    ],
    ids=["raise", "exc_info-reraised"],
)
def test_error_after_headers_cuts_the_response(site: Site, route: str, marker: str) -> None:
    since = len(site.backend.log_lines())
    status, body, error = fetch_broken(site, route)
    # The head is out (200), so the only honest signal left is an incomplete response.
    assert status in (None, 200), status
    assert b"never sent" not in body
    if site.frontend.kind == "lighttpd":
        # lighttpd 1.4 sends a response of unknown length delimited by the connection close,
        # so its client cannot see the cut; lighttpd itself must have seen the reset.
        errlog = next(p for p in site.frontend.proc.logs if p.name == "error.log")
        deadline = time.monotonic() + 5
        while "backend returned error" not in errlog.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "backend returned error" in errlog.read_text()
    else:
        assert error is not None, f"the response looked complete: {status} {body!r}"
    expect_log(site, marker, since)
    # Everyone else is still served, on this path too.
    assert site.get("/env/after-failure").json()["PATH_INFO"] == "/env/after-failure"


BAD_START_RESPONSE_LOG = {
    "non-str-header": r"must be str",
    "bytes-header-name": r"must be str",
    "newline-in-header": r"control",
    "hop-by-hop": r"hop-by-hop",
    "bad-status": r"invalid status",
    "status-not-str": r"status must be a str",
}


@every_path
@pytest.mark.parametrize("kind", list(BAD_START_RESPONSE_LOG))
def test_bad_start_response_arguments(site: Site, kind: str) -> None:
    since = len(site.backend.log_lines())
    reply = site.get(f"/raw-bad-start-response?kind={kind}")
    assert reply.status == 500, (reply.status, reply.headers, reply.body[:300])
    assert b"should never be sent" not in reply.body
    assert reply.header("Injected") is None
    expect_log(site, r"application error", since)
    expect_log(site, BAD_START_RESPONSE_LOG[kind], since)


# ----------------------------------------------------------------------------- close()


def wait_record(site: Site, token: str, timeout: float = 20.0) -> list[dict[str, Any]]:
    path = site.shared / "records" / token
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            time.sleep(0.1)  # a second (wrong) call would land here too
            return [json.loads(line) for line in path.read_text().splitlines()]
        time.sleep(0.05)
    raise AssertionError(f"close() was not called within {timeout}s (no {path})")


@every_path
def test_close_called_on_success(site: Site) -> None:
    token = uuid.uuid4().hex
    reply = site.get(f"/closing?token={token}&chunks=3&size=10")
    assert reply.status == 200 and reply.body == b"x" * 30
    assert wait_record(site, token) == [{"produced": 3, "outcome": "complete"}]


@every_path
def test_close_called_after_exception(site: Site) -> None:
    token = uuid.uuid4().hex
    # Whether the client learns of the failure is test_error_after_headers_cuts_the_response's
    # business; here only close() matters.
    fetch_broken(site, f"/closing?token={token}&chunks=5&size=10&fail=2")
    assert wait_record(site, token) == [{"produced": 2, "outcome": "raised RuntimeError"}]


@every_path
def test_close_called_on_client_disconnect(site: Site) -> None:
    """The client goes away in the middle of a large, slow response."""
    token = uuid.uuid4().hex
    total = 400
    conn = site.frontend.connection()
    try:
        conn.request(
            "GET", site.url(f"/closing?token={token}&chunks={total}&size=65536&delay=0.05")
        )
        resp = conn.getresponse()
        assert resp.status == 200
        assert len(resp.read(200_000)) == 200_000
    finally:
        conn.close()
    (record,) = wait_record(site, token, timeout=total * 0.05 + 5)
    if site.path.notices_client_abort:
        assert record["outcome"] != "complete" and record["produced"] < total, record
    else:
        assert record == {"produced": total, "outcome": "complete"}, record
    assert site.get("/env/after-disconnect").status == 200


# ----------------------------------------------------------------------------- wsgi.errors


@every_path
def test_wsgi_errors_go_to_the_log_tagged_with_the_request(site: Site) -> None:
    token = uuid.uuid4().hex
    since = len(site.backend.log_lines())
    reply = site.get(f"/errors?token={token}")
    assert reply.status == 200 and reply.body == b"logged"
    for how in ("write", "writelines"):
        line = expect_log(site, f"wsgi-errors-line {token} {how}", since)
        # Tagged with the request: its URI (as the front end sent it) is on the line.
        assert re.search(r"uri=\S*/errors", line), line


# ----------------------------------------------------------------------------- one-off stacks


def test_debug_shows_the_traceback_in_the_page(wsgi: Any, nginx: Any) -> None:
    front: Frontend = nginx(wsgi(debug=True))
    conn = front.connection()
    try:
        reply = send(conn, "GET", "/fcgi/fail-before-start")
    finally:
        conn.close()
    assert reply.status == 500
    assert b"Traceback" in reply.body
    assert b"fail_before_start_response" in reply.body
    assert b"RuntimeError: boom before start_response" in reply.body


def _env_through(front: Frontend, target: str) -> dict[str, Any]:
    conn = front.connection()
    try:
        return send(conn, "GET", target).json()
    finally:
        conn.close()


def test_ajp_without_script_name_mounts_at_root(wsgi: Any, apache: Any) -> None:
    """paths.rs rule 2: AJP carries no SCRIPT_NAME; PATH_INFO is the decoded req_uri."""
    front = apache(wsgi(protocol="ajp"))
    env = _env_through(front, "/app/env/a%20b?app=env")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/app/env/a b")
    assert env["QUERY_STRING"] == "app=env"


def test_lighttpd_ajp_with_script_name(wsgi: Any, lighttpd: Any) -> None:
    """lighttpd sends req_uri decoded already (ajp_lighttpd_compat): no double decoding."""
    front = lighttpd(wsgi(protocol="ajp", script_name="/app", ajp_lighttpd_compat=True))
    env = _env_through(front, "/app/env/a%2520b")  # the client means a literal "%20"
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/env/a%20b")


def test_script_name_option_overrides_what_nginx_sends(wsgi: Any, nginx: Any) -> None:
    """paths.rs rule 1: SCRIPT_NAME is the option; PATH_INFO is the decoded public path minus
    it, and a prefix that does not match cuts nothing."""
    front = nginx(wsgi(script_name="/fcgi/env"))
    env = _env_through(front, "/fcgi/env/x%20y?app=env")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/fcgi/env", "/x y")
    other = nginx(wsgi(script_name="/elsewhere"))
    env = _env_through(other, "/fcgi/env/x?app=env")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/elsewhere", "/fcgi/env/x")
