"""Hostile MQTT input, tried against a real Mosquitto that runs the ACL docs/mqtt.md documents.

Users: ``router1`` (the agent, confined by the doc's ``%u`` patterns), ``admin`` (everything) and
``dashboard``, the doc's limited user: it may read ``edgeddns/#`` and send only ``cmd/status``.
Each test here failed on the code before the fix it holds (see SECURITY.md).
"""

from __future__ import annotations

import json
import os
from typing import List

import pytest

from tests.conftest import ROOT, write_config
from tests.mosquitto import MOSQUITTO, Mosquitto
from tests.test_mqtt import AgentProc, Ctl

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (scripts/test installs it)")

PW = {"router1": "r1-pw-0123", "admin": "admin-pw-4567", "dashboard": "dash-pw-8901"}
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


def router_config(tmp_path, port: int, mqtt_extra: str = "") -> str:
    return write_config(tmp_path, f"""
[agent]
node_id = "router1"
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
username = "router1"
password = "{PW['router1']}"
accept_ip = true
{mqtt_extra}

[[records]]
name = "a.lan"
type = "AAAA"
provider = "lan"
""", name="router1.toml")


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
