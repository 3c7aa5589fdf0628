"""Process plumbing for the suites and scripts: the echo and WSGI backends, private web servers.

Theory of operation
-------------------
Every process is started in its own session (process group), registered in ``LIVE`` while it
runs, and stopped by pid (SIGTERM, then SIGKILL of the whole group) when its context manager
exits, so nothing outlives a test module even when a test fails half-way. Each instance gets
its own directory under the module's run dir; all directories are 0755 because nginx workers
run as ``nobody`` and Apache children as ``www-data`` and must reach the Unix sockets there.

The ``start_*`` functions are context managers; ``tests/e2e/conftest.py`` wraps them in
fixtures. ``run_webserver`` starts a web server on a config rendered elsewhere (the recipes').
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WEBSERVERS = ROOT / "tests" / "webservers"
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 15.0

#: Every process started here and not yet stopped; the failure hook dumps their logs.
LIVE: list[Proc] = []
_counter = itertools.count(1)


def echo_binary() -> Path:
    """The backend under test: ``$FERROCGI_ECHO_BIN`` or ``target/debug/examples/echo``."""
    env = os.environ.get("FERROCGI_ECHO_BIN")
    return Path(env) if env else ROOT / "target" / "debug" / "examples" / "echo"


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def make_dir(path: Path) -> Path:
    """Create ``path`` world-searchable (0755), whatever the umask."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


def instance_dir(rundir: Path, name: str) -> Path:
    return make_dir(rundir / f"{name}-{next(_counter)}")


def tail(path: Path, lines: int = 80) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(missing)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


@dataclass
class Proc:
    """A started process and the log files worth showing when a test fails."""

    name: str
    popen: subprocess.Popen[bytes]
    logs: list[Path] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def dump(self) -> str:
        return "\n".join(f"--- {p} ---\n{tail(p)}" for p in self.logs)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the main pid, wait, then SIGKILL whatever is left of its process group."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait(5)
        # Children (nginx workers, Apache children) share the group; none may outlive the test.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if self in LIVE:
            LIVE.remove(self)


@contextlib.contextmanager
def spawn(
    name: str,
    argv: Sequence[str],
    workdir: Path,
    logs: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
) -> Iterator[Proc]:
    """``argv`` in ``workdir``, in a new session, output to NAME.stdout / NAME.stderr there,
    inheriting ``pass_fds``; stopped (the whole group killed) when the block exits."""
    out = open(workdir / f"{name}.stdout", "wb")
    err_path = workdir / f"{name}.stderr"
    err = open(err_path, "wb")
    try:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=workdir,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    finally:
        out.close()
        err.close()
    proc = Proc(name, popen, [err_path, workdir / f"{name}.stdout", *logs])
    LIVE.append(proc)
    try:
        yield proc
    finally:
        proc.stop()


def wait_until(
    what: str, proc: Proc, check: Callable[[], bool], timeout: float = START_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(
                f"{proc.name} exited ({proc.popen.returncode}) before {what}\n{proc.dump()}"
            )
        if check():
            return
        time.sleep(0.02)
    raise RuntimeError(f"{proc.name}: timed out after {timeout}s waiting for {what}\n{proc.dump()}")


def can_connect(address: tuple[str, int] | str) -> bool:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(address)
        except OSError:
            return False
        return True


# --------------------------------------------------------------------------- backend


@dataclass
class Backend:
    """A running echo backend. ``address`` is ``(host, port)`` for TCP or a path for Unix."""

    proc: Proc
    protocol: str
    transport: str
    address: tuple[str, int] | str
    stderr_path: Path

    @property
    def port(self) -> int:
        assert isinstance(self.address, tuple), "Unix-socket backend has no port"
        return self.address[1]

    @property
    def path(self) -> str:
        assert isinstance(self.address, str), "TCP backend has no socket path"
        return self.address

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def log_lines(self) -> list[str]:
        return self.log().splitlines()

    def accepted(self) -> int:
        """Connections accepted so far (debug log line ``accepted connection from PEER``)."""
        return sum("accepted connection" in line for line in self.log_lines())

    def wait_log(self, pattern: str, since: int = 0, timeout: float = 1.0) -> str | None:
        """First log line after line number ``since`` matching ``pattern`` (case-insensitive)."""
        rx = re.compile(pattern, re.IGNORECASE)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_lines()[since:]:
                if rx.search(line):
                    return line
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def connect(self, timeout: float = 5.0) -> socket.socket:
        family = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.address)
        return s

    # Spellings of the address for each front end's config.
    @property
    def nginx_upstream(self) -> str:
        return (
            f"unix:{self.address}" if isinstance(self.address, str) else f"{LOOPBACK}:{self.port}"
        )

    @property
    def lighttpd_spec(self) -> str:
        if isinstance(self.address, str):
            return f'"socket" => "{self.address}"'
        return f'"host" => "{LOOPBACK}", "port" => {self.port}'

    @property
    def apache_fcgi_url(self) -> str:
        if isinstance(self.address, str):
            return f"unix:{self.address}|fcgi://localhost/"
        return f"fcgi://{LOOPBACK}:{self.port}/"

    @property
    def cgi_fcgi_connect(self) -> str:
        return self.address if isinstance(self.address, str) else f"{LOOPBACK}:{self.port}"


