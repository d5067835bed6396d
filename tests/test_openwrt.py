"""The OpenWrt files and the container entrypoint, run by real busybox ash.

The hotplug script is sourced the way OpenWrt's hotplug-call does it (each
script in a subshell), with the environment netifd sets. The main case runs
it against a real ``edgeddns run`` agent through the real CLI. ``logger`` is
replaced by a stub on PATH that appends to a file: there is no syslog here.
The init script runs under tests/fakes/rc.common, a stand-in for OpenWrt's
rc.common and procd.sh that only records what procd would be asked to do.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time

import pytest

from edgeddns import control
from edgeddns.config import load
from tests.agentproc import HOSTS_CONFIG, AgentProc, read, serving, wait_for, write_wrapper
from tests.conftest import ROOT, run_cli, write_config

OPENWRT = os.path.join(ROOT, "openwrt")
HOTPLUG = os.path.join(OPENWRT, "files/etc/hotplug.d/iface/95-edgeddns")
INIT = os.path.join(OPENWRT, "files/etc/init.d/edgeddns")
HOTPLUG_CONF = os.path.join(OPENWRT, "files/etc/edgeddns/hotplug.conf")
RC_COMMON = os.path.join(ROOT, "tests/fakes/rc.common")
ENTRYPOINT = os.path.join(ROOT, "docker/entrypoint.sh")
SHELL_FILES = [HOTPLUG, INIT, HOTPLUG_CONF, RC_COMMON, ENTRYPOINT, os.path.join(ROOT, "tests/fakes/ubus"),
               os.path.join(OPENWRT, "files/etc/hotplug.d/ntp/25-edgeddns")]

needs_busybox = pytest.mark.skipif(not shutil.which("busybox"), reason="busybox is not installed")


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is not installed")
def test_shellcheck_clean():
    r = subprocess.run(["shellcheck", "-s", "sh", *SHELL_FILES], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def box(tmp_path):
    """A PATH with a logger stub and the real CLI as ``edgeddns``."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    logfile = tmp_path / "syslog"
    # logger stand-in (there is no syslog here): options and message on one
    # line; with no message, each line of stdin, as busybox logger does.
    (bindir / "logger").write_text(
        "#!/bin/sh\nopts=\"\"\n"
        'while [ "$#" -gt 0 ]; do case "$1" in -t|-p) opts="$opts $1 $2"; shift 2;; *) break;; esac; done\n'
        f'if [ "$#" -gt 0 ]; then echo "$opts $*" >> {logfile}; '
        f'else while IFS= read -r l; do echo "$opts $l" >> {logfile}; done; fi\n')
    (bindir / "logger").chmod(0o755)
    write_wrapper(str(bindir))
    return bindir, logfile


