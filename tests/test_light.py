"""What the cheap paths import: deterministic stand-ins for the benchmarks' timings.

A router pays for every module on every WAN event and cron tick, so the
no-change ``update`` and the hotplug ``trigger`` must not load the TLS stack,
the HTTP client, MQTT, hashing (OpenSSL's libcrypto) or the mail parser.
Timings live in ``bench/light.py``; here only the module sets are asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import ROOT, hosts_config, write_config

# Modules whose import costs milliseconds and megabytes on a router.
HEAVY = ("ssl", "_ssl", "email", "hashlib", "_hashlib", "hmac", "secrets", "requests", "urllib3", "paho",
         "http.client", "uuid", "random", "tempfile", "ctypes", "xml", "subprocess", "platform", "shlex",
         "asyncio", "concurrent", "zipfile", "tarfile", "decimal", "statistics")


# Standard modules a cheap path has no use for (each costs about a ms or more on a router): the
# command-line parser, logging (with traceback and threading), socket.py, the IDNA codec.
NOT_ON_CHEAP_PATHS = ("argparse", "gettext", "locale", "shutil", "logging", "traceback", "textwrap",
                      "encodings.idna", "stringprep", "unicodedata")
# ... and what the hosts no-change path in particular never needs (no network at all).
NOT_ON_HOSTS_PATH = NOT_ON_CHEAP_PATHS + ("socket", "selectors", "threading", "urllib", "urllib.parse")


def heavy(mods):
    return sorted(m for m in mods if m in HEAVY or m.split(".")[0] in HEAVY)


def unwanted(mods, names):
    return sorted(m for m in mods if m in names)


def bare_env():
    """Run with -S and the site-packages on PYTHONPATH: no .pth file (editable installs, hooks) can
    import modules before the path under test does and so hide them from it. The child imports os
    itself, as site would."""
    import site

    return dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, *site.getsitepackages()]))


def loaded_by(argv, cwd=ROOT):
    """Run the CLI in a fresh interpreter and return (exit status, modules loaded beyond a bare start)."""
    code = ("import sys, os\nbare = set(sys.modules)\nfrom edgeddns.cli import main\nrc = main(%r)\n"
            "mods = sorted(set(sys.modules) - bare)\n"  # before json (and re) are imported to say them
            "import json\nsys.stdout.flush()\nprint('\\nMODULES ' + json.dumps(mods))\n"
            "raise SystemExit(rc)" % (argv,))
    p = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=bare_env(), cwd=cwd,
                       timeout=60)
    line = [x for x in p.stdout.splitlines() if x.startswith("MODULES ")]
    assert line, p.stdout + p.stderr
    return p, json.loads(line[-1][len("MODULES "):])


def test_no_change_update_with_hosts_imports_nothing_heavy(tmp_path):
    cfg = hosts_config(tmp_path)
    p, _ = loaded_by(["update", "-c", cfg])
    assert p.returncode == 0 and "updated" in p.stdout, p.stdout + p.stderr
    p, mods = loaded_by(["update", "-c", cfg])
    assert p.returncode == 0 and "unchanged" in p.stdout, p.stdout + p.stderr
    assert heavy(mods) == [], heavy(mods)
    assert unwanted(mods, NOT_ON_HOSTS_PATH) == [], unwanted(mods, NOT_ON_HOSTS_PATH)


@pytest.fixture
def checkip():
    """A plain-HTTP "what is my address" page, as dyndns2 services offer."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"Current IP Address: 8.8.4.4\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}/"
    srv.shutdown()
    srv.server_close()


