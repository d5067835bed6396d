"""The MQTT agent end to end: a real Mosquitto, the fake Alidns, ``edgeddns run`` as a process."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, List, Optional

import pytest

from tests.clockfix import chronyd  # noqa: F401 (a fixture, used by name)
from tests.conftest import ALI_ID, ALI_SECRET, ROOT, run_cli, write_config
from tests.mosquitto import MOSQUITTO, Mosquitto, Relay

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (scripts/test installs it)")

AGENT_PW = "agent-pw-0123"
CTL_PW = "ctl-pw-4567"
# Each agent's user name is its node id: the pattern lines confine it to its own subtree.
ACL = """
user ctl
topic readwrite #

user mute
topic write edgeddns/muted/#

pattern readwrite edgeddns/%u/#
pattern read edgeddns/all/cmd/#
pattern readwrite homeassistant/#
"""
NODES = ["n1", "n2", "n3", "n4", "n5", "k1", "k2", "fb"]


class Ctl:
    """A controller: an MQTT 5 client that records everything under a few topics."""

    def __init__(self, port: int, topics=("edgeddns/#",), *, session: Optional[str] = None,
                 user: str = "ctl", password: str = CTL_PW):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.msgs: List[Any] = []
        self.cond = threading.Condition()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=session or "", protocol=mqtt.MQTTv5)
        self.c.username_pw_set(user, password)
        self.c.reconnect_delay_set(0.2, 0.5)
        self.c.on_message = self._on_message
        self.ready = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics]) if not f.session_present \
            else self.ready.set()
        self.c.on_subscribe = lambda *a: self.ready.set()
        props = None
        if session:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 300
        self.c.connect("127.0.0.1", port, clean_start=session is None, properties=props)
        self.c.loop_start()
        assert self.ready.wait(10), "the controller could not subscribe"

    def _on_message(self, c, u, m):
        with self.cond:
            self.msgs.append(m)
            self.cond.notify_all()

    def wait(self, pred: Callable[[Any], bool], timeout: float = 15.0) -> Any:
        end = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for m in self.msgs[seen:]:
                    if pred(m):
                        return m
                seen = len(self.msgs)
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching message; got {[(m.topic, m.payload[:120]) for m in self.msgs]}")
                self.cond.wait(left)

    def json(self, topic: str, pred: Callable[[dict], bool] = lambda d: True, timeout: float = 15.0) -> dict:
        def ok(m):
            if m.topic != topic:
                return False
            try:
                return pred(json.loads(m.payload))
            except ValueError:
                return False
        return json.loads(self.wait(ok, timeout).payload)

    def all_json(self, topic: str) -> List[dict]:
        with self.cond:
            return [json.loads(m.payload) for m in self.msgs if m.topic == topic]

    def send(self, topic: str, payload: Any, qos: int = 1, props: Any = None) -> None:
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload)
        self.c.publish(topic, payload, qos=qos, properties=props).wait_for_publish(5)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


class AgentProc:
    def __init__(self, cfg: str, log: str):
        self.log = log
        env = dict(os.environ, PYTHONPATH=ROOT)
        self.p = subprocess.Popen([sys.executable, "-m", "edgeddns", "run", "-v", "-c", cfg], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=open(log, "w"))

    def stderr(self) -> str:
        return open(self.log).read()

    def wait_log(self, text: str, timeout: float = 15.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.stderr():
                return
            assert self.p.poll() is None, self.stderr()
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not logged:\n{self.stderr()}")

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        return self.p.wait(20)


@pytest.fixture(scope="module")
def tls_files(ca, tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(d / "server.key"))
    cert.cert_chain_pems[0].write_to_path(str(d / "server.crt"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    return {"ca": str(d / "ca.pem"), "cert": str(d / "server.crt"), "key": str(d / "server.key")}


@pytest.fixture(scope="module")
def broker(tmp_path_factory, tls_files):
    users = {n: AGENT_PW for n in NODES}
    users.update(ctl=CTL_PW, mute=AGENT_PW)
    b = Mosquitto(str(tmp_path_factory.mktemp("mosq")), users=users, acl=ACL, tls=tls_files).start()
    yield b
    b.stop()


def agent_config(tmp_path, node: str, port: int, *, fake=None, ca_file: str = "", mqtt_extra: str = "",
                 agent_extra: str = "", ipfile: Optional[str] = None, user: Optional[str] = None,
                 hosts: bool = False) -> str:
    ip = f"cmd:cat {ipfile}" if ipfile else "static:8.8.8.8"
    if hosts:
        provider = f'[providers.p]\ntype = "hosts"\npath = "{tmp_path}/hosts"\n'
        records = '[[records]]\nname = "a.lan"\nprovider = "p"\nallow_private = true\n'
    else:
        provider = (f'[providers.p]\ntype = "alidns"\naccess_key_id = "{ALI_ID}"\n'
                    f'access_key_secret = "{ALI_SECRET}"\nendpoint = "{fake.url}"\nca_file = "{ca_file}"\n'
                    'timeout = 3\n')
        records = '[[records]]\nname = "home.example.com"\nprovider = "p"\n'
    return write_config(tmp_path, f"""
