"""docs/scaling.md as written: three hosts, each the recipes' Django project started with the
doc's runfcgi line in its own network namespace (tests/support/netns.py), behind the doc's
nginx and HAProxy balancers (tests/webservers/recipes/scaling-*), under steady GET and POST
load: ``kill -9`` of a host's whole tree fails only the requests in flight on it, then the
balancer routes around it, and it serves again once restarted; a graceful drain (SIGTERM) and a
rolling reload (SIGHUP, one host after the other) lose nothing. Root only (namespaces)."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import kit
import production
import pytest

from support import harness, netns, procfs

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.slow,
]

DOC = production.ROOT / "docs" / "scaling.md"
BODY = os.urandom(4096)
RECIPES = {
    "nginx": ("scaling-nginx.conf", "nginx.conf"),
    "haproxy": ("scaling-haproxy.cfg", "haproxy.cfg"),
}


def runfcgi_words(host: netns.Host) -> list[str]:
    """docs/scaling.md's runfcgi line for a host, its addresses swapped for the topology's."""
    line = next(x for x in DOC.read_text().splitlines() if x.startswith("./manage.py runfcgi "))
    for old, new in {
        "host=10.0.0.11": f"host={host.address}",
        "allow_from=10.0.0.1": f"allow_from={netns.BALANCER}",
    }.items():
        assert old in line, f"docs/scaling.md's runfcgi line no longer has {old!r}"
        line = line.replace(old, new)
    return line.split()[2:]


@dataclass
class AppHost:
    net: netns.Host
    project: kit.Project
    name: str
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    tag: str = ""

    def start(self) -> None:
        argv = self.net.argv("./manage.py", "runfcgi", *runfcgi_words(self.net))
        env = {"MYSITE_NAME": self.name}
        server = self.stack.enter_context(
            kit.launch(self.project, argv, (self.net.address, 3033), env=env, name=self.name)
        )
        self.tag = server.tag

    def pids(self) -> list[int]:
        return kit.tagged_pids(self.tag)

    def supervisor(self) -> int:
        pids = self.pids()
        table = procfs.table()
        return next(p for p in pids if int(table[p][1]) not in pids)

    def stop(self) -> None:
        self.stack.close()


@dataclass
class Result:
    at: float
    kind: str
    status: int  # 0: no HTTP answer
    site: str
    error: str = ""


class Load:
    """Four clients through the balancer, GET /info/ and a 4 KiB POST /upload/ in turn."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.results: list[Result] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(4)]

    def one(self, kind: str) -> Result:
        t = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            if kind == "GET":
                conn.request("GET", "/info/")
            else:
                boundary = "scale"
                part = 'Content-Disposition: form-data; name="file"; filename="b"'
                head = f"--{boundary}\r\n{part}\r\n\r\n".encode()
                body = head + BODY + f"\r\n--{boundary}--\r\n".encode()
                conn.request(
                    "POST",
                    "/upload/",
                    body,
                    {"Content-Type": f"multipart/form-data; boundary={boundary}"},
                )
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                return Result(t, kind, resp.status, "", data[:100].decode(errors="replace"))
            got = json.loads(data)
            if kind == "POST":
                assert got["sha256"] == hashlib.sha256(BODY).hexdigest()
                return Result(t, kind, 200, "")
            return Result(t, kind, 200, str(got["site"]))
        except (OSError, http.client.HTTPException) as e:
            return Result(t, kind, 0, "", repr(e))
        finally:
            conn.close()

    def run(self, i: int) -> None:
        n = i
        while not self.stop.is_set():
            r = self.one("GET" if n % 2 else "POST")
            n += 1
            with self.lock:
                self.results.append(r)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def since(self, t: float) -> list[Result]:
        with self.lock:
            return [r for r in self.results if r.at >= t]

    def failures(self, t: float = 0.0) -> list[Result]:
        return [r for r in self.since(t) if r.status != 200]


@dataclass
class Cluster:
    balancer: str
    port: int
    hosts: list[AppHost]
    run: Path


@contextlib.contextmanager
def cluster_of(balancer: str, rundir: Path, template: kit.Project) -> Iterator[Cluster]:
    """Three hosts in their namespaces behind ``balancer``, as docs/scaling.md sets them up
    (also used by scripts/soak_scaling.py)."""
    with netns.topology(3) as nets, contextlib.ExitStack() as es:
        hosts = []
        for i, net in enumerate(nets, 1):
            project = kit.install_project(template, rundir / f"{balancer}-host{i}")
            host = AppHost(net, project, f"host{i}")
            es.callback(host.stop)
            host.start()
            hosts.append(host)
        netns.check(nets)
        d = harness.instance_dir(rundir, balancer)
        harness.make_dir(d / "tmp")
        port = harness.free_port()
        values = {"RUN": str(d), "PORT": str(port), "SITE_DIR": str(hosts[0].project.dir)}
        values.update({f"HOST{i}": n.address for i, n in enumerate(nets, 1)})
        recipe, wrapper = RECIPES[balancer]
        conf = harness.fill(
            production.wrap(wrapper, production.derive(recipe)), d / wrapper, values
        )
        es.enter_context(harness.run_webserver(balancer, d, conf, [port]))
        yield Cluster(balancer, port, hosts, d)


