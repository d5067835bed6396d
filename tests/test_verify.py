"""Drift repair and keep-alive, run inside the engine; a failed reload_cmd is retried.

The engine lives as long as the test (as in the agent) and talks HTTPS to the
fakes; the hosts provider writes a real file. A record edited or deleted at
the provider by hand is invisible to a normal check (local state says it is
published) and must be put back by a verify run.
"""

from __future__ import annotations

import os
import textwrap

from edgeddns.clock import SystemClock
from edgeddns.config import load
from edgeddns.engine import Engine, UpdateRequest
from edgeddns.state import StateStore
from tests.conftest import json_results, run_cli, write_config
from tests.test_cloudflare import cf as cf_fixture
from tests.test_cloudflare import cf_config
from tests.test_dyndns2 import dyn as dyn_fixture
from tests.test_dyndns2 import dyn_config

cf = cf_fixture
dyn = dyn_fixture


def engine(cfg_path: str) -> Engine:
    cfg = load(cfg_path)
    return Engine(cfg, SystemClock(), StateStore.open(cfg.agent.state_dir), sleep=lambda s: None)


def test_verify_repairs_a_record_edited_or_deleted_at_the_provider(tmp_path, cf, ca_file):
    eng = engine(cf_config(tmp_path, cf, ca_file))
    try:
        (r,) = eng.run(UpdateRequest())
        assert r.status == "updated"
        (rec,) = cf.find("home.example.com", "A")
        rec["content"] = "203.0.113.9"  # edited by hand in the dashboard
        n = len(cf.calls)
        (r,) = eng.run(UpdateRequest())
        assert r.status == "unchanged" and len(cf.calls) == n  # a normal check trusts the state
        (r,) = eng.run(UpdateRequest(verify=True))
        assert r.status == "updated" and r.extra.get("repaired") is True, (r.status, r.error)
        assert [x["content"] for x in cf.find("home.example.com", "A")] == ["8.8.8.8"]
        # Right at the provider: one read, no write.
        n = len(cf.calls)
        (r,) = eng.run(UpdateRequest(verify=True))
        assert r.status == "unchanged" and r.extra.get("verified") is True
        assert len(cf.calls) == n + 1 and cf.calls[-1].startswith("GET /zones/"), cf.calls[n:]
        # Deleted by hand: created again.
        cf.records.clear()
        (r,) = eng.run(UpdateRequest(verify=True))
        assert r.status == "updated" and r.extra.get("repaired") is True
        assert [x["content"] for x in cf.find("home.example.com", "A")] == ["8.8.8.8"]
    finally:
        eng.close()


HOSTS = """
[agent]
node_id = "n"
state_dir = "{d}/state"
[ip]
ipv4 = ["static:8.8.8.8"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
{extra}
[[records]]
name = "home.example.com"
provider = "lan"
"""


def test_verify_repairs_a_hand_edited_hosts_file(tmp_path):
    eng = engine(write_config(tmp_path, HOSTS.format(d=tmp_path, extra="")))
    hosts = tmp_path / "hosts"
    try:
        assert eng.run(UpdateRequest())[0].status == "updated"
        hosts.write_text("127.0.0.1 localhost\n")  # someone rewrote the file
        assert eng.run(UpdateRequest())[0].status == "unchanged"
        (r,) = eng.run(UpdateRequest(verify=True))
        assert r.status == "updated" and r.extra.get("repaired") is True
        assert hosts.read_text() == "127.0.0.1 localhost\n8.8.8.8 home.example.com\n"
    finally:
        eng.close()


def test_keepalive_resends_to_write_only_providers_and_verify_does_not(tmp_path, dyn, ca_file):
    eng = engine(dyn_config(tmp_path, dyn, ca_file))
    try:
        assert eng.run(UpdateRequest())[0].status == "updated"
        n = len(dyn.calls)
        # dyndns2 cannot read records back: verify costs nothing there ...
        (r,) = eng.run(UpdateRequest(verify=True))
        assert r.status == "unchanged" and len(dyn.calls) == n
        # ... and a keep-alive re-sends the current address (free hosts expire without updates).
        (r,) = eng.run(UpdateRequest(keepalive=True))
        assert r.ok and r.extra.get("keepalive") is True and len(dyn.calls) == n + 1, (r.status, r.error)
        assert dyn.calls[-1].get("myip") == "8.8.8.8"
    finally:
        eng.close()


def test_keepalive_is_ignored_by_readable_providers(tmp_path, cf, ca_file):
    eng = engine(cf_config(tmp_path, cf, ca_file))
    try:
        eng.run(UpdateRequest())
        n = len(cf.calls)
        (r,) = eng.run(UpdateRequest(keepalive=True))
        assert r.status == "unchanged" and len(cf.calls) == n
    finally:
        eng.close()


RELOAD = """
#!/bin/sh
echo run >> "{d}/reloads"
test -e "{d}/dnsmasq-ok"
"""


