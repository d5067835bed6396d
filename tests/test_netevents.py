"""Kernel address events, in a network namespace made by the test.

The agent runs inside the namespace (``ip netns exec``) and watches a veth
interface; the test adds and removes addresses with ``ip`` and watches the
hosts file the agent writes. Addresses here are public-looking, but they
exist only inside the namespace: no packet leaves it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time

import pytest

from edgeddns import netlink
from edgeddns.config import load
from edgeddns.netevents import NetlinkSource, interface_names
from tests.agentproc import AgentProc, read, wait_for
from tests.conftest import write_config

_seq = itertools.count()


def _ip(ns: str, *args: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def netns():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("network namespaces need root and iproute2")
    name = f"edgeddns-t{os.getpid()}-{next(_seq)}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"this machine forbids network namespaces: {r.stderr.strip()}")
    try:
        _ip(name, "link", "set", "lo", "up")
        _ip(name, "link", "add", "wan0", "type", "veth", "peer", "name", "peer0")
        _ip(name, "link", "set", "wan0", "up")
        _ip(name, "link", "set", "peer0", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


CFG = """
[agent]
node_id = "ns"
state_dir = "{d}/state"
[ip]
ipv4 = ["interface:wan0"]
ipv6 = ["interface:wan0"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "home.example.com"
type = "A"
provider = "lan"
[[records]]
name = "home.example.com"
type = "AAAA"
provider = "lan"
"""


def _timed(pred, timeout=5.0):
    t0 = time.monotonic()
    ok = wait_for(pred, timeout, step=0.005)
    return ok, time.monotonic() - t0


def test_address_changes_reach_the_records(netns, tmp_path):
    cfg = write_config(tmp_path, CFG.format(d=tmp_path))
    hosts = tmp_path / "hosts"
    agent = AgentProc(cfg, prefix=["ip", "netns", "exec", netns], verbose=True)
    try:
        # No address yet: the startup check finds nothing to publish.
        assert agent.wait_log(lambda t: "no IPv4 address on wan0" in t or "no_address" in t), agent.log
        lat = {}
        _ip(netns, "addr", "add", "81.2.69.160/24", "dev", "wan0")
        ok, lat["add IPv4"] = _timed(lambda: "81.2.69.160 home.example.com" in read(hosts))
        assert ok, agent.log
        _ip(netns, "-6", "addr", "add", "2a01:4f8:10a:1::5/64", "dev", "wan0", "nodad")
        ok, lat["add IPv6"] = _timed(lambda: "2a01:4f8:10a:1::5 home.example.com" in read(hosts))
        assert ok, agent.log
        # A deprecated address (preferred lifetime 0) is not worth an event.
        _ip(netns, "-6", "addr", "add", "2a01:4f8:10a:1::dead/64", "dev", "wan0", "nodad", "preferred_lft", "0")
        # A second IPv4 address, then the first goes away: the record follows.
        _ip(netns, "addr", "add", "93.184.216.34/24", "dev", "wan0")
        _ip(netns, "addr", "del", "81.2.69.160/24", "dev", "wan0")
        ok, lat["del IPv4"] = _timed(lambda: "93.184.216.34 home.example.com" in read(hosts))
        assert ok, agent.log
        assert agent.wait_log(lambda t: "netlink: deleted 81.2.69.160 on wan0" in t)
        # Events are handled in kernel order, so by now the deprecated one was seen, and ignored.
        log = agent.log
        assert "netlink: new 2a01:4f8:10a:1::5 on wan0" in log
        assert not [x for x in log.splitlines() if "netlink:" in x and "2a01:4f8:10a:1::dead" in x]
        assert "2a01:4f8:10a:1::dead" not in read(hosts)
        print("netlink latency (address change -> hosts file): "
              + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in lat.items()))
    finally:
        assert agent.stop() == 0, agent.log
    assert "Traceback" not in agent.log


def test_other_interfaces_and_private_scopes_are_ignored(netns, tmp_path):
    cfg = write_config(tmp_path, CFG.format(d=tmp_path))
    agent = AgentProc(cfg, prefix=["ip", "netns", "exec", netns], verbose=True)
    try:
        assert agent.wait_log(lambda t: "running as ns" in t)
        _ip(netns, "addr", "add", "198.18.0.1/24", "dev", "peer0")  # not a watched interface
        _ip(netns, "-6", "addr", "add", "fe80::1234/64", "dev", "wan0", "nodad")  # link scope
        _ip(netns, "addr", "add", "81.2.69.161/24", "dev", "wan0")  # the marker that must be seen
        assert agent.wait_log(lambda t: "netlink: new 81.2.69.161 on wan0" in t), agent.log
        events = [line for line in agent.log.splitlines() if "netlink:" in line]
        assert not [e for e in events if "198.18.0.1" in e or "fe80::1234" in e], events
    finally:
        assert agent.stop() == 0


def _addr(**kw):
    base = dict(event=netlink.RTM_NEWADDR, ifindex=2, ifname="wan0", family=6, address="2a01:4f8::1",
                prefixlen=64, flags=0, scope=0)
    base.update(kw)
    return netlink.IfAddr(**base)


def test_filter_rules(tmp_path):
    cfg = load(write_config(tmp_path, CFG.format(d=tmp_path).replace('ipv6 = ["interface:wan0"]',
                                                                       'ipv6 = ["interface:default"]')))
    assert NetlinkSource.wanted(cfg) and interface_names(cfg) == {"wan0", "default"}
    src = NetlinkSource(cfg, default_route=lambda fam: "ppp0" if fam == 6 else None)
    assert src.relevant([_addr()]) is not None
    assert src.relevant([_addr(ifname="ppp0")]) is not None  # the default-route interface
    assert src.relevant([_addr(ifname="lan0")]) is None
    assert src.relevant([_addr(address="2a01:4f8::a", flags=netlink.IFA_F_TEMPORARY)]) is None
    assert src.relevant([_addr(address="2a01:4f8::b", flags=netlink.IFA_F_DEPRECATED)]) is None
    assert src.relevant([_addr(address="2a01:4f8::c", flags=netlink.IFA_F_TENTATIVE)]) is None
    assert src.relevant([_addr(address="2a01:4f8::d", preferred=0)]) is None
    assert src.relevant([_addr(scope=253)]) is None  # link
    assert src.relevant([_addr(event=netlink.RTM_DELADDR)]) is not None
    # IPv4 "secondary" shares the temporary bit and is a real address.
    assert src.relevant([_addr(family=4, address="81.2.69.1", flags=netlink.IFA_F_TEMPORARY)]) is not None
    # A usable address that becomes deprecated is a change (renumbering); one added deprecated is not.
    assert src.relevant([_addr(address="2a01:4f8::2")]) is not None
    assert src.relevant([_addr(address="2a01:4f8::2", flags=netlink.IFA_F_DEPRECATED)]) is not None
    assert src.relevant([_addr(address="2a01:4f8::2", flags=netlink.IFA_F_DEPRECATED)]) is None  # already known
    assert src.relevant([_addr(address="2a01:4f8::3", preferred=0)]) is None
    assert src.relevant([_addr(address="2a01:4f8::3", preferred=0, event=netlink.RTM_DELADDR)]) is None
    plain = load(write_config(tmp_path, CFG.format(d=tmp_path)
                              .replace('ipv4 = ["interface:wan0"]', 'ipv4 = ["static:81.2.69.1"]')
                              .replace('ipv6 = ["interface:wan0"]', 'ipv6 = ["static:2a01:4f8::1"]'),
                              name="plain.toml"))
    assert not NetlinkSource.wanted(plain)
