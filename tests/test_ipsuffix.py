"""Records for hosts behind the router: the current prefix plus a fixed interface id."""

from __future__ import annotations

import json
import os
import stat

import pytest

from edgeddns.clock import SystemClock
from edgeddns.config import load
from edgeddns.engine import Engine, UpdateRequest
from edgeddns.ipsuffix import combine, parse_suffix
from edgeddns.state import StateStore
from tests.agentproc import AgentProc, read, wait_for
from tests.conftest import run_cli, write_config
from tests.mosquitto import MOSQUITTO
from tests.test_mqtt import AGENT_PW, Ctl
from tests.test_mqtt import broker as _broker_fixture
from tests.test_mqtt import tls_files as _tls_fixture
from tests.test_netevents import _ip
from tests.test_netevents import netns as _netns_fixture

netns = _netns_fixture  # a namespace with lo and a veth wan0/peer0 pair
broker, tls_files = _broker_fixture, _tls_fixture  # a real Mosquitto with the MQTT tests' users and ACL

RECORDING = "/work/shared/openwrt-recordings/ubus-call-network.interface.wan-status.json"
NAS, CAM = "::211:32ff:fe12:3456", "::12:5054:ff:fe00:1"

HEAD = """
[agent]
node_id = "sfx"
state_dir = "{d}/state"
[ip]
ipv6 = ["{src}"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
"""
RECORDS = """
[[records]]
name = "nas.example.com"
type = "AAAA"
provider = "lan"
ipv6_suffix = "{nas}"
[[records]]
name = "cam.example.com"
type = "AAAA"
provider = "lan"
ipv6_suffix = "{cam}"
prefix_len = 56
"""


def _cfg(tmp_path, src: str, records: str = RECORDS, name: str = "config.toml") -> str:
    return write_config(tmp_path, HEAD.format(d=tmp_path, src=src) + records.format(nas=NAS, cam=CAM), name=name)


def test_combine_and_parse():
    assert combine("2a01:4f8:10a:1::1", parse_suffix(NAS)) == "2a01:4f8:10a:1:211:32ff:fe12:3456"
    # /56: the suffix carries the subnet id too.
    assert combine("2a01:4f8:10a:100::", parse_suffix(CAM, 56), 56) == "2a01:4f8:10a:112:5054:ff:fe00:1"
    assert combine("2a01:4f8:10a:1:ffff::1", parse_suffix("::1", 128 - 16), 112) == "2a01:4f8:10a:1:ffff::1"
    for bad, plen in (("::1:0:0:0:1", 64), ("::", 64), ("nope", 64), ("2a01::1", 64), ("::1", 128), ("::1", 0)):
        with pytest.raises(ValueError):
            parse_suffix(bad, plen)


@pytest.mark.parametrize("extra,key,words", [
    ('ipv6_suffix = "::1:0:0:0:1"', "records[0].ipv6_suffix", "does not fit in the 64 bits"),
    ('ipv6_suffix = "fe12:3456"', "records[0].ipv6_suffix", "is not an interface id"),
    ('ipv6_suffix = "::"', "records[0].ipv6_suffix", "all zeros"),
    ('ipv6_suffix = "::1"\nprefix_len = 0', "records[0].prefix_len", "between 1 and 128"),
    ('ipv6_suffix = "::1"\nprefix_len = 129', "records[0].prefix_len", "between 1 and 128"),
    ('ipv6_suffix = "::1"\nprefix_len = 128', "records[0].ipv6_suffix", "does not fit in the 0 bits"),
    ('ipv6_suffix = "::1"\nprefix_len = "64"', "records[0].prefix_len", "must be an integer"),
    ('prefix_len = 64', "records[0].prefix_len", "only means something with ipv6_suffix"),
    ('ipv6_suffix = "::1"\ntype = "A"', "records[0].ipv6_suffix", 'needs type = "AAAA"'),
    ('select = "oldest"', "records[0].select", "must be one of stable, newest, longest_lifetime"),
    ('match = "2a01:4f8::/129"', "records[0].match", "is not a prefix"),
    ('match = "2a01:4f8::1/64"', "records[0].match", "is not a prefix"),
    ('match = "81.2.69.0/24"', "records[0].match", "is an IPv4 match, but this is an IPv6 record"),
    ('match = "2a01:4f8::1"', "records[0].match", "is not an interface id"),
])
def test_config_errors(tmp_path, extra, key, words):
    body = HEAD.format(d=tmp_path, src="interface:lan0") + \
        '[[records]]\nname = "nas.example.com"\nprovider = "lan"\n' + extra + \
        ('\ntype = "AAAA"\n' if 'type =' not in extra else "\n")
    cfg = write_config(tmp_path, body)
    r = run_cli("check-config", "-c", cfg)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and cfg in lines[0] and key in lines[0] and words in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_ip_select_errors_and_family(tmp_path):
    cfg = write_config(tmp_path, HEAD.format(d=tmp_path, src="interface:lan0").replace(
        "[ip]\n", '[ip]\nselect = "best"\n'))
    r = run_cli("check-config", "-c", cfg)
    assert r.returncode == 2 and "ip.select" in r.stderr
    # An IPv6 match in [ip] does not apply to A records; a record's own match wins.
    cfg = load(write_config(tmp_path, HEAD.format(d=tmp_path, src="static:2a01:4f8::1").replace(
        "[ip]\n", '[ip]\nipv4 = ["static:81.2.69.1"]\nmatch = "2a01:4f8::/32"\nselect = "newest"\n')
        + '[[records]]\nname = "a.example.com"\nprovider = "lan"\n'
        + '[[records]]\nname = "b.example.com"\ntype = "AAAA"\nprovider = "lan"\nselect = "stable"\n'
        + 'match = "::1"\n', name="fam.toml"))
    assert cfg.selection_for(cfg.records[0]) == ("newest", None)
    assert cfg.selection_for(cfg.records[1]) == ("stable", "::1")


