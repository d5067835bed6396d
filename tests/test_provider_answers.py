"""Answers from the network are parsed in time linear in their size (they are capped at 1 MiB upstream).

A CPU limit on a child process, not a timing: the linear parse takes milliseconds, the quadratic one
it replaced took about half an hour on the same 1 MiB, so the limit is far from either.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import threading

import pytest

from tests.conftest import ROOT

CPU_SECONDS = 60

BODIES = {
    "open_errcount": "'<interface-response>' + '<ErrCount>' * (MIB // 10)",
    "open_err_entries": "'<interface-response><errors>' + '<Err1>' * (MIB // 6) + '</errors>'",
    "open_cdata": "'<interface-response><errors><Err1>' + '<![CDATA[' * (MIB // 9) + '</Err1></errors>'",
}


@pytest.mark.parametrize("shape", sorted(BODIES))
def test_namecheap_answer_parse_is_linear(shape):
    """Before: a 1 MiB answer of repeated opening tags kept the worker busy for about half an hour
    (80 KB already took 9 s), through the HTTP deadline, which ends when the body is read."""
    code = f"""
import resource
resource.setrlimit(resource.RLIMIT_CPU, ({CPU_SECONDS}, {CPU_SECONDS}))
from edgeddns.errors import ProviderError
from edgeddns.providers.namecheap import parse_answer
MIB = 1 << 20
body = {BODIES[shape]}
try:
    print(parse_answer(body)[0])
except ProviderError as e:
    print(e)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={"PYTHONPATH": ROOT, "PATH": "/usr/bin:/bin"}, timeout=CPU_SECONDS * 3)
    assert p.returncode == 0, f"killed by its CPU limit (status {p.returncode}): {p.stderr[-300:]}"


class _Stalling:
    """A DNS "server" on the path (DNS travels in clear; TSIG proves who answered, not that anyone does):
    over UDP it sends a packet with a wrong ID every 0.2 s, over TCP it announces 256 bytes and trickles
    them one per 0.2 s. Each read comes well inside the 1 s timeout; neither ever completes."""

    def __init__(self):
        import socket

        self.stop = threading.Event()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket()
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(4)
        self.udp.settimeout(0.2)
        self.tcp.settimeout(0.2)
        for fn in (self._udp, self._tcp):
            threading.Thread(target=fn, daemon=True).start()

    def _udp(self):
        peer, wrong = None, 0
        while not self.stop.is_set():
            try:
                data, peer = self.udp.recvfrom(65535)
                wrong = (struct.unpack_from("!H", data)[0] + 1) & 0xFFFF
            except OSError:
                pass
            if peer is not None:
                try:
                    self.udp.sendto(struct.pack("!H", wrong) + b"\x80" + b"\0" * 9, peer)
                except OSError:
                    return  # closed

    def _tcp(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                continue
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn):
        with conn:
            conn.recv(65535)
            conn.sendall(struct.pack("!H", 256))
            for _ in range(256):
                if self.stop.wait(0.2):
                    return
                try:
                    conn.sendall(b"\0")
                except OSError:
                    return

    def close(self):
        self.stop.set()
        self.udp.close()
        self.tcp.close()


def test_rfc2136_exchange_has_an_overall_deadline():
    """Before: a per-read timeout only; noise on UDP kept the read loop alive for as long as it came, then a
    TCP trickle for 256 x 0.2 s: the one worker (every record, every provider) waited past a minute."""
    import base64

    from edgeddns.clock import SystemClock
    from edgeddns.config import ProviderConfig, RecordConfig
    from edgeddns.errors import EdgeError
    from edgeddns.options import Secret
    from edgeddns.providers.base import ProviderContext
    from edgeddns.providers.rfc2136 import Rfc2136Provider

    srv = _Stalling()
    pc = ProviderConfig(name="p", type="rfc2136", options={
        "server": f"127.0.0.1:{srv.port}", "zone": "example.com", "key_name": "ddns-key",
        "key_algorithm": "hmac-sha256", "key_secret": Secret(base64.b64encode(bytes(range(32))).decode(), "inline"),
        "ttl": 300}, endpoint=None, ca_file=None, timeout=1)
    p = Rfc2136Provider(ProviderContext(pc, SystemClock(), http_factory=None))
    got = {}

    def call():
        try:
            got["status"] = p.ensure(RecordConfig(name="home.example.com", type="A", provider="p"), "93.184.216.34")
        except EdgeError as e:
            got["error"] = e

    t = threading.Thread(target=call, daemon=True)
    t.start()
    try:
        t.join(20)  # the budget is 1 s per transport; 20 s is far from both it and the stall (60 s+)
        assert not t.is_alive(), "the exchange is still waiting on a stalling server"
        assert got.get("error") is not None and got["error"].code == "network", got
        assert p.transport == {"udp": 1, "tcp": 1}
    finally:
        srv.close()


