"""Recycling processes: ``max_rss``, ``maxrequests_jitter``, and ``maxrequests`` under
``method=threaded`` (a graceful reload, where it used to be ignored).

A process is recycled after the request that crossed the limit: the request is answered, the
process finishes what is in flight, and a fresh one (a new prefork worker, or the same pid
re-executed) serves what comes next. No request fails on the way.
"""

from __future__ import annotations

from pathlib import Path

from support import harness
from support.cli import ferrocgi as command
from support.cli import run
from support.proc_server import fcgi_json, ferrocgi, prefork

MIB = 1 << 20


def rss_of(pid: int) -> int:
    """Resident bytes of ``pid``, from /proc (as the server reads its own)."""
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * 4096


def test_prefork_worker_over_max_rss_is_replaced(rundir: Path) -> None:
    """One worker; a request makes it hold 80 MiB more than max_rss allows: that request is
    answered, then the worker is replaced, and the next request is served by the new one."""
    words = prefork("minspare=1", "maxspare=1", "maxchildren=1")
    with ferrocgi(rundir, words, name="probe") as probe:
        first = fcgi_json(probe.address)["pid"]
        base = rss_of(first)
    limit = base + 40 * MIB
    with ferrocgi(rundir, [*words, f"max_rss={limit}"]) as srv:
        before = fcgi_json(srv.address)["pid"]
        for _ in range(3):  # well under the limit: the worker stays
            assert fcgi_json(srv.address)["pid"] == before
        hog = fcgi_json(srv.address, "/app/hog", "mb=80")
        assert hog["pid"] == before and hog["held_mb"] == 80
        srv.wait_log("resident memory passed max_rss; retiring")
        harness.wait_until(
            "the worker to be replaced",
            srv.proc,
            lambda: before not in srv.workers() and len(srv.workers()) == 1,
        )
        after = fcgi_json(srv.address)
        assert after["pid"] != before
        assert srv.backend.wait_log(r"worker exited normally", 0, 5)


def test_threaded_process_over_max_rss_reloads(rundir: Path) -> None:
    """method=threaded: the process reloads (same pid, re-executed with the socket) and the
    memory is given back."""
    with ferrocgi(rundir, ["method=threaded", "threads=2", "max_rss=200M"]) as srv:
        assert fcgi_json(srv.address)["pid"] == srv.pid
        fcgi_json(srv.address, "/app/hog", "mb=300")
        srv.wait_log("resident memory passed max_rss; graceful reload")
        srv.wait_log("re-executing")
        harness.wait_until(
            "the reloaded process to give the memory back",
            srv.proc,
            lambda: rss_of(srv.pid) < 200 * MIB,
        )
        info = fcgi_json(srv.address)
        assert info["pid"] == srv.pid


def test_threaded_maxrequests_reloads_gracefully(rundir: Path) -> None:
    """maxrequests under method=threaded reloads the process after that many requests (it
    used to be ignored); every request is answered."""
    with ferrocgi(rundir, ["method=threaded", "threads=2", "maxrequests=5"]) as srv:
        mark = srv.mark()
        for _ in range(12):
            assert fcgi_json(srv.address)["pid"] == srv.pid
        srv.wait_log("served maxrequests; graceful reload", since=mark)
        reloads = [x for x in srv.backend.log_lines()[mark:] if "re-executing" in x]
        assert len(reloads) >= 2, srv.tail()


def test_maxrequests_jitter_needs_maxrequests() -> None:
    done = run(command("proc_app:application", "--port", "0", "maxrequests_jitter=10"))
    assert done.returncode == 2
    assert "maxrequests_jitter': applies only with maxrequests" in done.stderr


def test_prefork_workers_with_jitter_recycle_within_their_limits(rundir: Path) -> None:
    """maxrequests=3 maxrequests_jitter=3: no worker serves more than 6 requests, and workers
    are replaced."""
    words = prefork("minspare=1", "maxspare=1", "maxchildren=1", "maxrequests=3")
    with ferrocgi(rundir, [*words, "maxrequests_jitter=3"]) as srv:
        pids = [fcgi_json(srv.address)["pid"] for _ in range(20)]
        runs: dict[int, int] = {}
        for p in pids:
            runs[p] = runs.get(p, 0) + 1
        assert max(runs.values()) <= 6, runs
        assert len(runs) >= 3, runs
