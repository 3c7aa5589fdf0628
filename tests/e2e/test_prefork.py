"""The prefork pool with real processes: workers replaced when killed or crashing (with
back-off), the pool growing for parallel requests and shrinking, maxrequests, maxchildren.

How servers are started, found and cleaned up: ``tests/support/proc_server.py``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support import wire
from support.harness import Frontend
from support.proc_server import (
    APPS,
    Load,
    fcgi_exchange,
    fcgi_json,
    ferrocgi,
    get_json,
    prefork,
)
from support.procfs import eventually


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_prefork_worker_killed_is_replaced_under_load(
    rundir: Path, nginx: Callable[..., Frontend], interface: str
) -> None:
    """kill -9 of a worker under steady load through nginx: it is replaced (new pid, logged),
    and at most the killed worker's in-flight request fails (its own ASGI requests too: an
    ASGI worker may have several in flight, one per kept-alive connection nginx sent it)."""
    app = APPS[interface]
    with ferrocgi(rundir, prefork("minspare=3", "maxspare=4", "maxchildren=6"), app=app) as srv:
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
        # The load's 3 connections may all be with the killed ASGI worker.
        allowed = 1 if interface == "wsgi" else 3
        assert len(failures) <= allowed, (
            f"{len(failures)} of {len(load.snapshot())} requests failed: {failures[:5]}"
        )
        assert srv.proc.alive()


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