@contextlib.contextmanager
def start_backend(
    rundir: Path,
    protocol: str = "fcgi",
    transport: str = "tcp",
    *,
    app: str = "echo",
    ajp_lighttpd_compat: bool = False,
    ajp_max_packet: int | None = None,
    multiplex: bool = False,
    log_level: str = "debug",
    extra_args: Sequence[str] = (),
) -> Iterator[Backend]:
    """Start the echo backend on 127.0.0.1 (``tcp``) or on a mode-666 Unix socket (``unix``)."""
    binary = echo_binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise RuntimeError(
            f"backend binary {binary} is missing: build it with `cargo build --examples` "
            "(or point FERROCGI_ECHO_BIN at it)"
        )
    d = instance_dir(rundir, f"backend-{protocol}")
    argv = [str(binary), "--protocol", protocol, "--app", app, "--log-level", log_level]
    address: tuple[str, int] | str
    if transport == "tcp":
        address = (LOOPBACK, free_port())
        argv += ["--bind", f"{LOOPBACK}:{address[1]}"]
    elif transport == "unix":
        address = str(d / "backend.sock")
        argv += ["--socket", address, "--socket-mode", "666"]
    else:
        raise ValueError(f"unknown transport {transport!r}")
    if ajp_lighttpd_compat:
        argv.append("--ajp-lighttpd-compat")
    if ajp_max_packet is not None:
        argv += ["--ajp-max-packet", str(ajp_max_packet)]
    if multiplex:
        argv.append("--multiplex")
    argv += list(extra_args)
    with spawn("backend", argv, d) as proc:
        backend = Backend(proc, protocol, transport, address, d / "backend.stderr")
        wait_until("'listening on'", proc, lambda: "listening on" in backend.log())
        wait_until("the socket to accept", proc, lambda: can_connect(address))
        yield backend


# --------------------------------------------------------------------------- web servers


def fill(text: str, dest: Path, values: Mapping[str, str], what: str = "") -> Path:
    """``text`` with its ``@KEY@`` placeholders filled, written to ``dest``; every one must be
    filled."""
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
    if left:
        raise ValueError(f"{what or dest.name}: unfilled placeholders {left}")
    dest.write_text(text)
    return dest


def render(template: str, dest: Path, values: Mapping[str, str]) -> Path:
    """``tests/webservers/TEMPLATE`` filled into ``dest`` (see :func:`fill`)."""
    return fill((WEBSERVERS / template).read_text(), dest, values, template)


