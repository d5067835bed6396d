"""What comes out of ``ubus`` is checked where it enters: the subscription's lines, netifd's addresses.

The child is a real process writing into a real pipe; the address test runs the real ``edgeddns
update`` against the ``ubus`` stand-in, with a status file the test writes (as a hostile or buggy
proto handler could make netifd report).
"""

from __future__ import annotations

import json
import os
import sys
import time
import tracemalloc

from edgeddns.config import load
from edgeddns.ubus import MAX_LINE, UbusSource
from tests.agentproc import read
from tests.conftest import ROOT, run_cli, write_config

FAKES = os.path.join(ROOT, "tests", "fakes")

CFG = """
[agent]
node_id = "owrt"
state_dir = "{d}/state"
[ip]
ipv4 = ["ubus:wan"]
ipv6 = ["ubus:wan"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "router.example.com"
type = "{rtype}"
provider = "lan"
"""

UPDATE = {"interface.update": {"interface": "wan", "up": True, "ipv4-address": [{"address": "93.184.216.34",
                                                                                  "mask": 24}]}}


class _Agent:
    def __init__(self, config):
        self.config = config
        self.events = []

    def submit(self, event):
        self.events.append(event)
        return True


def test_an_endless_line_from_the_subscription_costs_a_bounded_read(tmp_path):
    """Before: the line was read whole and only then compared with MAX_LINE (32 MiB held here)."""
    cfg = load(write_config(tmp_path, CFG.format(d=tmp_path, rtype="A")))
    flood = 32 << 20
    script = (f"import sys,time; w=sys.stdout.write; [w('x'*65536) for _ in range({flood // 65536})]; "
              f"w('\\n' + {json.dumps(json.dumps(UPDATE))} + '\\n'); sys.stdout.flush(); time.sleep(60)")
    src = UbusSource(cfg, argv=[sys.executable, "-c", script], watch_argv=None, settle=0.05)
    agent = _Agent(cfg)
    tracemalloc.start()
    try:
        src.start(agent)
        end = time.monotonic() + 60
        while not agent.events and time.monotonic() < end:
            time.sleep(0.02)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        src.stop()
    # The notification after the flood still arrives: the source skipped the line, it did not stop.
    assert agent.events and agent.events[0].interfaces["wan"]["ipv4-address"][0]["address"] == "93.184.216.34"
    assert flood > 8 * MAX_LINE
    assert peak < 4 * MAX_LINE + (1 << 20), f"held {peak} bytes reading a {flood}-byte line"


def _stand_in(tmp_path, status: dict):
    d = tmp_path / "ubusd"
    d.mkdir()
    (d / "wan.status.json").write_text(json.dumps(status))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ubus").write_text(f'#!/bin/sh\nexec sh {FAKES}/ubus "$@"\n')
    (bindir / "ubus").chmod(0o755)
    return {"PATH": f"{bindir}:{os.environ['PATH']}", "UBUS_FAKE_DIR": str(d)}


def test_netifd_addresses_are_used_only_in_canonical_form(tmp_path):
    """Before: "2606:4700::1%x<newline>6.6.6.6 bank.example.com" in netifd's status passed the public check
    (Python reads anything after % as a scope id) and went, as sent, into the result, the state file and the
    log; only the hosts provider's own re-check kept it out of the file. A non-canonical spelling was
    published as spelled."""
    evil = "2606:4700::1%x\n6.6.6.6 bank.example.com"
    env = _stand_in(tmp_path, {"up": True, "ipv6-address": [
        {"address": evil, "mask": 64}, {"address": "2606:4700:0000:0000::0002", "mask": 64}]})
    cfg = write_config(tmp_path, CFG.format(d=tmp_path, rtype="AAAA"))
    p = run_cli("update", "--json", "-v", "-c", cfg, env=env)
    everything = p.stdout + p.stderr + read(tmp_path / "hosts") + read(tmp_path / "state" / "state.json")
    assert "bank.example.com" not in everything and "%x" not in everything, everything
    res = json.loads(p.stdout.splitlines()[0])
    assert res["ip"] == "2606:4700::2", res  # the other address, in canonical form
    assert "2606:4700::2 router.example.com" in read(tmp_path / "hosts")


def test_a_deeply_nested_line_does_not_end_the_subscription(tmp_path):
    """Before: json.loads raised RecursionError (not ValueError) on a line of 100,000 nested brackets, which
    ended the reading thread; the child and the ubus.pid marker stayed, so the hotplug fallback stood aside
    too, and no later notification was ever handled."""
    cfg = load(write_config(tmp_path, CFG.format(d=tmp_path, rtype="A")))
    script = ("import sys,time; w=sys.stdout.write; deep='['*100000+']'*100000; w(deep+'\\n'); "
              "w('{\"interface.update\": {\"interface\": \"wan\", \"data\": '+deep+'}}\\n'); "
              f"w({json.dumps(json.dumps(UPDATE))} + '\\n'); sys.stdout.flush(); time.sleep(60)")
    src = UbusSource(cfg, argv=[sys.executable, "-c", script], watch_argv=None, settle=0.05)
    agent = _Agent(cfg)
    try:
        src.start(agent)
        end = time.monotonic() + 30
        while not agent.events and time.monotonic() < end:
            time.sleep(0.02)
    finally:
        src.stop()
    assert agent.events and agent.events[0].interfaces["wan"]["ipv4-address"][0]["address"] == "93.184.216.34"
