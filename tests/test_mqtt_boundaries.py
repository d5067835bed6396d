"""Hostile MQTT input, tried against a real Mosquitto that runs the ACL docs/mqtt.md documents.

Users: ``router1`` (the agent, confined by the doc's ``%u`` patterns), ``admin`` (everything) and
``dashboard``, the doc's limited user: it may read ``edgeddns/#`` and send only ``cmd/status``.
Each test here failed on the code before the fix it holds (see SECURITY.md).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import List

import pytest

from tests.clockfix import chronyd, dated_context, faketime, faketime_tools  # noqa: F401 (fixtures)
from tests.conftest import ROOT, write_config
from tests.mosquitto import MOSQUITTO, Mosquitto
from tests.test_mqtt import AgentProc, Ctl

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (scripts/test installs it)")

PW = {"router1": "r1-pw-0123", "router2": "r2-pw-0123", "router3": "r3-pw-0123", "admin": "admin-pw-4567",
      "dashboard": "dash-pw-8901"}
# A scope id may hold any text for ``ipaddress``, line breaks and blanks included.
INJECTION = "2606:4700::1%x\n6.6.6.6 bank.example.com"


def documented_acl() -> str:
    """The ACL block of docs/mqtt.md, exactly as a user would copy it."""
    text = open(os.path.join(ROOT, "docs", "mqtt.md")).read()
    start = text.index("```\n# /etc/mosquitto/acl\n") + 4
    block = text[start:text.index("```", start)]
    assert "user dashboard" in block and "pattern readwrite edgeddns/%u/#" in block
    return block


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Mosquitto(str(tmp_path_factory.mktemp("mosq")), users=PW, acl=documented_acl()).start()
    yield b
    b.stop()


def router_config(tmp_path, port: int, mqtt_extra: str = "", node: str = "router1", clock: str = "") -> str:
    return write_config(tmp_path, f"""{clock}
[agent]
node_id = "{node}"
state_dir = "{tmp_path}/state"
[ip]
ipv4 = ["static:8.8.8.8"]
ipv6 = ["static:2001:4860:4860::8888"]
[providers.lan]
type = "hosts"
path = "{tmp_path}/hosts"
[mqtt]
host = "127.0.0.1"
port = {port}
username = "{node}"
password = "{PW[node]}"
accept_ip = true
{mqtt_extra}

[[records]]
name = "a.lan"
type = "AAAA"
provider = "lan"
""", name=f"{node}.toml")


@pytest.fixture(scope="module")
def router(broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("router1")
    cfg = router_config(tmp, broker.port)
    admin = Ctl(broker.port, user="admin", password=PW["admin"])
    agent = AgentProc(cfg, str(tmp / "agent.log"))
    admin.json("edgeddns/router1/result", lambda d: d["trigger"] == "startup")
    yield {"agent": agent, "admin": admin, "dir": tmp, "broker": broker}
    rc = agent.stop()
    admin.close()
    err = agent.stderr()
    assert rc == 0, err
    assert "Traceback" not in err, err


def from_agent(ctl: Ctl) -> List[bytes]:
    """Every payload the agent published (commands sent by the tests are left out)."""
    with ctl.cond:
        return [bytes(m.payload) for m in ctl.msgs if "/cmd/" not in m.topic]


def settle(router, cid: str) -> dict:
    """Send an update and wait for its result: the agent's worker has finished everything before it."""
    admin = router["admin"]
    admin.send("edgeddns/router1/cmd/update", {"id": cid, "force": True})
    return admin.json("edgeddns/router1/result", lambda d: d.get("id") == cid or cid in (d.get("ids") or []))


# ---- 1. address injection -----------------------------------------------------------------------

def test_scope_id_address_injection_never_reaches_the_hosts_file(router):
    admin, d = router["admin"], router["dir"]
    admin.send("edgeddns/router1/cmd/update", {"id": "inj-1", "ipv6": INJECTION})
    settle(router, "after-inj")
    hosts = (d / "hosts").read_text()
    assert "bank.example.com" not in hosts and "6.6.6.6" not in hosts, hosts
    assert "bank.example.com" not in (d / "state" / "state.json").read_text()
    assert "bank.example.com" not in router["agent"].stderr()
    assert not [p for p in from_agent(admin) if b"bank.example.com" in p]
    answer = admin.json("edgeddns/router1/response/update", lambda a: a["id"] == "inj-1")
    assert answer["status"] == "rejected" and answer["error"]["code"] == "bad_address"


