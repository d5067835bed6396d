"""netifd notifications straight into the agent, through the ``ubus`` stand-in.

tests/fakes/ubus prints, line for line, what OpenWrt's own ``ubus subscribe
network.interface`` printed (tests/fakes/openwrt-recordings/): the test picks
which recorded notification and when, through a FIFO. The agent is the real
``edgeddns run``; the records go to a hosts file.
"""

from __future__ import annotations

import errno
import json
import os
import time

import pytest

from edgeddns import control
from edgeddns.config import load
from tests.agentproc import AgentProc, read, serving, wait_for
from tests.conftest import ROOT, write_config

FAKES = os.path.join(ROOT, "tests", "fakes")
RECORDED = os.path.join(FAKES, "openwrt-recordings", "ubus-subscribe-network.interface.txt")
LINES = open(RECORDED).read().splitlines()
# The recording, in order: 1 ifup (192.0.2.2), 2 renewal (192.0.2.4), 3-4 ifdown twice, 5 ifup (192.0.2.2).
UP, RENEWED, DOWN, DOWN_AGAIN, UP_AGAIN = 1, 2, 3, 4, 5

CFG = """
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


@pytest.fixture
def ubusd(tmp_path):
    """A directory for the stand-in (FIFO, call log) and a PATH that finds it as ``ubus``."""
    d = tmp_path / "ubusd"
    d.mkdir()
    os.mkfifo(d / "feed")
    os.mkfifo(d / "objects")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ubus").write_text(f'#!/bin/sh\nexec sh {FAKES}/ubus "$@"\n')
    (bindir / "ubus").chmod(0o755)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "UBUS_FAKE_DIR": str(d)}
    return d, env


def notify(d, what, timeout: float = 15, fifo: str = "feed") -> None:
    """Have the subscribed stand-in print recorded line ``what`` (or "exit")."""
    end = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(d / fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
            if time.monotonic() > end:
                raise AssertionError("nobody is subscribed to network.interface") from None
            time.sleep(0.01)
    try:
        os.write(fd, f"{what}\n".encode())
    finally:
        os.close(fd)


def calls(d) -> list:
    """What the agent asked ubus (the netifd-restart watcher's ``listen`` aside)."""
    return [c for c in read(d / "calls").splitlines() if not c.startswith("listen ")]


def test_stand_in_prints_the_recording_verbatim(ubusd):
    import subprocess

    d, env = ubusd
    child = subprocess.Popen(["ubus", "subscribe", "network.interface"], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, **env})
    try:
        got = []
        for n in range(1, len(LINES) + 1):
            notify(d, n)
            got.append(child.stdout.readline().rstrip("\n"))
        assert got == LINES
        notify(d, "exit")
        assert child.wait(10) == 0
    finally:
        child.kill()
        child.wait()


def test_parse_the_recorded_notifications():
    from edgeddns.ubus import address_key, parse

    kinds = [parse(line)[:2] for line in LINES]
    assert kinds == [("interface.update", "wan"), ("interface.update", "wan"), ("interface.down", "wan"),
                     ("interface.down", "wan"), ("interface.update", "wan")]
    status = parse(LINES[RENEWED - 1])[2]
    assert status["ipv4-address"] == [{"address": "192.0.2.4", "mask": 24}] and status["up"] is True
    for junk in ("", "{", "[]", '{"a": 1, "b": 2}', '{ "interface.update": [] }', '{ "other": {"interface": "wan"} }',
                 '{ "interface.update": {"up": true} }'):
        assert parse(junk) is None
    # The two recorded ifdowns say the same; a later ifup with the first address is a change again.
    keys = [address_key(*parse(line)[::2]) for line in LINES]
    assert keys[DOWN - 1] == keys[DOWN_AGAIN - 1] and keys[UP - 1] == keys[UP_AGAIN - 1]
    assert len({keys[UP - 1], keys[RENEWED - 1], keys[DOWN - 1]}) == 3


class _Agent:
    def __init__(self, config):
        self.config = config
        self.events = []

    def submit(self, e):
        self.events.append(e)