def hotplug(env: dict, bindir, conf: str = "/nonexistent") -> subprocess.CompletedProcess:
    """Run the script as hotplug-call does: sourced, in a subshell, by busybox ash."""
    e = {"PATH": f"{bindir}:/usr/bin:/bin", "EDGEDDNS_HOTPLUG_CONF": conf, **env}
    return subprocess.run(["busybox", "ash", "-c", 'for s in "$@"; do ( . "$s" ); done', "hotplug-call", HOTPLUG],
                          env=e, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


@needs_busybox
def test_hotplug_updates_through_a_running_agent(tmp_path, box):
    bindir, logfile = box
    (tmp_path / "wan-ip").write_text("10.0.0.1\n")
    cfg = write_config(tmp_path, HOSTS_CONFIG.format(d=tmp_path, state=tmp_path / "state"))
    agent = AgentProc(cfg)
    try:
        assert wait_for(lambda: serving(str(tmp_path / "state" / control.SOCKET_NAME))), agent.log
        assert wait_for(lambda: "10.0.0.1 home.lan" in read(tmp_path / "hosts"))
        (tmp_path / "wan-ip").write_text("10.0.0.9\n")
        t0 = time.monotonic()
        r = hotplug({"ACTION": "ifup", "INTERFACE": "wan", "DEVICE": "eth1", "EDGEDDNS_BIN": "edgeddns",
                     "EDGEDDNS_CONF": cfg, "EDGEDDNS_STATE_DIR": str(tmp_path / "state")}, bindir)
        returned = time.monotonic() - t0
        assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
        assert wait_for(lambda: "10.0.0.9 home.lan" in read(tmp_path / "hosts"))
        landed = time.monotonic() - t0
        assert wait_for(lambda: "queued: hotplug wan" in read(logfile))
        line = read(logfile)
        assert "-t edgeddns -p daemon.info" in line and "ifup wan: queued: hotplug wan" in line
        assert agent.wait_log(lambda t: "trigger ifup wan (eth1)" in t and "10.0.0.9" in t and "[hotplug]" in t)
        print(f"hotplug script returned after {returned * 1000:.0f} ms; record updated after {landed * 1000:.0f} ms")
        # ifupdate with new addresses is an address change too.
        (tmp_path / "wan-ip").write_text("10.0.0.10\n")
        hotplug({"ACTION": "ifupdate", "INTERFACE": "wan6", "DEVICE": "eth1", "IFUPDATE_ADDRESSES": "1",
                 "EDGEDDNS_BIN": "edgeddns", "EDGEDDNS_CONF": cfg, "EDGEDDNS_STATE_DIR": str(tmp_path / "state")},
                bindir)
        assert wait_for(lambda: "10.0.0.10 home.lan" in read(tmp_path / "hosts"))
    finally:
        assert agent.stop() == 0, agent.log


@needs_busybox
def test_hotplug_at_boot_before_the_agent_does_not_warn(tmp_path, box):
    """wan comes up before START=95 on every boot: no agent yet is normal, not a warning."""
    bindir, logfile = box
    calls = tmp_path / "calls"
    stub = tmp_path / "edgeddns-stub"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho "edgeddns: no agent is running" >&2\nexit 3\n')
    stub.chmod(0o755)
    state = tmp_path / "state"  # never created: the agent has not started in this boot
    r = hotplug({"ACTION": "ifup", "INTERFACE": "wan", "DEVICE": "eth1", "EDGEDDNS_BIN": str(stub),
                 "EDGEDDNS_STATE_DIR": str(state)}, bindir)
    assert r.returncode == 0
    assert wait_for(lambda: "ifup wan" in read(logfile))
    time.sleep(0.3)  # a background job would have logged by now
    assert "daemon.warn" not in read(logfile), read(logfile)
    assert "daemon.info" in read(logfile) and "checks every record when it starts" in read(logfile)
    assert read(calls) == ""  # and no Python started for it


@needs_busybox
def test_hotplug_skips_when_the_agent_is_subscribed(tmp_path, box):
    """With the agent subscribed to netifd (its pid in ubus.pid), the event is already in hand."""
    bindir, logfile = box
    state = tmp_path / "state"
    state.mkdir()
    calls = tmp_path / "calls"
    stub = tmp_path / "edgeddns-stub"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    stub.chmod(0o755)
    env = {"ACTION": "ifup", "INTERFACE": "wan", "DEVICE": "eth1", "EDGEDDNS_BIN": str(stub),
           "EDGEDDNS_STATE_DIR": str(state)}
    # A stand-in agent: a live process whose command line names edgeddns.
    agent = subprocess.Popen(["sh", "-c", "sleep 60", "edgeddns-agent"])
    try:
        (state / "ubus.pid").write_text(f"{agent.pid}\n")
        r = hotplug(env, bindir)
        time.sleep(0.5)  # a background job would have run by now
        assert r.returncode == 0 and read(logfile) == "" and read(calls) == ""
    finally:
        agent.kill()
        agent.wait()
    # A pid that is gone (the agent was killed), or reused by another program, does not count.
    for pid in ("999999999", str(os.getpid())):
        (state / "ubus.pid").write_text(f"{pid}\n")
        hotplug({**env, "EDGEDDNS_BIN": "edgeddns"}, bindir)
        assert wait_for(lambda: read(logfile).count("ifup wan") >= 1), pid
        logfile.write_text("")


@needs_busybox
def test_hotplug_without_an_agent_returns_and_logs(tmp_path, box):
    bindir, logfile = box
    (tmp_path / "wan-ip").write_text("10.0.0.1\n")
    state = tmp_path / "state"
    cfg = write_config(tmp_path, HOSTS_CONFIG.format(d=tmp_path, state=state))
    # A socket left by an agent that died: that one is worth a warning.
    state.mkdir()
    import socket as _socket

    s = _socket.socket(_socket.AF_UNIX)
    s.bind(str(state / control.SOCKET_NAME))
    s.close()
    r = hotplug({"ACTION": "ifup", "INTERFACE": "wan", "DEVICE": "eth1", "EDGEDDNS_BIN": "edgeddns",
                 "EDGEDDNS_CONF": cfg, "EDGEDDNS_STATE_DIR": str(state)}, bindir)
    assert r.returncode == 0
    assert wait_for(lambda: "no agent is running" in read(logfile))
    assert "daemon.warn" in read(logfile)
    assert not (tmp_path / "hosts").exists()
    # With EDGEDDNS_FALLBACK=1 the event updates the records itself (no agent ever started).
    os.unlink(state / control.SOCKET_NAME)
    conf = tmp_path / "hotplug.conf"
    conf.write_text("EDGEDDNS_FALLBACK=1\n")
    hotplug({"ACTION": "ifup", "INTERFACE": "wan", "DEVICE": "eth1", "EDGEDDNS_BIN": "edgeddns",
             "EDGEDDNS_CONF": cfg, "EDGEDDNS_STATE_DIR": str(state)}, bindir, conf=str(conf))
    assert wait_for(lambda: "10.0.0.1 home.lan" in read(tmp_path / "hosts"))
    assert wait_for(lambda: "ifup wan: updated" in read(logfile)), read(logfile)


@needs_busybox
@pytest.mark.parametrize("env,conf,accepted", [
    ({"ACTION": "ifup", "INTERFACE": "wan"}, None, True),
    ({"ACTION": "ifup", "INTERFACE": "wan6"}, None, True),
    ({"ACTION": "ifup", "INTERFACE": "lan"}, None, False),
    ({"ACTION": "ifup", "INTERFACE": "loopback"}, None, False),
    ({"ACTION": "ifdown", "INTERFACE": "wan"}, None, False),
    ({"ACTION": "ifup-failed", "INTERFACE": "wan"}, None, False),
    ({"ACTION": "ifupdate", "INTERFACE": "wan", "IFUPDATE_ADDRESSES": "1"}, None, True),
    ({"ACTION": "ifupdate", "INTERFACE": "wan6", "IFUPDATE_PREFIXES": "1"}, None, True),
    ({"ACTION": "ifupdate", "INTERFACE": "wan", "IFUPDATE_ROUTES": "1"}, None, False),
    ({"ACTION": "ifupdate", "INTERFACE": "wan", "IFUPDATE_DATA": "1"}, None, False),
    ({"ACTION": "ifupdate", "INTERFACE": "wan"}, None, True),  # an older netifd names nothing
    ({"ACTION": "ifup", "INTERFACE": "wwan"}, 'EDGEDDNS_IFACES="wwan wan_6"\n', True),
    ({"ACTION": "ifup", "INTERFACE": "wan_6"}, 'EDGEDDNS_IFACES="wwan wan_6"\n', True),
    ({"ACTION": "ifup", "INTERFACE": "wan"}, 'EDGEDDNS_IFACES="wwan wan_6"\n', False),
])
def test_hotplug_filters_events(tmp_path, box, env, conf, accepted):
    # EDGEDDNS_BIN names a missing program: an accepted event says so at once
    # (synchronously), a filtered one says nothing. No background job to wait for.
    bindir, logfile = box
    path = "/nonexistent"
    if conf is not None:
        (tmp_path / "hotplug.conf").write_text(conf)
        path = str(tmp_path / "hotplug.conf")
    r = hotplug({**env, "DEVICE": "eth1", "EDGEDDNS_BIN": str(tmp_path / "missing")}, bindir, conf=path)
    assert r.returncode == 0
    assert ("not found" in read(logfile)) is accepted


def rc(tmp_path, action: str, *args: str, env: dict = None):
    record = tmp_path / f"procd-{action}.txt"
    record.unlink(missing_ok=True)
    e = {"PATH": os.environ["PATH"], "RECORD": str(record), **(env or {})}
    r = subprocess.run(["busybox", "ash", RC_COMMON, INIT, action, *args], env=e, capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    return read(record).splitlines(), r


@needs_busybox
def test_init_script_under_a_procd_stand_in(tmp_path, box):
    lines, _ = rc(tmp_path, "start")
    assert lines[0] == "meta [START=95] [STOP=10]"
    assert "set_param [command] [/usr/bin/edgeddns] [run] [-c] [/etc/edgeddns/config.toml] [--syslog]" in lines
    assert "set_param [respawn]" in lines
    assert "set_param [stdout] [1]" in lines and "set_param [stderr] [1]" in lines
    # No reload_signal: procd would signal a changed instance instead of restarting it (tests/test_procd.py).
    assert not [x for x in lines if "reload_signal" in x]
    i_open, i_close = lines.index("open_instance"), lines.index("close_instance")
    assert i_open < lines.index("set_param [respawn]") < i_close
    # No interface triggers: they fire on ifdown too, with no data; the agent hears netifd itself.
    assert not [x for x in lines if x.startswith("interface_trigger")]
    lines, _ = rc(tmp_path, "reload")
    assert lines[1:] == ["send_signal [edgeddns] [*] [HUP]"]


@needs_busybox
def test_init_trigger_command(tmp_path, box):
    bindir, logfile = box
    calls = tmp_path / "calls"
    stub = tmp_path / "edgeddns-stub"
    stub.write_text(f'#!/bin/sh\nprintf "[%s]" "$@" >> {calls}\necho >> {calls}\necho "queued: stub"\n')
    stub.chmod(0o755)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "EDGEDDNS_BIN": str(stub), "EDGEDDNS_CONF": "/c.toml"}
    _, r = rc(tmp_path, "trigger", env=env)
    assert read(calls).splitlines()[-1] == "[trigger][-c][/c.toml][--action][manual]"
    assert "queued: stub" in r.stdout
    rc(tmp_path, "trigger", "wan", env=env)
    assert read(calls).splitlines()[-1] == "[trigger][-c][/c.toml][--iface][wan][--action][manual]"


@needs_busybox
def test_init_trigger_reaches_a_real_agent(tmp_path, box):
    bindir, _ = box
    (tmp_path / "wan-ip").write_text("10.0.0.1\n")
    cfg = write_config(tmp_path, HOSTS_CONFIG.format(d=tmp_path, state=tmp_path / "state"))
    agent = AgentProc(cfg)
    try:
        assert wait_for(lambda: serving(str(tmp_path / "state" / control.SOCKET_NAME))), agent.log
        (tmp_path / "wan-ip").write_text("10.0.0.3\n")
        rc(tmp_path, "trigger", "wan", env={"PATH": f"{bindir}:/usr/bin:/bin", "EDGEDDNS_BIN": "edgeddns",
                                            "EDGEDDNS_CONF": cfg})
        assert wait_for(lambda: "10.0.0.3 home.lan" in read(tmp_path / "hosts"))
    finally:
        assert agent.stop() == 0


def test_openwrt_example_config_is_valid():
    cfg = load(os.path.join(OPENWRT, "files/etc/edgeddns/config.toml"))
    assert cfg.agent.state_dir == "/var/run/edgeddns"
    assert cfg.ip.ipv4[0] == "ubus:wan" and cfg.ip.ipv6[0].startswith("ubus:")
    assert cfg.providers["lan"].type == "hosts" and cfg.providers["lan"].options["path"].startswith("/tmp/hosts/")
    assert control.state_dir_of(os.path.join(OPENWRT, "files/etc/edgeddns/config.toml")) == cfg.agent.state_dir


def makefile_installs() -> dict:
    """``./files/X`` -> installed path, from the Makefile's install recipe."""
    mk = read(os.path.join(OPENWRT, "Makefile"))
    recipe = mk.split("define Py3Package/edgeddns/install", 1)[1].split("endef", 1)[0]
    return dict(re.findall(r"\./files/(\S+)\s+\$\(1\)/(\S+)", recipe))


def shipped_files() -> set:
    root = os.path.join(OPENWRT, "files")
    return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs}


