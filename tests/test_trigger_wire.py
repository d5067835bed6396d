"""``edgeddns trigger`` on the wire: a fixed request, a one-line plain answer, hostile answers refused.

The hotplug fallback runs on every WAN event, as root, and may talk to an agent that runs as a user of
its own. It reads no JSON (``json`` imports ``re``, ``enum`` and more; see tests/test_light.py): its
request is JSON text built from checked values, and it asks the agent for a plain one-line answer.
An agent from before that answer still gets understood (its JSON is read then), and whatever a hostile
or broken agent sends ends as one clear line and exit 1, never a traceback or a terminal escape.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeddns import control
from tests.agentproc import HOSTS_CONFIG, AgentProc, raw_request, read, serving, wait_for
from tests.conftest import run_cli, write_config


def _raw(sock: str, payload: bytes) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sock)
    try:
        s.sendall(payload)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return buf
            buf += chunk
    finally:
        s.close()


field = st.one_of(st.none(), st.text(max_size=70),
                  st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-:@+", max_size=20),
                  # what JSON must escape, and what is near it
                  st.text(alphabet='wan0"\\/\n\t\x00\x1f\x7f \u00e9\u2028{}[],', max_size=12))


@settings(max_examples=500, deadline=None)
@given(field, field, field)
def test_the_trigger_request_is_the_json_the_agent_reads(iface, action, device):
    """Values that need no escaping are formatted in place; anything else goes through json: the agent
    always reads exactly the values given (a quote, a backslash or a newline cannot add a key)."""
    line = control.trigger_request(iface, action, device)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"op": "trigger", "iface": iface, "action": action, "device": device,
                                "reply": "text"}


def test_every_character_arrives_as_itself():
    """Each of the first 1024 code points and a few far ones, inside an otherwise plain value of each field."""
    for c in [*map(chr, range(1024)), "\u2028", "\u2029", "\ufeff", "\U0001f600", "\udcff"]:
        for i in range(3):
            values = ["wan", "ifup", "eth1"]
            values[i] = f"a{c}b"
            assert json.loads(control.trigger_request(*values)) == {
                "op": "trigger", "iface": values[0], "action": values[1], "device": values[2], "reply": "text"}, \
                repr(c)


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    d = tmp_path_factory.mktemp("wire")
    (d / "wan-ip").write_text("10.0.0.1\n")
    cfg = write_config(d, HOSTS_CONFIG.format(d=d, state=d / "state"))
    sock = str(d / "state" / control.SOCKET_NAME)
    a = AgentProc(cfg)
    assert wait_for(lambda: serving(sock)), a.log
    assert wait_for(lambda: "10.0.0.1 home.lan" in read(d / "hosts"))
    yield a, cfg, sock
    assert a.stop() == 0, a.log


def test_a_real_agent_answers_a_trigger_in_one_plain_line(agent):
    a, _, sock = agent
    pid = a.proc.pid
    assert _raw(sock, control.trigger_request("wan", "ifup", "eth1")) == f"ok queued hotplug {pid}\n".encode()
    assert _raw(sock, control.trigger_request("wan", "ifdown", None)) == \
        f"ok ignored {pid} ifdown: no address to publish\n".encode()
    assert _raw(sock, control.trigger_request(None, "ntp-step", None)) == f"ok queued ntp {pid}\n".encode()
    # Refusals too, as long as the request asked for the plain answer.
    assert _raw(sock, b'{"op":"trigger","iface":7,"reply":"text"}\n') == \
        b"error bad_request iface must be a string of at most 64 characters\n"
    assert _raw(sock, b'{"op":"status","reply":"text"}\n').startswith(b"error bad_request ")
    assert _raw(sock, b'{"op":"trigger","reply":"yaml"}\n').startswith(b'{"ok":false')
    # A client from before the plain answer (no "reply") still gets its JSON.
    assert raw_request(sock, b'{"op":"trigger","iface":"wan","action":"ifup"}\n') == \
        {"ok": True, "queued": True, "trigger": "hotplug", "pid": pid}
    assert a.proc.poll() is None and "Traceback" not in a.log


def test_the_cli_through_a_real_agent(agent, tmp_path):
    a, cfg, _ = agent
    r = run_cli("trigger", "-c", cfg, "--iface", "wan", "--action", "ifup", "--device", "eth1")
    assert (r.returncode, r.stdout, r.stderr) == (0, f"queued: hotplug wan (agent pid {a.proc.pid})\n", "")
    r = run_cli("trigger", "-c", cfg, "--iface", "wan", "--action", "ifdown")
    assert (r.returncode, r.stdout) == (0, f"ignored: ifdown: no address to publish (agent pid {a.proc.pid})\n")
    # A value outside the plain characters goes as escaped JSON, and the agent's refusal comes back.
    r = run_cli("trigger", "-c", cfg, "--iface", "w" * 65, "--action", "ifup")
    assert r.returncode == 1 and r.stderr == ("edgeddns: the agent refused: [bad_request] iface must be a string of "
                                              "at most 64 characters\n"), r.stderr
    r = run_cli("trigger", "-c", cfg, "--iface", 'wan"x\\', "--action", "ifup")
    assert (r.returncode, r.stdout) == (0, f"queued: hotplug wan\"x\\ (agent pid {a.proc.pid})\n"), r.stderr
    assert a.wait_log(lambda t: 'trigger ifup wan"x\\' in t)


def _stand_in(path: str, answer: bytes):
    """Something listening where the agent should be, answering every request with ``answer``."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    got = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            with c:
                buf = b""
                while b"\n" not in buf:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                got.append(buf)
                try:
                    c.sendall(answer)
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    return srv, got