def test_addresses_from_commands_are_stored_in_canonical_form(router):
    admin, d = router["admin"], router["dir"]
    admin.send("edgeddns/router1/cmd/update", {"id": "canon-1", "ipv6": " 2606:4700:0000::0:1 "})
    res = admin.json("edgeddns/router1/result", lambda r: r.get("id") == "canon-1")
    assert res["ip"] == "2606:4700::1"
    assert "2606:4700::1 a.lan" in (d / "hosts").read_text()
    settle(router, "canon-back")


def test_providers_recheck_the_address_they_write(tmp_path, server_context, ca_file):
    """Defence in depth: even if a bad address got past the command check, the hosts file, a text
    webhook body and a dyndns2 query refuse it, and nothing is sent or stored."""
    from edgeddns.clock import SystemClock
    from edgeddns.config import load
    from edgeddns.engine import Engine, UpdateRequest
    from edgeddns.errors import BadAddressError
    from edgeddns.state import StateStore
    from tests.fakes.dyndns2 import FakeDyndns2
    from tests.fakes.server import FakeServer
    from tests.fakes.webhook import FakeWebhook

    hook, dyn = FakeWebhook(), FakeDyndns2({"u": "p-0123456"}, ["dyn.example.com"])
    servers = [FakeServer(f, ssl_context=server_context).start() for f in (hook, dyn)]
    try:
        cfg = load(write_config(tmp_path, f"""
[agent]
node_id = "t"
state_dir = "{tmp_path}/state"
[ip]
ipv6 = ["static:2001:4860:4860::8888"]
[providers.lan]
type = "hosts"
path = "{tmp_path}/hosts"
[providers.hook]
type = "webhook"
url = "{servers[0].url}/hook"
body = "{{ip}} {{record}}"
body_format = "text"
ca_file = "{ca_file}"
[providers.dyn]
type = "dyndns2"
endpoint = "{servers[1].url}/nic/update"
username = "u"
password = "p-0123456"
ca_file = "{ca_file}"
[[records]]
name = "a.lan"
type = "AAAA"
provider = "lan"
[[records]]
name = "hook.example.com"
type = "AAAA"
provider = "hook"
[[records]]
name = "dyn.example.com"
type = "AAAA"
provider = "dyn"
"""))
        engine = Engine(cfg, SystemClock(), StateStore.open(cfg.agent.state_dir))
        # Each provider on its own, as if everything before it had let the value through ...
        for rec in cfg.records:
            with pytest.raises(BadAddressError):
                engine.provider(rec.provider).ensure(rec, INJECTION)
        # ... and the engine, which refuses it before any provider is asked.
        results = engine.run(UpdateRequest(addresses={6: INJECTION}, force=True))
        engine.close()
    finally:
        for s in servers:
            s.stop()
    assert [(r.record, r.status, (r.error or {}).get("code")) for r in results] == [
        ("a.lan", "failed", "bad_address"), ("hook.example.com", "failed", "bad_address"),
        ("dyn.example.com", "failed", "bad_address")]
    assert not (tmp_path / "hosts").exists() or "bank" not in (tmp_path / "hosts").read_text()
    assert hook.requests == [] and dyn.requests == []
    state = tmp_path / "state" / "state.json"
    assert not state.exists() or "bank" not in state.read_text()
    assert all("bank" not in json.dumps(r.as_dict()) for r in results)


# ---- 2. oversized messages ------------------------------------------------------------------------