def test_openwrt_makefile_installs_every_file():
    mk = read(os.path.join(OPENWRT, "Makefile"))
    installs = makefile_installs()
    # Every shipped file is installed, to the same path, and nothing else is.
    assert set(installs) == shipped_files()
    assert all(src == dst for src, dst in installs.items())
    conffiles = mk.split("define Package/edgeddns/conffiles", 1)[1].split("endef", 1)[0].split()
    assert conffiles == ["/etc/edgeddns/config.toml", "/etc/edgeddns/hotplug.conf"]
    for dep in ("+python3-light", "+python3-requests", "+python3-paho-mqtt", "+python3-openssl"):
        assert dep in mk
    for f in ("usr/bin/edgeddns", "etc/init.d/edgeddns", "etc/hotplug.d/iface/95-edgeddns",
              "etc/hotplug.d/ntp/25-edgeddns"):
        assert os.stat(os.path.join(OPENWRT, "files", f)).st_mode & stat.S_IXUSR


def test_docs_table_lists_every_installed_file():
    doc = read(os.path.join(ROOT, "docs/openwrt.md"))
    table = doc.split("Installed files:", 1)[1].split("\n\n", 2)[1]
    listed = set(re.findall(r"^\| `/(\S+)` \|", table, re.M))
    assert listed == shipped_files()


