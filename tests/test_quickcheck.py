"""A no-change ``update`` answered from the last run's memo (edgeddns.quickcheck), and every way it must not be.

Real processes throughout: the CLI in a fresh interpreter, a real HTTP
"what is my IP" page, the dyndns2 fake over TLS. Whether the memo answered is
read from the modules the run loaded (no TOML parser, no dataclasses): a
deterministic stand-in for the time it saves (bench/light.py measures that).
"""

from __future__ import annotations

import fcntl
import itertools
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import ROOT, hosts_config, run_cli, write_config
from tests.fakes.dyndns2 import FakeDyndns2
from tests.fakes.server import FakeServer
from tests.test_light import bare_env, loaded_by

USER, PASSWORD = "user@example.org", "memo-Pa55word-0123"
# What a full update loads and an answer from the memo must not.
FULL_PATH = ("tomllib", "tomli", "dataclasses", "typing", "json", "re", "ipaddress", "edgeddns.config",
             "edgeddns.engine", "edgeddns.oneshot")


class CheckIp:
    """A plain-HTTP "what is my IP" page whose answer a test can change; it counts the requests."""

    def __init__(self):
        self.body = b"Current IP Address: 8.8.4.4\n"
        self.hits = 0
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                page.hits += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(page.body)))
                self.end_headers()
                self.wfile.write(page.body)

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_port}/"

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture(scope="module")
def world(tmp_path_factory, server_context, ca_file):
    """Every test's config, written once and left to settle: a memo is written only for files
    unchanged for 2 s (a change within a time stamp's granularity could go unseen)."""
    base = tmp_path_factory.mktemp("memo")
    page = CheckIp()
    dyn = FakeDyndns2({USER: PASSWORD}, ["home.example.com"])
    srv = FakeServer(dyn, ssl_context=server_context).start()
    configs = {}

    def hosts(name):
        d = base / name
        d.mkdir()
        configs[name] = hosts_config(d)

    def dyndns2(name, secret='password_file = "password"'):
        d = base / name
        d.mkdir()
        (d / "password").write_text(PASSWORD + "\n")
        os.chmod(d / "password", 0o600)
        configs[name] = write_config(d, f"""
            [agent]
            node_id = "t"
            state_dir = "{d}/state"
            [ip]
            ipv4 = ["url:{page.url}"]
            [providers.dyn]
            type = "dyndns2"
            endpoint = "{srv.url}nic/update"
            ca_file = "{ca_file}"
            username = "{USER}"
            {secret}
            [[records]]
            name = "home.example.com"
            provider = "dyn"
        """)

    for name in ("answers", "locked", "foreign", "state_edited", "verbose", "state_dir_opened", "closed_output",
                 "unreadable_state"):
        hosts(name)
    for name in ("new_address", "new_secret"):
        dyndns2(name)
    dyndns2("env_secret", 'password = "env:EDGEDDNS_TEST_MEMO_PASSWORD"')
    for name, sources in (("interface", 'ipv4 = ["interface:wan0"]\n            ipv6 = ["interface:wan0"]'),
                          ("default_route", 'ipv4 = ["interface:default"]'),
                          ("fallback", 'ipv4 = ["interface:default", "static:81.2.69.1"]'),
                          ("longest", 'ipv6 = ["interface:wan0"]\n            select = "longest_lifetime"')):
        d = base / name
        d.mkdir()
        records = "".join(f"""
            [[records]]
            name = "home.example.com"
            type = "{t}"
            provider = "lan"
            """ for t in (("A", "AAAA") if name == "interface" else ("AAAA",) if name == "longest" else ("A",)))
        configs[name] = write_config(d, f"""
            [agent]
            node_id = "t"
            state_dir = "{d}/state"
            [ip]
            {sources}
            [providers.lan]
            type = "hosts"
            path = "{d}/hosts"
        """ + records)
    time.sleep(2.1)
    yield configs, page, dyn
    page.close()
    srv.stop()