def test_an_oversized_command_is_dropped_by_the_broker_and_the_agent_answers_on(router):
    """MQTT 5: the agent's CONNECT sets Maximum Packet Size, so Mosquitto never sends it the message."""
    admin = router["admin"]
    mark = len(admin.msgs)
    big = json.dumps({"id": "big-1", "pad": "x" * (2 << 20)})
    admin.send("edgeddns/router1/cmd/status", big)
    admin.send("edgeddns/router1/cmd/status", {"id": "after-big"})
    assert admin.json("edgeddns/router1/response/status", lambda a: a["id"] == "after-big")["status"] == "ok"
    with admin.cond:
        answers = [json.loads(m.payload) for m in admin.msgs[mark:] if m.topic.startswith("edgeddns/router1/response/")]
    # Before, the agent read all of it and answered too_large (without the id it could not read).
    assert [a["id"] for a in answers] == ["after-big"], answers
    assert router["agent"].p.poll() is None


def test_311_agent_refuses_an_oversized_packet_before_reading_it(broker, tmp_path):
    """MQTT 3.1.1 has no Maximum Packet Size: the agent drops the connection when the length says too big."""
    cfg = router_config(tmp_path, broker.port, 'protocol = "3.1.1"\nmax_payload = 4096', node="router3")
    admin = Ctl(broker.port, ("edgeddns/router3/#",), user="admin", password=PW["admin"])
    agent = AgentProc(cfg, str(tmp_path / "agent.log"))
    try:
        admin.json("edgeddns/router3/result", lambda d: d["trigger"] == "startup")
        admin.send("edgeddns/router3/cmd/status", json.dumps({"id": "big-311", "pad": "x" * (1 << 20)}))
        agent.wait_log("larger than this agent accepts")
        agent.wait_log("message_size_limit")
        end = time.monotonic() + 30
        while agent.stderr().count("connected to MQTT broker") < 2:
            assert time.monotonic() < end, agent.stderr()
            time.sleep(0.1)
        admin.send("edgeddns/router3/cmd/status", {"id": "after-big-311"})
        assert admin.json("edgeddns/router3/response/status", lambda a: a["id"] == "after-big-311")["status"] == "ok"
        assert not [m for m in admin.all_json("edgeddns/router3/response/status") if m["id"] is None]
    finally:
        admin.close()
        assert agent.stop() == 0
    assert "Traceback" not in agent.stderr()


class FakeBroker:
    """A socket that speaks just enough MQTT 5 to record CONNECT packets and end connections on cue."""

    def __init__(self, script):
        self.script = script  # per connection: bytes to send after CONNACK, then close
        self.connects: List[bytes] = []
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(5)
        self.srv.settimeout(30)
        self.port = self.srv.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            for after in self.script:
                conn, _ = self.srv.accept()
                conn.settimeout(5)
                self.connects.append(conn.recv(65536))
                conn.sendall(b"\x20\x03\x00\x00\x00")  # CONNACK, success, no properties
                time.sleep(0.3)
                if after:
                    conn.sendall(after)
                time.sleep(0.2)
                conn.close()
        except OSError:
            pass

    def close(self) -> None:
        self.srv.close()


def connect_properties(packet: bytes):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    i = 1
    while packet[i] & 0x80:  # the fixed header's remaining length
        i += 1
    i += 1
    assert packet[i:i + 6] == b"\x00\x04MQTT" and packet[i + 6] == 5
    props = Properties(PacketTypes.CONNECT)
    props.unpack(packet[i + 10:])  # after name, level, flags and keep-alive
    return props


def test_connect_carries_maximum_packet_size_and_losses_are_told_in_words(tmp_path):
    # First connection: the broker just closes it; second: it sends DISCONNECT "Administrative action".
    fb = FakeBroker([b"", b"\xe0\x02\x98\x00", b""])
    cfg = router_config(tmp_path, fb.port, "discovery = false\nmax_payload = 4096")
    agent = AgentProc(cfg, str(tmp_path / "agent.log"))
    try:
        agent.wait_log("MQTT connection lost")
        end = time.monotonic() + 30
        while agent.stderr().count("MQTT connection lost") < 2:
            assert time.monotonic() < end, agent.stderr()
            time.sleep(0.1)
    finally:
        agent.stop()
        fb.close()
    props = connect_properties(fb.connects[0])
    assert 4096 < props.MaximumPacketSize <= 4096 + 8192
    log = agent.stderr()
    assert "code 128" not in log and "code " not in log.split("MQTT connection lost", 1)[1].split("\n")[0], log
    assert "the connection closed" in log, log
    assert "the broker disconnected this agent: Administrative action" in log, log