# ---- container --------------------------------------------------------------


def entry(tmp_path, *args: str, conf=None, bindir=None) -> subprocess.CompletedProcess:
    env = {"PATH": f"{bindir}:/usr/bin:/bin" if bindir else "/usr/bin:/bin",
           "EDGEDDNS_CONFIG": str(conf or tmp_path / "config" / "config.toml"),
           "EDGEDDNS_DEFAULT_CONFIG": os.path.join(ROOT, "docker/config.toml"),
           "EDGEDDNS_BIN": "edgeddns"}
    return subprocess.run(["busybox", "ash", ENTRYPOINT, *args], env=env, capture_output=True, text=True,
                          timeout=60)


@needs_busybox
def test_entrypoint_seeds_a_default_config_once(tmp_path, box):
    bindir, _ = box
    (tmp_path / "config").mkdir()
    conf = tmp_path / "config" / "config.toml"
    r = entry(tmp_path, "check-config", bindir=bindir)
    assert r.returncode == 0, r.stderr
    assert "wrote the default" in r.stderr and f"{conf}: OK" in r.stderr
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    # An existing config is never overwritten.
    conf.write_text(conf.read_text().replace("nas.lan", "box.lan"))
    r = entry(tmp_path, "check-config", bindir=bindir)
    assert r.returncode == 0 and "wrote the default" not in r.stderr and "box.lan" in r.stdout
    # No writable config volume: a clear message and exit 2.
    r = entry(tmp_path, "check-config", conf=tmp_path / "missing-dir" / "config.toml", bindir=bindir)
    assert r.returncode == 2 and "cannot create one there" in r.stderr


