"""Faults survived with nothing lost: provider errors, kills, full or read-only state, no DNS, no IPv6."""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ALI_SECRET, ROOT, alidns_config, run_cli, write_config
from tests.conftest import json_results as results
from tests.fakes.server import Reply


def test_500_then_success_is_retried(tmp_path, alidns, ca_file):
    alidns.server.faults = [Reply.json(500, {"Code": "InternalError", "Message": "The request processing has "
                                             "failed due to some unknown error."})]
    (r,) = results(run_cli("update", "-c", alidns_config(tmp_path, alidns, ca_file), "--json"))
    assert r["status"] == "updated" and r["attempts"] == 2


def test_persistent_500_is_bounded(tmp_path, alidns, ca_file):
    alidns.server.faults = [Reply(503, b"<html>busy</html>", {"Content-Type": "text/html"})] * 10
    p = run_cli("update", "-c", alidns_config(tmp_path, alidns, ca_file), "--json")
    (r,) = results(p)
    assert p.returncode == 1 and r["error"]["code"] == "provider" and "503" in r["error"]["message"]
    assert len(alidns.server.requests) == 3  # bounded retries, no hot loop


def test_429_retry_after_is_honoured(tmp_path, alidns, ca_file):
    alidns.server.faults = [Reply(429, b"", {"Retry-After": "1"})]
    (r,) = results(run_cli("update", "-c", alidns_config(tmp_path, alidns, ca_file), "--json"))
    assert r["status"] == "updated"
    first, second = alidns.server.requests[0], alidns.server.requests[1]
    assert second.received - first.received >= 0.9


def test_hang_past_timeout_is_network_error(tmp_path, alidns, ca_file):
    alidns.server.faults = [Reply(hang=2.5)] * 3
    cfg = alidns_config(tmp_path, alidns, ca_file)
    with open(cfg) as f:
        text = f.read().replace("timeout = 3", "timeout = 0.5")
    with open(cfg, "w") as f:
        f.write(text)
    p = run_cli("update", "-c", cfg, "--json")
    (r,) = results(p)
    assert r["error"]["code"] == "network" and "timed out" in r["error"]["message"]
    assert len(alidns.server.requests) == 3


def test_connection_closed_is_network_error(tmp_path, alidns, ca_file):
    alidns.server.faults = [Reply(close=True)] * 3
    (r,) = results(run_cli("update", "-c", alidns_config(tmp_path, alidns, ca_file), "--json"))
    assert r["error"]["code"] == "network"


def test_failed_record_is_retried_on_next_check(tmp_path, alidns, ca_file):
    cfg = alidns_config(tmp_path, alidns, ca_file)
    assert results(run_cli("update", "-c", cfg, "--json"))[0]["status"] == "updated"
    cfg = alidns_config(tmp_path, alidns, ca_file, ip="static:1.1.1.1")
    alidns.server.faults = [Reply(close=True)] * 3
    assert results(run_cli("update", "-c", cfg, "--json"))[0]["status"] == "failed"
    (r,) = results(run_cli("update", "-c", cfg, "--json"))
    assert r["status"] == "updated" and r["previous_ip"] == "8.8.8.8"
    assert [x["Value"] for x in alidns.find("home.example.com", "A")] == ["1.1.1.1"]


def test_sigkill_at_any_moment_converges_without_duplicates(tmp_path, alidns, ca_file):
    """Kill `edgeddns update` at random moments while the address keeps changing."""
    rng = random.Random(7)
    addrs = ["8.8.8.8", "1.1.1.1", "9.9.9.9"]
    env = dict(os.environ, PYTHONPATH=ROOT)
    state = tmp_path / "state" / "state.json"
    for i in range(20):
        cfg = alidns_config(tmp_path, alidns, ca_file, ip=f"static:{addrs[i % 3]}")
        p = subprocess.Popen([sys.executable, "-m", "edgeddns", "update", "-c", cfg], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.8))
        p.send_signal(signal.SIGKILL)
        p.wait()
        if state.exists():
            json.loads(state.read_text())  # always whole
        # Never on disk: a stray temp file from an interrupted write is tolerated, a torn state file is not.
    final = addrs[1]
    cfg = alidns_config(tmp_path, alidns, ca_file, ip=f"static:{final}")
    p = run_cli("update", "-c", cfg, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    recs = alidns.find("home.example.com", "A")
    assert [x["Value"] for x in recs] == [final], recs  # one record, the right one
    # And the state agrees: the next check is free.
    n = len(alidns.calls)
    assert results(run_cli("update", "-c", cfg, "--json"))[0]["status"] == "unchanged"
    assert len(alidns.calls) == n


def _no_file_writes():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def test_state_dir_full_still_updates(tmp_path, alidns, ca_file):
    cfg = alidns_config(tmp_path, alidns, ca_file)
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-m", "edgeddns", "update", "-c", cfg, "--json"], env=env,
                       capture_output=True, text=True, preexec_fn=_no_file_writes, timeout=60)
    (r,) = results(p)
    assert r["status"] == "updated" and "state_error" in r and "keeping state in memory" in r["state_error"]
    assert "cannot write" in p.stderr and "Traceback" not in p.stderr
    assert [x["Value"] for x in alidns.find("home.example.com", "A")] == ["8.8.8.8"]


def test_state_dir_read_only_still_updates(tmp_path, alidns, ca_file):
    cfg = alidns_config(tmp_path, alidns, ca_file)
    text = open(cfg).read().replace(f'state_dir = "{tmp_path}/state"', 'state_dir = "/proc/edgeddns-ro"')
    open(cfg, "w").write(text)
    p = run_cli("update", "-c", cfg, "--json")
    (r,) = results(p)
    assert r["status"] == "updated" and "state_error" in r


def _can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


needs_netns = pytest.mark.skipif(not _can_unshare(), reason="needs `unshare -n` (root or user namespaces)")


@needs_netns
def test_dns_resolution_failure_is_network_error(tmp_path, ca_file):
    """In an empty network namespace nothing leaves the host; resolution just fails."""
    class Fake:
        url = "https://alidns.nonexistent.invalid/"

    cfg = alidns_config(tmp_path, Fake, ca_file)
    p = run_cli("update", "-c", cfg, "--json", prefix=["unshare", "-n"])
    (r,) = results(p)
    assert r["error"]["code"] == "network", r
    assert ALI_SECRET not in p.stdout + p.stderr


@needs_netns
def test_ipv6_missing_on_host(tmp_path):
    cfg = write_config(tmp_path, f"""
        [agent]
        node_id = "n"
        state_dir = "{tmp_path}/state"
        [ip]
        ipv4 = ["static:10.1.1.1"]
        ipv6 = ["interface:default"]
        [providers.lan]
        type = "hosts"
        path = "{tmp_path}/hosts"
        [[records]]
        name = "a.lan"
        allow_private = true
        provider = "lan"
        [[records]]
        name = "a.lan"
        type = "AAAA"
        provider = "lan"
    """)
    p = run_cli("update", "-c", cfg, "--json", prefix=["unshare", "-n"])
    a, aaaa = results(p)
    assert a["status"] == "updated"
    assert aaaa["status"] == "failed" and aaaa["error"]["code"] == "no_address"
    assert "IPv6" in aaaa["error"]["message"]