def test_failed_reload_cmd_is_run_again_until_it_succeeds(tmp_path):
    script = tmp_path / "reload.sh"
    script.write_text(textwrap.dedent(RELOAD).lstrip().format(d=tmp_path))
    os.chmod(script, 0o755)
    cfg = write_config(tmp_path, HOSTS.format(d=tmp_path, extra=f'reload_cmd = "{script}"'))
    reloads = tmp_path / "reloads"

    p = run_cli("update", "-c", cfg, "--json")
    (r,) = json_results(p)
    assert r["status"] == "failed" and "reload_cmd" in r["error"]["message"], p.stdout + p.stderr
    assert reloads.read_text().count("run") == 1
    # The record's retry (another run, here another process): the file is right, dnsmasq is not.
    p = run_cli("update", "-c", cfg, "--json")
    (r,) = json_results(p)
    assert r["status"] == "failed" and reloads.read_text().count("run") == 2, (r, reloads.read_text())
    (tmp_path / "dnsmasq-ok").write_text("")
    p = run_cli("update", "-c", cfg, "--json")
    (r,) = json_results(p)
    assert r["status"] == "updated" and r["error"] is None and reloads.read_text().count("run") == 3, r
    # Done: the next check neither rewrites nor reloads.
    p = run_cli("update", "-c", cfg, "--json")
    (r,) = json_results(p)
    assert r["status"] == "unchanged" and reloads.read_text().count("run") == 3


def _delete_by_hand(fake, name: str, rtype: str) -> None:
    """Remove the record the way a user in the web console would (each fake keeps records its own way)."""
    if hasattr(fake, "rrsets"):  # Route 53
        for sets in fake.rrsets.values():
            sets.pop((name, rtype), None)
    elif hasattr(fake, "recordsets"):  # Huawei Cloud
        for rid in [k for k, rs in fake.recordsets.items() if rs["name"] == name + "." and rs["type"] == rtype]:
            del fake.recordsets[rid]
    else:  # DNSPod, Alidns
        fake.records.clear()


def test_verify_repairs_every_signed_provider(tmp_path, signed):
    from tests.fakes.fixtures import signed_config

    eng = engine(signed_config(tmp_path, signed))
    try:
        assert eng.run(UpdateRequest())[0].status == "updated"
        _delete_by_hand(signed, "home.example.com", "A")
        assert signed.values("home.example.com", "A") == []
        assert eng.run(UpdateRequest())[0].status == "unchanged"
        (r,) = eng.run(UpdateRequest(verify=True))
        assert r.status == "updated" and r.extra.get("repaired") is True, (r.status, r.error)
        assert signed.values("home.example.com", "A") == ["8.8.8.8"]
        (r,) = eng.run(UpdateRequest(verify=True))
        assert r.status == "unchanged" and r.extra.get("verified") is True
    finally:
        eng.close()


AGENT = """
[agent]
node_id = "n"
state_dir = "{d}/state"
verify_interval = 1
[ip]
ipv4 = ["static:8.8.8.8"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "home.example.com"
provider = "lan"
[[records]]
name = "other.example.com"
provider = "lan"
"""


def test_the_agents_verify_timer_repairs_a_hand_edit(tmp_path):
    """The scheduler's verify timer and the engine's verify, wired together in a running agent."""
    from edgeddns.agent import Agent
    from edgeddns.clock import SystemClock
    from edgeddns.events import Event
    from tests.agentproc import wait_for

    class Mono:
        t = 1000.0

        def __call__(self):
            return self.t

    mono = Mono()
    cfg = load(write_config(tmp_path, AGENT.format(d=tmp_path)))
    hosts = tmp_path / "hosts"
    results = []

    class Collect:
        def publish_result(self, r):
            results.append(r)

        def publish_state(self, s):
            pass

    agent = Agent(cfg, clock=SystemClock(), monotonic=mono)
    agent.add_publisher(Collect())
    try:
        agent.start()
        assert wait_for(lambda: "8.8.8.8 home.example.com" in (hosts.read_text() if hosts.exists() else ""), 10)
        assert agent.wait_idle(10)
        hosts.write_text("8.8.8.8 other.example.com\n")  # home.example.com removed by hand
        mono.t += 200  # past verify_interval (1 minute, jittered)
        agent.submit(Event("test", records=["other.example.com"]))  # wakes the worker
        assert wait_for(lambda: "home.example.com" in hosts.read_text(), 10), hosts.read_text()
        assert agent.wait_idle(10)
        mine = [r for r in results if r.record == "home.example.com" and r.extra.get("repaired")]
        assert mine and mine[-1].status == "updated", [(r.record, r.status, r.trigger, r.extra) for r in results]
    finally:
        agent.stop()


def test_the_agent_retries_a_failed_reload_cmd_with_the_records_back_off(tmp_path):
    from edgeddns.agent import Agent
    from edgeddns.clock import SystemClock
    from tests.agentproc import wait_for

    class Mono:
        t = 1000.0

        def __call__(self):
            return self.t

    script = tmp_path / "reload.sh"
    script.write_text(textwrap.dedent(RELOAD).lstrip().format(d=tmp_path))
    os.chmod(script, 0o755)
    body = AGENT.format(d=tmp_path).replace("verify_interval = 1", "verify_interval = 0").replace(
        f'path = "{tmp_path}/hosts"', f'path = "{tmp_path}/hosts"\nreload_cmd = "{script}"')
    cfg = load(write_config(tmp_path, body))
    reloads = tmp_path / "reloads"
    mono = Mono()
    agent = Agent(cfg, clock=SystemClock(), monotonic=mono)
    try:
        agent.start()
        assert wait_for(lambda: reloads.exists(), 10) and agent.wait_idle(10)
        before = reloads.read_text().count("run")
        assert agent.records["home.example.com/A/lan"]["status"] == "failed"
        (tmp_path / "dnsmasq-ok").write_text("")  # dnsmasq is back
        mono.t += 120  # past the first back-off (30 s, jittered)
        agent.scheduler.wake()  # the worker waits on a real timeout; the fake clock moved
        assert wait_for(lambda: agent.records["home.example.com/A/lan"]["status"] == "updated", 10), agent.records
        assert reloads.read_text().count("run") > before
    finally:
        agent.stop()