def memo_file(cfg):
    from edgeddns.quickcheck import memo_path

    return memo_path(cfg)


def run(cfg, *extra):
    p, mods = loaded_by(["update", "-c", cfg, *extra])
    assert "Traceback" not in p.stderr, p.stderr
    return p, set(mods)


def printed(p):
    return p.stdout.split("\nMODULES ")[0]


def answered_by_memo(mods):
    return not [m for m in FULL_PATH if m in mods]


def test_a_second_no_change_update_prints_the_same_from_the_memo(world):
    cfg = world[0]["answers"]
    first, mods1 = run(cfg)
    assert first.returncode == 0 and "updated" in first.stdout, first.stdout + first.stderr
    assert not os.path.exists(memo_file(cfg))  # something changed: nothing to remember
    second, mods2 = run(cfg)
    assert second.returncode == 0 and second.stdout.startswith("unchanged"), second.stdout + second.stderr
    assert not answered_by_memo(mods2)  # the whole update found nothing changed and wrote the memo
    st = os.stat(memo_file(cfg))
    assert st.st_mode & 0o777 == 0o600 and os.stat(os.path.dirname(memo_file(cfg))).st_mode & 0o077 == 0
    third, mods3 = run(cfg)
    assert (third.returncode, printed(third), third.stderr) == (0, printed(second), "")
    assert answered_by_memo(mods3), sorted(m for m in FULL_PATH if m in mods3)
    # Nothing heavier than the state dir's lock and the file checks.
    assert not [m for m in mods3 if m in ("socket", "threading", "logging", "argparse", "enum", "hashlib", "__future__",
                                         "types")], sorted(mods3)


def test_a_changed_address_at_the_url_source_is_updated_and_asked_for_once(world):
    cfg, page, dyn = world[0]["new_address"], world[1], world[2]
    for _ in range(3):
        p, mods = run(cfg)
        assert p.returncode == 0, p.stdout + p.stderr
    assert answered_by_memo(mods) and p.stdout.startswith("unchanged")
    before, sent = page.hits, len(dyn.requests)
    page.body = b"Current IP Address: 9.9.9.9\n"
    try:
        p, mods = run(cfg)
    finally:
        page.body = b"Current IP Address: 8.8.4.4\n"
    assert p.returncode == 0 and p.stdout.startswith("updated") and "9.9.9.9" in p.stdout, p.stdout + p.stderr
    # The memo's check asked the page; the update took that answer instead of asking again.
    assert page.hits == before + 1
    assert len(dyn.requests) == sent + 1 and dyn.requests[-1].query["myip"] == "9.9.9.9"


def test_a_changed_secret_file_republishes_instead_of_answering_from_the_memo(world):
    cfg, dyn = world[0]["new_secret"], world[2]
    for _ in range(3):
        p, mods = run(cfg)
    assert answered_by_memo(mods) and p.stdout.startswith("unchanged"), p.stdout + p.stderr
    sent = len(dyn.requests)
    secret = os.path.join(os.path.dirname(cfg), "password")
    with open(secret, "w") as f:  # the same password, rewritten: the signature changes, the memo does not apply
        f.write(PASSWORD + "\n")
    p, mods = run(cfg)
    assert not answered_by_memo(mods)
    assert p.returncode == 0 and p.stdout.startswith("unchanged") and len(dyn.requests) == sent, p.stdout
    # Same content, same fingerprint: unchanged, and (the file just written) no memo until it settles.
    assert not os.path.exists(memo_file(cfg))


def test_an_edited_state_file_is_noticed(world):
    cfg = world[0]["state_edited"]
    for _ in range(3):
        p, mods = run(cfg)
    assert answered_by_memo(mods)
    state = os.path.join(os.path.dirname(cfg), "state", "state.json")
    with open(state) as f:
        text = f.read()
    with open(state, "w") as f:
        f.write(text.replace("8.8.8.8", "8.8.8.9"))
    p, mods = run(cfg)
    # The whole update ran: it compared with the edited state (and found the hosts file right).
    assert not answered_by_memo(mods) and "(was 8.8.8.9)" in p.stdout, p.stdout + p.stderr


