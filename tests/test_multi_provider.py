"""One name at several providers (issue 14 §3): a record is name + type + provider.

Each pair has its own state, result and retry; results, MQTT state and Home
Assistant entities stay unique per pair. Real CLI processes against the fake
Cloudflare API and a hosts file.
"""

from __future__ import annotations

import json
import os

import pytest

from edgeddns import discovery
from edgeddns.agent import Agent
from edgeddns.clock import SystemClock
from edgeddns.config import load
from tests.conftest import json_results, run_cli, write_config
from tests.test_cloudflare import TOKEN, cf_config
from tests.test_cloudflare import cf as cf_fixture

cf = cf_fixture

BOTH = """
[[records]]
name = "home.example.com"
providers = ["cf", "lan"]
proxied = false

[providers.lan]
type = "hosts"
path = "{d}/hosts"
"""


def update(cfg):
    p = run_cli("update", "-c", cfg, "--json")
    assert "Traceback" not in p.stderr, p.stderr
    return p, {r["provider"]: r for r in json_results(p)}


def test_one_name_two_providers_each_with_its_own_state_and_retry(tmp_path, cf, ca_file):
    cfg = cf_config(tmp_path, cf, ca_file, records=BOTH.format(d=tmp_path))
    p, res = update(cfg)
    assert set(res) == {"cf", "lan"}, p.stdout + p.stderr
    assert res["cf"]["status"] == "updated" and res["lan"]["status"] == "updated"
    assert [x["content"] for x in cf.find("home.example.com", "A")] == ["8.8.8.8"]
    assert "8.8.8.8 home.example.com" in (tmp_path / "hosts").read_text()

    # Cloudflare refuses the token; the address changes: the hosts file follows, cf fails alone.
    cf.tokens.pop(TOKEN)
    cfg = cf_config(tmp_path, cf, ca_file, ip="static:1.1.1.1", records=BOTH.format(d=tmp_path))
    p, res = update(cfg)
    assert res["cf"]["status"] == "failed" and res["cf"]["error"]["code"] == "auth"
    assert res["lan"]["status"] == "updated" and p.returncode == 1
    assert "1.1.1.1 home.example.com" in (tmp_path / "hosts").read_text()

    # The token works again: cf's retry publishes; lan's state says done, so no write there.
    cf.tokens[TOKEN] = None
    mtime = os.stat(tmp_path / "hosts").st_mtime_ns
    p, res = update(cfg)
    assert res["cf"]["status"] == "updated" and res["lan"]["status"] == "unchanged", res
    assert res["cf"]["previous_ip"] == "8.8.8.8" and res["lan"]["previous_ip"] == "1.1.1.1"
    assert os.stat(tmp_path / "hosts").st_mtime_ns == mtime
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert set(state["records"]) == {"home.example.com/A/cf", "home.example.com/A/lan"}


def test_two_entries_one_name_and_config_errors(tmp_path):
    base = """
[agent]
state_dir = "{d}/state"
[ip]
ipv4 = ["static:8.8.8.8"]
[providers.a]
type = "hosts"
path = "{d}/a"
[providers.b]
type = "hosts"
path = "{d}/b"
"""
    two = base + """
[[records]]
name = "home.example.com"
provider = "a"
[[records]]
name = "home.example.com"
provider = "b"
"""
    cfg = load(write_config(tmp_path, two.format(d=tmp_path)))
    assert [(r.name, r.provider, r.key) for r in cfg.records] == [
        ("home.example.com", "a", "home.example.com/A/a"), ("home.example.com", "b", "home.example.com/A/b")]
    bad = {
        'provider = "a"\nproviders = ["b"]': "records[0].providers",
        "providers = []": "records[0].providers",
        'providers = ["a", "a"]': "records[0].providers",
        'providers = ["a", "nope"]': "records[0].providers",
        'providers = "a"': "records[0].providers",
        'providers = ["a"]\nproxied = true': "records[0].proxied",
    }
    for body, where in bad.items():
        path = write_config(tmp_path, base.format(d=tmp_path) + f'[[records]]\nname = "x.example.com"\n{body}\n',
                            name="bad.toml")
        p = run_cli("check-config", "-c", path)
        assert p.returncode == 2 and where in p.stderr and "Traceback" not in p.stderr, (body, p.stderr)
    dup = base + '[[records]]\nname = "x.example.com"\nprovider = "a"\n[[records]]\nname = "x.example.com"\n' \
                 'providers = ["b", "a"]\n'
    p = run_cli("check-config", "-c", write_config(tmp_path, dup.format(d=tmp_path), name="dup.toml"))
    assert p.returncode == 2 and "records[1]" in p.stderr and "twice" in p.stderr, p.stderr