@needs_busybox
def test_entrypoint_defaults_to_run(tmp_path):
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "edgeddns").write_text('#!/bin/sh\necho "args: $* config: $EDGEDDNS_CONFIG"\n')
    (stub / "edgeddns").chmod(0o755)
    conf = tmp_path / "c.toml"
    conf.write_text("")
    r = entry(tmp_path, conf=conf, bindir=stub)
    assert r.stdout.strip() == f"args: run config: {conf}"


def test_container_default_config_and_compose():
    cfg = load(os.path.join(ROOT, "docker/config.toml"))
    assert cfg.agent.state_dir == "/data" and cfg.providers["lan"].options["path"] == "/data/hosts"
    assert cfg.ip.ipv4 == ["interface:default"]  # host networking + netlink events
    yaml = pytest.importorskip("yaml", reason="no YAML parser installed (not a dependency)")
    compose = yaml.safe_load(read(os.path.join(ROOT, "docker-compose.yml")))
    svc = compose["services"]["edgeddns"]
    assert svc["network_mode"] == "host" and svc["restart"] == "unless-stopped"
    assert "TZ" in svc["environment"]
    assert {v.split(":")[1] for v in svc["volumes"]} == {"/config", "/data"}
    docker = read(os.path.join(ROOT, "Dockerfile"))
    assert "USER edgeddns" in docker and 'VOLUME ["/config", "/data"]' in docker
    for src in ("docker/config.toml", "docker/entrypoint.sh", "pyproject.toml", "README.md", "edgeddns"):
        assert f"COPY {src}" in docker or f" {src} " in docker or f"COPY {src} " in docker