def test_a_held_state_dir_goes_to_its_holder_not_to_the_memo(world):
    cfg = world[0]["locked"]
    for _ in range(3):
        p, mods = run(cfg)
    assert answered_by_memo(mods)
    lock = os.path.join(os.path.dirname(cfg), "state", "control.lock")
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running agent holds it
        os.pwrite(fd, b"4242 run\n", 0)
        p, mods = run(cfg)
    finally:
        os.ftruncate(fd, 0)
        os.close(fd)
    assert not answered_by_memo(mods)
    assert p.returncode == 1 and "pid 4242" in p.stderr, p.stdout + p.stderr


def test_a_memo_this_user_did_not_write_alone_is_ignored(world):
    cfg = world[0]["foreign"]
    for _ in range(3):
        p, mods = run(cfg)
    assert answered_by_memo(mods)
    path = memo_file(cfg)
    os.chmod(path, 0o644)  # readable (so writable, once) by others: not trusted
    p, mods = run(cfg)
    assert not answered_by_memo(mods) and p.returncode == 0
    os.chmod(path, 0o600)
    os.chown(path, 65534, -1)  # another user's
    p, mods = run(cfg)
    assert not answered_by_memo(mods) and p.returncode == 0


def test_options_and_warnings_are_never_answered_from_a_memo(world):
    cfg = world[0]["verbose"]
    for _ in range(3):
        p, mods = run(cfg)
    assert answered_by_memo(mods)
    for extra in (["-v"], ["--json"], ["--dry-run"], ["--record", "home.example.com"], ["--force"]):
        p, mods = run(cfg, *extra)
        assert not answered_by_memo(mods), extra


def test_a_secret_from_the_environment_is_never_memoised(world, monkeypatch):
    cfg = world[0]["env_secret"]
    monkeypatch.setenv("EDGEDDNS_TEST_MEMO_PASSWORD", PASSWORD)
    for _ in range(3):
        p, mods = run(cfg)
        assert p.returncode == 0, p.stdout + p.stderr
    assert not answered_by_memo(mods) and not os.path.exists(memo_file(cfg))


def test_a_state_dir_opened_to_others_is_refused_as_without_a_memo(world):
    cfg = world[0]["state_dir_opened"]
    for _ in range(3):
        p, mods = run(cfg)
    assert answered_by_memo(mods)
    state_dir = os.path.join(os.path.dirname(cfg), "state")
    os.chmod(state_dir, 0o777)
    try:
        p = run_cli("update", "-c", cfg)
    finally:
        os.chmod(state_dir, 0o700)
    assert p.returncode == 2 and "writable by group or others" in p.stderr, p.stdout + p.stderr


_seq = itertools.count()


@pytest.fixture
def netns():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2")
    name = f"edgeddns-q{os.getpid()}-{next(_seq)}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"this machine forbids network namespaces: {r.stderr.strip()}")
    try:
        ip(name, "link", "set", "lo", "up")
        # No duplicate address detection: a link-local address turning from tentative to usable a
        # second later is a real change of the table, but not the one these tests are about.
        for conf in ("all", "default"):
            subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw", f"net.ipv6.conf.{conf}.accept_dad=0"],
                           check=True, capture_output=True, timeout=10)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def link(ns, dev):
    """A veth pair, both ends up (this kernel has no dummy devices)."""
    ip(ns, "link", "add", dev, "type", "veth", "peer", "name", dev + "p")
    ip(ns, "link", "set", dev + "p", "up")
    ip(ns, "link", "set", dev, "up")


def ip(ns, *args):
    subprocess.run(["ip", "netns", "exec", ns, "ip", *args], check=True, capture_output=True, timeout=10)


