#!/usr/bin/env python3
"""Scale-out soak (docs/scaling.md): three hosts in network namespaces behind HAProxy (or
nginx), steady GET and POST load, and every ``--every`` seconds a random event on a random
host: ``kill -9`` of its whole tree (restarted 3 s later), a graceful stop (restarted), or a
SIGHUP reload. Not part of the test command; needs root and the test venv (Django, pytest):

    sudo /var/tmp/ferrocgi-venv/bin/python scripts/soak_scaling.py --minutes 10

Prints the requests, the failures by cause (within 3 s after a kill: expected, the requests in
flight on the killed host; after a stop or a reload: a bug) and each host's RSS and open files
at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "recipes"), str(ROOT / "tests")]

import kit  # noqa: E402
from test_recipe_scaling import AppHost, Load, cluster_of  # noqa: E402

from support import procfs  # noqa: E402


def footprint(host: AppHost) -> tuple[float, int]:
    """RSS (MiB) and open files of the host's whole tree."""
    rss = fds = 0
    for pid in host.pids():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rss += int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1])
            fds += len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, StopIteration):
            pass
    return rss / 1024, fds


def event(host: AppHost, kind: str) -> None:
    if kind == "kill":
        procfs.signal_all(host.pids(), signal.SIGKILL)
        procfs.wait_gone(host.pids(), 10)
        time.sleep(3)
    elif kind == "stop":
        os.kill(host.supervisor(), signal.SIGTERM)
        procfs.eventually("stopped", lambda: not host.pids(), 40)
    else:
        os.kill(host.supervisor(), signal.SIGHUP)
        return
    host.stop()
    host.start()


def classify(load: Load, events: list[tuple[float, str]]) -> dict[str, int]:
    causes: dict[str, int] = {}
    for r in load.failures():
        near = [k for t, k in events if 0 <= r.at - t <= 3]
        cause = f"after {near[-1]}" if near else "unexplained"
        causes[cause] = causes.get(cause, 0) + 1
    return causes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--every", type=float, default=10, help="seconds between events")
    ap.add_argument("--balancer", choices=["haproxy", "nginx"], default="haproxy")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("soak_scaling: needs root (network namespaces)")
    with tempfile.TemporaryDirectory(prefix="ferrocgi-soak-") as tmp:
        run = Path(tmp)
        os.chmod(run, 0o755)
        template = kit.prepare_template(run / "template" / "myproject")
        with cluster_of(args.balancer, run, template) as cluster, Load(cluster.port) as load:
            time.sleep(5)
            start = {h.name: footprint(h) for h in cluster.hosts}
            events: list[tuple[float, str]] = []
            deadline = time.monotonic() + args.minutes * 60
            while time.monotonic() < deadline:
                time.sleep(args.every * random.uniform(0.7, 1.3))
                # nginx: only kills and reloads (a plain stop behind nginx needs the host
                # taken out of the upstream first; see docs/scaling.md).
                kinds = (
                    ["kill", "stop", "reload"] if args.balancer == "haproxy" else ["kill", "reload"]
                )
                kind, host = random.choice(kinds), random.choice(cluster.hosts)
                events.append((time.monotonic(), kind))
                print(f"{time.strftime('%H:%M:%S')} {kind} {host.name}", flush=True)
                event(host, kind)
            time.sleep(5)
            end = {h.name: footprint(h) for h in cluster.hosts}
        total, failed = len(load.since(0)), load.failures()
        print(f"\nrequests: {total}, failed: {len(failed)}, events: {len(events)}")
        for cause, n in sorted(classify(load, events).items()):
            print(f"  {cause}: {n}")
        for name in start:
            (r0, f0), (r1, f1) = start[name], end[name]
            print(f"  {name}: RSS {r0:.1f} -> {r1:.1f} MiB, open files {f0} -> {f1}")
        bad = sum(n for c, n in classify(load, events).items() if c != "after kill")
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