# ---- 3. a response topic that would reach the broker's ACL around -------------------------------

@pytest.mark.parametrize("target", ["edgeddns/router1/cmd/reload", "edgeddns/router1/cmd/update",
                                    "edgeddns/all/cmd/update"])
def test_response_topic_on_a_command_topic_is_refused(router, target):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    admin = router["admin"]
    dash = Ctl(router["broker"].port, ("edgeddns/router1/response/#",), user="dashboard", password=PW["dashboard"])
    try:
        mark = len(admin.msgs)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = target
        props.CorrelationData = b"c-1"
        cid = "rt-" + target.rsplit("/", 1)[1] + target.split("/")[1]
        dash.send("edgeddns/router1/cmd/status", {"id": cid}, props=props)
        ans = dash.json("edgeddns/router1/response/status", lambda a: a["id"] == cid)
        assert ans["status"] == "rejected" and ans["error"]["code"] == "bad_response_topic"
        settle(router, "after-" + cid)
        with admin.cond:
            published = [(m.topic, bytes(m.payload)) for m in admin.msgs[mark:]]
        # The agent wrote nothing on a command topic, so nothing ran: no reload, no extra update.
        assert not [t for t, p in published if "/cmd/" in t and b'"node":"router1"' in p], published
        assert not [t for t, p in published if t.endswith("/response/reload")], published
        assert "config reloaded" not in router["agent"].stderr()
    finally:
        dash.close()


def test_a_response_topic_elsewhere_in_the_agents_tree_still_works(router):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    admin = router["admin"]
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "edgeddns/router1/response/rpc-9"
    props.CorrelationData = b"c-9"
    admin.send("edgeddns/router1/cmd/status", {"id": "rpc-9"}, props=props)
    m = admin.wait(lambda m: m.topic == "edgeddns/router1/response/rpc-9")
    assert m.properties.CorrelationData == b"c-9" and json.loads(m.payload)["status"] == "ok"


# ---- 4. retained commands ----------------------------------------------------------------------------

def test_retained_commands_are_refused_with_their_id_and_a_clear_is_ignored(broker, tmp_path):
    cfg = router_config(tmp_path, broker.port, node="router2")
    admin = Ctl(broker.port, ("edgeddns/router2/#",), user="admin", password=PW["admin"])
    topic = "edgeddns/router2/cmd/update"
    agent = AgentProc(cfg, str(tmp_path / "agent.log"))
    try:
        admin.json("edgeddns/router2/result", lambda d: d["trigger"] == "startup")
        # Published retained while the agent is connected (live delivery used to clear the flag).
        admin.c.publish(topic, json.dumps({"id": "ret-1", "force": True}), qos=1, retain=True).wait_for_publish(5)
        ans = admin.json("edgeddns/router2/response/update", lambda a: a["id"] == "ret-1")
        assert ans["status"] == "rejected" and ans["error"]["code"] == "retained"
        admin.send(topic, {"id": "ret-sync-1"})
        admin.json("edgeddns/router2/result", lambda d: d["id"] == "ret-sync-1")
        assert not [r for r in admin.all_json("edgeddns/router2/result")
                    if r["id"] == "ret-1" or "ret-1" in (r.get("ids") or [])]
        # After a restart the broker hands the retained command over again: refused, with its id.
        assert agent.stop() == 0
        agent = AgentProc(cfg, str(tmp_path / "agent2.log"))
        end = time.monotonic() + 20
        while len([a for a in admin.all_json("edgeddns/router2/response/update")
                   if a.get("error", {}).get("code") == "retained"]) < 2:
            assert time.monotonic() < end, admin.all_json("edgeddns/router2/response/update")
            time.sleep(0.05)
        refusals = [a for a in admin.all_json("edgeddns/router2/response/update") if a["status"] == "rejected"]
        assert [a["id"] for a in refusals] == ["ret-1", "ret-1"], refusals
        # Clearing the retained command (mosquitto_pub -r -n) runs nothing and gets no answer.
        admin.json("edgeddns/router2/result", lambda d: d["trigger"] == "startup" and d["ts"] > ans["ts"])
        mark = len(admin.msgs)
        admin.c.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        admin.send(topic, {"id": "ret-sync-2"})
        admin.json("edgeddns/router2/result", lambda d: d["id"] == "ret-sync-2")
        with admin.cond:
            after = [json.loads(m.payload) for m in admin.msgs[mark:]
                     if m.topic in ("edgeddns/router2/result", "edgeddns/router2/response/update")]
        assert [d["id"] for d in after] == ["ret-sync-2", "ret-sync-2"], after
        assert "coalesced" not in after[-1]
    finally:
        admin.c.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        admin.close()
        assert agent.stop() == 0
    assert "Traceback" not in agent.stderr()