def test_only_address_changes_of_read_interfaces_queue_a_check(tmp_path):
    from edgeddns.ubus import UbusSource, ubus_names

    cfg = load(write_config(tmp_path, CFG.format(d=tmp_path)))
    assert ubus_names(cfg) == {"wan"}
    src = UbusSource(cfg)
    agent = _Agent(cfg)
    src._agent = agent
    assert src.handle(LINES[UP - 1]) is True
    e = agent.events[-1]
    assert (e.trigger, e.iface, e.records) == ("ubus", "wan", ["router.lan"])
    assert e.interfaces["wan"]["ipv4-address"][0]["address"] == "192.0.2.2"
    # The same addresses again (a route or data change): nothing to do.
    same = json.loads(LINES[UP - 1])
    same["interface.update"]["updated"] = ["routes"]
    same["interface.update"]["uptime"] = 99
    assert src.handle(json.dumps(same)) is False
    assert src.handle(LINES[RENEWED - 1]) is True
    assert src.handle(LINES[DOWN - 1]) is True and agent.events[-1].interfaces["wan"]["up"] is False
    assert src.handle(LINES[DOWN_AGAIN - 1]) is False
    # An interface no record reads.
    lan = LINES[UP - 1].replace('"interface":"wan"', '"interface":"lan"')
    assert src.handle(lan) is False
    assert len(agent.events) == 3


def test_wanted_only_with_ubus_sources_and_a_ubus_binary(tmp_path):
    from edgeddns.ubus import UbusSource

    cfg = load(write_config(tmp_path, CFG.format(d=tmp_path)))
    assert UbusSource.wanted(cfg, which=lambda name: "/bin/ubus")
    assert not UbusSource.wanted(cfg, which=lambda name: None)
    other = load(write_config(tmp_path, CFG.format(d=tmp_path).replace("ubus:wan", "static:192.0.2.9"), "b.toml"))
    assert not UbusSource.wanted(other, which=lambda name: "/bin/ubus")


def test_notifications_reach_the_agent_without_a_ubus_call(tmp_path, ubusd):
    d, env = ubusd
    cfg = write_config(tmp_path, CFG.format(d=tmp_path))
    state = tmp_path / "state"
    hosts = tmp_path / "hosts"
    agent = AgentProc(cfg, extra_env=env, verbose=True)
    try:
        # Startup: one full check, which asks netifd once.
        assert wait_for(lambda: "192.0.2.2 router.lan" in read(hosts)), agent.log
        assert "call network.interface.wan status" in calls(d)
        assert wait_for(lambda: "subscribe network.interface" in calls(d)), agent.log
        assert wait_for(lambda: read(state / "ubus.pid").strip() == str(agent.proc.pid)), agent.log
        before = len(calls(d))
        # A renewal (ifupdate): the new address comes with the notification.
        notify(d, RENEWED)
        assert wait_for(lambda: "192.0.2.4 router.lan" in read(hosts)), agent.log
        assert agent.wait_log(lambda t: "192.0.2.4" in t and "[ubus]" in t)
        # ifdown: its own status, no failure, no retry; the second (identical) ifdown changes nothing.
        notify(d, DOWN)
        assert agent.wait_log(lambda t: "interface wan is down" in t), agent.log
        notify(d, DOWN_AGAIN)
        reply = control.request(str(state / control.SOCKET_NAME), {"op": "status"})
        rec = reply["state"]["records"][0]
        assert rec["status"] == "skipped" and rec["error"]["code"] == "interface_down", rec
        assert "wan" in rec["error"]["message"]
        # ifup again: updated from the notification.
        notify(d, UP_AGAIN)
        assert wait_for(lambda: "192.0.2.2 router.lan" in read(hosts)), agent.log
        assert calls(d)[before:] == [], "a notification was followed by a ubus call"
        assert "retrying" not in agent.log and "WARNING" not in agent.log, agent.log
        # ubusd goes away: resubscribe (after the back-off) and check everything once.
        notify(d, "exit")
        assert wait_for(lambda: calls(d)[before:] == ["subscribe network.interface",
                                                      "call network.interface.wan status"]), (calls(d), agent.log)
        assert "resubscribing" in agent.log
        notify(d, RENEWED)
        assert wait_for(lambda: "192.0.2.4 router.lan" in read(hosts)), agent.log
        # netifd restarts: its new network.interface object has a new id, the old subscription
        # hears nothing more. ubusd announces the object; the agent resubscribes and checks once.
        before = len(calls(d))
        notify(d, "network.interface", fifo="objects")
        assert wait_for(lambda: calls(d)[before:before + 2] == ["subscribe network.interface",
                                                                "call network.interface.wan status"]), calls(d)
        assert "registered network.interface again" in agent.log
        notify(d, UP_AGAIN)
        assert wait_for(lambda: "192.0.2.2 router.lan" in read(hosts)), agent.log
    finally:
        assert agent.stop() == 0, agent.log
    assert not (state / "ubus.pid").exists()


