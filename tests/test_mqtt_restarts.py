"""The broker restarts many times while commands and results flow: nothing lost, nothing run twice."""

from __future__ import annotations

import time

import pytest

from tests.conftest import run_cli
from tests.mosquitto import MOSQUITTO, Mosquitto, Relay
from tests.test_mqtt import ACL, AGENT_PW, CTL_PW, AgentProc, Ctl, agent_config

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (scripts/test installs it)")

ROUNDS = 5
PER_ROUND = 4


def test_broker_restarts_lose_no_result_and_run_no_id_twice(tmp_path):
    broker = Mosquitto(str(tmp_path / "mosq"), users={"r1": AGENT_PW, "ctl": CTL_PW}, acl=ACL,
                       persistence=True).start()
    ipfile = tmp_path / "ip"
    ipfile.write_text("10.0.0.1\n")
    # The agent reaches the broker through a relay that holds it off after each restart until the
    # controller has subscribed again: Mosquitto 2.0 restores no session after a restart, so anything
    # published before the controller is back would be lost to it, and the test would measure the race.
    relay = Relay(broker.port)
    cfg = agent_config(tmp_path, "r1", relay.port, hosts=True, ipfile=str(ipfile))
    # A persistent QoS 1 session: what the agent publishes while we are away is kept for us.
    ctl = Ctl(broker.port, ("edgeddns/r1/result", "edgeddns/r1/response/#"), session="ctl-restarts")
    agent = AgentProc(cfg, str(tmp_path / "agent.log"))
    sent = []
    try:
        ctl.json("edgeddns/r1/result", lambda d: d["trigger"] == "startup")
        for rnd in range(ROUNDS):
            # Commands go out once both ends are back: what the broker does with messages for an
            # absent client across its own restarts is the broker's business; results are ours.
            end = time.monotonic() + 45
            while not ctl.c.is_connected() or agent.stderr().count("connected to MQTT broker") < rnd + 1:
                assert time.monotonic() < end, "no reconnect after the broker restart:\n" + agent.stderr()
                time.sleep(0.05)
            ipfile.write_text(f"10.0.{rnd + 1}.1\n")
            for k in range(PER_ROUND):
                cid = f"r{rnd}-c{k}"
                sent.append(cid)
                ctl.send("edgeddns/r1/cmd/update", {"id": cid})
            # The same id again, as a client retrying after a lost PUBACK would.
            ctl.send("edgeddns/r1/cmd/update", {"id": f"r{rnd}-c0"})
            # The agent has the commands (they are answered); their results may still be in flight.
            for k in range(PER_ROUND):
                ctl.json("edgeddns/r1/response/update", lambda d, c=f"r{rnd}-c{k}": d.get("id") == c, timeout=30)
            relay.held = True
            broker.stop()
            # While the broker is away the WAN changes again: that result waits in the agent's queue.
            ipfile.write_text(f"10.0.{rnd + 1}.2\n")
            assert agent_sees_loss(agent, rnd + 1), agent.stderr()
            trig = run_cli("trigger", "-c", cfg, "--iface", "wan", "--action", "ifupdate")
            assert trig.returncode == 0, trig.stdout + trig.stderr
            time.sleep(0.3)
            ctl.ready.clear()  # before the start: the controller may be back before start() returns
            broker.start()
            assert ctl.ready.wait(30), "the controller did not resubscribe"
            relay.held = False
            ctl.json("edgeddns/r1/result",
                     lambda d, ip=f"10.0.{rnd + 1}.2": d["ip"] == ip and d["trigger"] == "hotplug", timeout=45)
        # Everything sent has been answered, and every id reached a result.
        for cid in sent:
            ctl.json("edgeddns/r1/response/update", lambda d, c=cid: d.get("id") == c, timeout=30)
        for cid in sent:
            ctl.json("edgeddns/r1/result", lambda d, c=cid: d.get("id") == c or c in (d.get("ids") or []),
                     timeout=30)
        answers = ctl.all_json("edgeddns/r1/response/update")
        # QoS 1 may deliver one answer twice (same message, same ts); the agent never answers
        # an id afresh: every non-duplicate answer of an id is the same message.
        firsts = {(a["id"], a["ts"]) for a in answers if not a.get("duplicate")}
        assert sorted(i for i, _ in firsts) == sorted(set(sent))
        # A repeated id never ran again: no result names it after its first run.
        results = {(r["ts"], r["record"]): r for r in ctl.all_json("edgeddns/r1/result") if r["trigger"] == "mqtt"}
        results = list(results.values())  # QoS 1 redeliveries of one result count once
        runs_per_id = {}
        for r in results:
            for cid in set([r.get("id")] + (r.get("ids") or [])):
                if cid:
                    runs_per_id[cid] = runs_per_id.get(cid, 0) + 1
        assert all(n == 1 for n in runs_per_id.values()), runs_per_id
        # And the record ends right.
        assert f"10.0.{ROUNDS}.2 a.lan" in (tmp_path / "hosts").read_text()
        assert agent.stop() == 0
        assert "Traceback" not in agent.stderr()
    finally:
        ctl.close()
        agent.stop()
        relay.close()
        broker.stop()


def agent_sees_loss(agent: AgentProc, n: int, timeout: float = 20.0) -> bool:
    """The agent noticed the n-th loss of its broker connection (so what it publishes now is queued)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if agent.stderr().count("MQTT connection lost") >= n:
            return True
        time.sleep(0.05)
    return False