FORGED = "2026-12-02T05:00:00.000+00:00 edgeddns: INFO: bank.example.com A 6.6.6.6 updated"


def _hostile_api(tmp_path):
    """An API on the loopback (plain HTTP is allowed there) whose error message holds a line break, a
    forged log line after it, and a terminal escape sequence, as any provider's answer may."""
    import http.server

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"status": "ERROR", "message": f"Invalid domain.\n{FORGED}\r\n\x1b]0;owned\x07"
                                                             f"\u2028{FORGED}"}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_provider_error_text_stays_one_line_in_every_output(tmp_path):
    """Before: the provider's line break went as is into the CLI's line, the log and the result: the
    forged 'bank.example.com A 6.6.6.6 updated' stood on a line of its own, and ESC reached the terminal."""
    from tests.conftest import run_cli, write_config

    srv = _hostile_api(tmp_path)
    try:
        cfg = write_config(tmp_path, f"""
            [agent]
            node_id = "x"
            state_dir = "{tmp_path}/state"
            [ip]
            ipv4 = ["static:93.184.216.34"]
            [providers.pb]
            type = "porkbun"
            endpoint = "http://127.0.0.1:{srv.server_address[1]}/api/json/v3"
            api_key = "pk1_abcdef"
            secret_api_key = "sk1_abcdef"
            [[records]]
            name = "home.example.com"
            provider = "pb"
        """)
        for args in (("update", "-v"), ("update", "--json", "-v")):
            p = run_cli(*args, "-c", cfg)
            assert p.returncode == 1, p.stdout + p.stderr
            out = p.stdout + p.stderr
            assert "Invalid domain." in out
            assert len(p.stdout.splitlines()) == 1, p.stdout
            assert not any(line.startswith(FORGED[:23]) for line in out.splitlines()), out
            assert not any(ch in out for ch in "\x1b\x07\r\u2028"), repr(out)
    finally:
        srv.shutdown()


STOP_AFTER = 3000  # the endless API gives up here, so the code before the fix ended too (after minutes)
PAGERS = {
    # type: (options, answer for page n)
    "digitalocean": ('api_token = "dop_v1_abcd1234"',
                     lambda n: {"domains": [{"name": f"z{n}.example.net"}], "links": {"pages": {"next": "more"}}}),
    "hetzner": ('api_token = "abcd1234abcd"',
                lambda n: {"zones": [{"name": f"z{n}.example.net", "id": str(n)}],
                           "meta": {"pagination": {"last_page": 10 ** 9}}}),
    "hetznercloud": ('api_token = "abcd1234abcd"',  # "next" is page 1 again: a loop, not just a long list
                     lambda n: {"zones": [{"name": "z.example.net", "id": 1}],
                                "meta": {"pagination": {"next_page": 1}}}),
    "porkbun": ('api_key = "pk1_abcd"\nsecret_api_key = "sk1_abcd"',
                lambda n: {"status": "SUCCESS", "domains": [{"domain": f"z{n}-{i}.example.net"} for i in range(1000)]}),
}


