"""What a node can make `edgeddns fleet` believe: a real Mosquitto with the ACL of docs/mqtt.md as written.

Every agent may write its own subtree and the controllers' response topic (`edgeddns/ctl/+/response`),
and reads every broadcast (so it sees the controller's id and correlation data). A compromised node
must not be able to speak for another node, make a fleet update look successful, forge rows of the
status table, or cost the controller unbounded memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import ROOT, write_config
from tests.mosquitto import MOSQUITTO, Mosquitto

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (scripts/test installs it)")

PW = "pw-fleet-0123"
# docs/mqtt.md's ACL, verbatim apart from the dashboard user.
ACL = """
pattern readwrite edgeddns/%u/#
pattern read      edgeddns/all/cmd/#
pattern write     homeassistant/+/%u/#
pattern read      homeassistant/status
pattern write     edgeddns/ctl/+/response

user admin
topic readwrite edgeddns/#
"""
NODES = ("router1", "router2", "router3")


def _client(port: int, user: str, topics=()):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{os.urandom(3).hex()}", protocol=mqtt.MQTTv5)
    c.username_pw_set(user, PW)
    ready = threading.Event()
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe([(t, 1) for t in topics]) if topics else ready.set()
    c.on_subscribe = lambda *a: ready.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(10), f"{user} could not connect"
    return c


def _publish(c, topic: str, payload, retain: bool = False, props=None) -> None:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    c.publish(topic, data, qos=1, retain=retain, properties=props).wait_for_publish(10)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    d = tmp_path_factory.mktemp("fleetsec")
    b = Mosquitto(str(d / "mqtt"), users={"admin": PW, **{n: PW for n in NODES}}, acl=ACL).start()
    ctl = write_config(d, f"""
        [agent]
        node_id = "controller"
        state_dir = "{d}/state"
        [mqtt]
        host = "127.0.0.1"
        port = {b.port}
        username = "admin"
        password = "{PW}"
    """)
    try:
        yield b, ctl
    finally:
        b.stop()


def _fleet(ctl: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeddns", "fleet", *args, "-c", ctl], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT, timeout=60)


def _clear(port: int) -> None:
    for n in NODES:
        c = _client(port, n)
        for t in ("availability", "state"):
            _publish(c, f"edgeddns/{n}/{t}", b"", retain=True)
        c.disconnect()


@pytest.mark.parametrize("where", ["shared_response_topic", "own_topic"])
def test_a_node_cannot_answer_for_another_or_fake_a_fleet_success(broker, where):
    """router1 is compromised; the victim is online but does nothing (hung, or already taken over).

    Before: router1 answered for the victim (on the shared response topic with the broadcast's own
    correlation data, or on its own response topic with "node": victim); `fleet update` counted the
    victim as answered and exited 0 although it had done nothing.
    """
    b, ctl = broker
    _clear(b.port)
    victim = "router2" if where == "shared_response_topic" else "router3"
    vc = _client(b.port, victim)
    _publish(vc, f"edgeddns/{victim}/availability", b"online", retain=True)
    evil = _client(b.port, "router1", ["edgeddns/all/cmd/update"])
    _publish(evil, "edgeddns/router1/availability", b"online", retain=True)

    def forge(client, userdata, msg):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        cid = json.loads(msg.payload)["id"]
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = msg.properties.CorrelationData
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        # Its own answer and result look genuine.
        client.publish(msg.properties.ResponseTopic, json.dumps(
            {"id": cid, "node": "router1", "action": "update", "status": "accepted", "records": None, "ts": ts}),
            qos=1, properties=props)
        client.publish("edgeddns/router1/result", json.dumps(
            {"id": cid, "record": "router1.example.com", "status": "unchanged", "ts": ts}), qos=1)
        # And it speaks for the victim.
        lie = json.dumps({"id": cid, "node": victim, "action": "update", "status": "done", "ts": ts})
        if where == "shared_response_topic":
            client.publish(msg.properties.ResponseTopic, lie, qos=1, properties=props)
        else:
            client.publish("edgeddns/router1/response/update", lie, qos=1)

    evil.on_message = forge
    try:
        p = _fleet(ctl, "update", "--json", "--spread", "0", "--timeout", "3")
        rep = json.loads(p.stdout)
        assert set(rep["expected"]) == {"router1", victim}, rep
        assert rep["nodes"]["router1"]["results"], rep  # the compromised node's own word about itself stands
        assert rep["nodes"][victim]["results"] == []
        assert p.returncode == 1, p.stdout + p.stderr
        if where == "own_topic":
            # No node speaks for another on its own topic (the ACL says who wrote there): the victim is silent.
            assert rep["silent"] == [victim], rep
        else:
            # Anyone may write the shared topic: a claim there proves nothing without the node's results.
            assert rep["silent"] == [] and rep["unconfirmed"] == [victim], rep
    finally:
        evil.disconnect()
        vc.disconnect()


def test_a_nodes_huge_retained_state_never_reaches_the_controller(broker):
    """Before: `fleet status` read an 8 MiB retained state whole (a 200 MB one just as well)."""
    b, ctl = broker
    _clear(b.port)
    big, small = _client(b.port, "router2"), _client(b.port, "router3")
    try:
        huge = {"records": [{"record": "router2.example.com", "type": "A", "ip": "93.184.216.34",
                             "status": "unchanged", "pad": "x" * (8 << 20)}]}
        _publish(big, "edgeddns/router2/state", huge, retain=True)
        _publish(big, "edgeddns/router2/availability", b"online", retain=True)
        _publish(small, "edgeddns/router3/state", {"records": [
            {"record": "router3.example.com", "type": "A", "ip": "93.184.216.35", "status": "unchanged"}]},
            retain=True)
        _publish(small, "edgeddns/router3/availability", b"online", retain=True)
        p = _fleet(ctl, "status", "--json")
        assert p.returncode == 0, p.stdout + p.stderr
        rows = {r["node"]: r for r in json.loads(p.stdout)["nodes"]}
        assert rows["router3"]["records"][0]["ip"] == "93.184.216.35"  # the others are read as before
        assert rows["router2"]["online"] is True and rows["router2"]["records"] == [], rows["router2"]
    finally:
        big.disconnect()
        small.disconnect()


def test_a_nodes_state_cannot_forge_rows_or_drive_the_terminal(broker):
    """Before: a record name with a newline printed a whole fake row for router3 (which does not exist),
    and an escape sequence went to the operator's terminal as is."""
    b, ctl = broker
    _clear(b.port)
    evil = _client(b.port, "router1")
    try:
        forged = "x\nrouter3              online   clock ntp                  bank.example.com A 6.6.6.6 updated"
        _publish(evil, "edgeddns/router1/state", {"records": [
            {"record": forged, "type": "A", "ip": "\x1b]0;owned\x07\x1b[2J93.184.216.34", "status": "unchanged",
             "error": {"code": "x\u2028y\x9b\u202e"}}], "clock": {"source": "ntp\rrouter9"}}, retain=True)
        _publish(evil, "edgeddns/router1/availability", b"online", retain=True)
        p = _fleet(ctl, "status")
        assert p.returncode == 0, p.stdout + p.stderr
        lines = p.stdout.splitlines()
        assert len(lines) == 1 and lines[0].startswith("router1 "), p.stdout
        assert not any(ch in p.stdout for ch in "\x1b\x07\r\u2028\x9b\u202e"), repr(p.stdout)
        js = json.loads(_fleet(ctl, "status", "--json").stdout)
        assert "\n" not in js["nodes"][0]["records"][0]["record"]
    finally:
        evil.disconnect()