MQTT = """
[agent]
node_id = "n1"
state_dir = "{d}/state"
[ip]
ipv4 = ["static:8.8.8.8"]
[mqtt]
host = "127.0.0.1"
[providers.a]
type = "hosts"
path = "{d}/a"
[providers.b]
type = "hosts"
path = "{d}/b"
[[records]]
name = "home.example.com"
providers = ["a", "b"]
[[records]]
name = "a.b.example.com"
provider = "a"
[[records]]
name = "a_b.example.com"
provider = "a"
"""

TOPICS = {"availability": "edgeddns/n1/status", "state": "edgeddns/n1/state", "cmd": "edgeddns/n1/cmd"}


def test_agent_state_has_one_entry_per_pair(tmp_path):
    cfg = load(write_config(tmp_path, MQTT.format(d=tmp_path)))
    agent = Agent(cfg, clock=SystemClock())
    try:
        agent.start()
        assert agent.wait_idle(20)
        recs = agent.state()["records"]
        pairs = sorted((r["record"], r["provider"]) for r in recs)
        assert pairs == [("a.b.example.com", "a"), ("a_b.example.com", "a"), ("home.example.com", "a"),
                         ("home.example.com", "b")], recs
    finally:
        agent.stop()


def test_discovery_ids_are_unique_per_pair(tmp_path):
    cfg = load(write_config(tmp_path, MQTT.format(d=tmp_path)))
    msgs = discovery.messages(cfg, TOPICS)
    topics = [t for t, _ in msgs]
    ids = [p["unique_id"] for _, p in msgs]
    assert len(set(topics)) == len(topics) and len(set(ids)) == len(ids), topics
    sensors = [p for t, p in msgs if t.startswith("homeassistant/sensor/") and "clock" not in t]
    assert len(sensors) == 4
    # An unambiguous single-provider name keeps the id it always had (Home Assistant keeps its entity).
    assert "homeassistant/sensor/n1/a_b_example_com_a/config" in topics


def test_discovery_templates_pick_their_own_pair(tmp_path):
    jinja2 = pytest.importorskip("jinja2")
    cfg = load(write_config(tmp_path, MQTT.format(d=tmp_path)))
    state = {"records": [
        {"record": "home.example.com", "type": "A", "provider": "a", "ip": "8.8.8.8", "status": "updated"},
        {"record": "home.example.com", "type": "A", "provider": "b", "ip": "9.9.9.9", "status": "failed"},
        {"record": "a.b.example.com", "type": "A", "provider": "a", "ip": "1.1.1.1", "status": "updated"},
        {"record": "a_b.example.com", "type": "A", "provider": "a", "ip": "2.2.2.2", "status": "updated"},
    ]}
    env = jinja2.Environment()
    seen = {}
    for topic, p in discovery.messages(cfg, TOPICS):
        if topic.startswith("homeassistant/sensor/") and "clock" not in topic:
            seen[p["name"]] = env.from_string(p["value_template"]).render(value_json=state)
    assert sorted(seen.values()) == ["1.1.1.1", "2.2.2.2", "8.8.8.8", "9.9.9.9"], seen


def test_discovery_ids_of_dotted_and_underscored_names_differ(tmp_path):
    body = MQTT.replace('[[records]]\nname = "home.example.com"\nproviders = ["a", "b"]\n', "")
    cfg = load(write_config(tmp_path, body.format(d=tmp_path)))
    msgs = discovery.messages(cfg, TOPICS)
    topics = [t for t, _ in msgs]
    ids = [p["unique_id"] for _, p in msgs]
    assert len(set(topics)) == len(topics) and len(set(ids)) == len(ids), topics


def test_old_state_key_belongs_to_the_provider_it_names(tmp_path, cf, ca_file):
    os.makedirs(tmp_path / "state")
    (tmp_path / "hosts").write_text("8.8.8.8 home.example.com\n")
    old = {"version": 1, "records": {"home.example.com/A": {"ip": "8.8.8.8", "provider": "lan", "ok": True}}}
    (tmp_path / "state" / "state.json").write_text(json.dumps(old))
    p, res = update(cf_config(tmp_path, cf, ca_file, records=BOTH.format(d=tmp_path)))
    assert res["lan"]["status"] == "unchanged" and res["lan"]["previous_ip"] == "8.8.8.8", p.stdout + p.stderr
    assert res["cf"]["status"] == "updated" and res["cf"]["previous_ip"] is None
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert set(state["records"]) == {"home.example.com/A/cf", "home.example.com/A/lan"}