def run_in(ns, cfg):
    """``loaded_by`` inside the namespace: the CLI sees its interfaces and routes."""
    code = ("import sys, os\nbare = set(sys.modules)\nfrom edgeddns.cli import main\nrc = main(%r)\n"
            "mods = sorted(set(sys.modules) - bare)\nsys.stdout.flush()\nprint('\\nMODULES ' + ' '.join(mods))\n"
            "raise SystemExit(rc)" % (["update", "-c", cfg],))
    p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-S", "-c", code], capture_output=True, text=True,
                       env=bare_env(), cwd=ROOT, timeout=60)
    assert "Traceback" not in p.stderr and "\nMODULES " in p.stdout, p.stdout + p.stderr
    out, _, mods = p.stdout.partition("\nMODULES ")
    return p.returncode, out, set(mods.split())


def test_an_interface_source_is_answered_until_its_addresses_change(world, netns):
    cfg = world[0]["interface"]
    link(netns, "wan0")
    ip(netns, "addr", "add", "81.2.69.160/24", "dev", "wan0")
    # A dynamic (SLAAC-like) address: its remaining lifetimes count down between runs.
    ip(netns, "addr", "add", "2a01:4f8:10a::5/64", "dev", "wan0", "nodad", "preferred_lft", "1800", "valid_lft", "3600")
    rc, out, mods = run_in(netns, cfg)
    assert rc == 0 and out.count("updated") == 2, out
    for _ in range(2):
        rc, out, mods = run_in(netns, cfg)
    assert rc == 0 and out.count("unchanged") == 2 and answered_by_memo(mods), out
    assert "edgeddns.netlink" not in mods and "socket" not in mods  # the wire reader only
    time.sleep(1.1)  # every lifetime has ticked: the table still says the same
    rc, out2, mods = run_in(netns, cfg)
    assert (rc, out2) == (0, out) and answered_by_memo(mods)
    # A second IPv4 address: not the one published (the primary comes first), but the table moved.
    ip(netns, "addr", "add", "81.2.69.161/24", "dev", "wan0")
    rc, out, mods = run_in(netns, cfg)
    assert rc == 0 and out.count("unchanged") == 2 and not answered_by_memo(mods), out
    # The WAN address changes (the primary's secondaries go with it): the update runs and publishes it.
    ip(netns, "addr", "del", "81.2.69.160/24", "dev", "wan0")
    ip(netns, "addr", "add", "81.2.69.170/24", "dev", "wan0")
    rc, out, mods = run_in(netns, cfg)
    assert rc == 0 and "updated      home.example.com A 81.2.69.170" in out and not answered_by_memo(mods), out
    # The IPv6 address deprecated (preferred lifetime 0): not usable any more.
    for _ in range(2):
        rc, out, mods = run_in(netns, cfg)
    assert answered_by_memo(mods)
    ip(netns, "addr", "change", "2a01:4f8:10a::5/64", "dev", "wan0", "preferred_lft", "0", "valid_lft", "3600")
    rc, out, mods = run_in(netns, cfg)
    assert not answered_by_memo(mods) and "AAAA" in out and "deprecated" in out, out


def test_interface_default_follows_the_default_route_device(world, netns):
    cfg = world[0]["default_route"]
    for dev, addr in (("ppp0", "81.2.69.160"), ("ppp1", "81.2.69.170")):
        link(netns, dev)
        ip(netns, "addr", "add", addr + "/24", "dev", dev)
    ip(netns, "route", "add", "default", "dev", "ppp0")
    for _ in range(3):
        rc, out, mods = run_in(netns, cfg)
    assert rc == 0 and "81.2.69.160" in out and answered_by_memo(mods), out
    # Same addresses, another default device: only the route says so.
    ip(netns, "route", "replace", "default", "dev", "ppp1")
    rc, out, mods = run_in(netns, cfg)
    assert rc == 0 and "updated      home.example.com A 81.2.69.170" in out and not answered_by_memo(mods), out


