"""``edgeddns fleet``: real agents on a real Mosquitto (with the documented ACL), the controller as a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.agentproc import AgentProc, wait_for
from tests.conftest import ROOT, write_config
from tests.mosquitto import MOSQUITTO, Mosquitto, Relay

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (scripts/test installs it)")

CTL_PW = "ctl-pw-4567"
AGENT_PW = "agent-pw-0123"
ACL = """
user ctl
topic readwrite #

pattern readwrite edgeddns/%u/#
pattern read edgeddns/all/cmd/#
pattern readwrite homeassistant/#
pattern write edgeddns/ctl/+/response
"""
NODES = ["f1", "f2", "f3"]


def agent_config(tmp_path, node: str, port: int, auth: bool = True) -> str:
    d = tmp_path / node
    d.mkdir()
    text = textwrap.dedent(f"""
        [agent]
        node_id = "{node}"
        state_dir = "{d}/state"
        [mqtt]
        host = "127.0.0.1"
        port = {port}
        username = "{node}"
        password = "{AGENT_PW}"
        broadcast_spread_force = 2
        [ip]
        ipv4 = ["static:93.184.216.{NODES.index(node) + 10}"]
        [providers.lan]
        type = "hosts"
        path = "{d}/hosts"
        [[records]]
        name = "{node}.example.com"
        provider = "lan"
    """)
    if not auth:
        text = text.replace(f'username = "{node}"\n', "").replace(f'password = "{AGENT_PW}"\n', "")
    return write_config(d, text)


def fleet(ctl_cfg: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeddns", "fleet", *args, "-c", ctl_cfg], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT, timeout=timeout)


@pytest.fixture
def setup(tmp_path):
    broker = Mosquitto(str(tmp_path / "mqtt"), users={"ctl": CTL_PW, **{n: AGENT_PW for n in NODES}},
                       acl=ACL).start()
    agents = {n: AgentProc(agent_config(tmp_path, n, broker.port)) for n in NODES}
    ctl_dir = tmp_path / "ctl"
    ctl_dir.mkdir()
    ctl = write_config(ctl_dir, f"""
        [agent]
        node_id = "controller"
        state_dir = "{ctl_dir}/state"
        [mqtt]
        host = "127.0.0.1"
        port = {broker.port}
        username = "ctl"
        password = "{CTL_PW}"
    """)
    try:
        for n, a in agents.items():
            hosts = tmp_path / n / "hosts"
            assert wait_for(lambda h=hosts, n=n: h.exists() and f"{n}.example.com" in h.read_text(), 20), a.log
        yield broker, agents, ctl
    finally:
        for a in agents.values():
            if a.proc.poll() is None:
                a.proc.send_signal(signal.SIGCONT)
            a.stop()
        broker.stop()


def status(ctl: str) -> dict:
    p = fleet(ctl, "status", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    return {row["node"]: row for row in json.loads(p.stdout)["nodes"]}


def test_fleet_status_lists_every_agent_with_its_records(setup):
    broker, agents, ctl = setup
    assert wait_for(lambda: all(status(ctl).get(n, {}).get("records") for n in NODES), 20)
    rows = status(ctl)
    for i, n in enumerate(NODES):
        assert rows[n]["online"] is True
        assert rows[n]["records"][0]["ip"] == f"93.184.216.{i + 10}"
        assert rows[n]["clock"]
    text = fleet(ctl, "status").stdout
    assert all(n in text for n in NODES) and "online" in text

    # An agent that dies leaves its will: offline.
    agents["f3"].proc.kill()
    agents["f3"].proc.wait()
    assert wait_for(lambda: status(ctl)["f3"]["online"] is False, 20)


def test_fleet_update_collects_every_answer_and_names_the_silent(setup):
    broker, agents, ctl = setup
    assert wait_for(lambda: all(status(ctl).get(n, {}).get("online") for n in NODES), 20)
    p = fleet(ctl, "update", "--json", "--force", "--spread", "0", "--timeout", "20")
    assert p.returncode == 0, p.stdout + p.stderr
    rep = json.loads(p.stdout)
    assert rep["silent"] == [] and set(rep["expected"]) == set(NODES)
    for n in NODES:
        node = rep["nodes"][n]
        assert node["answer"]["status"] == "accepted" and node["answer"]["id"] == rep["id"]
        assert node["via"] == "response-topic"  # MQTT 5: our response topic, our correlation data
        assert [r["record"] for r in node["results"]] == [f"{n}.example.com"]
        assert node["results"][0]["status"] in ("updated", "unchanged")

    # The agents' own spread (a forced broadcast: up to broadcast_spread_force, 2 s here): the controller
    # waits past each node's "at" for its results instead of calling it silent.
    p = fleet(ctl, "update", "--json", "--force", "--timeout", "3")
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["silent"] == []

    # A node that is "online" but does not answer (stopped) is named, and the exit status says so.
    agents["f2"].proc.send_signal(signal.SIGSTOP)
    p = fleet(ctl, "update", "--json", "--spread", "0", "--timeout", "4")
    assert p.returncode == 1, p.stdout + p.stderr
    rep = json.loads(p.stdout)
    assert rep["silent"] == ["f2"]
    assert rep["nodes"]["f1"]["answer"]["status"] == "accepted"


@pytest.mark.parametrize("bridge_protocol", ["mqttv50", "mqttv311"])
def test_fleet_update_across_a_bridge(tmp_path, bridge_protocol):
    """Agents on two bridged brokers: every answer reaches the controller on the near one.

    An MQTT 5 bridge carries the response topic and the correlation data (both are under the
    bridged ``edgeddns/#``); a 3.1.1 bridge drops properties, so those agents answer on their own
    ``response/update`` topic, which the controller collects too, matched by the id.
    """
    near = Mosquitto(str(tmp_path / "near")).start()
    far = Mosquitto(str(tmp_path / "far"), extra=[
        "connection near", f"address 127.0.0.1:{near.port}", f"bridge_protocol_version {bridge_protocol}",
        "topic edgeddns/# both 1", "topic homeassistant/# out 1", "cleansession true",
        "restart_timeout 1 2"]).start()
    agents = {}
    try:
        for n, port in (("f1", near.port), ("f2", far.port), ("f3", far.port)):
            agents[n] = AgentProc(agent_config(tmp_path, n, port, auth=False))
        ctl_dir = tmp_path / "ctl"
        ctl_dir.mkdir()
        ctl = write_config(ctl_dir, f"""
            [agent]
            node_id = "controller"
            state_dir = "{ctl_dir}/state"
            [mqtt]
            host = "127.0.0.1"
            port = {near.port}
        """)
        assert wait_for(lambda: all(status(ctl).get(n, {}).get("online") for n in NODES), 30), \
            [a.log for a in agents.values()] + [far.log()]
        p = fleet(ctl, "update", "--json", "--spread", "0", "--timeout", "20")
        assert p.returncode == 0, p.stdout + p.stderr
        rep = json.loads(p.stdout)
        assert rep["silent"] == []
        want = "response-topic" if bridge_protocol == "mqttv50" else "node-topic"
        for n in NODES:
            assert rep["nodes"][n]["answer"]["status"] == "accepted"
            assert rep["nodes"][n]["via"] == ("response-topic" if n == "f1" else want), rep["nodes"][n]
            assert [r["record"] for r in rep["nodes"][n]["results"]] == [f"{n}.example.com"]
    finally:
        for a in agents.values():
            a.stop()
        far.stop()
        near.stop()


# ---- a leaner retained footprint, and a spread republish -------------------------------------------

def _retained(port: int, prefix: str = "homeassistant/#", wait: float = 1.5) -> dict:
    """Every retained message under ``prefix`` right now: topic -> payload."""
    import threading
    import time

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got: dict = {}
    ready = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.username_pw_set("ctl", CTL_PW)
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(prefix, 1)
    c.on_subscribe = lambda *a: ready.set()
    c.on_message = lambda cl, u, m: got.__setitem__(m.topic, bytes(m.payload)) if m.retain else None
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(10)
    time.sleep(wait)
    c.disconnect()
    c.loop_stop()
    return {t: p for t, p in got.items() if p}


def test_discovery_modes_and_leftovers_cleared(tmp_path):
    broker = Mosquitto(str(tmp_path / "mqtt"), users={"ctl": CTL_PW, "f1": AGENT_PW}, acl=ACL).start()
    cfg = agent_config(tmp_path, "f1", broker.port)
    full = open(cfg).read()
    try:
        a = AgentProc(cfg)
        assert wait_for(lambda: len(_retained(broker.port, wait=0.3)) == 4, 20), a.log
        a.stop()
        with open(cfg, "w") as f:
            f.write(full.replace(f'password = "{AGENT_PW}"', f'password = "{AGENT_PW}"\ndiscovery = "minimal"'))
        a = AgentProc(cfg)
        # The entities "full" added are removed at the broker; one address sensor per record stays.
        assert wait_for(lambda: list(_retained(broker.port, wait=0.3)) == [
            "homeassistant/sensor/f1/f1_example_com_a/config"], 20), (_retained(broker.port), a.log)
        a.stop()
        with open(cfg, "w") as f:
            f.write(full.replace(f'password = "{AGENT_PW}"', f'password = "{AGENT_PW}"\ndiscovery = "off"'))
        a = AgentProc(cfg)
        assert wait_for(lambda: _retained(broker.port, wait=0.3) == {}, 20), a.log
        assert wait_for(lambda: b"online" in _retained(broker.port, "edgeddns/f1/availability", 0.3).get(
            "edgeddns/f1/availability", b""), 20)
        a.stop()
    finally:
        broker.stop()


def test_discovery_mode_config_errors(tmp_path):
    from tests.conftest import run_cli

    cfg = agent_config(tmp_path, "f1", 1883)
    text = open(cfg).read()
    for bad, key in (('discovery = "some"', "mqtt.discovery"), ("discovery_spread = -1", "mqtt.discovery_spread"),
                     ("discovery_spread = 1e9", "mqtt.discovery_spread")):
        with open(cfg, "w") as f:
            f.write(text.replace(f'password = "{AGENT_PW}"', f'password = "{AGENT_PW}"\n{bad}'))
        p = run_cli("check-config", "-c", cfg)
        assert p.returncode == 2 and key in p.stderr and "Traceback" not in p.stderr, p.stderr
    with open(cfg, "w") as f:
        f.write(text.replace(f'password = "{AGENT_PW}"', f'password = "{AGENT_PW}"\ndiscovery = false'))
    assert run_cli("check-config", "-c", cfg).returncode == 0


def test_birth_republish_waits_a_random_part_of_discovery_spread(tmp_path):
    """Every agent of a fleet hears one birth message: each republishes after its own random delay."""
    import random

    from edgeddns.config import load
    from edgeddns.mqtt_outbound import Outbox

    cfg = load(agent_config(tmp_path, "f1", 1883))
    out = Outbox(cfg, {"availability": "a", "state": "s"}, "f1", lambda: cfg, random.Random(5))
    expected = random.Random(5).uniform(0.0, cfg.mqtt.discovery_spread)
    out.republish_later()
    try:
        assert out._republish_timer is not None and out._republish_timer.interval == expected
        assert 0 < expected <= 10.0
    finally:
        out.cancel()


# ---- spread and expiry ------------------------------------------------------------------------------

def _ctl(port: int, topics):
    from tests.test_mqtt import Ctl

    return Ctl(port, topics)


def test_broadcast_update_is_spread_and_per_node_update_is_not(setup):
    """Each agent schedules a broadcast within the spread ("at"), and its results come no earlier."""
    broker, agents, _ = setup
    ctl = _ctl(broker.port, ("edgeddns/+/response/#", "edgeddns/+/result"))
    try:
        ctl.send("edgeddns/all/cmd/update", {"id": "spread-1", "force": True, "spread": 2})
        answers = {n: ctl.json(f"edgeddns/{n}/response/update", lambda d: d["id"] == "spread-1") for n in NODES}
        for a in answers.values():
            assert a["status"] == "accepted" and "at" in a, a
            sent = _parse_iso(a["ts"])
            assert sent <= _parse_iso(a["at"]) <= sent + 2.0 + 0.01, a
        for n in NODES:
            res = ctl.json(f"edgeddns/{n}/result", lambda d: d["id"] == "spread-1", timeout=20)
            # The record was not checked before its scheduled time.
            assert _parse_iso(res["ts"]) >= _parse_iso(answers[n]["at"]) - 0.01, (res, answers[n])
        assert len({a["at"] for a in answers.values()}) == len(NODES)  # each its own random delay
        # A per-node command (no spread asked) starts at once: no "at".
        ctl.send("edgeddns/f1/cmd/update", {"id": "now-1", "force": True})
        a = ctl.json("edgeddns/f1/response/update", lambda d: d["id"] == "now-1")
        assert a["status"] == "accepted" and "at" not in a
        # A broadcast without a spread gets the agent's default window (broadcast_spread_force = 2 here).
        ctl.send("edgeddns/all/cmd/update", {"id": "dflt-1", "force": True, "expires": time.time() + 300})
        a = ctl.json("edgeddns/f2/response/update", lambda d: d["id"] == "dflt-1")
        assert _parse_iso(a["ts"]) <= _parse_iso(a["at"]) <= _parse_iso(a["ts"]) + 2.01
    finally:
        ctl.close()


def test_expired_command_is_refused_with_its_id(setup):
    broker, agents, _ = setup
    ctl = _ctl(broker.port, ("edgeddns/+/response/#", "edgeddns/+/result"))
    try:
        ctl.send("edgeddns/all/cmd/update", {"id": "old-1", "force": True, "expires": "2020-01-01T00:00:00Z"})
        for n in NODES:
            a = ctl.json(f"edgeddns/{n}/response/update", lambda d: d["id"] == "old-1")
            assert a["status"] == "rejected" and a["error"]["code"] == "expired", a
        ctl.send("edgeddns/f1/cmd/update", {"id": "bad-exp", "expires": "yesterday"})
        a = ctl.json("edgeddns/f1/response/update", lambda d: d["id"] == "bad-exp")
        assert a["error"]["code"] == "bad_schema" and "expires" in a["error"]["message"]
        ctl.send("edgeddns/f1/cmd/status", {"id": "st-1", "spread": -1})
        assert ctl.json("edgeddns/f1/response/status", lambda d: d["id"] == "st-1")["error"]["code"] == "bad_schema"
        assert not [r for r in ctl.all_json("edgeddns/f1/result") if r.get("id") == "old-1"]
    finally:
        ctl.close()


def _parse_iso(text: str) -> float:
    from edgeddns.commands import utc_seconds

    when = utc_seconds(text)
    assert when is not None, text
    return when


def test_scheduler_holds_a_delayed_event_until_it_is_due(tmp_path):
    """Deterministic: an injected clock, no sleeping."""
    from edgeddns.config import load
    from edgeddns.events import Event
    from edgeddns.scheduler import MAX_DEFERRED, Scheduler

    now = [1000.0]
    cfg = load(agent_config(tmp_path, "f1", 1883))
    s = Scheduler(cfg, monotonic=lambda: now[0], settle=0.0)
    assert s.submit(Event("mqtt", force=True, id="d-1", delay=5.0, settle=False))
    assert s.take(now[0]) is None and s.next_deadline(now[0]) == 1005.0
    now[0] = 1004.9
    assert s.take(now[0]) is None
    now[0] = 1005.0
    jobs = s.take(now[0])
    assert jobs and jobs[0].force and list(jobs[0].ids) == ["d-1"]
    for _ in range(MAX_DEFERRED - 1):
        assert s.submit(Event("mqtt", delay=60.0))
    assert s.submit(Event("mqtt", delay=60.0))  # the 64th
    assert s.submit(Event("mqtt", delay=60.0)) is False  # bounded


def test_reconnect_to_a_broker_that_kept_the_session_resends_no_discovery(tmp_path):
    """A WAN blip: the broker kept the session and the retained configs, so the agent resends its
    availability and state but not its discovery (a fleet would otherwise resend it all at once).
    (A broker that lost everything reports no session: tests/test_mqtt_restarts.py covers restarts.)"""
    from tests.test_mqtt import Ctl

    broker = Mosquitto(str(tmp_path / "mqtt"), users={"ctl": CTL_PW, "f1": AGENT_PW}, acl=ACL).start()
    relay = Relay(broker.port)
    a = AgentProc(agent_config(tmp_path, "f1", relay.port))
    try:
        assert wait_for(lambda: len(_retained(broker.port, wait=0.3)) == 4, 20), a.log
        ctl = Ctl(broker.port, ("homeassistant/#",))
        try:
            time.sleep(0.5)  # the retained copies, delivered on subscribe
            seen = len(ctl.msgs)
            relay.cut()
            assert wait_for(lambda: a.log.count("connected to MQTT broker") >= 2, 30), a.log
            time.sleep(1.5)
            live = [m.topic for m in ctl.msgs[seen:] if not m.retain]
            assert live == [], (live, a.log[-2000:])
        finally:
            ctl.close()
    finally:
        a.stop()
        relay.close()
        broker.stop()


def test_a_delayed_event_whose_expiry_passes_while_it_waits_is_dropped(tmp_path):
    """'expires' holds when the spread work finally runs, not only when the command arrives."""
    from edgeddns.config import load
    from edgeddns.events import Event
    from edgeddns.scheduler import Scheduler

    now, wall = [1000.0], [1_800_000_000.0]
    cfg = load(agent_config(tmp_path, "f1", 1883))
    s = Scheduler(cfg, monotonic=lambda: now[0], wall=lambda: wall[0], settle=0.0)
    assert s.submit(Event("mqtt", force=True, id="late", delay=20.0, expires=wall[0] + 10, settle=False))
    assert s.submit(Event("mqtt", force=True, id="fine", delay=5.0, expires=wall[0] + 10, settle=False))
    now[0] += 5.0
    wall[0] += 5.0
    jobs = s.take(now[0])
    assert jobs and list(jobs[0].ids) == ["fine"]
    s.complete(jobs, [])
    now[0] += 15.0
    wall[0] += 15.0
    assert s.take(now[0]) is None  # "late" was due at +20 s, its expiry at +10 s: dropped
