"""``interface:default`` follows the default route: a PPPoE session replaced by another.

In a network namespace made by the test, a tun device ``ppp0`` holds the WAN
address and the default route; then, as when pppd reconnects, ``ppp0`` goes
away and ``ppp1`` comes up with a new address, and only after that gets the
default route. The address event for ``ppp1`` arrives while ``ppp1`` is not
yet the default interface, and the deletion on ``ppp0`` arrives when its route
is already gone: only the route events can tell the agent.
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
from edgeddns.netevents import NetlinkSource
from tests.agentproc import AgentProc, read, wait_for
from tests.conftest import write_config

_seq = itertools.count()


def _ip(ns: str, *args: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def netns():
    if os.geteuid() != 0 or not shutil.which("ip") or not os.path.exists("/dev/net/tun"):
        pytest.skip("needs root, iproute2 and /dev/net/tun")
    name = f"edgeddns-r{os.getpid()}-{next(_seq)}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"this machine forbids network namespaces: {r.stderr.strip()}")
    try:
        _ip(name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _ppp(ns: str, dev: str, local: str, peer: str) -> None:
    _ip(ns, "tuntap", "add", "dev", dev, "mode", "tun")
    _ip(ns, "link", "set", dev, "up")
    _ip(ns, "addr", "add", local, "peer", peer, "dev", dev)


CFG = """
[agent]
node_id = "ns"
state_dir = "{d}/state"
[ip]
ipv4 = ["interface:default"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "home.example.com"
provider = "lan"
"""


def test_pppoe_reconnect_on_another_device_is_published(netns, tmp_path):
    _ppp(netns, "ppp0", "81.2.69.160", "10.64.0.1")
    _ip(netns, "route", "add", "default", "dev", "ppp0")
    cfg = write_config(tmp_path, CFG.format(d=tmp_path))
    hosts = tmp_path / "hosts"
    agent = AgentProc(cfg, prefix=["ip", "netns", "exec", netns], verbose=True)
    try:
        assert wait_for(lambda: "81.2.69.160 home.example.com" in read(hosts), 15), agent.log
        assert agent.wait_log(lambda t: "netlink: watching" in t), agent.log
        # pppd reconnects: the old session goes, the new one gets its address, then the route.
        _ip(netns, "link", "del", "ppp0")
        _ppp(netns, "ppp1", "93.184.216.34", "10.64.0.2")
        # Let the address event be handled before the route exists (as when pppd's ip-up runs later).
        time.sleep(0.3)
        _ip(netns, "route", "add", "default", "dev", "ppp1")
        assert wait_for(lambda: "93.184.216.34 home.example.com" in read(hosts), 5), agent.log + read(hosts)
        assert agent.wait_log(lambda t: "default route" in t and "ppp1" in t), agent.log
    finally:
        assert agent.stop() == 0, agent.log
    assert "Traceback" not in agent.log


def test_default_route_changes_are_filtered(tmp_path):
    cfg = load(write_config(tmp_path, CFG.format(d=tmp_path)))
    src = NetlinkSource(cfg, default_route=lambda fam: None)
    assert src.routes_wanted()
    r = netlink.RouteChange(event=netlink.RTM_NEWROUTE, family=4, ifname="ppp1", table=254, dst_len=0, rtype=1)
    assert src.route_relevant([r]) == r
    assert src.route_relevant([netlink.RouteChange(netlink.RTM_NEWROUTE, 4, "ppp1", 254, 24, 1)]) is None
    assert src.route_relevant([netlink.RouteChange(netlink.RTM_NEWROUTE, 4, "ppp1", 100, 0, 1)]) is None
    assert src.route_relevant([netlink.RouteChange(netlink.RTM_DELROUTE, 6, "ppp0", 254, 0, 1)]) is not None
    assert src.route_relevant([netlink.RouteChange(netlink.RTM_NEWROUTE, 6, "lo", 254, 0, 7)]) is None
    named = load(write_config(tmp_path, CFG.format(d=tmp_path).replace("interface:default", "interface:wan0"),
                              name="named.toml"))
    assert not NetlinkSource(named).routes_wanted()
