"""State remembers what was published and how; a wrong-shaped state file is set aside.

Real CLI processes against the fake Cloudflare API (HTTPS) and the hosts
provider: pointing a provider at another account, endpoint, file, TTL or
``proxied`` value re-publishes once, without waiting for the address to change.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import json_results, run_cli, write_config
from tests.fakes.cloudflare import FakeCloudflare
from tests.fakes.server import FakeServer
from tests.test_cloudflare import TOKEN, cf_config
from tests.test_cloudflare import cf as cf_fixture

cf = cf_fixture  # the fake Cloudflare API


def update(cfg, *args):
    p = run_cli("update", "-c", cfg, "--json", *args)
    assert "Traceback" not in p.stderr, p.stderr
    return p, json_results(p)


@pytest.fixture
def cf2(server_context):
    """A second Cloudflare account behind another endpoint."""
    fake = FakeCloudflare({TOKEN: None, "other-token-0123456789": None}, ["example.com"])
    srv = FakeServer(fake, ssl_context=server_context).start()
    fake.url = srv.url + "client/v4"
    yield fake
    srv.stop()


def test_provider_settings_change_republishes_once(tmp_path, cf, cf2, ca_file):
    p, (r,) = update(cf_config(tmp_path, cf, ca_file))
    assert r["status"] == "updated", p.stderr
    n = len(cf.calls)
    # Same settings: no call at all.
    _, (r,) = update(cf_config(tmp_path, cf, ca_file))
    assert r["status"] == "unchanged" and len(cf.calls) == n

    # A TTL on the record: written once, then quiet again.
    ttl = '\n[[records]]\nname = "home.example.com"\nprovider = "cf"\nttl = 300\n'
    _, (r,) = update(cf_config(tmp_path, cf, ca_file, records=ttl))
    assert r["status"] == "updated" and cf.find("home.example.com", "A")[0]["ttl"] == 300, r
    n = len(cf.calls)
    _, (r,) = update(cf_config(tmp_path, cf, ca_file, records=ttl))
    assert r["status"] == "unchanged" and len(cf.calls) == n

    # proxied turned on: written.
    prox = ttl + "proxied = true\n"
    _, (r,) = update(cf_config(tmp_path, cf, ca_file, records=prox))
    assert r["status"] == "updated" and cf.find("home.example.com", "A")[0]["proxied"] is True, r

    # Another account behind another endpoint: the record appears there.
    _, (r,) = update(cf_config(tmp_path, cf2, ca_file, records=prox))
    assert r["status"] == "updated", r
    assert [x["content"] for x in cf2.find("home.example.com", "A")] == ["8.8.8.8"]

    # Another token (a secret): published once more; the state file holds no secret.
    other = "other-token-0123456789"
    before = len(cf2.calls)
    _, (r,) = update(cf_config(tmp_path, cf2, ca_file, records=prox, token=other))
    # The record at cf2 is right already: read, found right, no write, but the provider was asked.
    assert r["status"] == "unchanged" and not r["error"], r
    n2 = len(cf2.calls)
    assert n2 > before and cf2.calls[-1].startswith("GET /zones/"), cf2.calls
    _, (r,) = update(cf_config(tmp_path, cf2, ca_file, records=prox, token=other))
    assert r["status"] == "unchanged" and len(cf2.calls) == n2
    text = (tmp_path / "state" / "state.json").read_text()
    assert TOKEN not in text and other not in text


HOSTS = """
[agent]
node_id = "n"
state_dir = "{d}/state"
[ip]
ipv4 = ["static:8.8.8.8"]
[providers.lan]
type = "hosts"
path = "{d}/{hosts}"
[[records]]
name = "home.example.com"
provider = "lan"
"""


def test_hosts_path_change_writes_the_new_file(tmp_path):
    _, (r,) = update(write_config(tmp_path, HOSTS.format(d=tmp_path, hosts="a.hosts")))
    assert r["status"] == "updated"
    _, (r,) = update(write_config(tmp_path, HOSTS.format(d=tmp_path, hosts="b.hosts")))
    assert r["status"] == "updated", r
    assert "8.8.8.8 home.example.com" in (tmp_path / "b.hosts").read_text()


def test_old_state_file_keeps_working(tmp_path, cf, ca_file):
    cf.add("home.example.com", "A", "8.8.8.8")
    os.makedirs(tmp_path / "state")
    old = {"version": 1, "records": {"home.example.com/A": {"ip": "8.8.8.8", "provider": "cf", "ok": True,
                                                            "ts": 1767225600.0}}}
    (tmp_path / "state" / "state.json").write_text(json.dumps(old))
    cfg = cf_config(tmp_path, cf, ca_file)
    _, (r,) = update(cfg)
    # Trusted as published with today's settings: no provider call, no re-publish.
    assert r["status"] == "unchanged" and r["previous_ip"] == "8.8.8.8" and cf.calls == [], (r, cf.calls)
    data = json.loads((tmp_path / "state" / "state.json").read_text())
    assert data["version"] == 2
    (entry,) = data["records"].values()
    assert entry["ip"] == "8.8.8.8" and entry.get("fp")
    _, (r,) = update(cfg)
    assert r["status"] == "unchanged" and cf.calls == []


@pytest.mark.parametrize("content", [
    '{"records": "x"}',
    '{"version": 99, "records": {}}',
    '{"version": 2, "records": []}',
    '[1, 2, 3]',
    '{"version": 1, "records": {"home.example.com/A": {"ip": "8.8.8.8"}',
    '"just a string"',
])
def test_wrong_shaped_state_is_set_aside(tmp_path, content):
    os.makedirs(tmp_path / "state")
    (tmp_path / "state" / "state.json").write_text(content)
    cfg = write_config(tmp_path, HOSTS.format(d=tmp_path, hosts="hosts"))
    p, (r,) = update(cfg)
    assert p.returncode == 0 and r["status"] == "updated", p.stdout + p.stderr
    assert "state.json" in p.stderr and "set aside" in p.stderr, p.stderr
    assert (tmp_path / "state" / "state.json.bad").read_text() == content
    data = json.loads((tmp_path / "state" / "state.json").read_text())
    assert data["version"] == 2 and len(data["records"]) == 1
    p = run_cli("check-config", "-c", cfg)
    assert "Traceback" not in p.stderr


def test_fingerprint_properties(tmp_path):
    import dataclasses

    from edgeddns.config import load
    from edgeddns.fingerprint import fingerprint

    cfg = load(write_config(tmp_path, HOSTS.format(d=tmp_path, hosts="hosts")))
    pc, rec = cfg.providers["lan"], cfg.records[0]
    fp = fingerprint(pc, rec, "salt")
    assert fp == fingerprint(pc, rec, "salt") and fp != fingerprint(pc, rec, "other-salt")
    # Transport settings change nothing at the provider.
    assert fingerprint(dataclasses.replace(pc, timeout=3.0, ca_file="/x.pem"), rec, "salt") == fp
    assert fingerprint(pc, dataclasses.replace(rec, ttl=60), "salt") != fp
    assert fingerprint(dataclasses.replace(pc, options={**pc.options, "x": object()}), rec, "salt") == \
        fingerprint(dataclasses.replace(pc, options={**pc.options, "x": object()}), rec, "salt")
