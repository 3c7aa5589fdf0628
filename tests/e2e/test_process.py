"""ferrocgi's process models with real processes, real signals and real web servers.

Theory of operation
-------------------
Every test starts ``ferrocgi proc_app:application WORDS`` (the console script) serving
``tests/apps/proc_app.py``, copied into the test's own directory next to the ``version.txt``
it reads at import time, so "is the new code served?" is a question about that file. The app
answers its pid, its parent's pid and that version, after an optional sleep.

Processes are found through ``/proc``: a prefork supervisor's workers are its live (not
zombie) children. Every process a test starts carries ``PROCTEST_TAG=<uuid>`` in its
environment; at teardown the foreground process is stopped (SIGTERM, then SIGKILL of its
process group) and then everything still carrying the tag (daemons, which left the group) is
killed, whatever the outcome. All traffic is on 127.0.0.x; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import harness
import wire
from harness import LOOPBACK, Backend, Frontend, Proc

APP = "proc_app:application"
APP_SOURCE = harness.APPS / "proc_app.py"
FERROCGI = str(harness.ferrocgi_command())
PYTHON = sys.executable

# --------------------------------------------------------------------------- /proc


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of ``pid``, or None if it is gone."""
    text = _read(f"/proc/{pid}/stat").decode(errors="replace")
    if not text:
        return None
    fields = text.rpartition(")")[2].split()
    return fields[0], int(fields[1])