@pytest.fixture(scope="module", params=list(RECIPES))
def cluster(
    request: pytest.FixtureRequest, rundir: Path, template: kit.Project
) -> Iterator[Cluster]:
    with cluster_of(request.param, rundir, template) as c:
        yield c


def sites_seen(load: Load, since: float) -> set[str]:
    return {r.site for r in load.since(since) if r.site}


def wait_results(load: Load, n: int) -> None:
    have = len(load.since(0))
    procfs.eventually(f"{n} more requests", lambda: len(load.since(0)) >= have + n, 30)


def test_every_host_serves(cluster: Cluster) -> None:
    with Load(cluster.port) as load:
        procfs.eventually(
            "all three hosts answering",
            lambda: sites_seen(load, 0) == {"host1", "host2", "host3"},
            20,
        )
        wait_results(load, 30)
    assert not load.failures(), load.failures()[:5]


def test_kill_9_fails_only_what_was_in_flight_and_the_host_comes_back(cluster: Cluster) -> None:
    victim = cluster.hosts[1]
    with Load(cluster.port) as load:
        wait_results(load, 40)
        killed_at = time.monotonic()
        procfs.signal_all(victim.pids(), signal.SIGKILL)
        procfs.wait_gone(victim.pids(), 10)
        wait_results(load, 60)
        after = time.monotonic()
        wait_results(load, 60)
        late = load.since(after)
        assert not [r for r in late if r.status != 200], "after the failover every request succeeds"
        assert "host2" not in sites_seen(load, after), "the dead host gets nothing"
        failed = load.failures(killed_at)
        # Only requests in flight on the killed host: at most one per client.
        assert len(failed) <= len(load.threads), [(r.kind, r.status, r.error) for r in failed]
        victim.stop()
        victim.start()
        back = time.monotonic()
        procfs.eventually(
            "the restarted host used again", lambda: "host2" in sites_seen(load, back), 30
        )
        wait_results(load, 20)
    assert not load.failures(back), load.failures(back)[:5]
    classified = [(r.kind, r.status) for r in failed]
    print(f"{cluster.balancer}: kill -9 failed {len(failed)} requests: {classified}")


def test_graceful_drain_loses_nothing(cluster: Cluster) -> None:
    """A plain SIGTERM to one host under load, behind either balancer: the host stops accepting
    (new connections are refused, and the balancer sends them to another), finishes what it has,
    and exits; no request fails. Then it comes back and is used again."""
    victim = cluster.hosts[2]
    with Load(cluster.port) as load:
        wait_results(load, 40)
        start = time.monotonic()
        os.kill(victim.supervisor(), signal.SIGTERM)
        procfs.eventually("the drained host gone", lambda: not victim.pids(), 40)
        wait_results(load, 60)
        failed = [(r.kind, r.status, r.error[:60]) for r in load.failures(start)]
        assert not failed, failed[:5]
        victim.stop()
        victim.start()
        back = time.monotonic()
        procfs.eventually("the host used again", lambda: "host3" in sites_seen(load, back), 30)
    assert not load.failures(), load.failures()[:5]


def set_down(cluster: Cluster, host: AppHost, down: bool) -> None:
    """docs/scaling.md's way to keep a host out of nginx's upstream: mark it ``down`` (or no
    longer) and reload nginx."""
    conf = cluster.run / "nginx.conf"
    up, marked = f"server {host.net.address}:3033 ", f"server {host.net.address}:3033 down "
    text = conf.read_text()
    assert (marked if not down else up) in text, text
    conf.write_text(text.replace(up, marked) if down else text.replace(marked, up))
    os.kill(int((cluster.run / "nginx.pid").read_text()), signal.SIGHUP)


def test_a_host_marked_down_gets_nothing_until_it_is_back(cluster: Cluster) -> None:
    if cluster.balancer != "nginx":
        pytest.skip("HAProxy takes a host out by its health check")
    victim = cluster.hosts[1]
    with Load(cluster.port) as load:
        wait_results(load, 20)
        set_down(cluster, victim, True)
        time.sleep(1.0)  # nginx's old workers finish what they had
        out = time.monotonic()
        wait_results(load, 60)
        assert "host2" not in sites_seen(load, out)
        set_down(cluster, victim, False)
        back = time.monotonic()
        procfs.eventually("the host used again", lambda: "host2" in sites_seen(load, back), 30)
    assert not load.failures(), load.failures()[:5]


def reload_and_wait(host: AppHost) -> None:
    """SIGHUP to the host's supervisor, then wait until its workers are all new ones."""
    sup = host.supervisor()
    before = set(host.pids()) - {sup}
    os.kill(sup, signal.SIGHUP)

    def reloaded() -> bool:
        workers = set(host.pids()) - {sup}
        return bool(workers) and workers.isdisjoint(before)

    procfs.eventually(f"{host.name} reloaded (new workers, old ones gone)", reloaded, 40)


def test_rolling_reload_loses_nothing(cluster: Cluster) -> None:
    with Load(cluster.port) as load:
        wait_results(load, 40)
        for host in cluster.hosts:
            reload_and_wait(host)
            wait_results(load, 20)
    assert not load.failures(), [(r.kind, r.status, r.error) for r in load.failures()][:5]
    assert sites_seen(load, 0) == {"host1", "host2", "host3"}
