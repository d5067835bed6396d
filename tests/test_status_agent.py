"""Status and the retained MQTT state, from a real agent and a real Mosquitto."""

from __future__ import annotations

import json

import pytest

from tests.agentproc import read, wait_for
from tests.conftest import run_cli, write_config
from tests.mosquitto import MOSQUITTO, Mosquitto
from tests.test_mqtt import ACL, AGENT_PW, CTL_PW, AgentProc, Ctl

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (scripts/test installs it)")

CFG = """
[agent]
node_id = "st1"
state_dir = "{d}/state"
[ip]
ipv4 = ["{src}"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "home.lan"
provider = "lan"
allow_private = true
[[records]]
name = "broken.lan"
provider = "lan"
ip = ["cmd:false"]
{mqtt}
"""


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Mosquitto(str(tmp_path_factory.mktemp("mosq")), users={"st1": AGENT_PW, "ctl": CTL_PW}, acl=ACL).start()
    yield b
    b.stop()


def test_first_retained_state_has_the_saved_records_and_status_shows_timers(tmp_path, broker):
    ipfile = tmp_path / "wan-ip"
    ipfile.write_text("192.0.2.5\n")
    mqtt = f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nusername = "st1"\npassword = "{AGENT_PW}"\n'
    # A one-shot publishes 192.0.2.5 and leaves it in the state dir.
    quick = write_config(tmp_path, CFG.format(d=tmp_path, src=f"cmd:cat {ipfile}", mqtt=""), "quick.toml")
    assert run_cli("update", "-c", quick).returncode == 1  # broken.lan fails, home.lan is updated
    assert "192.0.2.5 home.lan" in read(tmp_path / "hosts")
    # The agent's first check waits at a gate the test opens once it has the first retained state.
    gate = tmp_path / "gate"
    src = f"cmd:sh -c 'while [ ! -e {gate} ]; do sleep 0.05; done; cat {ipfile}'"
    slow = write_config(tmp_path, CFG.format(d=tmp_path, src=src, mqtt=mqtt))
    ctl = Ctl(broker.port, ("edgeddns/st1/state",))
    agent = AgentProc(slow, str(tmp_path / "agent.log"))
    try:
        first = json.loads(ctl.wait(lambda m: m.topic == "edgeddns/st1/state").payload)
        assert first["records"], first
        rec = first["records"][0]
        assert (rec["record"], rec["ip"], rec["published_ip"], rec["status"]) == \
            ("home.lan", "192.0.2.5", "192.0.2.5", "saved"), first
        gate.write_text("")
        # After the first check: the failed record has a retry timer, the MQTT link is up.
        agent.wait_log("failed       broken.lan")
        r = run_cli("status", "-c", slow)
        assert r.returncode == 0, r.stderr
        assert f"mqtt     connected to 127.0.0.1:{broker.port}" in r.stdout, r.stdout
        assert "published  192.0.2.5" in r.stdout and "error      [no_address] cmd:false" in r.stdout, r.stdout
        assert wait_for(lambda: "next       retry " in run_cli("status", "-c", slow).stdout), r.stdout
        st = json.loads(run_cli("status", "--json", "-c", slow).stdout)
        broken = next(x for x in st["records"] if x["record"] == "broken.lan")
        assert set(broken["next"]) >= {"retry"} and st["mqtt"]["connected"] is True, st
    finally:
        ctl.close()
        assert agent.stop() == 0, agent.stderr()