def test_no_change_update_with_dyndns2_and_url_source_imports_nothing_heavy(tmp_path, checkip):
    state = tmp_path / "state"
    cfg = write_config(tmp_path, f"""
        [agent]
        node_id = "t"
        state_dir = "{state}"
        [ip]
        ipv4 = ["url:{checkip}"]
        [providers.dyn]
        type = "dyndns2"
        endpoint = "https://127.0.0.1:1/nic/update"
        username = "user"
        password = "pass-word-1234"
        [[records]]
        name = "home.example.com"
        provider = "dyn"
    """)
    # The state a successful update leaves (the provider itself is not what this test is about):
    # one run with --dry-run checks the address detection works, then the state says "published".
    p, _ = loaded_by(["update", "-c", cfg, "--dry-run", "--json"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout.splitlines()[0])["ip"] == "8.8.4.4"
    seed = "import sys; from edgeddns.config import load; from edgeddns.engine import Engine; " \
           "from edgeddns.clock import build_clock; from edgeddns.state import StateStore; " \
           "cfg = load(sys.argv[1]); st = StateStore.open(cfg.agent.state_dir); " \
           "e = Engine(cfg, build_clock(cfg.clock, cfg.agent.state_dir), st); " \
           "from edgeddns.result import Result; r = Result(record='home.example.com', type='A', provider='dyn', " \
           "ip=None, previous_ip=None, status='failed'); e._save(cfg.records[0], '8.8.4.4', r); st.flush()"
    subprocess.run([sys.executable, "-c", seed, cfg], check=True, env=dict(os.environ, PYTHONPATH=ROOT))
    p, mods = loaded_by(["update", "-c", cfg, "--json"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout.splitlines()[0])["status"] == "unchanged", p.stdout
    assert heavy(mods) == [], heavy(mods)
    assert unwanted(mods, NOT_ON_CHEAP_PATHS) == [], unwanted(mods, NOT_ON_CHEAP_PATHS)


def test_every_provider_module_imports_light():
    """Loading a config validates each provider's options from its module: that import must stay cheap."""
    from edgeddns.providers import PROVIDERS

    code = ("import sys, json\nfrom edgeddns import config, providers\nfrom edgeddns.providers import base\n"
            "bare = set(sys.modules)\nimport importlib\n"
            "for t in sys.argv[1:]:\n    importlib.import_module(providers.PROVIDERS[t].split(':')[0])\n"
            "print(json.dumps(sorted(set(sys.modules) - bare)))")
    for ptype in sorted(PROVIDERS):
        p = subprocess.run([sys.executable, "-c", code, ptype], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=ROOT), timeout=60)
        assert p.returncode == 0, p.stderr
        assert heavy(json.loads(p.stdout)) == [], (ptype, heavy(json.loads(p.stdout)))


# What the hotplug fallback may load beyond a bare interpreter: its own few modules and a few small
# built-in ones. No argparse (edgeddns.argv reads the plain spellings), no typing, no socket.py, no config,
# no logging, and no json: its request is built from checked values and the agent answers it in one plain
# line (json would bring re, enum, functools and collections along).
TRIGGER_MODULES = {"edgeddns", "edgeddns.argv", "edgeddns.cli", "edgeddns.bootstrap", "edgeddns.control",
                   "edgeddns.statedir", "_socket", "stat", "_stat", "time"}
# __future__ too: `from __future__ import annotations` imports that module at run time (about 0.1 ms);
# the modules of this path quote their annotations instead.
NOT_ON_TRIGGER_PATH = ("__future__", "errno", "types", "re", "_sre", "sre_compile", "json", "_json", "enum", "typing",
                       "dataclasses", "functools", "collections", "operator", "keyword", "reprlib", "socket",
                       "selectors", "threading", "tomllib", "tomli", "ipaddress", "edgeddns.config", "edgeddns.oneshot",
                       "edgeddns.fileio")


def test_trigger_imports_only_its_own_few_modules(tmp_path):
    """The hotplug fallback against a real running agent, and with none: the modules it loads."""
    from tests.agentproc import HOSTS_CONFIG, AgentProc, serving, wait_for

    state = tmp_path / "state"
    (tmp_path / "wan-ip").write_text("10.0.0.1\n")
    cfg = write_config(tmp_path, HOSTS_CONFIG.format(d=tmp_path, state=state))
    code = ("import sys, os\nbare = set(sys.modules)\nfrom edgeddns.cli import main\nrc = main(sys.argv[1:])\n"
            "sys.stdout.flush()\nprint('\\nMODULES ' + ' '.join(sorted(set(sys.modules) - bare)))\n"
            "raise SystemExit(rc)")
    argv = ["trigger", "-c", cfg, "--iface", "wan", "--action", "ifup", "--device", "eth1", "--timeout=5"]

    def run():
        p = subprocess.run([sys.executable, "-S", "-c", code, *argv], capture_output=True, text=True,
                           env=bare_env(), timeout=60)
        mods = set(p.stdout.rsplit("MODULES ", 1)[-1].split())
        return p, mods

    state.mkdir(mode=0o700)
    p, mods = run()  # no agent: exit 3 and the reason
    assert p.returncode == 3 and "no agent is running" in p.stderr, p.stdout + p.stderr
    assert unwanted(mods, NOT_ON_TRIGGER_PATH) == [], unwanted(mods, NOT_ON_TRIGGER_PATH)
    assert mods <= TRIGGER_MODULES, sorted(mods - TRIGGER_MODULES)
    a = AgentProc(cfg)
    try:
        assert wait_for(lambda: serving(str(state / "control.sock"))), a.log
        p, mods = run()
        assert p.returncode == 0 and f"queued: hotplug wan (agent pid {a.proc.pid})" in p.stdout, p.stdout + p.stderr
        assert a.wait_log(lambda t: "trigger ifup wan (eth1)" in t), a.log
    finally:
        assert a.stop() == 0, a.log
    assert heavy(mods) == [], heavy(mods)
    assert unwanted(mods, NOT_ON_TRIGGER_PATH) == [], unwanted(mods, NOT_ON_TRIGGER_PATH)
    assert mods <= TRIGGER_MODULES, sorted(mods - TRIGGER_MODULES)


def test_an_idle_daemon_loads_no_event_source_its_config_does_not_name(tmp_path):
    """ubus and netlink sources stay resident in the daemon: only for configs with ubus:/interface: sources."""
    def kinds_loaded(ipv4):
        cfg = write_config(tmp_path, f"""
            [agent]
            node_id = "t"
            state_dir = "{tmp_path}/state"
            [ip]
            ipv4 = ["{ipv4}"]
            [providers.lan]
            type = "hosts"
            path = "{tmp_path}/hosts"
            [[records]]
            name = "home.example.com"
            provider = "lan"
        """)
        code = ("import sys\nfrom edgeddns.config import load\nfrom edgeddns.sources import source_specs\n"
                "specs = source_specs(load(sys.argv[1]))\n"
                "print(sorted(m for m in sys.modules if m in ('edgeddns.ubus', 'edgeddns.netevents')), "
                "sorted(s[0][0] for s in specs))")
        p = subprocess.run([sys.executable, "-S", "-c", code, cfg], capture_output=True, text=True, env=bare_env(),
                           timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout.strip()

    assert kinds_loaded("static:8.8.8.8") == "[] ['control']"
    assert kinds_loaded("interface:eth0") == "['edgeddns.netevents'] ['control', 'netlink']"


# -- the idle daemon: what it holds once started ---------------------------------------------------
# `edgeddns run` in a fresh interpreter (-S, as above) plus one thread that, when the test writes a
# byte to its stdin (the first update's log line was seen), lists the modules loaded beyond a bare
# start and ends the daemon with SIGTERM. threading and signal are imported before the listing's
# baseline (the daemon needs both anyway); the thread itself imports nothing.
IDLE_WATCH = r'''
import os, signal, sys, threading
bare = set(sys.modules)

def watch():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    os.read(0, 1)
    os.write(1, ("\nMODULES " + " ".join(sorted(set(sys.modules) - bare)) + "\n").encode())
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=watch, daemon=True).start()
from edgeddns.cli import main
raise SystemExit(main(["run", "-c", sys.argv[1]]))
'''


def idle_daemon_modules(cfg, ready="[startup]", timeout=60.0):
    """The modules an ``edgeddns run`` holds once its first update logged ``ready``."""
    import time

    p = subprocess.Popen([sys.executable, "-S", "-c", IDLE_WATCH, cfg], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=bare_env(), cwd=ROOT, text=True)
    watchdog = threading.Timer(timeout, p.kill)
    watchdog.start()
    log = []
    try:
        for line in p.stderr:
            log.append(line)
            if ready in line:
                break
        # Anything the worker imports after that line (saving the state, releasing the session) is
        # imported within moments; the listing is for modules that stay, so this only narrows the
        # chance that a late one is missed (it can never make the test fail).
        time.sleep(0.5)
        p.stdin.write("x")
        p.stdin.flush()
        out, err = p.communicate()
    finally:
        watchdog.cancel()
        if p.poll() is None:
            p.kill()
            p.wait()
    text = "".join(log) + err
    assert any(ready in x for x in log), text
    assert p.returncode == 0, text
    line = [x for x in out.splitlines() if x.startswith("MODULES ")]
    assert line, out + text
    return set(line[-1].split()[1:])


# Standard modules the idle hosts daemon has no use for: socket.py (with selectors and array) where
# the control socket needs only _socket, random (with math, bisect and _sha512) where a jitter needs a
# few random bytes.
NOT_IN_IDLE_HOSTS_DAEMON = ("socket", "selectors", "array", "random", "_random", "bisect", "_sha512")


def test_an_idle_hosts_daemon_holds_no_module_it_does_not_need(tmp_path):
    cfg = hosts_config(tmp_path)
    mods = idle_daemon_modules(cfg)
    assert "edgeddns.providers.hosts" in mods, sorted(mods)  # the listing is the daemon's
    assert unwanted(mods, NOT_IN_IDLE_HOSTS_DAEMON) == [], unwanted(mods, NOT_IN_IDLE_HOSTS_DAEMON)
    assert heavy(mods) == [], heavy(mods)


# requests imports a character-set detector (charset_normalizer, or chardet) only to guess the
# encoding of Response.text; edgeddns.http reads the raw bytes and decodes them itself. A provider that
# speaks plain HTTP needs no TLS context (edgeddns.tls builds it, with its CA store). No ~/.netrc lookup
# (tests/test_sessions.py: credentials come from the config only).
NOT_AFTER_AN_HTTP_UPDATE = ("charset_normalizer", "chardet", "edgeddns.tls", "netrc")


def test_an_idle_daemon_after_an_http_update_holds_no_charset_detector(tmp_path):
    from tests.fakes.dyndns2 import FakeDyndns2
    from tests.fakes.server import FakeServer

    fake = FakeDyndns2({"user": "pass-word-1234"}, ["home.example.com"])
    srv = FakeServer(fake).start()
    try:
        cfg = write_config(tmp_path, f"""
            [agent]
            node_id = "t"
            state_dir = "{tmp_path}/state"
            [ip]
            ipv4 = ["static:8.8.4.4"]
            [providers.dyn]
            type = "dyndns2"
            endpoint = "{srv.url}/nic/update"
            username = "user"
            password = "pass-word-1234"
            [[records]]
            name = "home.example.com"
            provider = "dyn"
        """)
        mods = idle_daemon_modules(cfg, ready="updated")
    finally:
        srv.stop()
    assert fake.records == {("home.example.com", "A"): "8.8.4.4"}
    assert "requests" in mods and "urllib3" in mods, sorted(mods)  # the update went through requests
    assert unwanted(mods, NOT_AFTER_AN_HTTP_UPDATE) == [], unwanted(mods, NOT_AFTER_AN_HTTP_UPDATE)


def _import_requests_with(tmp_path, requests_init):
    """edgeddns.http.import_requests against a stand-in requests package (and a detector it may want)."""
    pkg = tmp_path / "requests"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(requests_init)
    (tmp_path / "charset_normalizer.py").write_text("DETECTOR = True\n")
    code = ("import sys\nsys.path[:0] = [sys.argv[1]]\nfrom edgeddns.http import import_requests\n"
            "r = import_requests()\nprint(r.DETECTOR)\nimport charset_normalizer\nprint(charset_normalizer.DETECTOR)")
    p = subprocess.run([sys.executable, "-S", "-c", code, str(tmp_path)], capture_output=True, text=True,
                       env=bare_env(), timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def test_requests_that_can_go_without_a_detector_is_imported_without_one(tmp_path):
    # As requests 2.32+: the detector is optional. Afterwards nobody else is refused it.
    init = "try:\n    import charset_normalizer\n    DETECTOR = True\nexcept ImportError:\n    DETECTOR = False\n"
    assert _import_requests_with(tmp_path, init) == ["False", "True"]


def test_an_older_requests_that_needs_a_detector_is_imported_with_it(tmp_path):
    # As requests before 2.32: its import fails without one; it is then imported as it is.
    init = "import charset_normalizer\nDETECTOR = charset_normalizer.DETECTOR\n"
    assert _import_requests_with(tmp_path, init) == ["True", "True"]