def test_trigger_cli_without_config_names_the_file(tmp_path):
    r = run_cli("trigger", "-c", str(tmp_path / "nope.toml"))
    assert r.returncode == 2 and "nope.toml" in r.stderr


@pytest.mark.skipif(not shutil.which("make"), reason="GNU make is not installed")
def test_makefile_under_an_sdk_stand_in(tmp_path):
    """The package Makefile's prepare/compile/install steps, run by GNU make against
    tests/fakes/openwrt-sdk: a stand-in for the SDK's includes, not the SDK."""
    sdk = os.path.join(ROOT, "tests/fakes/openwrt-sdk")
    dest, build = tmp_path / "root", tmp_path / "build"
    r = subprocess.run(["make", "-s", "-C", OPENWRT, f"TOPDIR={sdk}", f"DEST={dest}", f"BUILD_DIR={build}",
                        "stand-in-build"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    modes = {f: stat.S_IMODE(os.stat(dest / f).st_mode) for f in (
        "usr/bin/edgeddns", "etc/init.d/edgeddns", "etc/hotplug.d/iface/95-edgeddns", "etc/hotplug.d/ntp/25-edgeddns",
        "etc/edgeddns/config.toml", "etc/edgeddns/hotplug.conf")}
    # hotplug-call sources the hotplug scripts: they need not be executable.
    assert modes == {"usr/bin/edgeddns": 0o755, "etc/init.d/edgeddns": 0o755,
                     "etc/hotplug.d/iface/95-edgeddns": 0o644, "etc/hotplug.d/ntp/25-edgeddns": 0o644,
                     "etc/edgeddns/config.toml": 0o600,
                     "etc/edgeddns/hotplug.conf": 0o600}
    site = build / "edgeddns-0.1.0/ipkg-install/usr/lib/python3.11/site-packages"
    assert (site / "edgeddns/control.py").is_file() and (site / "edgeddns/providers/hosts.py").is_file()
    assert not list(site.rglob("__pycache__"))
    # The installed launcher runs the installed package.
    r = subprocess.run([sys.executable, str(dest / "usr/bin/edgeddns"), "--version"], capture_output=True, text=True,
                       env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, cwd=str(tmp_path))
    assert r.returncode == 0 and r.stdout.startswith("edgeddns "), r.stderr
    # Without sources, a clear message.
    r = subprocess.run(["make", "-s", "-C", OPENWRT, f"TOPDIR={sdk}", f"DEST={dest}", f"BUILD_DIR={build}2",
                        f"EDGEDDNS_SRC={tmp_path}/nowhere", "stand-in-build"], capture_output=True, text=True)
    assert r.returncode != 0 and "no sources at EDGEDDNS_SRC" in r.stderr