def test_interface_down_is_skipped_not_failed_and_not_retried(tmp_path, ubusd):
    """netifd says wan is down at start: the record is skipped, naming wan, with no retry timer."""
    d, env = ubusd
    down = json.loads(LINES[DOWN - 1])["interface.down"]
    del down["interface"]
    (d / "wan.status.json").write_text(json.dumps(down, indent="\t"))
    cfg = write_config(tmp_path, CFG.format(d=tmp_path))
    agent = AgentProc(cfg, extra_env=env)
    try:
        assert wait_for(lambda: serving(str(tmp_path / "state" / control.SOCKET_NAME))), agent.log
        assert agent.wait_log(lambda t: "router.lan" in t), agent.log
        reply = control.request(str(tmp_path / "state" / control.SOCKET_NAME), {"op": "status"})
        rec = reply["state"]["records"][0]
        assert rec["status"] == "skipped" and rec["error"]["code"] == "interface_down", rec
        assert "interface wan is down" in rec["error"]["message"]
        assert "retrying" not in agent.log and "WARNING: failed" not in agent.log, agent.log
    finally:
        agent.stop()


def test_a_failed_subscription_is_retried_without_checks_or_marker(tmp_path):
    """No ubusd (the CLI exits at once): back-off retries, no full check per attempt, no ubus.pid."""
    from edgeddns.ubus import UbusSource

    cfg = load(write_config(tmp_path, CFG.format(d=tmp_path)))
    src = UbusSource(cfg, argv=["sh", "-c", "echo 'Failed to connect to ubus' >&2; exit 255"],
                     backoff=(0.05, 0.1), settle=0.2)
    agent = _Agent(cfg)
    src.start(agent)
    try:
        assert wait_for(lambda: src.subscriptions >= 3, timeout=10)
        assert agent.events == [] and not (tmp_path / "state" / "ubus.pid").exists()
    finally:
        src.stop()


def _proc_status(pid: int, key: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1]
    return ""


def test_the_child_takes_signals_and_not_the_terminals_ctrl_c(tmp_path):
    """The agent blocks SIGTERM/SIGINT/SIGHUP in every thread; its ubus child must not inherit that
    (it would ignore our SIGTERM and outlive the agent), and a Ctrl-C on the terminal is the agent's alone."""
    import signal
    import sys

    from edgeddns.ubus import UbusSource

    cfg = load(write_config(tmp_path, CFG.format(d=tmp_path)))
    # A child that would keep any blocked mask it got (Python does not reset it) and never exits by itself.
    src = UbusSource(cfg, argv=[sys.executable, "-c", "import time; time.sleep(120)"], settle=0.2)
    agent = _Agent(cfg)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    try:
        src.start(agent)  # the thread inherits the blocked mask, as in the agent
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    try:
        assert wait_for(lambda: (tmp_path / "state" / "ubus.pid").exists(), timeout=10)
        child = src._child
        assert int(_proc_status(child.pid, "SigBlk"), 16) == 0
        assert os.getsid(child.pid) == child.pid != os.getsid(0)
    finally:
        t0 = time.monotonic()
        src.stop()
    assert time.monotonic() - t0 < 4  # SIGTERM worked: no 5 s join, no SIGKILL needed
    assert child.returncode == -signal.SIGTERM


def test_a_wan_notification_also_checks_records_no_event_announces(tmp_path):
    """url:/cmd: sources move with the WAN too; the hotplug script used to check them, now the notification does."""
    from edgeddns.ubus import UbusSource

    body = CFG.format(d=tmp_path) + """
[[records]]
name = "echo.lan"
provider = "lan"
allow_private = true
ip = ["url:http://127.0.0.1:9/ip"]
[[records]]
name = "lan-side.lan"
provider = "lan"
allow_private = true
ip = ["static:192.0.2.99"]
"""
    cfg = load(write_config(tmp_path, body))
    src = UbusSource(cfg)
    agent = _Agent(cfg)
    src._agent = agent
    assert src.handle(LINES[UP - 1])
    assert agent.events[-1].records == ["echo.lan", "router.lan"]
