"""``edgeddns status``: what a user sees of a running agent, and what a script gets without one."""

from __future__ import annotations

import json

from edgeddns.status import parse_iso, render
from tests.conftest import run_cli, write_config

CFG = """
[agent]
node_id = "n"
state_dir = "{d}/state"
[ip]
ipv4 = ["static:192.0.2.7"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "home.lan"
provider = "lan"
allow_private = true
"""


def test_json_without_an_agent_is_still_one_json_object(tmp_path):
    cfg = write_config(tmp_path, CFG.format(d=tmp_path))
    r = run_cli("status", "--json", "-c", cfg)
    assert r.returncode == 3
    obj = json.loads(r.stdout)
    assert obj["ok"] is False and obj["error"]["code"] == "no_agent", r.stdout
    assert "no agent is running" in obj["error"]["message"]
    # An unreadable config: still an object (and exit 2).
    r = run_cli("status", "--json", "-c", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["code"] == "config", r.stdout


def test_render_names_every_field_a_user_asked_for():
    now = parse_iso("2026-05-01T10:00:00.000Z")
    state = {
        "node_id": "router1", "version": "0.1.0", "started": "2026-05-01T09:00:00.000Z", "updates": 3,
        "clock": {"source": "ntp", "offset": 0.25, "trusted": True},
        "mqtt": {"connected": False, "broker": "192.168.1.10:1883", "error": "connection refused"},
        "records": [
            {"record": "home.example.com", "type": "A", "provider": "ali", "ip": "198.51.100.4", "status": "failed",
             "ts": "2026-05-01T09:59:30.000Z", "published_ip": "198.51.100.3",
             "error": {"code": "network", "message": "alidns.aliyuncs.com: timed out after 10 s"},
             "next": {"retry": "2026-05-01T10:00:29.000Z", "poll": "2026-05-01T10:30:00.000Z"}},
            {"record": "nas.example.com", "type": "A", "provider": "ali", "ip": "198.51.100.4", "status": "unchanged",
             "ts": "2026-05-01T09:59:30.000Z", "published_ip": "198.51.100.4", "error": None,
             "last_error": {"code": "rate_limited", "message": "slow down", "ts": "2026-05-01T08:00:00.000Z"}},
            {"record": "home.example.com", "type": "AAAA", "provider": "ali", "ip": None, "status": "skipped",
             "ts": "2026-05-01T09:59:30.000Z", "published_ip": None,
             "error": {"code": "interface_down", "message": "interface wan6 is down (netifd)"}},
        ],
    }
    text = "\n".join(render(state, 1234, now=now))
    assert "agent    router1 (edgeddns 0.1.0, pid 1234)" in text
    assert "clock    ntp +0.250 s" in text
    assert "mqtt     not connected to 192.168.1.10:1883 (last error: connection refused)" in text
    assert "last       failed 198.51.100.4 at 2026-05-01T09:59:30.000Z (30 s ago)" in text
    assert "published  198.51.100.3" in text
    assert "error      [network] alidns.aliyuncs.com: timed out after 10 s" in text
    assert "next       retry 2026-05-01T10:00:29.000Z (in 29 s); poll 2026-05-01T10:30:00.000Z (in 30 min)" in text
    assert "error      [interface_down] interface wan6 is down (netifd)" in text
    assert "next       on the next event (no timer)" in text
    assert "last error [rate_limited] slow down at 2026-05-01T08:00:00.000Z (2 h 0 min ago)" in text
    assert "published  nothing yet" in text
    no_mqtt = "\n".join(render({**state, "mqtt": None}, 1, now=now))
    assert "mqtt     not configured" in no_mqtt
