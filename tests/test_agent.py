"""The agent's event loop: coalescing, ordering, retries, signals and reload."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from edgeddns.agent import Agent
from edgeddns.clock import SystemClock
from edgeddns.config import load
from edgeddns.events import Event
from edgeddns.result import Result
from tests.conftest import ROOT, write_config

CFG = """
[agent]
node_id = "n"
state_dir = "{d}/state"
[ip]
ipv4 = ["static:{ip}"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "a.lan"
provider = "lan"
allow_private = true
[[records]]
name = "b.lan"
provider = "lan"
allow_private = true
"""


class CountingEngine:
    """Stands in for the engine to observe how the agent drives it."""

    def __init__(self, config, clock, fail=False):
        self.config, self.clock, self.requests, self.fail = config, clock, [], fail
        self.active = 0
        self.overlap = False
        self.lock = threading.Lock()

    def run(self, req):
        with self.lock:
            self.active += 1
            self.overlap |= self.active > 1
        time.sleep(0.01)
        self.requests.append(req)
        names = [k.split("/")[0] for k in req.records] if req.records else [r.name for r in self.config.records]
        out = [Result(n, "A", "lan", "10.0.0.1", None, "failed" if self.fail else "updated", trigger=req.trigger,
                      id=req.id, ts=time.time()) for n in names]
        with self.lock:
            self.active -= 1
        return out

    def close(self):
        pass


def make_agent(tmp_path, **kw):
    cfg = load(write_config(tmp_path, CFG.format(d=tmp_path, ip="10.0.0.1")))
    engines = []

    def factory(c, clock):
        engines.append(CountingEngine(c, clock, **kw))
        return engines[-1]

    agent = Agent(cfg, clock=SystemClock(), engine_factory=factory, settle=0.05)
    return agent, engines


def test_burst_collapses_into_one_update(tmp_path):
    agent, engines = make_agent(tmp_path)
    agent.start()
    assert agent.wait_idle()
    eng = engines[0]
    n = len(eng.requests)
    done = []
    for _ in range(10):
        agent.submit(Event("netlink", id=None, done=done.append))
    assert agent.wait_idle()
    assert len(eng.requests) == n + 1 and len(done) == 10
    agent.stop()


def test_events_merge_record_lists_and_never_overlap(tmp_path):
    agent, engines = make_agent(tmp_path)
    agent.start()
    agent.wait_idle()
    for i in range(30):
        agent.submit(Event("mqtt", records=["a.lan"] if i % 2 else ["b.lan"], id=str(i)))
        time.sleep(0.003)
    assert agent.wait_idle()
    eng = engines[0]
    assert not eng.overlap
    merged = [r for r in eng.requests if r.trigger == "mqtt"]
    assert sum(1 for r in merged) < 30 and all(set(r.records) <= {"a.lan/A/lan", "b.lan/A/lan"} for r in merged)
    agent.stop()


def test_failures_schedule_a_retry(tmp_path):
    agent, engines = make_agent(tmp_path, fail=True)
    agent.start()
    agent.wait_idle()
    assert all(p.retry_at is not None for p in agent.scheduler.plans.values())
    agent.stop()


def test_state_summary(tmp_path):
    agent, _ = make_agent(tmp_path)
    agent.start()
    agent.wait_idle()
    st = agent.state()
    assert st["node_id"] == "n" and {r["record"] for r in st["records"]} == {"a.lan", "b.lan"}
    assert st["clock"]["source"] == "system"
    agent.stop()


def _start(cfg_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-m", "edgeddns", "run", "-c", cfg_path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(path, pred, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if pred(open(path).read()):
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def test_run_updates_reloads_and_stops_cleanly(tmp_path):
    cfg = write_config(tmp_path, CFG.format(d=tmp_path, ip="10.0.0.1"))
    p = _start(cfg)
    try:
        assert _wait_for(tmp_path / "hosts", lambda t: "10.0.0.1 a.lan" in t and "10.0.0.1 b.lan" in t)
        # A broken config on SIGHUP is refused; the agent keeps running.
        good = open(cfg).read()
        with open(cfg, "w") as f:
            f.write("[agent\n")
        p.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert p.poll() is None
        # A good one is taken, and its first run publishes the new address.
        with open(cfg, "w") as f:
            f.write(good.replace("10.0.0.1", "10.0.0.2"))
        p.send_signal(signal.SIGHUP)
        assert _wait_for(tmp_path / "hosts", lambda t: "10.0.0.2 a.lan" in t)
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert "reload refused" in err and "Traceback" not in err
    state = json.load(open(tmp_path / "state" / "state.json"))
    assert state["records"]["a.lan/A/lan"]["ip"] == "10.0.0.2"