# ---- 6. TLS to the broker is judged by the corrected clock --------------------------------------------

def test_broker_certificate_is_judged_by_the_corrected_clock(tmp_path, ca, faketime, chronyd):  # noqa: F811
    """The system clock is two years ahead (libfaketime), NTP (a real chronyd) knows better: the
    broker's certificate, valid for 90 days from now, must be accepted, as it is for providers."""
    import datetime

    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    cert = ca.issue_cert("127.0.0.1", not_before=now - datetime.timedelta(days=1),
                         not_after=now + datetime.timedelta(days=90))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.crt"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    tls = {"ca": str(tmp_path / "ca.pem"), "cert": str(tmp_path / "server.crt"), "key": str(tmp_path / "server.key")}
    b = Mosquitto(str(tmp_path / "mosq"), users=PW, acl=documented_acl(), tls=tls).start()
    cfg = router_config(tmp_path, b.tls_port, f'tls = true\nca_file = "{tls["ca"]}"\ndiscovery = false',
                        clock=f'[clock]\nmode = "ntp"\nntp_servers = ["{chronyd}"]\n')
    env = dict(os.environ, PYTHONPATH=ROOT, EDGEDDNS_IGNORE_SYNC_EVIDENCE="1", **faketime.env("+2y"))
    log = open(tmp_path / "agent.log", "w")
    p = subprocess.Popen([sys.executable, "-m", "edgeddns", "run", "-v", "-c", cfg], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=log)
    admin = Ctl(b.port, ("edgeddns/router1/availability",), user="admin", password=PW["admin"])
    try:
        admin.wait(lambda m: m.payload == b"online", timeout=30)
    finally:
        p.terminate()
        p.wait(20)
        admin.close()
        b.stop()
    text = (tmp_path / "agent.log").read_text()
    assert "Traceback" not in text, text


# ---- 5. a command flood ------------------------------------------------------------------------------

FLOOD = 3000


def test_a_command_flood_is_bounded_and_status_is_still_answered(router):
    """Thousands of updates, then one status: the status is answered without waiting behind an answer
    per flooded command, and the drop counter says what was shed. (Memory: bench/mqtt_flood.py.)"""
    admin = router["admin"]
    mark = len(admin.msgs)
    for i in range(FLOOD):
        admin.c.publish("edgeddns/router1/cmd/update", json.dumps({"id": f"flood-{i}"}), qos=0)
    admin.send("edgeddns/router1/cmd/status", {"id": "st-after-flood"})
    status = admin.json("edgeddns/router1/response/status", lambda a: a["id"] == "st-after-flood", timeout=60)
    with admin.cond:
        before = [m for m in admin.msgs[mark:] if m.topic == "edgeddns/router1/response/update"]
    # Before the bound, every flooded command got its answer first (3000 of them, queued ahead).
    assert len(before) < FLOOD // 4, len(before)
    assert status["state"]["mqtt"]["dropped_commands"] > 0, status["state"].get("mqtt")
    assert router["agent"].p.poll() is None
    # The agent still takes commands afterwards, and the retained state carries the counter too.
    for k in range(60):  # the per-action allowance refills within a second or two
        admin.send("edgeddns/router1/cmd/update", {"id": f"after-flood-{k}"})
        try:
            admin.json("edgeddns/router1/response/update", lambda a, c=f"after-flood-{k}": a["id"] == c, timeout=0.5)
            break
        except AssertionError:
            continue
    else:
        raise AssertionError("no update accepted after the flood")
    shed = status["state"]["mqtt"]["dropped_commands"]
    admin.json("edgeddns/router1/state", lambda d: d.get("mqtt", {}).get("dropped_commands", 0) >= shed)


