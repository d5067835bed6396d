"""State atomicity, the zero-call rule, and the hosts provider."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from edgeddns.clock import SystemClock
from edgeddns.config import load
from edgeddns.engine import Engine, UpdateRequest
from edgeddns.state import StateStore
from tests.conftest import ROOT, run_cli, write_config


def test_state_write_only_on_change(tmp_path):
    s = StateStore.open(str(tmp_path))
    assert s.put("a/A", {"ip": "8.8.8.8"}) and s.writes == 1
    assert not s.put("a/A", {"ip": "8.8.8.8"}) and s.writes == 1
    assert StateStore.open(str(tmp_path)).get("a/A") == {"ip": "8.8.8.8"}


def test_state_survives_crash_mid_write(tmp_path):
    """SIGKILL a process rewriting the state in a tight loop: the file is always whole."""
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from edgeddns.state import StateStore\n"
        "s = StateStore.open(%r)\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1; s.put('r/A', {'ip': '8.8.8.8', 'n': i, 'pad': 'x' * 5000})\n"
    ) % (ROOT, str(tmp_path))
    for _ in range(15):
        p = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(0.25)
        p.send_signal(signal.SIGKILL)
        p.wait()
        with open(tmp_path / "state.json") as f:
            data = json.load(f)
        assert data["records"]["r/A"]["ip"] == "8.8.8.8"


def test_state_dir_unwritable_keeps_memory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    s = StateStore.open(str(ro / "sub"))
    if os.geteuid() == 0:
        s = StateStore.open("/proc/edgeddns-state")  # root ignores mode bits; /proc refuses
    assert not s.put("a/A", {"ip": "1.1.1.1"})
    assert s.error and s.get("a/A") == {"ip": "1.1.1.1"}


HOSTS_CFG = """
[agent]
node_id = "n"
state_dir = "{d}/state"
[ip]
ipv4 = ["static:{ip}"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "router.lan"
provider = "lan"
allow_private = true
"""


def test_hosts_provider_end_to_end(tmp_path):
    (tmp_path / "hosts").write_text("# kept\n192.168.1.5 printer.lan\n10.0.0.9 router.lan nas.lan\n")
    cfg = write_config(tmp_path, HOSTS_CFG.format(d=tmp_path, ip="192.168.1.1"))
    p = run_cli("update", "-c", cfg, "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["status"] == "updated" and r["ip"] == "192.168.1.1"
    text = (tmp_path / "hosts").read_text()
    assert text == "# kept\n192.168.1.5 printer.lan\n10.0.0.9 nas.lan\n192.168.1.1 router.lan\n"
    mtime = os.stat(tmp_path / "hosts").st_mtime_ns
    p = run_cli("update", "-c", cfg, "--json")
    assert json.loads(p.stdout)["status"] == "unchanged"
    assert os.stat(tmp_path / "hosts").st_mtime_ns == mtime


def test_zero_calls_when_nothing_changed(tmp_path):
    cfg = load(write_config(tmp_path, HOSTS_CFG.format(d=tmp_path, ip="192.168.1.1")))
    state = StateStore.open(cfg.agent.state_dir)
    eng = Engine(cfg, SystemClock(), state)
    calls = []
    prov = eng.provider("lan")
    orig = prov.ensure
    prov.ensure = lambda *a: calls.append(a) or orig(*a)
    assert eng.run(UpdateRequest())[0].status == "updated"
    assert eng.run(UpdateRequest())[0].status == "unchanged"
    assert len(calls) == 1 and state.writes == 1


def test_shipped_config_runs(tmp_path):
    """The README's default config: a whole update with no account and no network."""
    import shutil

    shutil.copy(os.path.join(ROOT, "config.toml"), tmp_path / "config.toml")
    p = run_cli("update", "-c", str(tmp_path / "config.toml"), "--json")
    assert "Traceback" not in p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    from edgeddns.netlink import default_route_interface

    if default_route_interface(4) is None:  # e.g. the test suite's loopback-only namespace
        assert all(x["error"]["code"] == "no_address" and "default" in x["error"]["message"] for x in lines)
        return
    assert lines and all(x["status"] in ("updated", "unchanged", "skipped") for x in lines
                         if x["type"] == "A"), p.stdout
    assert "edgeddns.lan" in (tmp_path / "state" / "hosts").read_text()