@pytest.fixture
def stand_in(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    cfg = write_config(tmp_path, HOSTS_CONFIG.format(d=tmp_path, state=state))
    servers = []

    def start(answer: bytes):
        path = str(state / control.SOCKET_NAME)
        if os.path.exists(path):
            servers.pop().close()
            os.unlink(path)
        srv, got = _stand_in(path, answer)
        servers.append(srv)
        return got

    yield cfg, start
    for s in servers:
        s.close()


def test_an_agent_from_before_the_plain_answer_is_still_understood(stand_in):
    cfg, start = stand_in
    got = start(b'{"ok": true, "queued": true, "trigger": "hotplug", "pid": 7}\n')
    r = run_cli("trigger", "-c", cfg, "--iface", "wan", "--action", "ifup", "--device", "eth1")
    assert (r.returncode, r.stdout, r.stderr) == (0, "queued: hotplug wan (agent pid 7)\n", "")
    assert [json.loads(g) for g in got] == [{"op": "trigger", "iface": "wan", "action": "ifup", "device": "eth1",
                                            "reply": "text"}]
    start(b'{"ok": true, "queued": false, "reason": "ifdown: no address to publish", "pid": 7}\n')
    r = run_cli("trigger", "-c", cfg, "--iface", "wan", "--action", "ifdown")
    assert (r.returncode, r.stdout) == (0, "ignored: ifdown: no address to publish (agent pid 7)\n")
    start(b'{"ok": false, "error": {"code": "forbidden", "message": "uid 5 may not control this agent"}}\n')
    r = run_cli("trigger", "-c", cfg, "--iface", "wan")
    assert (r.returncode, r.stderr) == (1, "edgeddns: the agent refused: [forbidden] uid 5 may not control this "
                                           "agent\n")


HOSTILE = [
    b'{"ok": false, "error": "boom"}\n',  # before: AttributeError ('str' object has no attribute 'get'), a traceback
    b'{"ok": true, "queued": true, "trigger": "hotplug", "pid": "\\u001b[2J"}\n',  # before: the escape reached the tty
    b'{"ok": false, "error": {"code": "x", "message": "\\u001b]0;owned\\u0007"}}\n',  # before: same
    b'{"ok": true, "queued": true, "trigger": ["x"], "pid": 7}\n',
    b'{"ok": true, "queued": false, "reason": 5, "pid": 7}\n',
    b"[1, 2]\n",
    b"{" * 3000 + b"\n",
    b"ok queued hotplug\n",
    b"ok queued hot plug 12\n",
    b"ok queued hotplug 12 extra\n",
    b"ok queued hotplug 99999999999999999999\n",
    b"ok queued hotplug -1\n",
    b"ok queued hotplug \xd9\xa1\xd9\xa2\n",  # Arabic-Indic digits: str.isdigit() says yes, int() reads 12
    b"ok ignored 12\n",
    b"ok ignored 12 ifdown\x1b[2J\n",
    b"error bad_request \x1b]0;owned\x07\n",
    b"error \x1b[2J message\n",
    b"ok  queued hotplug 12\n",
    b"OK queued hotplug 12\n",
    b"\xff\xfe\n",
    b"\n",
    b"",
    b"nonsense\n",
    b"x" * 8000 + b"\n",
]


@pytest.mark.parametrize("answer", HOSTILE, ids=[repr(h[:24]) for h in HOSTILE])
def test_a_hostile_or_broken_answer_is_one_clear_line(stand_in, answer):
    cfg, start = stand_in
    start(answer)
    r = run_cli("trigger", "-c", cfg, "--iface", "wan", "--action", "ifup")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "" and r.stderr.count("\n") == 1 and r.stderr.startswith("edgeddns: "), r.stderr
    assert "malformed" in r.stderr or "refused" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "\x1b" not in r.stderr and "\x07" not in r.stderr, r.stderr


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=30), st.integers()), st.one_of(st.none(), st.text(max_size=1100)),
       st.booleans(), st.booleans())