@dataclass
class Frontend:
    """A running web server in front of a backend; ``prefix`` is where the app is mounted."""

    kind: str
    proc: Proc
    port: int
    prefix: str
    backend: Backend

    def connection(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(LOOPBACK, self.port, timeout=timeout)


def _wait_http(proc: Proc, port: int) -> None:
    wait_until(f"port {port} to accept", proc, lambda: can_connect((LOOPBACK, port)))


def webserver_argv(kind: str, d: Path, conf: Path) -> list[str]:
    """How ``kind`` (nginx, apache, lighttpd, caddy, haproxy, h2o) runs ``conf`` in the foreground,
    logging to ``d/error.log`` (or its stderr)."""
    if kind == "nginx":
        return [_sbin("nginx"), "-p", str(d), "-c", str(conf), "-e", str(d / "error.log")]
    if kind == "apache":
        return [_sbin("apache2"), "-d", str(d), "-f", str(conf), "-DFOREGROUND"]
    if kind == "lighttpd":
        return [_sbin("lighttpd"), "-D", "-f", str(conf)]
    if kind == "caddy":
        return [_sbin("caddy"), "run", "--adapter", "caddyfile", "--config", str(conf)]
    if kind == "haproxy":
        return [_sbin("haproxy"), "-db", "-f", str(conf)]
    if kind == "h2o":
        return [_sbin("h2o"), "-c", str(conf)]
    raise ValueError(f"unknown web server {kind!r}")


@contextlib.contextmanager
def run_webserver(
    kind: str, d: Path, conf: Path, ports: Iterable[int], name: str | None = None
) -> Iterator[Proc]:
    """The web server ``kind`` on the rendered ``conf`` (its files in ``d``), until every one
    of ``ports`` accepts; stopped when the block exits."""
    # apache2 reads no /etc/apache2/envvars here; give it a sane, minimal environment.
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"} if kind == "apache" else None
    if kind == "caddy":
        # Caddy keeps state under $HOME and $XDG_*: the run dir, not the test runner's home.
        env = {"PATH": "/usr/bin:/bin", "HOME": str(d), "XDG_DATA_HOME": str(d / "data")}
        env["XDG_CONFIG_HOME"] = str(d / "config")
    argv = webserver_argv(kind, d, conf)
    with spawn(name or kind, argv, d, logs=[d / "error.log"], env=env) as proc:
        for port in ports:
            _wait_http(proc, port)
        yield proc


def impatient_get(port: int, path: str) -> bytes:
    """GET ``path`` and close the connection as soon as Content-Length body bytes are in."""
    with socket.create_connection((LOOPBACK, port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, body = data.split(b"\r\n\r\n", 1)
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += s.recv(65536)
        assert head.startswith(b"HTTP/1.1 200"), head
        return body


@contextlib.contextmanager
def start_nginx(rundir: Path, backend: Backend, port: int | None = None) -> Iterator[Frontend]:
    """nginx with /fcgi/ (FastCGI, keep_conn) and /scgi/ (SCGI) locations, both to ``backend``."""
    d = instance_dir(rundir, "nginx")
    for sub in ("tmp", "logs", "html"):
        make_dir(d / sub)
    port = port or free_port()
    conf = render(
        "nginx.conf",
        d / "nginx.conf",
        {
            "RUN": str(d),
            "PORT": str(port),
            "FCGI_UPSTREAM": backend.nginx_upstream,
            "SCGI_UPSTREAM": backend.nginx_upstream,
        },
    )
    with run_webserver("nginx", d, conf, [port]) as proc:
        prefix = {"fcgi": "/fcgi", "scgi": "/scgi"}[backend.protocol]
        yield Frontend("nginx", proc, port, prefix, backend)


@contextlib.contextmanager
def start_caddy(rundir: Path, backend: Backend, port: int | None = None) -> Iterator[Frontend]:
    """Caddy 2 with ``reverse_proxy`` + ``transport fastcgi`` at /fcgi/ (FastCGI only)."""
    assert backend.protocol == "fcgi", "Caddy speaks FastCGI only"
    d = instance_dir(rundir, "caddy")
    for sub in ("html", "storage", "data", "config"):
        make_dir(d / sub)
    port = port or free_port()
    upstream = (
        f"unix/{backend.address}" if isinstance(backend.address, str) else backend.nginx_upstream
    )
    conf = render(
        "Caddyfile", d / "Caddyfile", {"RUN": str(d), "PORT": str(port), "UPSTREAM": upstream}
    )
    with run_webserver("caddy", d, conf, [port]) as proc:
        yield Frontend("caddy", proc, port, "/fcgi", backend)


@contextlib.contextmanager
def start_haproxy(rundir: Path, backend: Backend, port: int | None = None) -> Iterator[Frontend]:
    """HAProxy 2.6 with an ``fcgi-app`` backend (keep-conn) at /fcgi/ (FastCGI only)."""
    assert backend.protocol == "fcgi", "HAProxy's application protocol here is FastCGI"
    d = instance_dir(rundir, "haproxy")
    make_dir(d / "html")
    port = port or free_port()
    server = backend.address if isinstance(backend.address, str) else backend.nginx_upstream
    values = {"RUN": str(d), "PORT": str(port), "SERVER": server}
    conf = render("haproxy.cfg", d / "haproxy.cfg", values)
    with run_webserver("haproxy", d, conf, [port]) as proc:
        yield Frontend("haproxy", proc, port, "/fcgi", backend)


@contextlib.contextmanager
def start_h2o(rundir: Path, backend: Backend, port: int | None = None) -> Iterator[Frontend]:
    """H2O 2.2 with ``fastcgi.connect`` at /fcgi (FastCGI only)."""
    assert backend.protocol == "fcgi", "H2O speaks FastCGI only"
    d = instance_dir(rundir, "h2o")
    port = port or free_port()
    if isinstance(backend.address, str):
        connect = f"{{port: {backend.address}, type: unix}}"
    else:
        connect = f"{{host: {LOOPBACK}, port: {backend.port}, type: tcp}}"
    values = {"RUN": str(d), "PORT": str(port), "CONNECT": connect}
    conf = render("h2o.conf", d / "h2o.conf", values)
    with run_webserver("h2o", d, conf, [port]) as proc:
        yield Frontend("h2o", proc, port, "/fcgi", backend)


APACHE_TEMPLATES = {
    "fcgi": "apache-proxy-fcgi.conf",
    "scgi": "apache-proxy-scgi.conf",
    "ajp": "apache-proxy-ajp.conf",
}


@contextlib.contextmanager
def start_apache(rundir: Path, backend: Backend, port: int | None = None) -> Iterator[Frontend]:
    """Apache 2.4 with mod_proxy_{fcgi,scgi,ajp} (chosen by the backend's protocol) at /app/."""
    d = instance_dir(rundir, "apache")
    port = port or free_port()
    values = {"RUN": str(d), "PORT": str(port)}
    if backend.protocol == "fcgi":
        values["FCGI_URL"] = backend.apache_fcgi_url
    else:
        values["BACKEND_PORT"] = str(backend.port)
    render("apache-common.conf", d / "apache-common.conf", values)
    conf = render(APACHE_TEMPLATES[backend.protocol], d / "httpd.conf", values)
    with run_webserver("apache", d, conf, [port]) as proc:
        yield Frontend("apache", proc, port, "/app", backend)


LIGHTTPD_TEMPLATES = {
    "fcgi": "lighttpd-fastcgi.conf",
    "scgi": "lighttpd-scgi.conf",
    "ajp": "lighttpd-ajp13.conf",
}


@contextlib.contextmanager
def start_lighttpd(rundir: Path, backend: Backend, port: int | None = None) -> Iterator[Frontend]:
    """lighttpd with mod_fastcgi / mod_scgi / mod_ajp13 (by the backend's protocol) at /app."""
    d = instance_dir(rundir, "lighttpd")
    for sub in ("tmp", "htdocs"):
        make_dir(d / sub)
    port = port or free_port()
    conf = render(
        LIGHTTPD_TEMPLATES[backend.protocol],
        d / "lighttpd.conf",
        {"RUN": str(d), "PORT": str(port), "BACKEND": backend.lighttpd_spec},
    )
    with run_webserver("lighttpd", d, conf, [port]) as proc:
        yield Frontend("lighttpd", proc, port, "/app", backend)


def _sbin(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        raise RuntimeError(f"{name} is not installed (scripts/test.sh installs it)")
    return found


# --------------------------------------------------------------------------- WSGI backend

APPS = ROOT / "tests" / "apps"


def ferrocgi_command() -> Path:
    """The ``ferrocgi`` console script installed next to the running interpreter."""
    return Path(sys.executable).parent / "ferrocgi"


def _cli_argv(app: str, bind: str, options: Mapping[str, str]) -> list[str]:
    """The console script, ``ferrocgi APP key=value ...`` (the Django-style spelling)."""
    words = [str(ferrocgi_command()), app]
    if bind.startswith("unix:"):
        words.append(f"socket={bind[5:]}")
    else:
        host, _, port = bind.rpartition(":")
        words += [f"host={host}", f"port={port}"]
    # The WSGI tests exercise the host in one process unless a test asks for prefork.
    options = {"method": "threaded", **options}
    words += [f"{name}={value}" for name, value in options.items()]
    return words


#: How ``start_wsgi`` starts ferrocgi.
wsgi_argv = _cli_argv


@contextlib.contextmanager
def start_wsgi(
    rundir: Path,
    app: str = "wsgi:application",
    protocol: str = "fcgi",
    transport: str = "tcp",
    *,
    threads: int = 4,
    script_name: str | None = None,
    debug: bool = False,
    max_body: int | None = None,
    spool_threshold: int | None = None,
    ajp_lighttpd_compat: bool = False,
    log_level: str = "debug",
    pythonpath: Path = APPS,
    env: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> Iterator[Backend]:
    """ferrocgi serving the WSGI ``app`` (``module:callable``, imported from ``pythonpath``).
    ``extra`` adds option words (``{"request_timeout": "1s"}``).

    Like :func:`start_backend`: 127.0.0.1 (``tcp``) or a mode-666 Unix socket (``unix``);
    ``env`` is added to this process's environment. Yields a :class:`Backend`.
    """
    d = instance_dir(rundir, f"wsgi-{protocol}")
    if transport == "tcp":
        address: tuple[str, int] | str = (LOOPBACK, free_port())
        bind = f"{LOOPBACK}:{address[1]}"
    elif transport == "unix":
        address = str(d / "wsgi.sock")
        bind = f"unix:{address}"
    else:
        raise ValueError(f"unknown transport {transport!r}")
    options = {
        "protocol": protocol,
        "method": "threaded",
        "threads": str(threads),
        "log_level": log_level,
        "pythonpath": str(pythonpath),
        "debug": "true" if debug else "false",
    }
    if transport == "unix":
        options["socket_mode"] = "666"
    if script_name is not None:
        options["script_name"] = script_name
    if max_body is not None:
        options["max_body"] = str(max_body)
    if spool_threshold is not None:
        options["spool_threshold"] = str(spool_threshold)
    if ajp_lighttpd_compat:
        options["ajp_lighttpd_compat"] = "true"
    options.update(extra or {})
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FERROCGI_")}
    full_env.update(env or {})
    with spawn("wsgi", wsgi_argv(app, bind, options), d, env=full_env) as proc:
        backend = Backend(proc, protocol, transport, address, d / "wsgi.stderr")
        wait_until("'listening on'", proc, lambda: "listening on" in backend.log())
        wait_until("the socket to accept", proc, lambda: can_connect(address))
        yield backend


@contextlib.contextmanager
def session_tmpdir(prefix: str) -> Iterator[Path]:
    """A run directory for a test session, traversable by nginx (nobody) and Apache
    (www-data); removed at the end unless FERROCGI_E2E_KEEP=1."""
    base = Path(os.environ.get("FERROCGI_E2E_TMP", "/tmp"))
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o755)
    yield path
    if os.environ.get("FERROCGI_E2E_KEEP") != "1":
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- HTTP replies


@dataclass
class Reply:
    """An HTTP (or CGI) response as the tests see it."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> dict[str, Any]:
        assert self.status == 200, (self.status, self.reason, self.body[:2000])
        ctype = self.header("Content-Type") or ""
        assert ctype.startswith("application/json"), (ctype, self.body[:500])
        data: dict[str, Any] = json.loads(self.body)
        return data


def send(
    conn: http.client.HTTPConnection,
    method: str,
    target: str,
    body: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One HTTP request on ``conn``; an iterable body goes out chunked (no Content-Length)."""
    chunked = body is not None and not isinstance(body, bytes)
    conn.request(method, target, body=body, headers=headers or {}, encode_chunked=chunked)
    resp = conn.getresponse()
    data = resp.read()
    return Reply(resp.status, resp.reason, resp.getheaders(), data)


def request_once(
    frontend: Frontend,
    method: str,
    target: str,
    body: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request (see :func:`send`) on a connection of its own to ``frontend``."""
    conn = frontend.connection()
    try:
        return send(conn, method, target, body, headers)
    finally:
        conn.close()


class ThroughFrontend:
    """A suite's site reached through ``frontend`` under its prefix (a base for the suites'
    ``Site`` dataclasses, which declare the ``frontend`` field)."""

    frontend: Frontend

    @property
    def prefix(self) -> str:
        return self.frontend.prefix

    def request(
        self,
        method: str,
        route: str,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        return request_once(self.frontend, method, self.prefix + route, body, headers)

    def get(self, route: str) -> Reply:
        return self.request("GET", route)