def test_rejection_codes_and_docs_agree():
    """docs/mqtt.md's table of rejection codes is the contract: it and the code must list the same codes."""
    from edgeddns.commands import REJECT_CODES

    text = open(os.path.join(ROOT, "docs", "mqtt.md")).read()
    table = text.split("Rejection codes:", 1)[1].split("\n\n", 2)[1]
    documented = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    assert documented == set(REJECT_CODES)


def test_pahos_outgoing_queue_is_bounded_while_the_broker_stalls(tmp_path):
    """The broker stops acknowledging (SIGSTOP): results keep coming (hotplug triggers), and paho's
    queue stops at queue_size + 64 instead of growing; the refusals are counted in state."""
    import signal

    from tests.conftest import run_cli

    b = Mosquitto(str(tmp_path / "mosq"), users=PW, acl=documented_acl()).start()
    cfg = router_config(tmp_path, b.port, "queue_size = 1\ndiscovery = false")
    admin = Ctl(b.port, ("edgeddns/router1/response/#", "edgeddns/router1/result"), user="admin",
                password=PW["admin"])
    agent = AgentProc(cfg, str(tmp_path / "agent.log"))
    try:
        admin.json("edgeddns/router1/result", lambda d: d["trigger"] == "startup")
        b.proc.send_signal(signal.SIGSTOP)  # connected, but nothing is acknowledged any more
        try:
            for _ in range(50):  # each run publishes a result and the state: 100 messages > 1 + 64
                r = run_cli("trigger", "-c", cfg, "--iface", "wan", "--action", "ifupdate")
                assert r.returncode == 0, r.stderr
                if "dropping new ones until it catches up" in agent.stderr():
                    break
            agent.wait_log("dropping new ones until it catches up", timeout=20)
        finally:
            b.proc.send_signal(signal.SIGCONT)
        admin.send("edgeddns/router1/cmd/status", {"id": "st-stall"})
        st = admin.json("edgeddns/router1/response/status", lambda a: a["id"] == "st-stall", timeout=60)
        assert st["state"]["mqtt"]["dropped_messages"] > 0
    finally:
        admin.close()
        assert agent.stop() == 0
        b.stop()
    assert "Traceback" not in agent.stderr()


def test_refused_response_topics_are_remembered_and_logged_boundedly(router):
    """Response topics the broker refuses the agent (another node's subtree) are logged once each, but
    only for so many: a sender inventing a new one per command must not grow memory or the log."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from edgeddns.mqtt_outbound import REFUSED_TOPICS_MAX

    dash = Ctl(router["broker"].port, ("edgeddns/router1/response/#",), user="dashboard", password=PW["dashboard"])
    try:
        n = REFUSED_TOPICS_MAX + 8
        for i in range(n):
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = f"edgeddns/elsewhere/response/r{i}"
            dash.send("edgeddns/router1/cmd/status", {"id": f"elsewhere-{i}"}, props=props)
        settle(router, "after-elsewhere")
        end = time.monotonic() + 10
        log = router["agent"].stderr()
        while "more publishes refused" not in log and time.monotonic() < end:
            time.sleep(0.1)
            log = router["agent"].stderr()
    finally:
        dash.close()
    assert log.count("refused a publish to edgeddns/elsewhere/") == REFUSED_TOPICS_MAX
    assert log.count("more publishes refused") == 1


@pytest.mark.parametrize("iface", ["wan\nedgeddns: INFO: forged line", "wan 6.6.6.6", "wan\x1b[2J", "x" * 65])
def test_iface_must_look_like_an_interface_name(router, iface):
    """``iface`` reaches the log: only interface-name characters, so it cannot forge a log line."""
    admin = router["admin"]
    cid = f"iface-{abs(hash(iface))}"
    admin.send("edgeddns/router1/cmd/update", {"id": cid, "iface": iface})
    ans = admin.json("edgeddns/router1/response/update", lambda a: a["id"] == cid)
    assert ans["status"] == "rejected" and ans["error"]["code"] == "bad_schema"
    assert "forged line" not in router["agent"].stderr()