def test_a_node_with_odd_shapes_cannot_break_the_controller(broker):
    """Before: one node's state with an "error" that is a string, or a "clock" source that is an object, or
    an answer whose "records" held an object, ended `fleet status` / `fleet update` in a traceback, so
    nobody saw the rest of the fleet."""
    b, ctl = broker
    _clear(b.port)
    evil = _client(b.port, "router1", ["edgeddns/all/cmd/update"])
    good = _client(b.port, "router3")
    try:
        _publish(evil, "edgeddns/router1/state", {"records": [{"record": "a.example.com", "error": "boom",
                                                               "ip": {"x": 1}, "status": None}, 7],
                                                  "clock": {"source": {"x": 1}}}, retain=True)
        _publish(evil, "edgeddns/router1/availability", b"online", retain=True)
        _publish(good, "edgeddns/router3/state", {"records": [{"record": "router3.example.com", "type": "A",
                                                               "ip": "93.184.216.35", "status": "unchanged"}],
                                                  "clock": {"source": "ntp"}}, retain=True)
        for args in (("status",), ("status", "--json")):
            p = _fleet(ctl, *args)
            assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
            assert "router3" in p.stdout and "93.184.216.35" in p.stdout, p.stdout

        def answer(client, userdata, msg):
            cid = json.loads(msg.payload)["id"]
            client.publish("edgeddns/router1/response/update", json.dumps(
                {"id": cid, "node": "router1", "status": "accepted", "records": ["a.example.com"], "ts": [], "at": {}}),
                qos=1)
            client.publish("edgeddns/router1/result", json.dumps({"id": cid, "record": {"x": 1}, "status": []}), qos=1)
            client.publish("edgeddns/router1/response/update", json.dumps(
                {"id": cid, "node": "router1", "status": {"x": 1}, "records": [{"a": 1}]}), qos=1)

        evil.on_message = answer
        for args in (("update", "--spread", "0", "--timeout", "2"),
                     ("update", "--json", "--spread", "0", "--timeout", "2")):
            p = _fleet(ctl, *args)
            assert p.returncode == 1 and "Traceback" not in p.stderr, p.stdout + p.stderr
            assert "router1" in p.stdout, p.stdout
    finally:
        evil.disconnect()
        good.disconnect()


def test_an_answer_to_another_action_is_not_an_answer_to_the_update():
    """The documented dashboard user may send only cmd/status, but reads the broadcast (its id, response topic
    and correlation data): a status sent with those made the agent answer "ok" on the controller's topic, and
    before, a node that had not updated counted as answered (first answer wins). The boundary, fed directly:
    with a real broker the order of the two answers is a race."""
    from edgeddns.fleet import Fleet

    f = Fleet("edgeddns")
    f.cid, f.response = "fleet-1", "edgeddns/ctl/c1/response"
    f.feed("edgeddns/router2/availability", b"online", time.monotonic)
    f.feed(f.response, json.dumps({"id": "fleet-1", "node": "router2", "action": "status", "status": "ok"}).encode(),
           time.monotonic, b"fleet-1")
    assert f.nodes["router2"].answer is None
    f.feed(f.response, json.dumps({"id": "fleet-1", "node": "router2", "action": "update", "status": "accepted",
                                   "records": None}).encode(), time.monotonic, b"fleet-1")
    assert f.nodes["router2"].answer["status"] == "accepted" and f.nodes["router2"].via == "response-topic"
