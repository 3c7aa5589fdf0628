"""Network namespaces for the scale-out tests: N "hosts", each a namespace joined to this one
by a veth pair on a bridge, all on one fixed private /24 used only there.

``Topology`` creates ``fcsN`` namespaces and ``fcbr0`` (the balancer's side, ``.1``), hosts at
``.11``, ``.12``… It refuses to start if the /24 is already on an interface of this machine,
removes everything it made on exit (and leftovers of an earlier run with the same names first),
and ``check()`` proves, before any traffic, that every address a test will use lives on an
interface the topology created, so nothing outside the machine is ever addressed.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

SUBNET = ipaddress.ip_network("10.231.7.0/24")
BRIDGE = "fcbr0"
BALANCER = "10.231.7.1"


def ip(*args: str, ns: str | None = None, check: bool = True) -> str:
    argv = ["ip", *(["netns", "exec", ns, "ip"] if ns else []), *args]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {out.stderr.strip()}")
    return out.stdout


def addresses(ns: str | None = None) -> dict[str, list[str]]:
    """Interface name -> its IPv4 addresses, in this namespace or ``ns``."""
    links = json.loads(ip("-j", "addr", "show", ns=ns) or "[]")
    return {
        link["ifname"]: [a["local"] for a in link.get("addr_info", []) if a["family"] == "inet"]
        for link in links
    }


@dataclass
class Host:
    name: str  # the namespace
    veth: str  # its end of the pair
    address: str

    def argv(self, *cmd: str) -> list[str]:
        """``cmd`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.name, *cmd]


def _cleanup(n: int) -> None:
    for i in range(1, n + 1):
        ip("netns", "del", f"fcs{i}", check=False)
        ip("link", "del", f"fcv{i}h", check=False)
    ip("link", "del", BRIDGE, check=False)


def _subnet_in_use() -> list[str]:
    used = []
    for ifname, addrs in addresses().items():
        used += [f"{ifname} {a}" for a in addrs if ipaddress.ip_address(a) in SUBNET]
    return used


@contextmanager
def topology(n: int) -> Iterator[list[Host]]:
    """``n`` hosts behind a bridge at ``BALANCER``; removed on exit, whatever happens."""
    _cleanup(n)
    busy = _subnet_in_use()
    if busy:
        raise RuntimeError(f"{SUBNET} is already in use on this machine: {busy}")
    hosts = []
    try:
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{BALANCER}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        for i in range(1, n + 1):
            h = Host(f"fcs{i}", f"fcv{i}n", str(SUBNET.network_address + 10 + i))
            ip("netns", "add", h.name)
            ip("link", "add", f"fcv{i}h", "type", "veth", "peer", "name", h.veth)
            ip("link", "set", h.veth, "netns", h.name)
            ip("link", "set", f"fcv{i}h", "master", BRIDGE)
            ip("link", "set", f"fcv{i}h", "up")
            ip("addr", "add", f"{h.address}/24", "dev", h.veth, ns=h.name)
            ip("link", "set", h.veth, "up", ns=h.name)
            ip("link", "set", "lo", "up", ns=h.name)
            hosts.append(h)
        check(hosts)
        yield hosts
    finally:
        _cleanup(n)


def check(hosts: list[Host]) -> None:
    """Every address the tests use is on an interface this module made: the balancer's on
    the bridge, each host's on its veth inside its namespace."""
    assert addresses().get(BRIDGE) == [BALANCER], addresses().get(BRIDGE)
    for h in hosts:
        assert ipaddress.ip_address(h.address) in SUBNET
        assert addresses(h.name).get(h.veth) == [h.address], (h, addresses(h.name))