[agent]
node_id = "{node}"
state_dir = "{tmp_path}/state"
{agent_extra}
[ip]
ipv4 = ["{ip}"]
{provider}
[mqtt]
host = "127.0.0.1"
port = {port}
username = "{user or node}"
password = "{AGENT_PW}"
{mqtt_extra}

{records}
""", name=f"{node}.toml")


def fake_value(fake, name="home.example.com") -> Optional[str]:
    recs = fake.find(name, "A")
    return recs[0]["Value"] if recs else None


# ---- one agent, many commands ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def n1(broker, tmp_path_factory, ca_file, server_context):
    from tests.fakes.alidns import FakeAlidns
    from tests.fakes.server import FakeServer

    tmp = tmp_path_factory.mktemp("n1")
    fake = FakeAlidns({ALI_ID: ALI_SECRET}, ["example.com"])
    srv = FakeServer(fake, ssl_context=server_context).start()
    fake.url = srv.url
    ipfile = str(tmp / "ip")
    with open(ipfile, "w") as f:
        f.write("8.8.8.8\n")
    cfg = agent_config(tmp, "n1", broker.port, fake=fake, ca_file=ca_file, ipfile=ipfile,
                       mqtt_extra="accept_ip = true")
    ctl = Ctl(broker.port)
    agent = AgentProc(cfg, str(tmp / "agent.log"))
    ctl.json("edgeddns/n1/result", lambda d: d["trigger"] == "startup")
    yield {"agent": agent, "ctl": ctl, "fake": fake, "ipfile": ipfile, "cfg": cfg, "broker": broker}
    rc = agent.stop()
    ctl.close()
    srv.stop()
    err = agent.stderr()
    assert rc == 0, err
    assert "Traceback" not in err, err
    assert ALI_SECRET not in err and AGENT_PW not in err


def test_update_command_changes_record_and_answers_with_same_id(n1):
    ctl, fake = n1["ctl"], n1["fake"]
    assert fake_value(fake) == "8.8.8.8"
    with open(n1["ipfile"], "w") as f:
        f.write("1.1.1.1\n")
    ctl.send("edgeddns/n1/cmd/update", {"id": "u-1"})
    resp = ctl.json("edgeddns/n1/response/update", lambda d: d["id"] == "u-1")
    assert resp["status"] == "accepted" and resp["node"] == "n1"
    res = ctl.json("edgeddns/n1/result", lambda d: d["id"] == "u-1")
    assert res["status"] == "updated" and res["ip"] == "1.1.1.1" and res["previous_ip"] == "8.8.8.8"
    assert res["trigger"] == "mqtt" and res["clock"]["source"] == "system"
    assert fake_value(fake) == "1.1.1.1"
    # The retained state and availability reach a subscriber that comes later.
    late = Ctl(n1["broker"].port, ("edgeddns/n1/state", "edgeddns/n1/availability"))
    try:
        m = late.wait(lambda m: m.topic == "edgeddns/n1/availability")
        assert m.retain and m.payload == b"online"
        st = json.loads(late.wait(lambda m: m.topic == "edgeddns/n1/state" and b"1.1.1.1" in m.payload).payload)
        assert st["version"] and st["started"] and st["clock"]["source"] == "system"
        assert st["records"][0]["ip"] == "1.1.1.1"
    finally:
        late.close()


def test_repeated_id_gets_the_earlier_answer_and_no_second_update(n1):
    ctl, fake = n1["ctl"], n1["fake"]
    ctl.send("edgeddns/n1/cmd/update", {"id": "dup-1", "force": True})
    first = ctl.json("edgeddns/n1/response/update", lambda d: d["id"] == "dup-1")
    ctl.json("edgeddns/n1/result", lambda d: d["id"] == "dup-1")
    calls = len(fake.calls)
    ctl.send("edgeddns/n1/cmd/update", {"id": "dup-1", "force": True})
    again = ctl.json("edgeddns/n1/response/update", lambda d: d["id"] == "dup-1" and d.get("duplicate"))
    assert {k: v for k, v in again.items() if k != "duplicate"} == first
    # Commands are handled in order: once this one's result is out, a second run of dup-1 would have been too.
    ctl.send("edgeddns/n1/cmd/update", {"id": "after-dup"})
    ctl.json("edgeddns/n1/result", lambda d: d["id"] == "after-dup")
    assert len([d for d in ctl.all_json("edgeddns/n1/result") if d["id"] == "dup-1"
                or "dup-1" in d.get("ids", [])]) == 1
    assert len(fake.calls) == calls  # the later, unforced update needed no provider call


def test_broadcast_and_mqtt5_response_topic(n1):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    ctl = n1["ctl"]
    ctl.send("edgeddns/all/cmd/update", {"id": "fleet-1"})
    assert ctl.json("edgeddns/n1/response/update", lambda d: d["id"] == "fleet-1")["status"] == "accepted"
    assert ctl.json("edgeddns/n1/result", lambda d: d["id"] == "fleet-1")["trigger"] == "mqtt"
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "edgeddns/n1/response/rpc-7"
    props.CorrelationData = b"\x00corr-7"
    ctl.send("edgeddns/n1/cmd/status", {"id": "st-7"}, props=props)
    m = ctl.wait(lambda m: m.topic == "edgeddns/n1/response/rpc-7")
    assert m.properties.CorrelationData == b"\x00corr-7"
    d = json.loads(m.payload)
    assert d["id"] == "st-7" and d["status"] == "ok" and d["state"]["records"][0]["record"] == "home.example.com"
    # A malformed request is answered the same way, with an error code.
    props.CorrelationData = b"bad"
    ctl.send("edgeddns/n1/cmd/update", b"{nope", props=props)
    m = ctl.wait(lambda m: m.topic == "edgeddns/n1/response/rpc-7" and m.properties.CorrelationData == b"bad")
    assert json.loads(m.payload)["error"]["code"] == "bad_json"


@pytest.mark.parametrize("payload,code", [
    (b"\xff\xfe", "bad_encoding"),
    (b"[1, 2]", "bad_schema"),
    ({"id": 5}, "bad_schema"),
    ({"id": "r1", "records": ["nothere.example.com"]}, "unknown_record"),
    ({"id": "r2", "force": "yes"}, "bad_schema"),
    ({"id": "r3", "ipv4": "10.0.0.1"}, "not_public"),
    ({"id": "r4", "ipv4": "2001:db8::1"}, "bad_address"),
    ({"id": "r5", "ipv6": "not an address"}, "bad_address"),
    (b"{" + b" " * 5000 + b"}", "too_large"),
])
def test_malformed_update_is_rejected_with_a_code(n1, payload, code):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    ctl = n1["ctl"]
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "edgeddns/n1/response/malformed"
    props.CorrelationData = f"m-{code}-{random.random()}".encode()
    ctl.send("edgeddns/n1/cmd/update", payload, props=props)
    m = ctl.wait(lambda m: m.topic == props.ResponseTopic and m.properties.CorrelationData == props.CorrelationData)
    d = json.loads(m.payload)
    assert d["status"] == "rejected" and d["error"]["code"] == code and d["error"]["message"]
    assert n1["agent"].p.poll() is None


def test_accept_ip_uses_a_public_address_from_the_command(n1):
    ctl, fake = n1["ctl"], n1["fake"]
    ctl.send("edgeddns/n1/cmd/update", {"id": "ip-1", "ipv4": "9.9.9.9"})
    res = ctl.json("edgeddns/n1/result", lambda d: d["id"] == "ip-1")
    assert res["ip"] == "9.9.9.9" and res["source"] == "event:mqtt" and fake_value(fake) == "9.9.9.9"


def test_unknown_action_sync_time_and_reload(n1):
    ctl = n1["ctl"]
    ctl.send("edgeddns/n1/cmd/explode", {"id": "x-1"})
    assert ctl.json("edgeddns/n1/response/explode", lambda d: d["id"] == "x-1")["error"]["code"] == "unknown_action"
    ctl.send("edgeddns/n1/cmd/sync_time", {"id": "t-1"})
    d = ctl.json("edgeddns/n1/response/sync_time", lambda d: d["id"] == "t-1")
    assert d["status"] in ("ok", "failed") and "offset" in d["clock"]
    cfg = n1["cfg"]
    good = open(cfg).read()
    with open(cfg, "w") as f:
        f.write(good.replace('provider = "p"', 'provider = "nope"'))
    ctl.send("edgeddns/n1/cmd/reload", {"id": "rl-1"})
    d = ctl.json("edgeddns/n1/response/reload", lambda d: d["id"] == "rl-1")
    assert d["status"] == "rejected" and d["error"]["code"] == "config" and "records[0].provider" in \
        d["error"]["message"]
    with open(cfg, "w") as f:
        f.write(good)
    ctl.send("edgeddns/n1/cmd/reload", {"id": "rl-2"})
    assert ctl.json("edgeddns/n1/response/reload", lambda d: d["id"] == "rl-2")["status"] == "ok"


def test_home_assistant_discovery(n1):
    late = Ctl(n1["broker"].port, ("homeassistant/#",))
    try:
        got = {}
        for kind in ("sensor/n1/home_example_com_a", "binary_sensor/n1/home_example_com_a_problem",
                     "button/n1/update_now", "sensor/n1/clock_offset"):
            m = late.wait(lambda m, k=kind: m.topic == f"homeassistant/{k}/config")
            assert m.retain
            got[kind] = json.loads(m.payload)
    finally:
        late.close()
    ids = {tuple(p["device"]["identifiers"]) for p in got.values()}
    assert ids == {("edgeddns_n1",)}
    assert all(p["availability_topic"] == "edgeddns/n1/availability" for p in got.values())
    assert got["button/n1/update_now"]["command_topic"] == "edgeddns/n1/cmd/update"
    assert got["binary_sensor/n1/home_example_com_a_problem"]["device_class"] == "problem"
    assert len({p["unique_id"] for p in got.values()}) == 4


def _corpus(n: int, seed: int = 7) -> List[tuple]:
    """Hundreds of malformed or odd commands: random bytes, wrong types, deep nesting, junk topics."""
    rng = random.Random(seed)
    values: List[Any] = [None, True, 0, -1, 1.5, 1e308, "", "x" * 300, [], {}, [None], {"a": {}}, "8.8.8.8",
                         "::1", "10.0.0.1", "999.1.1.1", "2001:4860::8888", "\u202e\u0000", ["home.example.com"] * 80]
    keys = ["id", "records", "force", "ipv4", "ipv6", "iface", "junk"]
    actions = ["update", "status", "update", "nope", "UPDATE", "update/deeper", "sync_time", "x" * 60, "probe"]
    out = []
    for i in range(n):
        kind = i % 6
        if kind == 0:
            payload: bytes = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
        elif kind == 1:
            payload = json.dumps({rng.choice(keys): rng.choice(values) for _ in range(rng.randint(1, 4))}).encode()
        elif kind == 2:
            payload = (b"[" * rng.randint(1, 3000))
        elif kind == 3:
            payload = json.dumps(rng.choice(values)).encode()
        elif kind == 4:
            payload = b'{"id": "' + bytes(rng.getrandbits(8) for _ in range(8)) + b'"}'
        else:
            payload = json.dumps({"id": "z" * rng.randint(100, 200), "records": rng.choice(values)}).encode()
        out.append((rng.choice(actions), payload))
    return out


def test_fuzzed_commands_never_break_the_agent(n1):
    ctl = n1["ctl"]
    for action, payload in _corpus(400):
        ctl.c.publish(f"edgeddns/n1/cmd/{action}", payload, qos=0)
    ctl.send("edgeddns/n1/cmd/status", {"id": "alive-after-fuzz"})
    d = ctl.json("edgeddns/n1/response/status", lambda d: d["id"] == "alive-after-fuzz", timeout=30)
    assert d["status"] == "ok"
    assert n1["agent"].p.poll() is None
    assert "Traceback" not in n1["agent"].stderr()


def test_commands_parse_never_raises():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from edgeddns.commands import Command, Rejection, parse
    from edgeddns.config import load

    cfg = load(os.path.join(ROOT, "config.toml"))
    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
                               lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                                            inner, max_size=4),
                               max_leaves=12)
    objects = st.dictionaries(st.sampled_from(["id", "records", "force", "ipv4", "ipv6", "iface", "x"]),
                              json_values, max_size=5).map(lambda d: json.dumps(d).encode())

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(["update", "status", "reload", "sync_time", "?"]), st.binary(max_size=200) | objects,
           st.booleans(), st.booleans())
    def check(action, payload, retained, accept_ip):
        out = parse(action, payload, cfg, retained=retained, accept_ip=accept_ip)
        assert isinstance(out, (Command, Rejection))
        if isinstance(out, Rejection):
            assert out.code != "internal", out
        elif accept_ip:
            assert all(v not in ("10.0.0.1",) for v in out.addresses.values())

    check()


# ---- the last will, broker outages, TLS, ACLs, client ids ----------------------------------------------

def test_sigkill_leaves_offline_from_the_last_will(broker, tmp_path):
    cfg = agent_config(tmp_path, "n2", broker.port, hosts=True)
    ctl = Ctl(broker.port, ("edgeddns/n2/availability",))
    agent = AgentProc(cfg, str(tmp_path / "agent.log"))
    try:
        ctl.wait(lambda m: m.payload == b"online")
        agent.p.kill()
        agent.p.wait()
        ctl.wait(lambda m: m.payload == b"offline")
    finally:
        ctl.close()
        agent.stop()
    late = Ctl(broker.port, ("edgeddns/n2/availability",))
    try:
        m = late.wait(lambda m: True)
        assert m.payload == b"offline" and m.retain
    finally:
        late.close()


def test_clean_stop_publishes_offline(broker, tmp_path):
    cfg = agent_config(tmp_path, "n5", broker.port, hosts=True)
    ctl = Ctl(broker.port, ("edgeddns/n5/availability",))
    agent = AgentProc(cfg, str(tmp_path / "agent.log"))
    try:
        ctl.wait(lambda m: m.payload == b"online")
        assert agent.stop() == 0
        ctl.wait(lambda m: m.payload == b"offline")
    finally:
        ctl.close()


def test_update_during_broker_outage_is_published_after_reconnect(tmp_path, alidns, ca_file):
    users = {"n3": AGENT_PW, "ctl": CTL_PW}
    b = Mosquitto(str(tmp_path / "mosq"), users=users, acl=ACL, persistence=True).start()
    ipfile = str(tmp_path / "ip")
    with open(ipfile, "w") as f:
        f.write("8.8.8.8\n")
    # Through a relay that holds the agent off after the restart until the controller has subscribed
    # again: Mosquitto 2.0 restores no session after a restart, so a result flushed before that would
    # be lost to the controller (not by the agent), a race the test would otherwise measure.
    relay = Relay(b.port)
    cfg = agent_config(tmp_path, "n3", relay.port, fake=alidns, ca_file=ca_file, ipfile=ipfile)
    ctl = Ctl(b.port, ("edgeddns/n3/result",), session="ctl-outage")
    agent = AgentProc(cfg, str(tmp_path / "agent.log"))
    try:
        ctl.json("edgeddns/n3/result", lambda d: d["ip"] == "8.8.8.8")
        b.stop()
        agent.wait_log("MQTT connection lost")
        with open(ipfile, "w") as f:
            f.write("1.0.0.1\n")
        # A hotplug trigger while the broker is down (it used to be the once-only poll, hence flaky).
        r = run_cli("trigger", "-c", cfg, "--iface", "wan", "--action", "ifupdate")
        assert r.returncode == 0, r.stderr
        end = time.monotonic() + 20
        while fake_value(alidns) != "1.0.0.1":
            assert time.monotonic() < end, agent.stderr()
            time.sleep(0.1)
        relay.held = True
        ctl.ready.clear()  # before the start: the controller may be back before b.start() returns
        b.start()
        assert ctl.ready.wait(30), "the controller did not resubscribe"
        relay.held = False  # now the agent may reconnect and flush what waited in its queue
        d = ctl.json("edgeddns/n3/result", lambda d: d["ip"] == "1.0.0.1" and d["status"] == "updated", timeout=30)
        assert d["trigger"] == "hotplug" and d["previous_ip"] == "8.8.8.8"
        assert agent.stop() == 0
        assert "Traceback" not in agent.stderr()
    finally:
        ctl.close()
        agent.stop()
        relay.close()
        b.stop()


def test_tls_verifies_the_broker(broker, tmp_path, tls_files):
    import trustme

    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    good = agent_config(tmp_path, "n4", broker.tls_port, hosts=True,
                        mqtt_extra=f'tls = true\nca_file = "{tls_files["ca"]}"')
    ctl = Ctl(broker.port, ("edgeddns/n4/availability",))
    agent = AgentProc(good, str(tmp_path / "good.log"))
    try:
        ctl.wait(lambda m: m.payload == b"online")
    finally:
        agent.stop()
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = agent_config(bad_dir, "n4", broker.tls_port, hosts=True, mqtt_extra=f'tls = true\nca_file = "{other}"')
    agent = AgentProc(bad, str(tmp_path / "bad.log"))
    try:
        agent.wait_log("certificate could not be verified")
        agent.wait_log("updated      a.lan")  # no broker, but the agent does its work
    finally:
        assert agent.stop() == 0
        ctl.close()


def test_acl_that_swallows_commands_is_reported(broker, tmp_path):
    cfg = agent_config(tmp_path, "muted", broker.port, hosts=True, user="mute")
    agent = AgentProc(cfg, str(tmp_path / "agent.log"))
    try:
        agent.wait_log("did not come back", timeout=20)
    finally:
        assert agent.stop() == 0


def test_second_agent_with_the_same_client_id_is_reported(broker, tmp_path):
    a = AgentProc(agent_config(tmp_path, "k1", broker.port, hosts=True, mqtt_extra='client_id = "dup"'),
                  str(tmp_path / "k1.log"))
    (tmp_path / "b").mkdir()
    b = None
    try:
        a.wait_log("connected to MQTT broker")
        b = AgentProc(agent_config(tmp_path / "b", "k2", broker.port, hosts=True, mqtt_extra='client_id = "dup"'),
                      str(tmp_path / "k2.log"))
        a.wait_log("same client id")
    finally:
        a.stop()
        if b is not None:
            b.stop()


def test_falls_back_to_mqtt_311_when_the_broker_refuses_5(tmp_path):
    """A minimal broker that speaks only 3.1.1: it refuses protocol level 5 like old brokers do."""
    levels: List[int] = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.settimeout(20)

    def serve():
        try:
            while len(levels) < 2:
                conn, _ = srv.accept()
                data = conn.recv(1024)
                # fixed header (1) + remaining length (1) + "\x00\x04MQTT" (6) + level
                levels.append(data[8])
                if data[8] == 5:
                    conn.sendall(b"\x20\x02\x00\x01")  # CONNACK: unacceptable protocol version
                    conn.close()
                else:
                    conn.sendall(b"\x20\x02\x00\x00")
                    time.sleep(0.5)
                    conn.close()
        except OSError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    cfg = agent_config(tmp_path, "fb", srv.getsockname()[1], hosts=True, mqtt_extra="discovery = false")
    agent = AgentProc(cfg, str(tmp_path / "agent.log"))
    try:
        agent.wait_log("trying MQTT 3.1.1")
        agent.wait_log("(MQTT 3.1.1)")
    finally:
        agent.stop()
        srv.close()
    assert levels[:2] == [5, 4]


def test_sync_time_measures_the_clock_again(broker, tmp_path, chronyd):  # noqa: F811 (the fixture)
    """`sync_time` asks NTP at once (a real chronyd) and answers the clock it now uses."""
    cfg = agent_config(tmp_path, "n4", broker.port, hosts=True)
    with open(cfg) as f:
        text = f.read().replace('[clock]\nmode = "system"', f'[clock]\nmode = "ntp"\nntp_servers = ["{chronyd}"]')
    with open(cfg, "w") as f:
        f.write(text)
    ctl = Ctl(broker.port, ("edgeddns/n4/#",))
    agent = AgentProc(cfg, str(tmp_path / "agent.log"))
    try:
        ctl.json("edgeddns/n4/result", lambda d: d["trigger"] == "startup")
        ctl.send("edgeddns/n4/cmd/sync_time", {"id": "s-ntp"})
        d = ctl.json("edgeddns/n4/response/sync_time", lambda d: d["id"] == "s-ntp")
        assert d["status"] == "ok" and d["clock"]["source"] == f"ntp:{chronyd}" and abs(d["clock"]["offset"]) < 1
        assert agent.stop() == 0
    finally:
        ctl.close()
        agent.stop()
