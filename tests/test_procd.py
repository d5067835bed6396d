"""The init script under a procd stand-in that does what the real procd did.

tests/fakes/procd.py follows the recorded procd semantics (reload_signal,
interface triggers that fire on ifdown with no data, stderr at daemon.err)
and runs a logd on a real datagram socket: the agent's syslog lines are read
back from it with their priority.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from tests.agentproc import read, wait_for, write_wrapper
from tests.conftest import ROOT, write_config
from tests.fakes.procd import FakeProcd

pytestmark = pytest.mark.skipif(not shutil.which("busybox"), reason="busybox is not installed")

INIT = os.path.join(ROOT, "openwrt/files/etc/init.d/edgeddns")

CFG = """
[agent]
node_id = "owrt"
state_dir = "{d}/state"
[ip]
ipv4 = ["cmd:cat {d}/wan-ip"]
[providers.lan]
type = "hosts"
path = "{d}/{hosts}"
[[records]]
name = "home.lan"
provider = "lan"
allow_private = true
[[records]]
name = "broken.lan"
provider = "lan"
ip = ["cmd:false"]
"""


@pytest.fixture
def procd(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = write_wrapper(str(bindir))
    (tmp_path / "wan-ip").write_text("10.0.0.1\n")
    cfg = write_config(tmp_path, CFG.format(d=tmp_path, hosts="hosts"))
    p = FakeProcd(INIT, str(tmp_path), {
        "PATH": f"{bindir}:/usr/bin:/bin", "EDGEDDNS_BIN": wrapper, "EDGEDDNS_CONF": cfg,
        "PYTHONPATH": ROOT, "EDGEDDNS_HOTPLUG_SCRIPT": str(tmp_path / "absent"),
    }, trigger_delay=0.2)
    p.env["EDGEDDNS_SYSLOG_SOCKET"] = p.syslog_path
    yield p, cfg
    p.stop()


def started(p: FakeProcd, tmp_path) -> None:
    assert wait_for(lambda: "10.0.0.1 home.lan" in read(tmp_path / "hosts")), p.log_text()
    assert wait_for(lambda: "broken.lan" in p.log_text()), p.log_text()


def test_logs_reach_logread_at_their_real_priority(tmp_path, procd):
    p, _ = procd
    p.start()
    started(p, tmp_path)
    text = p.log_text()
    pid = p.proc.pid
    assert re.search(rf"^daemon\.info edgeddns\[{pid}\]: updated +home\.lan A 10\.0\.0\.1 ", text, re.M), text
    assert re.search(rf"^daemon\.warn edgeddns\[{pid}\]: failed +broken\.lan A ", text, re.M), text
    # Nothing went through stderr, which procd would have logged at daemon.err.
    assert "daemon.err" not in text, text


def test_a_changed_instance_restarts_the_agent_with_its_new_arguments(tmp_path, procd):
    p, cfg = procd
    p.start()
    started(p, tmp_path)
    first = p.proc.pid
    # Same definition: start does nothing.
    p.start()
    assert p.proc.pid == first
    cfg2 = write_config(tmp_path, CFG.format(d=tmp_path, hosts="hosts2").replace("/state", "/state2"),
                        "config2.toml")
    p.start(env={"EDGEDDNS_CONF": cfg2})
    assert wait_for(lambda: "10.0.0.1 home.lan" in read(tmp_path / "hosts2")), p.log_text()
    assert p.proc.pid != first and cfg2 in p.cmdline, p.cmdline
    assert "config reloaded from " + cfg not in p.log_text()


def test_reload_rereads_the_config(tmp_path, procd):
    p, cfg = procd
    p.start()
    started(p, tmp_path)
    first = p.proc.pid
    with open(cfg, "a") as f:
        f.write('\n[[records]]\nname = "new.lan"\nprovider = "lan"\nallow_private = true\n')
    p.reload()
    assert wait_for(lambda: "10.0.0.1 new.lan" in read(tmp_path / "hosts")), p.log_text()
    assert p.proc.pid == first and f"config reloaded from {cfg}" in p.log_text()


def test_ifdown_starts_nothing_and_fails_nothing(tmp_path, procd):
    """procd's interface triggers fire on ifdown too, with no data: the service must not act on them."""
    p, _ = procd
    p.start()
    started(p, tmp_path)
    before = p.log_text()
    for action in ("ifdown", "ifup"):
        p.interface_event("wan", action)
    time.sleep(0.6)  # past the stand-in's trigger delay
    assert p.actions == [], p.actions
    new = p.log_text()[len(before):]
    assert "trigger" not in new and "failed" not in new and "daemon.err" not in new, new