def _engine(cfg_path):
    cfg = load(cfg_path)
    return cfg, Engine(cfg, SystemClock(), StateStore.open(cfg.agent.state_dir))


def test_static_prefix_and_event_address(tmp_path):
    cfg, eng = _engine(_cfg(tmp_path, "static:2a01:4f8:10a:100::1"))
    res = {r.record: r for r in eng.run(UpdateRequest())}
    assert res["nas.example.com"].ip == "2a01:4f8:10a:100:211:32ff:fe12:3456"
    assert res["cam.example.com"].ip == "2a01:4f8:10a:112:5054:ff:fe00:1"
    sel = res["nas.example.com"].as_dict()["selection"]
    assert sel["prefix"] == "2a01:4f8:10a:100::/64" and sel["suffix"] == NAS
    # An event (MQTT with accept_ip, say) carrying an address gives every suffix record its prefix.
    res = {r.record: r for r in eng.run(UpdateRequest(trigger="mqtt", addresses={6: "2a01:4f8:10a:2ff::7"}))}
    assert res["nas.example.com"].ip == "2a01:4f8:10a:2ff:211:32ff:fe12:3456"
    assert res["cam.example.com"].ip == "2a01:4f8:10a:212:5054:ff:fe00:1"
    assert res["nas.example.com"].source == "event:mqtt"
    eng.close()


def test_combination_must_be_public(tmp_path):
    # A ULA prefix makes a ULA address: refused, with the prefix named.
    cfg, eng = _engine(_cfg(tmp_path, "static:fd12:3456:789a:1::1"))
    res = eng.run(UpdateRequest())[0]
    assert res.status == "skipped" and "ULA" in res.error["message"] and "fd12:3456:789a:1::1" in res.error["message"]
    res = eng.run(UpdateRequest(trigger="mqtt", addresses={6: "fd00::1"}))[0]
    assert res.status == "skipped" and res.ip is None
    eng.close()


