"""Answers from the network are parsed in time linear in their size (they are capped at 1 MiB upstream).

A CPU limit on a child process, not a timing: the linear parse takes milliseconds, the quadratic one
it replaced took about half an hour on the same 1 MiB, so the limit is far from either.
"""

from __future__ import annotations

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