def test_whatever_the_agent_has_to_say_it_says_in_a_line_the_client_reads(word, text, ok, queued):
    """The agent's side: free text loses its control characters (a newline would end the answer early, an
    escape would reach the terminal), odd words become ``internal``; the client never refuses the result."""
    from edgeddns.control_server import plain_answer

    obj = {"ok": True, "queued": True, "trigger": word, "pid": 42} if ok and queued else \
        {"ok": True, "queued": False, "reason": text, "pid": 42} if ok else \
        {"ok": False, "error": {"code": word, "message": text}}
    line = plain_answer(obj)
    assert "\n" not in line
    answer = control.read_trigger_answer(line.encode())
    assert answer["ok"] is ok and answer.get("pid", 42) == 42
    if not ok:
        assert answer["code"] == (word if control._word(word) else "internal")


def test_a_flood_is_cut_after_a_short_line(tmp_path):
    """A trigger's answer is one short line: a flooding agent is cut after a few KiB (the status client
    takes up to 16 MiB; the hotplug path has no use for that much)."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    cfg = write_config(tmp_path, HOSTS_CONFIG.format(d=tmp_path, state=state))
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(state / control.SOCKET_NAME))
    srv.listen(1)
    sent = []

    def flood():
        c, _ = srv.accept()
        n = 0
        with c:
            c.recv(4096)
            try:
                while n < 64 << 20:
                    n += c.send(b"ok ignored 7 " + b"a" * 65536)
            except OSError:
                pass
        sent.append(n)

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        r = run_cli("trigger", "-c", cfg, "--iface", "wan", "--timeout", "30")
        t.join(30)
    finally:
        srv.close()
    assert r.returncode == 1 and "longer than 4096 bytes" in r.stderr, r.stderr
    assert sent and sent[0] < 8 << 20, sent


def test_triggers_answered_on_the_accept_thread_leave_the_agent_serving(agent):
    """A trigger that is complete when the agent accepts it is answered on the accept thread: clients that
    hang up at once, or never read, or send two lines, cost that thread nothing and break nothing."""
    a, _, sock = agent
    line = control.trigger_request("wan", "ifdown", None)
    for i in range(60):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        s.sendall(line if i % 3 else line + line)
        if i % 2:
            s.close()  # gone before the answer
        else:
            s.shutdown(socket.SHUT_WR)  # never reads; closed below
            s.close()
        if i % 10 == 9:  # the listen backlog is 16: wait until the agent has taken these (it answers in order)
            assert _raw(sock, line).startswith(b"ok ignored ")
    assert _raw(sock, line) == f"ok ignored {a.proc.pid} ifdown: no address to publish\n".encode()
    assert serving(sock) and a.proc.poll() is None
    assert "Traceback" not in a.log and "answering a trigger failed" not in a.log, a.log[-2000:]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_another_users_trigger_is_refused_in_the_plain_answer(tmp_path):
    base = tempfile.mkdtemp(prefix="edgeddns-wire-")
    try:
        os.chmod(base, 0o755)
        (tmp_path / "wan-ip").write_text("10.0.0.1\n")
        state = os.path.join(base, "state")
        cfg = write_config(tmp_path, HOSTS_CONFIG.format(d=tmp_path, state=state))
        sock = os.path.join(state, control.SOCKET_NAME)
        a = AgentProc(cfg)
        try:
            assert wait_for(lambda: serving(sock)), a.log
            os.chmod(state, 0o755)
            os.chmod(sock, 0o666)
            code = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n"
                    "s.sendall(sys.argv[2].encode())\nsys.stdout.write(s.recv(4096).decode())")
            r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                                code, sock, control.trigger_request("wan", "ifup", None).decode()],
                               capture_output=True, text=True, timeout=20)
            assert r.stdout == "error forbidden uid 65534 may not control this agent\n", (r.stdout, r.stderr)
            assert control.read_trigger_answer(r.stdout.encode().rstrip(b"\n"))["code"] == "forbidden"
            assert a.wait_log(lambda t: "refused a client with uid 65534" in t)
        finally:
            assert a.stop() == 0, a.log
    finally:
        shutil.rmtree(base, ignore_errors=True)
