#!/usr/bin/env python3
"""Soak test: mixed load through a private nginx to ``ferrocgi method=prefork`` while workers
are killed and the supervisor reloads. Not part of the test command (it takes minutes).

What it does
------------
* Starts ``ferrocgi wsgi:application method=prefork`` (``tests/apps/wsgi.py``, FastCGI on
  127.0.0.1, log level info) and a private nginx in front of it (``tests/webservers/nginx.conf``:
  ``fastcgi_keep_conn on`` + upstream keepalive), both through ``tests/support/harness.py``.
* Runs ``--clients`` client threads until the deadline, each picking at random:
    - ``get``:      GET /fcgi/env/...                      (200, JSON with the right PATH_INFO)
    - ``post``:     POST 1 MiB to /fcgi/echo               (sha256 and length echoed back)
    - ``stream``:   GET /fcgi/slow?chunks=5&delay=0.05     (5 chunks, unbuffered by nginx)
    - ``big``:      GET /fcgi/big?bytes=4M                 (content checked byte for byte)
    - ``slowsend``: POST 256 KiB sent in 16 pieces over ~1.6 s (sha256 checked)
    - ``slowread``: GET /fcgi/big?bytes=2M read 64 KiB every 50 ms
  Every request has a 60 s timeout; the loops stop at the deadline.
* Every ``--kill-every`` seconds (default 10, jittered ±30 %) sends SIGKILL to a random prefork
  worker; every ``--hup-every`` seconds (default 60) sends SIGHUP to the supervisor (graceful
  reload: a re-exec, new workers, the old ones finish their requests); a run shorter than that
  (``--quick``) gets one SIGHUP half-way.
* Samples RSS (sum of VmRSS) and open fds of the whole server process tree (the supervisor and
  all its live descendants) at the start (after a short warm-up), every 30 s (at 25 s, 55 s…,
  off the SIGHUP beat), and at the end (after the load stopped and the server had 3 s to
  settle).

Report
------
Requests sent/ok/failed by kind; failures are classified as

* ``kill <=1s``: the request ended within 1 s after a worker was killed (the killed worker's
  in-flight request: expected);
* ``kill in flight``: a kill happened while it was in flight, but it failed later than 1 s
  after (e.g. a slow read whose response was cut when its worker died: expected);
* ``HUP <=1s``: ended within 1 s after a SIGHUP (and not after a kill): a reload is meant to
  lose no request, so this counts as a failure of the run;
* ``other``: not explained by a kill (a bug).

Every failure is listed with its error and its distance to the nearest kill and HUP; the
signals' wall-clock (UTC) times are printed to match the server's and nginx's log lines.

Exit status 0 when there are no ``HUP <=1s`` or ``other`` failures, the server is still alive
and serving, and the fd count of the tree did not grow (end <= start + 8).

Usage::

    /var/tmp/ferrocgi-venv/bin/python scripts/soak.py [--minutes 10 | --quick] [--clients 6]
        [--kill-every 10] [--hup-every 60] [--seed N] [--mix get=40,post=20,...] [--keep]

The Python must be a venv with ferrocgi installed (``scripts/test.sh`` builds
``/var/tmp/ferrocgi-venv``); ``--ferrocgi PATH`` picks another console script. Everything
listens on 127.0.0.1 only and is stopped (by pid) at the end; ``--keep`` keeps the run dir
(logs) under /var/tmp.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = str(ROOT / "tests")
if TESTS not in os.environ.get("PYTHONPATH", "").split(os.pathsep):  # see tests/support/__init__.py
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")]))
    os.execv(sys.executable, [sys.executable, *sys.argv])
from support import harness, procfs  # noqa: E402

MiB = 1024 * 1024
PATTERN = bytes(range(251)) * 262  # tests/apps/wsgi.py ``big``: byte i is i % 251


# --------------------------------------------------------------------------- process tree


def tree(root: int) -> list[int]:
    """The live processes of the tree (zombies, i.e. exited workers not reaped yet, left out)."""
    return [pid for pid in procfs.tree(root) if procfs.alive(pid)]


def workers(root: int) -> list[int]:
    return procfs.children(root)


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


@dataclass
class Sample:
    t: float
    procs: int
    rss_kib: int
    fds: int
    sup_rss_kib: int
    sup_fds: int

    def line(self, t0: float) -> str:
        return (
            f"t={self.t - t0:6.0f}s procs={self.procs:2d} rss={self.rss_kib / 1024:7.1f} MiB "
            f"fds={self.fds:4d} (supervisor: rss={self.sup_rss_kib / 1024:.1f} MiB "
            f"fds={self.sup_fds})"
        )


def sample(root: int) -> Sample:
    pids = tree(root)
    return Sample(
        time.monotonic(),
        len(pids),
        sum(rss_kib(p) for p in pids),
        sum(fds(p) for p in pids),
        rss_kib(root),
        fds(root),
    )


# --------------------------------------------------------------------------- load


@dataclass
class Result:
    kind: str
    start: float
    end: float
    error: str | None


class Load:
    def __init__(self, port: int, deadline: float, rng_seed: int) -> None:
        self.port = port
        self.deadline = deadline
        self.seed = rng_seed
        self.results: list[Result] = []
        self.lock = threading.Lock()
        rnd = random.Random(rng_seed)
        self.bodies = [rnd.randbytes(MiB) for _ in range(3)]
        self.digests = [hashlib.sha256(b).hexdigest() for b in self.bodies]

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(harness.LOOPBACK, self.port, timeout=60)

    # Each check raises on a wrong answer.
    def get(self, c: http.client.HTTPConnection, rnd: random.Random) -> None:
        n = rnd.randrange(1000)
        c.request("GET", f"/fcgi/env/item/{n}?q={n}")
        r = c.getresponse()
        data = r.read()
        expect(r.status == 200, f"status {r.status}")
        env = json.loads(data)
        expect(env.get("PATH_INFO") == f"/env/item/{n}", f"PATH_INFO {env.get('PATH_INFO')!r}")

    def post(self, c: http.client.HTTPConnection, rnd: random.Random) -> None:
        i = rnd.randrange(len(self.bodies))
        c.request("POST", "/fcgi/echo?mode=readn&n=65536", body=self.bodies[i])
        self._check_echo(c, MiB, self.digests[i])

    def _check_echo(self, c: http.client.HTTPConnection, length: int, digest: str) -> None:
        r = c.getresponse()
        data = r.read()
        expect(r.status == 200, f"status {r.status}: {data[:200]!r}")
        got = json.loads(data)
        expect(got["length"] == length, f"length {got['length']} != {length}")
        expect(got["sha256"] == digest, "sha256 mismatch")

    def stream(self, c: http.client.HTTPConnection, rnd: random.Random) -> None:
        c.request("GET", "/fcgi/slow?chunks=5&delay=0.05")
        r = c.getresponse()
        data = r.read()
        expect(r.status == 200, f"status {r.status}")
        lines = data.decode().splitlines()
        expect(len(lines) == 5 and lines[4].startswith("chunk 4"), f"stream {data[:100]!r}")

    def big(self, c: http.client.HTTPConnection, rnd: random.Random, slow: bool = False) -> None:
        n = 2 * MiB if slow else 4 * MiB
        c.request("GET", f"/fcgi/big?bytes={n}")
        r = c.getresponse()
        expect(r.status == 200, f"status {r.status}")
        got = 0
        while piece := r.read(65536):
            # byte i is i % 251
            off = got % len(PATTERN)
            want = (PATTERN[off:] + PATTERN)[: len(piece)]
            expect(piece == want, f"content differs near byte {got}")
            got += len(piece)
            if slow:
                time.sleep(0.05)
        expect(got == n, f"short body: {got} of {n}")

    def slowread(self, c: http.client.HTTPConnection, rnd: random.Random) -> None:
        self.big(c, rnd, slow=True)

    def slowsend(self, c: http.client.HTTPConnection, rnd: random.Random) -> None:
        body = self.bodies[0][: 256 * 1024]
        c.putrequest("POST", "/fcgi/echo?mode=readline_n&n=4096")
        c.putheader("Content-Length", str(len(body)))
        c.endheaders()
        step = len(body) // 16
        for i in range(0, len(body), step):
            c.send(body[i : i + step])
            time.sleep(0.1)
        self._check_echo(c, len(body), hashlib.sha256(body).hexdigest())

    KINDS = [
        ("get", 40),
        ("post", 20),
        ("stream", 15),
        ("big", 10),
        ("slowsend", 8),
        ("slowread", 7),
    ]

    def client(self, idx: int) -> None:
        rnd = random.Random(self.seed * 1000 + idx)
        names, weights = zip(*self.KINDS, strict=True)
        c = self.conn()
        while time.monotonic() < self.deadline:
            kind = rnd.choices(names, weights)[0]
            start = time.monotonic()
            err = None
            try:
                getattr(self, kind)(c, rnd)
            except Exception as e:  # noqa: BLE001 - every failure is recorded and reported
                err = f"{type(e).__name__}: {e}"
            end = time.monotonic()
            if err is not None:
                c.close()
                c = self.conn()
            with self.lock:
                self.results.append(Result(kind, start, end, err))
        c.close()


class CheckFailed(Exception):
    pass


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise CheckFailed(what)


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--quick", action="store_true", help="1 minute")
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--kill-every", type=float, default=10.0)
    ap.add_argument("--hup-every", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--ferrocgi", type=Path, default=harness.ferrocgi_command())
    ap.add_argument("--workers", default="minspare=2,maxspare=4,maxchildren=12")
    ap.add_argument("--keep", action="store_true", help="keep the run dir (logs)")
    ap.add_argument(
        "--mix",
        default=",".join(f"{k}={w}" for k, w in Load.KINDS),
        help="request kinds and weights (default %(default)s)",
    )
    args = ap.parse_args()
    minutes = 1.0 if args.quick else args.minutes
    Load.KINDS = [(k, int(w)) for k, w in (kw.split("=") for kw in args.mix.split(","))]
    if not args.ferrocgi.exists():
        sys.exit(f"{args.ferrocgi} not found: run with the venv's python or give --ferrocgi")
    harness.ferrocgi_command = lambda: args.ferrocgi  # type: ignore[assignment]

    rundir = Path(tempfile.mkdtemp(prefix="ferrocgi-soak-", dir="/var/tmp"))
    rundir.chmod(0o755)
    testdir = harness.make_dir(rundir / "wsgi-test-dir")
    extra = {"method": "prefork", "threads": "1", "graceful_timeout": "30s"}
    extra.update(dict(kv.split("=", 1) for kv in args.workers.split(",") if kv))
    print(
        f"soak: {minutes:g} min, {args.clients} clients, kill -9 a worker every "
        f"~{args.kill_every:g}s, SIGHUP every {args.hup_every:g}s, seed {args.seed}, "
        f"run dir {rundir}, load average {os.getloadavg()[0]:.1f} at start",
        flush=True,
    )
    rc = 1
    try:
        with (
            harness.start_wsgi(
                rundir,
                "wsgi:application",
                log_level="info",
                env={"WSGI_TEST_DIR": str(testdir)},
                extra=extra,
            ) as backend,
            harness.start_nginx(rundir, backend) as nginx,
        ):
            rc = soak(args, minutes, backend, nginx)
    finally:
        if args.keep:
            print(f"run dir kept: {rundir}")
        else:
            shutil.rmtree(rundir, ignore_errors=True)
    return rc


def soak(
    args: argparse.Namespace, minutes: float, backend: harness.Backend, nginx: harness.Frontend
) -> int:
    sup = backend.proc.pid
    rnd = random.Random(args.seed)
    # Warm-up: every worker imported and answering, then the start sample.
    t_deadline = time.monotonic() + 20
    while time.monotonic() < t_deadline and len(workers(sup)) < 2:
        time.sleep(0.1)
    warm = Load(nginx.port, time.monotonic() + 3, args.seed)
    ts = [threading.Thread(target=warm.client, args=(i,)) for i in range(args.clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    time.sleep(2)
    start = sample(sup)
    t0 = start.t
    print("start:", start.line(t0), flush=True)
    warm_fail = [r for r in warm.results if r.error]

    deadline = t0 + minutes * 60
    load = Load(nginx.port, deadline, args.seed + 1)
    threads = [threading.Thread(target=load.client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()

    kills: list[tuple[float, int]] = []
    hups: list[float] = []
    walls: list[tuple[str, float]] = []  # wall-clock times, to match the logs (UTC)
    samples = [start]
    next_kill = t0 + args.kill_every * rnd.uniform(0.7, 1.3)
    # A run shorter than --hup-every still gets one reload, half-way.
    next_hup = t0 + min(args.hup_every, minutes * 30)
    # Off the SIGHUP beat: a sample taken mid-reload only shows the supervisor re-executing.
    next_sample = t0 + 25
    while time.monotonic() < deadline:
        now = time.monotonic()
        if not backend.proc.alive():
            print(f"!! the supervisor exited ({backend.proc.popen.returncode})", flush=True)
            break
        if now >= next_kill:
            ws = workers(sup)
            if ws:
                victim = rnd.choice(ws)
                try:
                    os.kill(victim, signal.SIGKILL)
                    kills.append((time.monotonic(), victim))
                    walls.append((f"kill {victim}", time.time()))
                except ProcessLookupError:
                    pass
            next_kill = now + args.kill_every * rnd.uniform(0.7, 1.3)
        if now >= next_hup:
            os.kill(sup, signal.SIGHUP)
            hups.append(time.monotonic())
            walls.append(("HUP", time.time()))
            next_hup = now + args.hup_every
        if now >= next_sample:
            s = sample(sup)
            samples.append(s)
            print("      ", s.line(t0), flush=True)
            next_sample = now + 30
        time.sleep(0.05)
    for t in threads:
        t.join(90)
    stuck = sum(t.is_alive() for t in threads)
    time.sleep(3)
    alive = backend.proc.alive()
    end = sample(sup)
    # Still serving after everything?
    final_ok = True
    try:
        c = load.conn()
        load.get(c, rnd)
        c.close()
    except Exception as e:  # noqa: BLE001
        final_ok = False
        print(f"!! final GET failed: {e!r}")

    print(
        "signals (UTC): "
        + ", ".join(
            f"{what} {time.strftime('%H:%M:%S', time.gmtime(t))}.{int(t % 1 * 10)}"
            for what, t in walls
        )
    )
    return report(
        args, start, end, samples, load, warm_fail, kills, hups, backend, stuck, alive and final_ok
    )


def classify(r: Result, kills: list[tuple[float, int]], hups: list[float]) -> str:
    for k, _pid in kills:
        if k <= r.end <= k + 1.0:
            return "kill <=1s"
    for h in hups:
        if h <= r.end <= h + 1.0:
            return "HUP <=1s"
    for k, _pid in kills:
        if r.start <= k <= r.end:
            return "kill in flight"
    return "other"


def report(
    args: argparse.Namespace,
    start: Sample,
    end: Sample,
    samples: list[Sample],
    load: Load,
    warm_fail: list[Result],
    kills: list[tuple[float, int]],
    hups: list[float],
    backend: harness.Backend,
    stuck: int,
    serving: bool,
) -> int:
    t0 = start.t
    res = load.results
    sent = Counter(r.kind for r in res)
    failed = [r for r in res if r.error]
    classes = Counter(classify(r, kills, hups) for r in failed)
    others = [r for r in failed if classify(r, kills, hups) in ("other", "HUP <=1s")]
    print()
    print("=" * 72)
    print(f"soak report (seed {args.seed}, load average now {os.getloadavg()[0]:.1f})")
    print(f"duration:   {(max((r.end for r in res), default=t0) - t0) / 60:.1f} min")
    print(f"requests:   {len(res)} sent, {len(res) - len(failed)} ok, {len(failed)} failed")
    print("  by kind:  " + ", ".join(f"{k} {sent[k]}" for k, _ in Load.KINDS))
    print(
        f"failures:   kill <=1s: {classes['kill <=1s']}, kill in flight: "
        f"{classes['kill in flight']}, HUP <=1s: {classes['HUP <=1s']}, "
        f"other: {classes['other']}"
    )
    if failed:
        print(
            "  failed by kind: "
            + ", ".join(f"{k} {n}" for k, n in Counter(r.kind for r in failed).items())
        )
    print(f"signals:    {len(kills)} SIGKILL to workers, {len(hups)} SIGHUP to the supervisor")
    print(f"warm-up:    {len(warm_fail)} failed")
    print(f"start:      {start.line(t0)}")
    print(f"end:        {end.line(t0)}")
    print(
        f"delta:      rss {(end.rss_kib - start.rss_kib) / 1024:+.1f} MiB "
        f"({end.procs} vs {start.procs} processes; per process "
        f"{start.rss_kib / max(start.procs, 1) / 1024:.1f} -> "
        f"{end.rss_kib / max(end.procs, 1) / 1024:.1f} MiB), fds {end.fds - start.fds:+d}, "
        f"supervisor rss {(end.sup_rss_kib - start.sup_rss_kib) / 1024:+.1f} MiB "
        f"fds {end.sup_fds - start.sup_fds:+d}"
    )
    print("samples:")
    for s in samples + [end]:
        print("   ", s.line(t0))
    for r in failed[:40]:
        near_k = min((r.end - k for k, _ in kills), key=abs, default=float("inf"))
        near_h = min((r.end - h for h in hups), key=abs, default=float("inf"))
        print(
            f"  [{classify(r, kills, hups)}] t={r.start - t0:.1f}..{r.end - t0:.1f}s "
            f"{r.kind}: {r.error} (ended {near_k:+.2f}s from the nearest kill, "
            f"{near_h:+.2f}s from the nearest HUP)"
        )
    lines = backend.log_lines()
    levels = Counter(w for line in lines for w in ("ERROR", "WARN", "panic") if w in line)
    print(f"server log: {len(lines)} lines, " + ", ".join(f"{k} {v}" for k, v in levels.items()))
    interesting = [line for line in lines if ("ERROR" in line or "WARN" in line or "panic" in line)]
    shown = Counter()
    for line in interesting:
        # One example per distinct message shape.
        key = " ".join(w for w in line.split()[2:8] if not any(ch.isdigit() for ch in w))
        shown[key] += 1
        if shown[key] == 1:
            print("   ", line[:300])
    for key, n in shown.items():
        if n > 1:
            print(f"    ({n}x) {key}")
    nginx_err = [
        line for line in (Path(backend.stderr_path).parent.parent.glob("nginx-*/error.log"))
    ]
    for p in nginx_err:
        errs = [ln for ln in p.read_text(errors="replace").splitlines() if "[error]" in ln]
        print(f"nginx error.log: {len(errs)} [error] lines")
        for ln in errs[:5]:
            print("   ", ln[:300])
    ok = not others and serving and stuck == 0 and end.fds <= start.fds + 8
    print(f"server still serving: {serving}; client threads stuck: {stuck}")
    print(f"RESULT: {'PASS' if ok else 'FAIL'}")
    print("=" * 72)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
