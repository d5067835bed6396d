"""Matrix entries (tests/test_provider_matrix.py) for the types tested against real servers.

``rfc2136`` runs against a real BIND 9 and ``powerdns`` against a real
PowerDNS, each started for the run, behind a counting relay so the flow can
check "not one request": a UDP/TCP relay for DNS, an HTTPS reverse proxy for the
PowerDNS API. ``writes`` is the sum of the zones' SOA serial increments (both
servers raise the serial on every applied change).
"""

from __future__ import annotations

import shutil
import socket
import struct
import tempfile
import threading
import urllib.error
import urllib.request
from typing import List

from tests.dnsservers import KEYS, free_port, serial, start_bind, values
from tests.fakes.server import FakeServer, Reply, Request
from tests.pdnsserver import API_KEY, start_pdns

ZONES = ["example.com", "example.net"]


def read_exactly(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("closed early")
        buf += chunk
    return buf


def read_message(s: socket.socket) -> bytes:
    """One length-prefixed DNS message over TCP, prefix included."""
    head = read_exactly(s, 2)
    return head + read_exactly(s, struct.unpack("!H", head)[0])


class DnsRelay:
    """Forwards UDP datagrams and TCP connections to 127.0.0.1:port and counts them."""

    def __init__(self, port: int):
        self.target = ("127.0.0.1", port)
        self.calls: List[str] = []
        self.port = free_port()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.settimeout(0.2)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(4)
        self.tcp.settimeout(0.2)
        self.done = threading.Event()
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._udp, self._tcp)]
        for t in self.threads:
            t.start()

    def _udp(self):
        while not self.done.is_set():
            try:
                data, client = self.udp.recvfrom(65535)
            except (socket.timeout, OSError):
                continue
            self.calls.append("udp")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
                up.settimeout(3)
                up.sendto(data, self.target)
                try:
                    self.udp.sendto(up.recv(65535), client)
                except OSError:
                    pass

    def _tcp(self):
        while not self.done.is_set():
            try:
                conn, _ = self.tcp.accept()
            except (socket.timeout, OSError):
                continue
            self.calls.append("tcp")
            with conn, socket.create_connection(self.target, timeout=3) as up:
                conn.settimeout(3)
                try:
                    up.sendall(read_message(conn))
                    conn.sendall(read_message(up))
                except (OSError, struct.error):
                    pass

    def close(self):
        self.done.set()
        for t in self.threads:
            t.join(2)
        self.udp.close()
        self.tcp.close()


class BindEntry:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="matrix-bind-")
        self.srv = start_bind(self.dir, extra_zones=("example.net",))
        self.relay = DnsRelay(self.srv.port)
        self.base = self._serials()

    def _serials(self) -> int:
        return sum(serial(self.srv.port, z) for z in ZONES)

    @property
    def calls(self) -> List[str]:
        return self.relay.calls

    @property
    def writes(self) -> int:
        return self._serials() - self.base

    def values(self, name: str, rtype: str) -> List[str]:
        return values(self.srv.port, name, rtype)

    def seed(self, name: str, rtype: str, value: str) -> None:
        from edgeddns.config import RecordConfig
        from tests.test_rfc2136 import make

        make(self.srv).ensure(RecordConfig(name=name, type=rtype, provider="p"), value)

    def stop(self) -> None:
        self.relay.close()
        self.srv.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_rfc2136(ca_file, server_context):
    e = BindEntry()
    alg, secret = KEYS["ddns-key"]
    return e, f"""
[providers.p]
type = "rfc2136"
server = "127.0.0.1:{e.relay.port}"
key_name = "ddns-key"
key_algorithm = "{alg}"
key_secret = "{secret}"
timeout = 5
"""


class PdnsEntry:
    """The real PowerDNS API behind an HTTPS reverse proxy that counts requests."""

    def __init__(self, server_context):
        self.dir = tempfile.mkdtemp(prefix="matrix-pdns-")
        self.pdns = start_pdns(self.dir)
        self.calls: List[str] = []
        self.proxy = FakeServer(self._forward, ssl_context=server_context).start()
        self.base = self._serials()

    def _forward(self, req: Request) -> Reply:
        self.calls.append(f"{req.method} {req.path}")
        url = self.pdns.endpoint + req.path + (f"?{req.query_string}" if req.query_string else "")
        headers = {k: v for k, v in req.headers.items() if k in ("x-api-key", "content-type", "accept")}
        r = urllib.request.Request(url, data=req.body or None, method=req.method, headers=headers)
        try:
            with urllib.request.urlopen(r, timeout=5) as resp:
                return Reply(resp.status, resp.read(), {"Content-Type": resp.headers.get("Content-Type", "")})
        except urllib.error.HTTPError as e:
            return Reply(e.code, e.read(), {"Content-Type": e.headers.get("Content-Type", "")})

    def _serials(self) -> int:
        total = 0
        for z in ZONES:
            _, zone = self.pdns.api("GET", f"/api/v1/servers/localhost/zones/{z}.")
            total += int(zone["serial"])
        return total

    @property
    def writes(self) -> int:
        return self._serials() - self.base

    def values(self, name: str, rtype: str) -> List[str]:
        return self.pdns.values(name, rtype)

    def seed(self, name: str, rtype: str, value: str) -> None:
        zone = name.split(".", 1)[1]
        code, body = self.pdns.api("PATCH", f"/api/v1/servers/localhost/zones/{zone}.", {"rrsets": [{
            "name": name + ".", "type": rtype, "ttl": 300, "changetype": "REPLACE",
            "records": [{"content": value, "disabled": False}]}]})
        assert code == 204, body

    def stop(self) -> None:
        self.proxy.stop()
        self.pdns.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_powerdns(ca_file, server_context):
    e = PdnsEntry(server_context)
    return e, f"""
[providers.p]
type = "powerdns"
endpoint = "{e.proxy.url}"
api_key = "{API_KEY}"
ca_file = "{ca_file}"
timeout = 5
"""


STARTERS = {"rfc2136": start_rfc2136, "powerdns": start_powerdns}
