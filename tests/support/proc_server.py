"""ferrocgi serving ``tests/apps/proc_app.py``, for the process-model tests
(``tests/e2e/test_prefork.py``, ``test_signals.py``, ``test_daemon.py``, ``test_sockets.py``).

``ferrocgi(rundir, WORDS)`` starts ``ferrocgi proc_app:application pythonpath=… WORDS`` (the
console script) with the app copied into its own directory next to the ``version.txt`` it
reads at import time, so "is the new code served?" is a question about that file; the app
answers its pid, its parent's pid and that version, after an optional sleep. Every process
carries ``PROCTEST_TAG=<uuid>`` in its environment: at teardown the foreground process is
stopped (SIGTERM, then SIGKILL of its process group) and everything still carrying the tag
(daemons, which left the group) is killed. ``Load`` keeps GET requests going through a front
end; ``fcgi_exchange`` / ``fcgi_json`` speak raw FastCGI.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import harness, procfs, wire
from support.harness import LOOPBACK, Backend, Proc
from support.procfs import children, eventually

APP = "proc_app:application"
#: The app word for each interface (``proc_app`` has an ASGI twin of ``/info`` and ``/exit``).
APPS = {"wsgi": APP, "asgi": "proc_app:asgi_application"}
APP_SOURCE = harness.APPS / "proc_app.py"
FERROCGI = str(harness.ferrocgi_command())
PYTHON = sys.executable

# --------------------------------------------------------------------------- clients


def http_get(
    port: int, path: str, timeout: float = 30.0, source: str | None = None
) -> tuple[int, bytes]:
    """GET through a front end on 127.0.0.1; ``source``: the client's own loopback address."""
    bind = (source, 0) if source else None
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout, source_address=bind)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def get_json(port: int, path: str, timeout: float = 30.0) -> dict[str, Any]:
    status, body = http_get(port, path, timeout)
    assert status == 200, (status, body[:300])
    data: dict[str, Any] = json.loads(body)
    return data