def _ubus_standin(tmp_path, monkeypatch, prefixes):
    """``ubus call network.interface.wan6 status``: the recorded status, with netifd's prefix list.

    The recording (a wan without DHCPv6-PD) has an empty ``ipv6-prefix``; the entries here have
    the fields netifd's interface_ip_dump_prefix_list writes: address, mask, preferred, valid,
    class, assigned.
    """
    with open(RECORDING) as f:
        status = json.load(f)
    status.update({"proto": "dhcpv6", "ipv4-address": [], "route": [],
                   "ipv6-address": [{"address": "2a01:4f8:10a:ffff::2", "mask": 128, "preferred": 3000,
                                     "valid": 6000}],
                   "ipv6-prefix": [{"address": a, "mask": 56, "preferred": pref, "valid": 7200, "class": "wan6",
                                    "assigned": {"lan": {"address": a, "mask": 64}}} for a, pref in prefixes]})
    (tmp_path / "wan6.json").write_text(json.dumps(status))
    ubus = tmp_path / "bin" / "ubus"
    ubus.parent.mkdir(exist_ok=True)
    ubus.write_text(f'#!/bin/sh\n[ "$1 $2 $3" = "call network.interface.wan6 status" ] || exit 4\n'
                    f'cat {tmp_path}/wan6.json\n')
    ubus.chmod(ubus.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{ubus.parent}{os.pathsep}{os.environ['PATH']}")


def test_ubus_delegated_prefix(tmp_path, monkeypatch):
    # The old prefix stays listed with preferred 0 after renumbering: it must not win.
    _ubus_standin(tmp_path, monkeypatch, [("2a01:4f8:10a:100::", 0), ("2a01:4f8:10a:200::", 3600)])
    cfg, eng = _engine(_cfg(tmp_path, "ubus:wan6", RECORDS + '[[records]]\nname = "gw.example.com"\n'
                            'type = "AAAA"\nprovider = "lan"\n'))
    res = {r.record: r for r in eng.run(UpdateRequest())}
    assert res["nas.example.com"].ip == "2a01:4f8:10a:200:211:32ff:fe12:3456"
    assert res["cam.example.com"].ip == "2a01:4f8:10a:212:5054:ff:fe00:1"
    assert "2a01:4f8:10a:100:: (deprecated)" in res["nas.example.com"].extra["selection"]["reason"]
    assert res["gw.example.com"].ip == "2a01:4f8:10a:ffff::2"  # a plain record: the WAN address
    eng.close()


def _results(log: str):
    return [x for x in log.splitlines() if " via lan [" in x]


def test_prefix_change_under_a_running_agent_via_hotplug(tmp_path, monkeypatch):
    _ubus_standin(tmp_path, monkeypatch, [("2a01:4f8:10a:100::", 3600)])
    cfg = _cfg(tmp_path, "ubus:wan6")
    hosts = tmp_path / "hosts"
    agent = AgentProc(cfg)
    try:
        assert wait_for(lambda: "2a01:4f8:10a:100:211:32ff:fe12:3456 nas.example.com" in read(hosts)
                        and "2a01:4f8:10a:112:5054:ff:fe00:1 cam.example.com" in read(hosts)), agent.log
        _ubus_standin(tmp_path, monkeypatch, [("2a01:4f8:10a:100::", 0), ("2a01:4f8:10a:300::", 3600)])
        r = run_cli("trigger", "-c", cfg, "--iface", "wan6", "--action", "ifupdate")
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: "2a01:4f8:10a:300:211:32ff:fe12:3456 nas.example.com" in read(hosts)
                        and "2a01:4f8:10a:312:5054:ff:fe00:1 cam.example.com" in read(hosts)), agent.log
        assert agent.wait_log(lambda t: "2a01:4f8:10a:312:5054:ff:fe00:1" in t)
        lines = _results(agent.log)
        i = next(n for n, x in enumerate(lines) if "nas.example.com AAAA 2a01:4f8:10a:300:" in x)
        # One run: the next result line is the other suffix record, moved by the same trigger.
        assert "updated" in lines[i] and "[hotplug]" in lines[i]
        assert "cam.example.com AAAA 2a01:4f8:10a:312:" in lines[i + 1] and "updated" in lines[i + 1], lines
    finally:
        assert agent.stop() == 0, agent.log
    assert "Traceback" not in agent.log