def test_verbose_still_works_with_syslog(tmp_path):
    """-v before or after the command, with --syslog: debug lines arrive at daemon.debug."""
    import socket

    path = str(tmp_path / "log.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(10)
    (tmp_path / "wan-ip").write_text("10.0.0.1\n")
    cfg = write_config(tmp_path, CFG.format(d=tmp_path, hosts="hosts"))
    try:
        for argv in (["-v", "update", "--syslog"], ["update", "-v", "--syslog"], ["--syslog", "update", "-v"]):
            r = subprocess.run([sys.executable, "-m", "edgeddns", *argv, "-c", cfg], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": ROOT, "EDGEDDNS_SYSLOG_SOCKET": path}, timeout=60)
            assert r.returncode in (0, 1), r.stderr
            got = []
            s.settimeout(0.5)
            try:
                while True:
                    got.append(s.recv(65536).decode())
            except socket.timeout:
                pass
            assert any(g.startswith("<31>edgeddns[") for g in got), (argv, got, r.stderr)  # daemon.debug
            assert r.stderr == "", r.stderr
    finally:
        s.close()


UBUS_CFG = """
[agent]
node_id = "owrt"
state_dir = "{d}/state"
[ip]
ipv4 = ["ubus:wan"]
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "router.lan"
provider = "lan"
allow_private = true            # the recordings use documentation addresses
"""


def recorded_hotplug_events():
    """The environments netifd gave /etc/hotplug.d/iface/ scripts, as recorded."""
    text = read(os.path.join(ROOT, "tests/fakes/openwrt-recordings/hotplug-iface-env.txt"))
    return [dict(line.split("=", 1) for line in block.strip().splitlines() if "=" in line)
            for block in text.split("--- hotplug iface") if block.strip()]


def test_the_whole_package_as_the_daemons_run_it(tmp_path):
    """procd runs the agent, netifd notifies through ubus and runs the hotplug script, all as recorded:
    renewal and ifup land from the notifications, ifdown is 'skipped' at daemon.info with no retry,
    and the hotplug script starts nothing while the agent is subscribed."""
    from tests.test_ubus import DOWN, RENEWED, UP_AGAIN, calls, notify

    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = write_wrapper(str(bindir))
    counted = tmp_path / "edgeddns-calls"
    (bindir / "edgeddns-counted").write_text(f'#!/bin/sh\necho "$@" >> {counted}\nexec {wrapper} "$@"\n')
    (bindir / "edgeddns-counted").chmod(0o755)
    (bindir / "logger").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/hotplug-log\ncat >/dev/null\n')
    (bindir / "logger").chmod(0o755)
    d = tmp_path / "ubusd"
    d.mkdir()
    os.mkfifo(d / "feed")
    os.mkfifo(d / "objects")
    (bindir / "ubus").write_text(f'#!/bin/sh\nexec sh {ROOT}/tests/fakes/ubus "$@"\n')
    (bindir / "ubus").chmod(0o755)
    cfg = write_config(tmp_path, UBUS_CFG.format(d=tmp_path))
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "EDGEDDNS_BIN": wrapper, "EDGEDDNS_CONF": cfg, "PYTHONPATH": ROOT,
           "UBUS_FAKE_DIR": str(d)}
    p = FakeProcd(INIT, str(tmp_path), env)
    p.env["EDGEDDNS_SYSLOG_SOCKET"] = p.syslog_path
    hosts = tmp_path / "hosts"
    try:
        p.start()
        assert wait_for(lambda: "192.0.2.2 router.lan" in read(hosts)), p.log_text()
        assert wait_for(lambda: (tmp_path / "state" / "ubus.pid").exists()), p.log_text()
        before = len(calls(d))

        def hotplug(event):
            e = {**event, "PATH": env["PATH"], "EDGEDDNS_BIN": str(bindir / "edgeddns-counted"),
                 "EDGEDDNS_CONF": cfg, "EDGEDDNS_STATE_DIR": str(tmp_path / "state"),
                 "EDGEDDNS_HOTPLUG_CONF": "/nonexistent"}
            script = os.path.join(ROOT, "openwrt/files/etc/hotplug.d/iface/95-edgeddns")
            r = subprocess.run(["busybox", "ash", "-c", '( . "$1" )', "hotplug-call", script], env=e,
                               capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
            assert r.returncode == 0, r.stderr

        events = {e["ACTION"]: e for e in recorded_hotplug_events()}
        notify(d, RENEWED)
        hotplug(events["ifupdate"])
        assert wait_for(lambda: "192.0.2.4 router.lan" in read(hosts)), p.log_text()
        notify(d, DOWN)
        hotplug(events["ifdown"])
        assert wait_for(lambda: "interface wan is down" in p.log_text()), p.log_text()
        notify(d, UP_AGAIN)
        hotplug(events["ifup"])
        assert wait_for(lambda: "192.0.2.2 router.lan" in read(hosts)), p.log_text()
        time.sleep(0.3)
        text = p.log_text()
        pid = p.proc.pid
        assert re.search(rf"^daemon\.info edgeddns\[{pid}\]: skipped +router\.lan A (\(was 192\.0\.2\.4\) )?"
                         r"via lan: \[interface_down\] interface wan is down", text, re.M), text
        assert re.search(rf"^daemon\.info edgeddns\[{pid}\]: updated +router\.lan A 192\.0\.2\.4 .*\[ubus\]$",
                         text, re.M), text
        assert "retrying" not in text and "daemon.err" not in text and "daemon.warn" not in text, text
        assert calls(d)[before:] == [], "a notification was followed by a ubus call"
        assert read(counted) == "" and read(tmp_path / "hotplug-log") == ""  # the script left it to the agent
    finally:
        assert p.stop() == 0, p.log_text()
