"""The control socket: ``edgeddns trigger`` / ``status`` against a real running agent."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeddns import control, control_server, statedir
from edgeddns.config import load
from tests.agentproc import HOSTS_CONFIG, AgentProc, raw_request, read, serving, wait_for
from tests.conftest import run_cli, write_config


def _setup(tmp_path, state=None, ip="10.0.0.1"):
    (tmp_path / "wan-ip").write_text(ip + "\n")
    state = state or str(tmp_path / "state")
    cfg = write_config(tmp_path, HOSTS_CONFIG.format(d=tmp_path, state=state))
    return cfg, os.path.join(state, control.SOCKET_NAME)


@pytest.fixture
def agent(tmp_path):
    cfg, sock = _setup(tmp_path)
    a = AgentProc(cfg)
    assert wait_for(lambda: serving(sock)), a.log
    assert wait_for(lambda: "10.0.0.1 home.lan" in read(tmp_path / "hosts"))
    yield a, cfg, sock
    assert a.stop() == 0, a.log


def test_trigger_reaches_the_agent_and_updates(agent, tmp_path):
    a, cfg, sock = agent
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(sock)).st_mode) == 0o700
    (tmp_path / "wan-ip").write_text("10.0.0.2\n")
    r = run_cli("trigger", "-c", cfg, "--iface", "wan", "--action", "ifup", "--device", "eth1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("queued: hotplug wan") and str(a.proc.pid) in r.stdout
    assert wait_for(lambda: "10.0.0.2 home.lan" in read(tmp_path / "hosts"))
    assert a.wait_log(lambda t: "trigger ifup wan (eth1)" in t and "10.0.0.2" in t and "[hotplug]" in t)
    # ifdown carries no address: acknowledged, nothing queued.
    r = run_cli("trigger", "-c", cfg, "--iface", "wan", "--action", "ifdown")
    assert r.returncode == 0 and r.stdout.startswith("ignored: ifdown")


def test_status(agent):
    a, cfg, _ = agent
    r = run_cli("status", "-c", cfg, "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["node_id"] == "n" and st["records"][0]["record"] == "home.lan"
    assert st["records"][0]["ip"] == "10.0.0.1"
    r = run_cli("status", "-c", cfg)
    assert r.returncode == 0 and "home.lan A via lan" in r.stdout and f"pid {a.proc.pid}" in r.stdout
    assert "last       updated 10.0.0.1 at " in r.stdout and "published  10.0.0.1" in r.stdout


def test_malformed_requests_get_errors_and_the_agent_lives_on(agent):
    a, _, sock = agent
    cases = [
        (b"not json\n", "bad_request"),
        (b"[1, 2]\n", "bad_request"),
        (b'{"op": "reboot"}\n', "bad_request"),
        (b'{"op": "trigger", "iface": 7}\n', "bad_request"),
        (b'{"op": "trigger", "iface": "' + b"x" * 100 + b'"}\n', "bad_request"),
        (b"\xff\xfe\n", "bad_request"),
        (b"\n", "bad_request"),
        (b"{" * 5000 + b"\n", "bad_request"),  # longer than a request may be
    ]
    for payload, code in cases:
        reply = raw_request(sock, payload)
        assert reply["ok"] is False and reply["error"]["code"] == code, (payload[:20], reply)
    # A client that connects and says nothing is dropped after the timeout,
    # and does not stop others meanwhile.
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(sock)
    assert serving(sock)
    idle.close()
    # Half a line, then hang up.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(b'{"op": "sta')
    s.close()
    assert serving(sock) and a.proc.poll() is None
    assert "Traceback" not in a.log


def _as_nobody(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=20)


NOBODY_CLIENT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1] if len(sys.argv) > 1 else {path!r})
except PermissionError:
    print("EACCES"); raise SystemExit
s.sendall(b'{{"op":"trigger","iface":"wan"}}\\n')
print(s.recv(4096).decode().strip())
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_other_users_are_refused(tmp_path):
    # A world-traversable base, so only the agent's own modes stand in the way.
    base = tempfile.mkdtemp(prefix="edgeddns-ctl-")
    try:
        os.chmod(base, 0o755)
        cfg, sock = _setup(tmp_path, state=os.path.join(base, "state"))
        a = AgentProc(cfg)
        try:
            assert wait_for(lambda: serving(sock)), a.log
            # 1. the file modes: the state dir is 0700, nobody cannot reach the socket
            r = _as_nobody(NOBODY_CLIENT.format(path=sock))
            assert r.stdout.strip() == "EACCES", r.stderr
            # 2. SO_PEERCRED: even with the modes opened up, the agent refuses another uid
            os.chmod(os.path.dirname(sock), 0o755)
            os.chmod(sock, 0o666)
            r = _as_nobody(NOBODY_CLIENT.format(path=sock))
            assert r.stdout.strip(), (r.returncode, r.stderr, a.log)
            reply = json.loads(r.stdout)
            assert reply["ok"] is False and reply["error"]["code"] == "forbidden", r.stdout + r.stderr
            assert a.wait_log(lambda t: "refused a client with uid 65534" in t)
            assert "trigger" not in a.log.split("refused", 1)[1]
        finally:
            assert a.stop() == 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_stale_socket_is_replaced(tmp_path):
    cfg, sock = _setup(tmp_path)
    os.makedirs(os.path.dirname(sock), mode=0o700)
    # What a SIGKILLed agent leaves behind: a socket file nobody listens on.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(sock)
    s.close()
    a = AgentProc(cfg)
    try:
        assert wait_for(lambda: serving(sock)), a.log
        r = run_cli("trigger", "-c", cfg, "--iface", "wan")
        assert r.returncode == 0 and str(a.proc.pid) in r.stdout
    finally:
        assert a.stop() == 0
    assert not os.path.exists(sock)  # a clean stop removes it


def test_killed_agent_leaves_no_obstacle(tmp_path):
    cfg, sock = _setup(tmp_path)
    a = AgentProc(cfg)
    assert wait_for(lambda: serving(sock)), a.log
    a.proc.kill()
    a.stop()
    assert os.path.exists(sock)  # left behind
    b = AgentProc(cfg)
    try:
        assert wait_for(lambda: serving(sock)), b.log
        assert str(b.proc.pid) in run_cli("trigger", "-c", cfg).stdout
    finally:
        assert b.stop() == 0


def test_second_agent_leaves_the_first_ones_socket_alone(tmp_path):
    cfg, sock = _setup(tmp_path)
    first = AgentProc(cfg)
    try:
        assert wait_for(lambda: serving(sock)), first.log
        second = AgentProc(cfg)
        # One writer per state dir: the second exits at once, naming the first.
        assert wait_for(lambda: second.proc.poll() is not None), second.log
        assert second.stop() == 1 and f"pid {first.proc.pid}" in second.log
        assert serving(sock)
        assert f"agent pid {first.proc.pid}" in run_cli("trigger", "-c", cfg).stdout
    finally:
        assert first.stop() == 0


def test_no_agent(tmp_path):
    cfg, sock = _setup(tmp_path)
    t0 = time.monotonic()
    r = run_cli("trigger", "-c", cfg, "--iface", "wan", "--action", "ifup")
    elapsed = time.monotonic() - t0
    assert r.returncode == control.EXIT_NO_AGENT
    assert "no agent is running" in r.stderr and sock in r.stderr
    print(f"trigger without an agent: {elapsed * 1000:.0f} ms")
    assert not os.path.exists(tmp_path / "hosts")
    r = run_cli("status", "-c", cfg)
    assert r.returncode == control.EXIT_NO_AGENT and "no agent" in r.stderr


def test_no_agent_fallback_updates_once(tmp_path):
    cfg, _ = _setup(tmp_path, ip="10.0.0.7")
    r = run_cli("trigger", "-c", cfg, "--iface", "wan", "--action", "ifup", "--fallback-update")
    assert r.returncode == 0, r.stderr
    assert "updating here" in r.stderr and "updated" in r.stdout and "10.0.0.7" in r.stdout
    assert "10.0.0.7 home.lan" in read(tmp_path / "hosts")


def test_bad_config_for_trigger(tmp_path):
    cfg = write_config(tmp_path, "[agent\n")
    r = run_cli("trigger", "-c", cfg)
    assert r.returncode == 2 and "invalid TOML" in r.stderr
    r = run_cli("trigger", "-c", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "cannot read" in r.stderr


@pytest.mark.parametrize("line,expect", [
    ('state_dir = "/abs/state"', "/abs/state"),
    ('state_dir = "rel/state"', "REL"),
    ('state_dir = "~/s"', os.path.expanduser("~/s")),
    ("", "DEFAULT"),
    # Spellings the line scan reads itself, or leaves to the TOML parser: both must agree.
    ("state_dir = '/lit/state'  # a comment", "/lit/state"),
    ('"state_dir" = "/q/state"', "/q/state"),
    ('state_dir = "/esc\\u0041/s"', "/escA/s"),
    ('state_dir = """/ml/s"""', "/ml/s"),
    ('node_id = "x" # [agent] state_dir = "/no"', "DEFAULT"),
])
def test_cheap_state_dir_matches_the_real_loader(tmp_path, line, expect):
    cfg = write_config(tmp_path, f"""
        [agent]
        {line}
        [ip]
        ipv4 = ["static:10.0.0.1"]
    """)
    assert control.state_dir_of(cfg) == load(cfg).agent.state_dir
    if expect.startswith("/"):
        assert control.state_dir_of(cfg) == expect
    if expect == "REL":
        assert control.state_dir_of(cfg) == str(tmp_path / "rel" / "state")


class _Clock:
    def __init__(self):
        self.resyncs = 0

    def resync(self):
        self.resyncs += 1


class _Agent:
    """Just enough of an agent for ControlServer.handle: records what it is asked."""

    def __init__(self):
        from edgeddns.handler import CommandHandler

        self.events = []
        self.clock = _Clock()
        self.commands = CommandHandler(self)

    def submit(self, e):
        self.events.append(e)
        return True

    def state(self):
        return {"node_id": "x"}


def test_actions_map_to_events(tmp_path):
    cfg = load(write_config(tmp_path, HOSTS_CONFIG.format(d=tmp_path, state=tmp_path / "s")))
    srv = control_server.ControlServer(cfg)
    ag = _Agent()
    srv._agent = ag
    assert srv.handle(b'{"op":"trigger","iface":"wan","action":"ifupdate"}')["queued"] is True
    assert (ag.events[-1].trigger, ag.events[-1].iface) == ("hotplug", "wan")
    assert srv.handle(b'{"op":"trigger"}')["queued"] is True  # manual: no iface, no action
    for action in ("ifdown", "ifup-failed", "free"):
        assert srv.handle(json.dumps({"op": "trigger", "action": action}).encode())["queued"] is False
    n = len(ag.events)
    assert srv.handle(b'{"op":"trigger","action":"ntp-step"}')["trigger"] == "ntp"
    assert wait_for(lambda: len(ag.events) == n + 1)
    assert ag.events[-1].trigger == "ntp" and ag.clock.resyncs == 1
    assert srv.handle(b'{"op":"status"}')["state"] == {"node_id": "x"}


def test_trigger_path_imports_stay_light(tmp_path):
    """The hotplug path must not load the config machinery, requests, paho or providers."""
    cfg, _ = _setup(tmp_path)
    code = ("import sys; from edgeddns.cli import main; rc = main(['trigger', '-c', %r]); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('edgeddns', 'requests', 'paho', "
            "'urllib3', 'ssl', 'http', 'logging')))))" % cfg)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=30)
    loaded = set(r.stdout.split())
    assert loaded <= {"edgeddns", "edgeddns.cli", "edgeddns.argv", "edgeddns.bootstrap", "edgeddns.control",
                      "edgeddns.fileio", "edgeddns.statedir"}, loaded


def _env():
    from tests.agentproc import env

    return env()


_SCAN_PIECES = ["[agent]", "[ip]", "[[records]]", "[agent.x]", '["agent"]', "state_dir = ", '"/a/b"', "'/c d'",
                '"\\u00e9"', "# c", "agent = ", "{ state_dir = '/i' }", "\n", " ", '"', "'", "=", "[", "]",
                'node_id = "n"', '"""x"""', "state_dir.x = 1", "\t"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_SCAN_PIECES), max_size=14))
def test_line_scan_never_disagrees_with_the_toml_parser(pieces):
    """Whatever the scan claims to know, tomllib says the same; otherwise it must step aside."""
    tomllib = pytest.importorskip("tomllib")
    text = "".join(pieces)
    got = statedir._scan_state_dir(text)
    if got is statedir._UNSURE:
        return
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return  # the agent could not run on such a file either
    agent = data.get("agent")
    want = agent.get("state_dir") if isinstance(agent, dict) else None
    assert got == want, text