def test_a_record_choosing_the_longest_lifetime_is_never_memoised(world, netns):
    cfg = world[0]["longest"]
    link(netns, "wan0")
    ip(netns, "addr", "add", "2a01:4f8:10a::5/64", "dev", "wan0", "nodad", "preferred_lft", "1800", "valid_lft", "3600")
    for _ in range(3):
        rc, out, mods = run_in(netns, cfg)
        assert rc == 0, out
    assert not answered_by_memo(mods) and not os.path.exists(memo_file(cfg))


def test_a_source_that_failed_before_answering_is_asked_again(world, netns):
    """No default route: the first source fails before it reads a table, the second answers. The memo
    cannot tell when the first would answer, so there is none, and the route's arrival is published."""
    cfg = world[0]["fallback"]
    link(netns, "ppp0")
    ip(netns, "addr", "add", "81.2.69.160/24", "dev", "ppp0")
    for _ in range(3):
        rc, out, mods = run_in(netns, cfg)
    assert rc == 0 and "81.2.69.1 " in out and not answered_by_memo(mods), out
    assert not os.path.exists(memo_file(cfg))
    ip(netns, "route", "add", "default", "dev", "ppp0")
    rc, out, mods = run_in(netns, cfg)
    assert rc == 0 and "updated      home.example.com A 81.2.69.160" in out, out


def test_a_closed_output_ends_the_memo_answer_without_a_traceback(world):
    cfg = world[0]["closed_output"]
    for _ in range(3):
        run(cfg)
    r, w = os.pipe()
    os.close(r)  # nobody reads: the first write is EPIPE
    try:
        env = dict(bare_env(), PYTHONPATH=ROOT)
        p = subprocess.run([sys.executable, "-m", "edgeddns", "update", "-c", cfg], stdout=w, stderr=subprocess.PIPE,
                           text=True, env=env, cwd=ROOT, timeout=60)
    finally:
        os.close(w)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr


def test_where_memos_live(monkeypatch, tmp_path):
    from edgeddns import quickcheck

    for var in ("EDGEDDNS_RUNTIME_DIR", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert quickcheck.memo_dir() in ("/run/edgeddns", "/var/run/edgeddns")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    # A user's cron job: no runtime dir, so the user's cache.
    assert quickcheck.memo_dir() == str(tmp_path / ".cache" / "edgeddns")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert quickcheck.memo_dir() == str(tmp_path / "c" / "edgeddns")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert quickcheck.memo_dir() == "/run/user/1000/edgeddns"
    monkeypatch.setenv("EDGEDDNS_RUNTIME_DIR", str(tmp_path / "r"))
    assert quickcheck.memo_dir() == str(tmp_path / "r")
    # One file per config, named by its absolute path (escaped: no collisions).
    want = str(tmp_path / "r" / "%2Fetc%2Fedgeddns%2Fconfig.toml.memo")
    assert quickcheck.memo_path("/etc/edgeddns/config.toml") == want
    assert quickcheck.memo_path("/a%2Fb") != quickcheck.memo_path("/a/b")


def test_the_memo_names_the_lock_and_state_files_the_update_uses():
    """quickcheck keeps its own copies of two file names (their modules would cost the memo path its
    point): they must be the update's."""
    from edgeddns import quickcheck, state, statelock

    assert (quickcheck.LOCK_NAME, quickcheck.STATE_NAME) == (statelock.LOCK_NAME, state.STATE_FILE)


def test_an_unreadable_state_file_falls_back_to_the_update(world):
    cfg = world[0]["unreadable_state"]
    for _ in range(3):
        p, mods = run(cfg)
    assert answered_by_memo(mods)
    state = os.path.join(os.path.dirname(cfg), "state", "state.json")
    os.rename(state, state + ".moved")
    os.mkdir(state)  # reading it is an error other than "missing" (root reads any mode)
    try:
        p = run_cli("update", "-c", cfg)
    finally:
        os.rmdir(state)
        os.rename(state + ".moved", state)
    assert "Traceback" not in p.stderr, p.stderr