def children(pid: int) -> list[int]:
    """Live (not zombie) children of ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st and st[1] == pid and st[0] != "Z":
                out.append(int(entry))
    return sorted(out)


def zombie_status(pid: int) -> str:
    """How a zombie ``pid`` ended ("exit 0", "signal 6"), if it is one (else "")."""
    text = _read(f"/proc/{pid}/stat").decode(errors="replace")
    fields = text.rpartition(")")[2].split()
    if len(fields) < 50 or fields[0] != "Z":
        return ""
    code = int(fields[-1])  # exit_code, as waitpid() would report it
    return f"signal {code & 0x7F}" if code & 0x7F else f"exit {code >> 8}"


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] != "Z"


def tagged(tag: str) -> list[int]:
    mark = f"PROCTEST_TAG={tag}".encode()
    me = os.getpid()
    return [
        int(e)
        for e in os.listdir("/proc")
        if e.isdigit() and int(e) != me and mark in _read(f"/proc/{e}/environ").split(b"\0")
    ]


def kill_tagged(tag: str) -> None:
    pids = tagged(tag)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    eventually("tagged processes to die", lambda: not any(alive(p) for p in pids), 10, fail=False)


def eventually(what: str, check: Callable[[], bool], timeout: float, fail: bool = True) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            if fail:
                pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)
            return False
        time.sleep(0.05)


# --------------------------------------------------------------------------- clients


def http_get(port: int, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
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
def spawn(
    name: str,
    argv: Sequence[str],
    d: Path,
    env: dict[str, str],
    pass_fds: Sequence[int] = (),
    logs: Sequence[Path] = (),
) -> Iterator[Proc]:
    """Like ``harness.spawn``, with inherited descriptors; stopped (group-killed) at exit."""
    err_path = d / f"{name}.stderr"
    with open(d / f"{name}.stdout", "wb") as out, open(err_path, "wb") as err:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=d,
            env=env,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    proc = Proc(name, popen, [err_path, d / f"{name}.stdout", *logs])
    harness.LIVE.append(proc)
    try:
        yield proc
    finally:
        proc.stop()


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
) -> Iterator[Server]:
    """``ferrocgi proc_app:application pythonpath=… log_level=debug ADDRESS WORDS``.

    ``transport`` ``tcp`` (a free 127.0.0.1 port) or ``unix`` (``socket=DIR/app.sock``, mode
    666 for nginx's ``nobody`` unless ``world_socket=False``), or ``none`` with ``address``
    (where the caller's inherited socket listens). Waits until it serves; stops it (and all
    it left) after.
    """
    d = harness.instance_dir(rundir, name)
    app = make_app(d, version)
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
        APP,
        f"pythonpath={app}",
        "log_level=debug",
        *addr_words,
        *words,
    ]
    try:
        with spawn(name, argv, d, clean_env(tag, env), pass_fds) as proc:
            backend = Backend(proc, "fcgi", transport, address, d / f"{name}.stderr")
            server = Server(backend, d, app, tag, argv)
            harness.wait_until("'listening on'", proc, lambda: "listening on" in backend.log())
            harness.wait_until("the socket to accept", proc, lambda: harness.can_connect(address))
            yield server
    finally:
        kill_tagged(tag)


def prefork(*words: str) -> list[str]:
    return ["method=prefork", "threads=1", *words]


# --------------------------------------------------------------------------- prefork under load


def test_prefork_worker_killed_is_replaced_under_load(
    rundir: Path, nginx: Callable[..., Frontend]
) -> None:
    """kill -9 of a worker under steady load through nginx: it is replaced (new pid, logged),
    and at most the killed worker's in-flight request fails."""
    with ferrocgi(rundir, prefork("minspare=3", "maxspare=4", "maxchildren=6")) as srv:
        front = nginx(srv.backend)
        srv.wait_workers(lambda n: n >= 3, "3 workers")
        with Load(front.port, "/fcgi/info?sleep=0.02", concurrency=3) as load:
            load.wait_requests(30)
            before = srv.workers()
            victim = before[0]
            since = srv.mark()
            os.kill(victim, signal.SIGKILL)
            line = srv.wait_log(rf"(?=.*killed by SIGKILL)(?=.*pid={victim}\b)", since, 5)
            eventually(
                "a replacement worker",
                lambda: bool(set(srv.workers()) - set(before)),
                10,
            )
            load.wait_requests(60)
        assert "replacing" in line, line
        served = load.served()
        # (nginx keeps its connections to the old workers: the new one may well serve none.)
        assert all(d["ppid"] == srv.pid for d in served)
        failures = load.failures()
        assert len(failures) <= 1, (
            f"{len(failures)} of {len(load.snapshot())} requests failed: {failures[:5]}"
        )
        assert srv.proc.alive()


def test_prefork_sighup_reload_under_load(rundir: Path, nginx: Callable[..., Frontend]) -> None:
    """SIGHUP under load: no request fails, the new code is served afterwards, the supervisor
    keeps its pid and the old workers exit."""
    with ferrocgi(rundir, prefork("minspare=2", "maxspare=4", "maxchildren=6")) as srv:
        front = nginx(srv.backend)
        srv.wait_workers(lambda n: n >= 2, "2 workers")
        old = srv.workers()
        with Load(front.port, "/fcgi/info?sleep=0.05", concurrency=3) as load:
            load.wait_requests(20)
            srv.set_version("2")
            since = srv.mark()
            os.kill(srv.pid, signal.SIGHUP)
            eventually(
                "version 2 to be served",
                lambda: any(d["version"] == "2" for d in load.served()),
                20,
            )
            load.wait_requests(30)
        srv.wait_log("SIGHUP", since)
        served = load.served()
        assert served[-1]["version"] == "2"
        # The last requests all come from the new generation.
        assert {d["version"] for d in served[-10:]} == {"2"}, served[-10:]
        assert all(d["ppid"] == srv.pid for d in served), "a worker of another supervisor"
        assert srv.proc.alive()
        assert not set(old) & {d["pid"] for d in served if d["version"] == "2"}
        eventually(f"old workers {old} to exit", lambda: not any(alive(p) for p in old), 15)
        failures = load.failures()
        assert not failures, f"{len(failures)} of {len(load.snapshot())} failed: {failures[:5]}"


@pytest.mark.parametrize("method", ["prefork", "threaded"])
def test_sighup_reload_under_load(
    rundir: Path, nginx: Callable[..., Frontend], method: str
) -> None:
    """The same reload for both models, on a Unix socket; threaded: the one process drains,
    re-executes itself (same pid) and serves the new code."""
    words = prefork("minspare=2", "maxspare=4") if method == "prefork" else ["method=threaded"]
    with ferrocgi(
        rundir, [*words, "threads=4"] if method == "threaded" else words, transport="unix"
    ) as srv:
        front = nginx(srv.backend)
        with Load(front.port, "/fcgi/info?sleep=0.05", concurrency=3) as load:
            load.wait_requests(20)
            srv.set_version("2")
            os.kill(srv.pid, signal.SIGHUP)
            eventually(
                "version 2 to be served",
                lambda: any(d["version"] == "2" for d in load.served()),
                20,
            )
            load.wait_requests(30)
        served = load.served()
        assert {d["version"] for d in served[-10:]} == {"2"}, served[-10:]
        if method == "threaded":
            assert {d["pid"] for d in served} == {srv.pid}, "served by another process"
        assert srv.proc.alive()
        assert Path(srv.backend.path).exists()
        failures = load.failures()
        assert not failures, f"{len(failures)} of {len(load.snapshot())} failed: {failures[:5]}"


@pytest.mark.parametrize("method", ["prefork", "threaded"])
def test_sigterm_finishes_slow_requests(
    rundir: Path, nginx: Callable[..., Frontend], method: str
) -> None:
    """SIGTERM with three 2-second requests in flight: all three complete with 200, then the
    process exits 0 and removes its socket file."""
    words = prefork("minspare=3", "maxspare=4") if method == "prefork" else ["threads=4"]
    if method == "threaded":
        words = ["method=threaded", *words]
    with ferrocgi(rundir, words, transport="unix") as srv:
        front = nginx(srv.backend)
        if method == "prefork":
            srv.wait_workers(lambda n: n >= 3, "3 workers")
        results: list[tuple[int, bytes] | str] = []

        def one() -> None:
            try:
                results.append(http_get(front.port, "/fcgi/info?sleep=2"))
            except Exception as exc:  # noqa: BLE001
                results.append(repr(exc))

        since = srv.mark()
        threads = [threading.Thread(target=one) for _ in range(3)]
        for t in threads:
            t.start()
        eventually(
            "3 connections accepted",
            lambda: sum("accepted connection" in x for x in srv.backend.log_lines()[since:]) >= 3,
            5,
        )
        time.sleep(0.3)
        t0 = time.monotonic()
        os.kill(srv.pid, signal.SIGTERM)
        try:
            code = srv.proc.popen.wait(20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 20 s after SIGTERM:\n{srv.tail()}")
        took = time.monotonic() - t0
        for t in threads:
            t.join(20)
        assert len(results) == 3
        for r in results:
            assert not isinstance(r, str), f"a request failed: {r}\n{srv.tail()}"
            assert r[0] == 200, r
            assert json.loads(r[1])["slept"] == 2.0
        assert code == 0, f"exit status {code}\n{srv.tail()}"
        assert took < 10, f"exit took {took:.1f}s"
        assert not Path(srv.backend.path).exists(), "the socket file was left behind"
        if method == "prefork":
            assert not children(srv.pid)


def test_prefork_sigterm_right_after_start_stops_promptly(rundir: Path) -> None:
    """SIGTERM as soon as the supervisor has forked its workers: every worker must stop
    (a worker not yet listening for SIGTERM must not miss it), so the process exits at once,
    not after graceful_timeout. Six tries, each bounded."""
    for attempt in range(6):
        d = harness.instance_dir(rundir, "early-term")
        app = make_app(d)
        tag = uuid.uuid4().hex
        sock = d / "app.sock"
        argv = [
            FERROCGI,
            APP,
            f"pythonpath={app}",
            f"socket={sock}",
            *prefork("minspare=6", "maxspare=6"),
        ]
        try:
            with spawn("ferrocgi", argv, d, clean_env(tag)) as proc:
                err = d / "ferrocgi.stderr"
                harness.wait_until(
                    "a worker", proc, lambda e=err: "started worker" in e.read_text(), 15
                )
                t0 = time.monotonic()
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    code = proc.popen.wait(10)
                except subprocess.TimeoutExpired:
                    pytest.fail(
                        f"attempt {attempt}: still running 10 s after SIGTERM (workers "
                        f"{children(proc.pid)} ignored it?)\n{harness.tail(err)}",
                        pytrace=False,
                    )
                assert code == 0, harness.tail(err)
                assert time.monotonic() - t0 < 5
                assert not sock.exists()
        finally:
            kill_tagged(tag)


# --------------------------------------------------------------------------- the pool


def test_prefork_pool_grows_for_parallel_requests_and_shrinks(
    rundir: Path, nginx: Callable[..., Frontend]
) -> None:
    """8 concurrent 1-second requests with minspare=1 maxspare=2 maxchildren=8 run in
    parallel (well under 8 s); afterwards the idle pool shrinks back to maxspare."""
    with ferrocgi(rundir, prefork("minspare=1", "maxspare=2", "maxchildren=8")) as srv:
        front = nginx(srv.backend)
        # 1 worker, or 2: the harness's connect probe made the first one busy for a moment.
        srv.wait_workers(lambda n: 1 <= n <= 2, "1 or 2 workers")
        time.sleep(0.5)
        results: list[dict[str, Any] | str] = []

        def one() -> None:
            try:
                results.append(get_json(front.port, "/fcgi/info?sleep=1"))
            except Exception as exc:  # noqa: BLE001
                results.append(repr(exc))

        t0 = time.monotonic()
        threads = [threading.Thread(target=one) for _ in range(8)]
        for t in threads:
            t.start()
        peak = 0
        while any(t.is_alive() for t in threads) and time.monotonic() - t0 < 30:
            peak = max(peak, len(srv.workers()))
            time.sleep(0.05)
        took = time.monotonic() - t0
        assert all(isinstance(r, dict) for r in results), results
        pids = Counter(r["pid"] for r in results if isinstance(r, dict))
        assert took < 3, f"8 x 1 s took {took:.1f}s; served by {dict(pids)}, peak {peak} workers"
        assert peak <= 8
        srv.wait_workers(lambda n: n <= 2, "the idle pool to shrink to maxspare=2", 10)
        srv.wait_log("more than maxspare=2 idle workers; retiring one")


def test_prefork_maxrequests_recycles_workers(rundir: Path) -> None:
    """maxrequests=3: no worker serves more than 3 requests; replacements take over."""
    with ferrocgi(
        rundir, prefork("minspare=1", "maxspare=2", "maxchildren=2", "maxrequests=3")
    ) as srv:
        pids = [fcgi_json(srv.address)["pid"] for _ in range(12)]
        counts = Counter(pids)
        assert max(counts.values()) <= 3, counts
        assert len(counts) >= 4, counts
        srv.wait_log("served maxrequests; retiring")
        assert srv.backend.wait_log(r"worker exited normally", 0, 5)


def test_prefork_maxchildren_is_respected(rundir: Path, nginx: Callable[..., Frontend]) -> None:
    """12 concurrent slow requests with maxchildren=4: never more than 4 workers, all 12
    succeed."""
    with ferrocgi(rundir, prefork("minspare=2", "maxspare=4", "maxchildren=4")) as srv:
        front = nginx(srv.backend)
        results: list[dict[str, Any] | str] = []

        def one() -> None:
            try:
                results.append(get_json(front.port, "/fcgi/info?sleep=1", timeout=60))
            except Exception as exc:  # noqa: BLE001
                results.append(repr(exc))

        threads = [threading.Thread(target=one) for _ in range(12)]
        for t in threads:
            t.start()
        samples = []
        t0 = time.monotonic()
        while any(t.is_alive() for t in threads) and time.monotonic() - t0 < 60:
            samples.append(len(srv.workers()))
            time.sleep(0.02)
        assert len(results) == 12
        bad = [r for r in results if not isinstance(r, dict)]
        assert not bad, bad
        assert max(samples) <= 4, f"up to {max(samples)} workers (samples {Counter(samples)})"
        assert max(samples) == 4
        assert len({r["pid"] for r in results if isinstance(r, dict)}) <= 4 + 0


# --------------------------------------------------------------------------- crashes


def test_prefork_worker_killed_by_sigsegv_is_replaced(rundir: Path) -> None:
    with ferrocgi(rundir, prefork("minspare=2", "maxspare=2", "maxchildren=4")) as srv:
        srv.wait_workers(lambda n: n == 2, "2 workers")
        before = srv.workers()
        since = srv.mark()
        os.kill(before[0], signal.SIGSEGV)
        line = srv.wait_log(rf"(?=.*pid={before[0]}\b)(?=.*killed by SIGSEGV)", since)
        assert "replacing" in line, line
        eventually("a replacement", lambda: len(set(srv.workers()) - set(before)) == 1, 10)
        assert fcgi_json(srv.address)["ppid"] == srv.pid


def test_prefork_crashing_workers_back_off(rundir: Path) -> None:
    """Workers that die young (os._exit in a request) are replaced, with a growing back-off
    that is logged; the pool keeps serving."""
    with ferrocgi(rundir, prefork("minspare=1", "maxspare=1", "maxchildren=2")) as srv:
        srv.wait_workers(lambda n: n == 1, "1 worker")
        since = srv.mark()
        for _ in range(3):
            out = fcgi_exchange(srv.address, "/app/exit", "code=3")
            assert not wire.parse_fcgi_records(out) or all(
                r.type != wire.FCGI_END_REQUEST for r in wire.parse_fcgi_records(out)
            ), out
        srv.wait_log(r"worker exited with status 3; replacing it", since)
        # The supervisor reaps each worker some time after its connection closed, so wait for
        # every crash's line rather than reading the log once; the delay doubles each time.
        srv.wait_log(r"dying young; backing off.*crashes=1 delay=200ms", since)
        srv.wait_log(r"dying young; backing off.*crashes=2 delay=400ms", since)
        srv.wait_log(r"dying young; backing off.*crashes=3 delay=800ms", since)
        assert fcgi_json(srv.address)["version"] == "1"


# --------------------------------------------------------------------------- signals


def test_prefork_sigttin_sigttou_change_the_spare_pool(rundir: Path) -> None:
    with ferrocgi(rundir, prefork("minspare=1", "maxspare=1", "maxchildren=5")) as srv:
        srv.wait_workers(lambda n: n == 1, "1 worker")
        since = srv.mark()
        os.kill(srv.pid, signal.SIGTTIN)
        srv.wait_log("SIGTTIN: one more worker", since)
        srv.wait_workers(lambda n: n == 2, "2 workers after SIGTTIN", 10)
        time.sleep(1.5)
        assert len(srv.workers()) == 2
        since = srv.mark()
        os.kill(srv.pid, signal.SIGTTOU)
        srv.wait_log("SIGTTOU: one fewer worker", since)
        srv.wait_workers(lambda n: n == 1, "1 worker after SIGTTOU", 10)


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


def read_pid(pidfile: Path) -> int:
    return int(pidfile.read_text().split()[0])


@pytest.mark.parametrize("method", ["prefork", "threaded"])
def test_sigusr1_reopens_log_files(rundir: Path, method: str) -> None:
    """Daemonized with errlog=FILE: after ``mv FILE FILE.1`` and SIGUSR1, FILE is recreated
    and new lines (from the process that serves the request) go there."""
    d = harness.instance_dir(rundir, f"usr1-{method}")
    make_app(d)
    tag = uuid.uuid4().hex
    log, pidfile, sock = d / "err.log", d / "app.pid", d / "app.sock"
    try:
        done = start_daemon(
            d,
            [
                f"method={method}",
                f"socket={sock}",
                f"pidfile={pidfile}",
                f"errlog={log}",
                "log_level=debug",
                "minspare=1",
                "maxspare=1",
            ],
            tag,
        )
        assert done.returncode == 0, done.stderr
        eventually("the socket", lambda: harness.can_connect(str(sock)), 15)
        fcgi_json(str(sock))
        eventually("a log line", lambda: "accepted connection" in log.read_text(), 5)
        pid = read_pid(pidfile)
        log.rename(d / "err.log.1")
        os.kill(pid, signal.SIGUSR1)
        eventually("err.log to be recreated", log.exists, 5)
        eventually("the reopen to be logged", lambda: "SIGUSR1" in log.read_text(), 5, fail=False)
        before = (d / "err.log.1").read_text()
        fcgi_json(str(sock))
        eventually(
            "the request to be logged in the new file",
            lambda: "accepted connection" in log.read_text(),
            5,
        )
        assert "SIGUSR1: reopening log files" in log.read_text() + before
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        eventually("the daemon to stop", lambda: not alive(pid), 15)
    finally:
        kill_tagged(tag)


# --------------------------------------------------------------------------- daemons


def test_daemonize_pidfile_and_kill(rundir: Path) -> None:
    """``daemonize=true pidfile=…``: the command returns at once with 0, the pidfile names the
    live daemon, ``kill `cat pidfile``` stops it and both pidfile and socket go away. A second
    start on the same pidfile fails naming it; a stale pidfile is replaced."""
    d = harness.instance_dir(rundir, "daemon")
    make_app(d)
    tag = uuid.uuid4().hex
    pidfile, sock, log = d / "app.pid", d / "app.sock", d / "err.log"
    words = [f"socket={sock}", f"pidfile={pidfile}", f"errlog={log}"]
    try:
        t0 = time.monotonic()
        done = start_daemon(d, words, tag)
        took = time.monotonic() - t0
        assert done.returncode == 0, done.stderr
        assert took < 10, f"the command took {took:.1f}s to return"
        eventually("the pidfile", pidfile.exists, 10)
        pid = read_pid(pidfile)
        assert alive(pid)
        eventually("the socket", lambda: harness.can_connect(str(sock)), 10)
        assert fcgi_json(str(sock))["ppid"] == pid

        # A second start with the same pidfile (another socket) is refused, clearly.
        other = d / "other.sock"
        second = start_daemon(d, [f"socket={other}", f"pidfile={pidfile}"], tag)
        assert second.returncode != 0
        assert str(pidfile) in second.stderr, second.stderr
        assert read_pid(pidfile) == pid and alive(pid)
        assert not other.exists()

        subprocess.run(["sh", "-c", f'kill `cat "{pidfile}"`'], check=True, timeout=10)
        eventually("the daemon to exit", lambda: not alive(pid), 15)
        how = zombie_status(pid)
        assert how in ("", "exit 0"), f"the daemon ended with {how}\n{harness.tail(log)}"
        eventually("the pidfile to go", lambda: not pidfile.exists(), 5)
        assert not sock.exists(), "the socket file was left behind"

        # A stale pidfile (a dead process's pid) is replaced.
        dead = subprocess.Popen(["true"])
        dead.wait()
        pidfile.write_text(f"{dead.pid}\n")
        done = start_daemon(d, words, tag)
        assert done.returncode == 0, done.stderr
        eventually("a new pid in the pidfile", lambda: read_pid(pidfile) != dead.pid, 10)
        pid2 = read_pid(pidfile)
        assert alive(pid2)
        eventually("the socket", lambda: harness.can_connect(str(sock)), 10)
        assert fcgi_json(str(sock))["ppid"] == pid2
        os.kill(pid2, signal.SIGTERM)
        eventually("the daemon to exit", lambda: not alive(pid2), 15)
        how = zombie_status(pid2)
        assert how in ("", "exit 0"), f"the daemon ended with {how}\n{harness.tail(log)}"
        assert not pidfile.exists(), f"pidfile left behind\n{harness.tail(log)}"
        assert not sock.exists(), f"socket left behind\n{harness.tail(log)}"
    finally:
        kill_tagged(tag)


def test_restart_five_times_keeps_pidfile_and_socket(rundir: Path) -> None:
    """kill the daemon, rm the pidfile and start a new one at once (docs/apache.md's restart
    script), 5 times: each new daemon keeps its pidfile and socket when the old one exits."""
    d = harness.instance_dir(rundir, "restart")
    make_app(d)
    tag = uuid.uuid4().hex
    pidfile, sock, log = d / "app.pid", d / "app.sock", d / "err.log"
    words = [f"socket={sock}", f"pidfile={pidfile}", f"errlog={log}", "minspare=1"]
    pids: list[int] = []
    try:
        for run in range(5):
            if pidfile.exists():
                subprocess.run(
                    ["sh", "-c", f'kill `cat "{pidfile}"`; rm -f "{pidfile}"'], timeout=10
                )
            done = start_daemon(d, words, tag)
            assert done.returncode == 0, f"run {run}: {done.stderr}\n{harness.tail(log)}"
            eventually(f"run {run}: the pidfile", pidfile.exists, 10)
            pids.append(read_pid(pidfile))
            eventually(f"run {run}: the socket", lambda: harness.can_connect(str(sock)), 10)
        eventually("the old daemons to exit", lambda: not any(alive(p) for p in pids[:-1]), 20)
        time.sleep(0.5)
        assert len(set(pids)) == 5, pids
        assert pidfile.exists() and read_pid(pidfile) == pids[-1], harness.tail(log)
        assert sock.exists(), f"socket removed by an old daemon\n{harness.tail(log)}"
        assert fcgi_json(str(sock))["ppid"] == pids[-1]
        os.kill(pids[-1], signal.SIGTERM)
        eventually("the last daemon to exit", lambda: not alive(pids[-1]), 15)
        assert not pidfile.exists() and not sock.exists()
    finally:
        kill_tagged(tag)


# --------------------------------------------------------------------------- sockets


@pytest.mark.parametrize(
    ("words", "mode"),
    [(["umask=002"], 0o775), (["socket_mode=660"], 0o660), ([], 0o755)],
    ids=["umask-002", "socket_mode-660", "default"],
)
def test_unix_socket_mode(rundir: Path, words: list[str], mode: int) -> None:
    with ferrocgi(rundir, ["method=threaded", *words], transport="unix", world_socket=False) as srv:
        st = os.stat(srv.backend.path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == mode, f"{oct(stat.S_IMODE(st.st_mode))} != {oct(mode)}"


@pytest.mark.parametrize("how", ["option", "environment"])
def test_allow_from(rundir: Path, how: str) -> None:
    """Only 127.0.0.1 may connect: 127.0.0.2 is closed without an answer (and logged)."""
    words = ["method=threaded", "host=0.0.0.0"]
    env = None
    if how == "option":
        words.append("allow_from=127.0.0.1")
    else:
        env = {"FCGI_WEB_SERVER_ADDRS": "127.0.0.1"}
    with ferrocgi(rundir, words, env=env) as srv:
        assert fcgi_json(srv.address)["version"] == "1"
        since = srv.mark()
        out = fcgi_exchange(srv.address, source="127.0.0.2")
        assert out == b"", f"127.0.0.2 got an answer: {out[:200]!r}"
        srv.wait_log(r"refused connection from 127\.0\.0\.2", since)
        assert fcgi_json(srv.address)["version"] == "1"


def listening_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((LOOPBACK, 0))
    s.listen(16)
    return s


SYSTEMD_EXEC = """\
import os, sys
fd = int(sys.argv[1])
os.dup2(fd, 3)
os.close(fd)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
os.execv(sys.argv[2], sys.argv[2:])
"""


@pytest.mark.parametrize("method", ["threaded", "prefork"])
def test_systemd_socket_activation(rundir: Path, method: str) -> None:
    """A listening socket as fd 3 with LISTEN_FDS=1 and LISTEN_PID=<its pid>: served."""
    with listening_socket() as s:
        address = s.getsockname()
        fd = s.fileno()
        # What systemd does: the socket as fd 3, LISTEN_PID naming the exec'd process itself.
        wrapper = [PYTHON, "-c", SYSTEMD_EXEC, str(fd)]
        with ferrocgi(
            rundir,
            [f"method={method}"],
            transport="none",
            address=address,
            pass_fds=[fd],
            wrapper=wrapper,
        ) as srv:
            s.close()
            data = fcgi_json(srv.address)
            assert data["version"] == "1"
            srv.wait_log("serving the socket passed by systemd")


@pytest.mark.parametrize("method", ["threaded", "prefork"])
def test_fd_option(rundir: Path, method: str) -> None:
    with listening_socket() as s:
        address = s.getsockname()
        with ferrocgi(
            rundir,
            [f"method={method}", f"fd={s.fileno()}"],
            transport="none",
            address=address,
            pass_fds=[s.fileno()],
        ) as srv:
            s.close()
            assert fcgi_json(srv.address)["version"] == "1"


# --------------------------------------------------------------------------- spawned / CGI


def test_cgi_fallback(rundir: Path) -> None:
    """No address and fd 0 a pipe: one request as plain CGI on stdout, exit 0."""
    d = harness.instance_dir(rundir, "cgi")
    app = make_app(d)
    body = b"x" * 12345
    env = clean_env(
        uuid.uuid4().hex,
        {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "REMOTE_ADDR": "127.0.0.1",
            "REQUEST_METHOD": "POST",
            "SCRIPT_NAME": "/app.fcgi",
            "PATH_INFO": "/echo",
            "QUERY_STRING": "a=1&b=2",
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/octet-stream",
        },
    )
    done = subprocess.run(
        [FERROCGI, APP, f"pythonpath={app}"],
        input=body,
        capture_output=True,
        env=env,
        cwd=d,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout.startswith(b"Status: 200 OK\r\n"), done.stdout[:200]
    cgi = wire.parse_cgi(done.stdout)
    assert cgi.status == 200
    assert ("Content-Type", "application/json") in cgi.headers, cgi.headers
    data = json.loads(cgi.body)
    assert data["length"] == len(body)
    assert data["method"] == "POST" and data["query"] == "a=1&b=2"


LIGHTTPD_SPAWN = """\
server.modules = ( "mod_fastcgi" )
server.document-root = "{run}/htdocs"
server.bind = "127.0.0.1"
server.port = {port}
server.pid-file = "{run}/lighttpd.pid"
server.errorlog = "{run}/error.log"
server.upload-dirs = ( "{run}/tmp" )
fastcgi.debug = 1
fastcgi.server = ( "/app" => ((
    "socket" => "{run}/spawn.sock",
    "bin-path" => "{script}",
    "max-procs" => 1,
    "check-local" => "disable",
)) )
"""

SPAWN_SCRIPT = """\
#!{python}
import sys

from ferrocgi import _ferrocgi

sys.exit(_ferrocgi.main({words!r}, "cli"))
"""


@pytest.mark.parametrize("method", ["threaded", "prefork"])
def test_spawned_by_lighttpd_and_restarted_on_touch(rundir: Path, method: str) -> None:
    """lighttpd ``bin-path`` starts the script with its socket as fd 0; after the code changes
    and the script is touched, the process exits gracefully and the new code is served."""
    d = harness.instance_dir(rundir, f"lighttpd-spawn-{method}")
    for sub in ("htdocs", "tmp"):
        harness.make_dir(d / sub)
    app = make_app(d)
    tag = uuid.uuid4().hex
    script = d / "app.fcgi"
    words = [APP, f"pythonpath={app}", f"method={method}", "log_level=debug", "minspare=1"]
    if method == "threaded":
        words.remove("minspare=1")
    script.write_text(SPAWN_SCRIPT.format(python=PYTHON, words=words))
    script.chmod(0o755)
    port = harness.free_port()
    conf = d / "lighttpd.conf"
    conf.write_text(LIGHTTPD_SPAWN.format(run=d, port=port, script=script))
    err = d / "error.log"
    try:
        argv = [shutil.which("lighttpd") or "/usr/sbin/lighttpd", "-D", "-f", str(conf)]
        with spawn("lighttpd", argv, d, clean_env(tag), logs=[err]) as proc:
            harness.wait_until(
                "lighttpd to accept", proc, lambda: harness.can_connect((LOOPBACK, port))
            )
            first = get_json(port, "/app/info")
            assert first["version"] == "1"
            spawned = first["pid"] if method == "threaded" else first["ppid"]
            assert _stat(spawned) is not None and _stat(spawned)[1] == proc.pid  # type: ignore[index]
            (app / "version.txt").write_text("2\n")
            time.sleep(1.1)  # a new mtime, whatever the file system's granularity
            # A slow request in flight when the script changes must still complete.
            slow: list[object] = []
            t = threading.Thread(
                target=lambda: slow.append(http_get(port, "/app/info?sleep=2", timeout=30))
            )
            t.start()
            time.sleep(0.5)
            script.touch()
            eventually("the spawned process to exit", lambda: not alive(spawned), 15, fail=False)
            exited = not alive(spawned)
            t.join(30)
            statuses: list[object] = []
            t0 = time.monotonic()
            got: dict[str, Any] | None = None
            while time.monotonic() < t0 + 20:
                try:
                    status, body = http_get(port, "/app/info", timeout=10)
                except OSError as exc:
                    statuses.append(repr(exc))
                    continue
                statuses.append(status)
                if status == 200 and json.loads(body)["version"] == "2":
                    got = json.loads(body)
                    break
                time.sleep(0.2)
            took = time.monotonic() - t0
            log = harness.tail(err)
            assert slow and slow[0][0] == 200, f"the request in flight: {slow}"  # type: ignore[index]
            assert json.loads(slow[0][1])["version"] == "1"  # type: ignore[index]
            assert exited, f"the spawned process {spawned} did not exit after touch\n{log}"
            assert "child exited: 0" in log, log
            assert got is not None, f"new code never served; statuses {statuses[-10:]}\n{log}"
            # lighttpd notices the exit in its once-a-second maintenance; a request arriving
            # before that finds the socket closed, disables the backend (1 s) and gets a 503.
            # That window is lighttpd's; it must stay short.
            assert took < 5, f"{took:.1f}s to serve the new code: {statuses}\n{log}"
            assert all(s in (200, 503) for s in statuses), statuses
    finally:
        kill_tagged(tag)