@pytest.mark.parametrize("ptype", sorted(PAGERS))
def test_zone_lists_that_never_end_are_cut(tmp_path, ptype):
    """Before: each zone-list loop asked for the next page as long as the answer said there was one (or,
    for Porkbun, as long as pages were full): an API that always does kept the one worker busy without end
    (here until the test's server gave up after 3000 requests)."""
    import http.server

    from tests.conftest import run_cli, write_config

    options, page = PAGERS[ptype]
    count = {"n": 0}

    class H(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            count["n"] += 1
            body = json.dumps(page(count["n"]) if count["n"] < STOP_AFTER else {"status": "SUCCESS"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        cfg = write_config(tmp_path, f"""
            [agent]
            node_id = "x"
            state_dir = "{tmp_path}/state"
            [ip]
            ipv4 = ["static:93.184.216.34"]
            [providers.p]
            type = "{ptype}"
            endpoint = "http://127.0.0.1:{srv.server_address[1]}/"
            {options}
            [[records]]
            name = "home.example.com"
            provider = "p"
        """)
        p = run_cli("update", "--json", "-c", cfg, timeout=600)
        res = json.loads(p.stdout.splitlines()[0])
        assert count["n"] < STOP_AFTER, f"{count['n']} zone-list requests"
        assert res["status"] == "failed" and "pages" in res["error"]["message"], res
    finally:
        srv.shutdown()


def test_deeply_nested_json_is_a_malformed_answer_not_an_internal_error(tmp_path):
    """Before: json.loads raised RecursionError (not ValueError) on 200,000 nested brackets, which passed the
    'malformed JSON' check of every JSON provider and ended as `internal` ('a bug; please report')."""
    import http.server

    from tests.conftest import run_cli, write_config

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"[" * 200_000 + b"]" * 200_000
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        cfg = write_config(tmp_path, f"""
            [agent]
            node_id = "x"
            state_dir = "{tmp_path}/state"
            [ip]
            ipv4 = ["static:93.184.216.34"]
            [providers.pb]
            type = "porkbun"
            endpoint = "http://127.0.0.1:{srv.server_address[1]}/api/json/v3"
            api_key = "pk1_abcdef"
            secret_api_key = "sk1_abcdef"
            [[records]]
            name = "home.example.com"
            provider = "pb"
        """)
        p = run_cli("update", "--json", "-c", cfg)
        res = json.loads(p.stdout.splitlines()[0])
        assert res["error"]["code"] == "provider" and "malformed JSON" in res["error"]["message"], res
    finally:
        srv.shutdown()


def test_control_socket_request_of_deep_nesting_is_a_bad_request(tmp_path):
    """The control socket's request line (4096 bytes) nested 2048 deep: RecursionError ended the client's thread
    with a traceback on the agent's stderr, and the client got no answer."""
    from edgeddns.config import load
    from edgeddns.control_server import ControlServer
    from tests.conftest import write_config

    cfg = load(write_config(tmp_path, f"""
        [agent]
        state_dir = "{tmp_path}/state"
        [ip]
        ipv4 = ["static:93.184.216.34"]
        [providers.lan]
        type = "hosts"
        path = "{tmp_path}/hosts"
        [[records]]
        name = "home.example.com"
        provider = "lan"
    """))
    answer = ControlServer(cfg).handle(b"[" * 2048 + b"]" * 2048)
    assert answer["ok"] is False and answer["error"]["code"] == "bad_request", answer


ODD_PAGES = {
    "digitalocean": ('api_token = "dop_v1_abcd1234"', {"domains": [{"name": "z.example.net"}], "links": {"pages": []}}),
    "hetzner": ('api_token = "abcd1234abcd"', {"zones": [{"name": "z.example.net", "id": "1"}],
                                               "meta": {"pagination": {"last_page": "many"}}}),
    "hetznercloud": ('api_token = "abcd1234abcd"', {"zones": [{"name": "z.example.net", "id": 1}],
                                                    "meta": {"pagination": {"next_page": "two"}}}),
}


@pytest.mark.parametrize("ptype", sorted(ODD_PAGES))
def test_odd_paging_fields_are_a_provider_answer_not_an_internal_error(tmp_path, ptype):
    """Before: `int("many")`, `[].get(...)` on a zone list's paging fields failed the record as `internal`."""
    import http.server

    from tests.conftest import run_cli, write_config

    options, answer = ODD_PAGES[ptype]

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        cfg = write_config(tmp_path, f"""
            [agent]
            node_id = "x"
            state_dir = "{tmp_path}/state"
            [ip]
            ipv4 = ["static:93.184.216.34"]
            [providers.p]
            type = "{ptype}"
            endpoint = "http://127.0.0.1:{srv.server_address[1]}/"
            {options}
            [[records]]
            name = "home.example.com"
            provider = "p"
        """)
        p = run_cli("update", "--json", "-c", cfg)
        res = json.loads(p.stdout.splitlines()[0])
        assert res["error"]["code"] in ("not_found", "provider"), res
    finally:
        srv.shutdown()