def fcgi_exchange(
    address: tuple[str, int] | str,
    path: str = "/app/info",
    query: str = "",
    source: str | None = None,
    timeout: float = 15.0,
) -> bytes:
    """One FastCGI request on a new connection; everything the server sent until it closed."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        if source is not None:
            s.bind((source, 0))
        s.connect(address)
        s.sendall(wire.fcgi_request(wire.cgi_params(path=path, query=query)))
        out = b""
        with contextlib.suppress(ConnectionResetError):
            out = wire.recv_all(s)
        return out


def fcgi_json(address: tuple[str, int] | str, path: str = "/app/info", query: str = "") -> Any:
    records = wire.parse_fcgi_records(fcgi_exchange(address, path, query))
    assert records and records[-1].type == wire.FCGI_END_REQUEST, records
    stdout = b"".join(r.content for r in records if r.type == wire.FCGI_STDOUT)
    cgi = wire.parse_cgi(stdout)
    assert cgi.status == 200, (cgi.status, cgi.body[:300])
    return json.loads(cgi.body)


@dataclass
class Result:
    started: float
    status: int  # 0: no HTTP answer
    data: dict[str, Any] | None
    error: str


class Load:
    """``concurrency`` threads GETting ``path`` through a front end until stopped."""

    def __init__(self, port: int, path: str, concurrency: int = 2) -> None:
        self.port, self.path = port, path
        self.results: list[Result] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(concurrency)]
        self.lock = threading.Lock()

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def _run(self) -> None:
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                status, body = http_get(self.port, self.path)
                if status == 200:
                    r = Result(t0, status, json.loads(body), "")
                else:
                    r = Result(t0, status, None, body[:200].decode(errors="replace"))
            except Exception as exc:  # noqa: BLE001 - every failure is a counted result
                r = Result(t0, 0, None, repr(exc))
            with self.lock:
                self.results.append(r)

    def snapshot(self) -> list[Result]:
        with self.lock:
            return list(self.results)

    def failures(self) -> list[Result]:
        return [r for r in self.snapshot() if r.status != 200]

    def served(self) -> list[dict[str, Any]]:
        return [r.data for r in self.snapshot() if r.data is not None]

    def wait_requests(self, n: int, timeout: float = 15.0) -> None:
        have = len(self.snapshot())
        eventually(f"{n} more requests", lambda: len(self.snapshot()) >= have + n, timeout)


# --------------------------------------------------------------------------- servers


def tagged(tag: str) -> list[int]:
    """The processes a test started with ``PROCTEST_TAG=tag`` (daemons and workers included)."""
    return procfs.tagged(f"PROCTEST_TAG={tag}")


def kill_tagged(tag: str) -> None:
    """SIGKILL everything carrying the tag; wait (bounded) until it is gone."""
    pids = tagged(tag)
    procfs.signal_all(pids, signal.SIGKILL)
    procfs.wait_gone(pids, 10)


def clean_env(tag: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FERROCGI_", "LISTEN_"))}
    env.pop("FCGI_WEB_SERVER_ADDRS", None)
    env["PROCTEST_TAG"] = tag
    env.update(extra or {})
    return env


def make_app(d: Path, version: str = "1") -> Path:
    app = harness.make_dir(d / "app")
    shutil.copy(APP_SOURCE, app / "proc_app.py")
    (app / "version.txt").write_text(version + "\n")
    for f in app.iterdir():
        f.chmod(0o644)
    return app


@dataclass
class Server:
    """A ferrocgi started by a test (``proc`` is the process the test started)."""

    backend: Backend
    dir: Path
    app: Path
    tag: str
    argv: list[str] = field(default_factory=list)

    @property
    def proc(self) -> Proc:
        return self.backend.proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def address(self) -> tuple[str, int] | str:
        return self.backend.address

    def set_version(self, version: str) -> None:
        (self.app / "version.txt").write_text(version + "\n")

    def workers(self) -> list[int]:
        return children(self.pid)

    def log(self) -> str:
        return self.backend.log()

    def mark(self) -> int:
        return len(self.backend.log_lines())

    def wait_log(self, pattern: str, since: int = 0, timeout: float = 10.0) -> str:
        line = self.backend.wait_log(pattern, since, timeout)
        assert line, f"no log line matching {pattern!r} within {timeout}s:\n{self.tail()}"
        return line

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.backend.log_lines()[-n:])

    def wait_workers(self, check: Callable[[int], bool], what: str, timeout: float = 15) -> None:
        eventually(
            f"{what} (workers now: {self.workers()})", lambda: check(len(self.workers())), timeout
        )


@contextlib.contextmanager
def ferrocgi(
    rundir: Path,
    words: Sequence[str],
    *,
    transport: str = "tcp",
    version: str = "1",
    env: dict[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    address: tuple[str, int] | str | None = None,
    wrapper: Sequence[str] = (),
    name: str = "ferrocgi",
    world_socket: bool = True,
    app: str = APP,
) -> Iterator[Server]:
    """``ferrocgi proc_app:application pythonpath=… log_level=debug ADDRESS WORDS``
    (``app``: ``proc_app:asgi_application`` for its ASGI twin).

    ``transport`` ``tcp`` (a free 127.0.0.1 port) or ``unix`` (``socket=DIR/app.sock``, mode
    666 for nginx's ``nobody`` unless ``world_socket=False``), or ``none`` with ``address``
    (where the caller's inherited socket listens). Waits until it serves; stops it (and all
    it left) after.
    """
    d = harness.instance_dir(rundir, name)
    app_dir = make_app(d, version)
    tag = uuid.uuid4().hex
    addr_words: list[str] = []
    if transport == "tcp":
        address = (LOOPBACK, harness.free_port())
        addr_words = [f"host={LOOPBACK}", f"port={address[1]}"]
    elif transport == "unix":
        address = str(d / "app.sock")
        addr_words = [f"socket={address}"]
        if world_socket:
            addr_words.append("socket_mode=666")
    assert address is not None
    argv = [
        *wrapper,
        FERROCGI,
        app,
        f"pythonpath={app_dir}",
        "log_level=debug",
        *addr_words,
        *words,
    ]
    try:
        with harness.spawn(name, argv, d, env=clean_env(tag, env), pass_fds=pass_fds) as proc:
            backend = Backend(proc, "fcgi", transport, address, d / f"{name}.stderr")
            server = Server(backend, d, app_dir, tag, argv)
            harness.wait_until("'listening on'", proc, lambda: "listening on" in backend.log())
            harness.wait_until("the socket to accept", proc, lambda: harness.can_connect(address))
            yield server
    finally:
        kill_tagged(tag)


def prefork(*words: str) -> list[str]:
    return ["method=prefork", "threads=1", *words]


def start_daemon(
    d: Path, words: Sequence[str], tag: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``ferrocgi APP daemonize=true WORDS``; returns when the command returns."""
    return subprocess.run(
        [FERROCGI, APP, f"pythonpath={d / 'app'}", "daemonize=true", *words],
        cwd=d,
        env=clean_env(tag, env),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def listening_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((LOOPBACK, 0))
    s.listen(16)
    return s