def test_prefix_change_in_a_namespace_moves_every_suffix_record(netns, tmp_path):
    """Renumbering as odhcpd does it on br-lan: the new prefix arrives, then the old one is deprecated."""
    _ip(netns, "link", "add", "lan0", "type", "veth", "peer", "name", "lanp")
    _ip(netns, "link", "set", "lan0", "up")
    _ip(netns, "-6", "addr", "add", "2a01:4f8:10a:100::1/64", "dev", "lan0", "nodad")
    records = RECORDS.replace("{cam}", "::5054:ff:fe00:1").replace("prefix_len = 56\n", "")
    cfg = _cfg(tmp_path, "interface:lan0", records)
    hosts = tmp_path / "hosts"
    agent = AgentProc(cfg, prefix=["ip", "netns", "exec", netns], verbose=True)
    try:
        assert wait_for(lambda: "2a01:4f8:10a:100:211:32ff:fe12:3456 nas.example.com" in read(hosts)
                        and "2a01:4f8:10a:100:5054:ff:fe00:1 cam.example.com" in read(hosts)), agent.log
        _ip(netns, "-6", "addr", "add", "2a01:4f8:10a:200::1/64", "dev", "lan0", "nodad")
        # Both prefixes are usable: the stable policy keeps the lower one, nothing moves yet.
        assert agent.wait_log(lambda t: "unchanged    cam.example.com AAAA 2a01:4f8:10a:100:5054:ff:fe00:1 via lan "
                              "[netlink]" in t), agent.log
        _ip(netns, "-6", "addr", "change", "2a01:4f8:10a:100::1/64", "dev", "lan0", "preferred_lft", "0")
        assert wait_for(lambda: "2a01:4f8:10a:200:211:32ff:fe12:3456 nas.example.com" in read(hosts)
                        and "2a01:4f8:10a:200:5054:ff:fe00:1 cam.example.com" in read(hosts), 10), agent.log
        assert agent.wait_log(lambda t: "cam.example.com AAAA 2a01:4f8:10a:200:5054:ff:fe00:1 (was" in t)
        assert "netlink: deprecated 2a01:4f8:10a:100::1 on lan0" in agent.log
        lines = _results(agent.log)
        i = next((n for n, x in enumerate(lines) if "nas.example.com AAAA 2a01:4f8:10a:200:" in x), None)
        assert i is not None and "updated" in lines[i] and "[netlink]" in lines[i], agent.log
        assert "cam.example.com AAAA 2a01:4f8:10a:200:" in lines[i + 1] and "updated" in lines[i + 1], lines
        assert "skipped 2a01:4f8:10a:100::1 (deprecated)" in agent.log
    finally:
        assert agent.stop() == 0, agent.log
    assert "Traceback" not in agent.log


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (scripts/test installs it)")
def test_mqtt_address_moves_every_suffix_record(broker, tmp_path):
    """An MQTT ``update`` carrying an IPv6 address (accept_ip) gives every suffix record its prefix."""
    mqtt = (f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nusername = "n2"\npassword = "{AGENT_PW}"\n'
            'accept_ip = true\ndiscovery = false\n')
    cfg = write_config(tmp_path, HEAD.format(d=tmp_path, src="static:2a01:4f8:10a:100::1").replace(
        'node_id = "sfx"', 'node_id = "n2"') + mqtt + RECORDS.format(nas=NAS, cam=CAM))
    ctl = Ctl(broker.port)
    agent = AgentProc(cfg)
    try:
        ctl.json("edgeddns/n2/result", lambda d: d["record"] == "cam.example.com" and d["trigger"] == "startup")
        ctl.send("edgeddns/n2/cmd/update", {"id": "pfx-1", "ipv6": "2a01:4f8:10a:2ff::7"})
        nas = ctl.json("edgeddns/n2/result", lambda d: d["id"] == "pfx-1" and d["record"] == "nas.example.com")
        cam = ctl.json("edgeddns/n2/result", lambda d: d["id"] == "pfx-1" and d["record"] == "cam.example.com")
        assert nas["ip"] == "2a01:4f8:10a:2ff:211:32ff:fe12:3456" and nas["status"] == "updated", nas
        assert cam["ip"] == "2a01:4f8:10a:212:5054:ff:fe00:1" and cam["status"] == "updated", cam
        assert nas["source"] == "event:mqtt" and nas["selection"]["prefix"] == "2a01:4f8:10a:2ff::/64"
        assert "2a01:4f8:10a:212:5054:ff:fe00:1 cam.example.com" in read(tmp_path / "hosts")
    finally:
        ctl.close()
        assert agent.stop() == 0, agent.log
    assert "Traceback" not in agent.log


def test_recorded_status_without_a_prefix(tmp_path, monkeypatch):
    """The recording verbatim (a wan with no delegated prefix): a clear failure, not a guess."""
    _ubus_standin(tmp_path, monkeypatch, [])
    with open(RECORDING) as f:
        (tmp_path / "wan6.json").write_text(f.read())
    cfg, eng = _engine(_cfg(tmp_path, "ubus:wan6"))
    res = eng.run(UpdateRequest())[0]
    assert res.status == "failed" and res.ip is None
    assert "interface 'wan6' has no delegated IPv6 prefix" in res.error["message"], res.error
    eng.close()


def test_ipv4_match(tmp_path):
    cfg, eng = _engine(write_config(tmp_path, HEAD.format(d=tmp_path, src="static:2a01:4f8::1").replace(
        "[ip]\n", '[ip]\nipv4 = ["cmd:echo 81.2.69.5 93.184.216.34"]\nmatch = "93.184.216.0/24"\n')
        + '[[records]]\nname = "a.example.com"\nprovider = "lan"\n'))
    res = eng.run(UpdateRequest())[0]
    assert res.ip == "93.184.216.34", res.as_dict()
    assert "81.2.69.5 (outside match 93.184.216.0/24)" in res.extra["selection"]["reason"]
    eng.close()
