"""rfc2136 against real BIND 9 and real Knot on the loopback (tests/dnsservers.py).

The CLI runs as a process for create, unchanged with zero writes, update,
AAAA, a wrong key, and a device clock three hours off. The SOA serial counts
writes: both servers raise it on every applied UPDATE.
"""

from __future__ import annotations

import base64
import socket
import struct
import threading
import time

import pytest

from edgeddns.clock import SystemClock
from edgeddns.config import ProviderConfig, RecordConfig
from edgeddns.errors import AuthError, ClockSkewError, ProviderError
from edgeddns.options import Secret
from edgeddns.providers.base import ProviderContext
from edgeddns.providers.rfc2136 import Rfc2136Provider
from tests.clockfix import chronyd, faketime, faketime_tools  # noqa: F401
from tests.conftest import json_results, run_cli, write_config
from tests.dnsservers import BIG, KEYS, dns_server, provider_toml  # noqa: F401

V4, V4B, V6 = "8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"


def config(tmp_path, srv, records: str, *, ip: str = V4, provider: str = "", clock: str = 'mode = "system"',
           sub: str = "") -> str:
    d = tmp_path / sub if sub else tmp_path
    d.mkdir(exist_ok=True)
    return write_config(d, f"""
[agent]
node_id = "t"
state_dir = "{d}/state"

[clock]
{clock}

[ip]
ipv4 = ["static:{ip}"]
ipv6 = ["static:{V6}"]
{provider or provider_toml(srv)}
{records}
""")


def rec(name: str, rtype: str = "A", extra: str = "") -> str:
    return f'\n[[records]]\nname = "{name}"\ntype = "{rtype}"\nprovider = "p"\n{extra}\n'


def update(cfg: str, *args: str, env=None) -> dict:
    p = run_cli("update", "-c", cfg, "--json", *args, env=env)
    assert "Traceback" not in p.stderr, p.stderr
    out = json_results(p)
    assert len(out) == 1, p.stdout + p.stderr
    return out[0]


def make(srv, key: str = "ddns-key", *, secret=None, clock=None, server=None, zone=None) -> Rfc2136Provider:
    alg, sec = KEYS[key]
    pc = ProviderConfig(name="p", type="rfc2136", options={
        "server": server or srv.server, "zone": zone, "key_name": key, "key_algorithm": alg,
        "key_secret": Secret(secret or sec, "inline"), "ttl": 300}, endpoint=None, ca_file=None, timeout=2)
    return Rfc2136Provider(ProviderContext(pc, clock or SystemClock(), http_factory=None))


def test_create_unchanged_update_aaaa(dns_server, tmp_path):  # noqa: F811
    srv = dns_server
    name = f"flow-{srv.kind}.example.com"
    records = rec(name)
    cfg = config(tmp_path, srv, records)
    s0 = srv.serial()

    r = update(cfg, "--record", name)  # create (the zone is found with an SOA query)
    assert r["status"] == "updated" and r["error"] is None, r
    assert srv.values(name) == [V4] and srv.serial() == s0 + 1

    # Already right at the server, whatever the local state says: read, zero writes.
    r = update(cfg, "--record", name, "--force")
    assert r["status"] == "unchanged", r
    assert srv.serial() == s0 + 1

    cfg = config(tmp_path, srv, records, ip=V4B)
    r = update(cfg, "--record", name)
    assert r["status"] == "updated" and r["previous_ip"] == V4, r
    assert srv.values(name) == [V4B] and srv.serial() == s0 + 2

    cfg6 = config(tmp_path, srv, rec(name, "AAAA"), sub="v6")
    r = update(cfg6)
    assert r["status"] == "updated" and r["ip"] == V6, r
    assert srv.values(name, "AAAA") == [V6] and srv.values(name) == [V4B]
    assert srv.serial() == s0 + 3


@pytest.mark.parametrize("key", ["sha512-key", "md5-key"])
def test_other_algorithms(dns_server, tmp_path, key):  # noqa: F811
    srv = dns_server
    name = f"{key}.example.com"
    cfg = config(tmp_path, srv, rec(name, extra="ttl = 120"), provider=provider_toml(srv, key,
                                                                                       extra='zone = "example.com"'))
    r = update(cfg)
    assert r["status"] == "updated", r
    assert srv.values(name) == [V4]
    # The TTL is part of "right": a record with another TTL is rewritten, the same one is not.
    s = srv.serial()
    assert make(srv, key).ensure(RecordConfig(name=name, type="A", provider="p", ttl=120), V4) == "unchanged"
    assert make(srv, key).ensure(RecordConfig(name=name, type="A", provider="p", ttl=60), V4) == "updated"
    assert srv.serial() == s + 1


def test_wrong_key_is_auth_and_writes_nothing(dns_server, tmp_path):  # noqa: F811
    srv = dns_server
    s0 = srv.serial()
    wrong = base64.b64encode(b"not the secret, not at all!!!!!!").decode()
    cfg = config(tmp_path, srv, rec("wrong.example.com"), provider=provider_toml(srv, secret=wrong))
    r = update(cfg)
    assert r["status"] == "failed" and r["error"]["code"] == "auth", r
    assert "BADSIG" in r["error"]["message"] and wrong not in str(r)
    cfg = config(tmp_path, srv, rec("wrong.example.com"), provider=provider_toml(srv).replace(
        'key_name = "ddns-key"', 'key_name = "unknown-key"'), sub="badkey")
    r = update(cfg)
    assert r["status"] == "failed" and r["error"]["code"] == "auth" and "BADKEY" in r["error"]["message"], r
    assert srv.serial() == s0 and srv.values("wrong.example.com") == []


def test_tcp_fallback_for_a_large_rrset(dns_server):  # noqa: F811
    srv = dns_server
    assert len(srv.values("big.example.com")) == len(BIG)
    p = make(srv)
    r = RecordConfig(name="big.example.com", type="A", provider="p")
    assert p.ensure(r, V4) == "updated"  # the read was truncated over UDP and repeated over TCP
    assert p.transport["tcp"] == 1
    assert srv.values("big.example.com") == [V4]  # one UPDATE replaced all 60 values


def test_badtime_carries_the_servers_clock(dns_server):  # noqa: F811
    srv = dns_server
    s0 = srv.serial()
    p = make(srv, clock=SystemClock(wall=lambda: time.time() - 3 * 3600), zone="example.com")
    with pytest.raises(ClockSkewError) as e:
        p.ensure(RecordConfig(name="late.example.com", type="A", provider="p"), V4)
    assert e.value.server_time is not None and abs(e.value.server_time - time.time()) < 5
    assert srv.serial() == s0


def test_device_clock_three_hours_off(dns_server, tmp_path, faketime, chronyd):  # noqa: F811
    srv = dns_server
    name = f"skew-{srv.kind}.example.com"
    env = dict(faketime.env("-3h"), EDGEDDNS_IGNORE_SYNC_EVIDENCE="1")
    s0 = srv.serial()
    cfg = config(tmp_path, srv, rec(name), sub="system")
    r = update(cfg, env=env)
    assert r["status"] == "failed" and r["error"]["code"] == "clock_skew", r
    assert srv.serial() == s0 and srv.values(name) == []

    cfg = config(tmp_path, srv, rec(name), sub="ntp",
                 clock=f'mode = "auto"\nntp_servers = ["{chronyd}"]\ntimeout = 0.5')
    r = update(cfg, env=env)
    assert r["status"] == "updated", r
    assert r["clock"]["source"] == f"ntp:{chronyd}" and abs(r["clock"]["offset"] - 3 * 3600) < 2
    assert srv.values(name) == [V4] and srv.serial() == s0 + 1


class Tamper:
    """A UDP hop in front of the real server that changes its answers."""

    def __init__(self, port: int, change):
        self.port, self.change = port, change
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.server = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.is_set():
            try:
                data, client = self.sock.recvfrom(65535)
            except (socket.timeout, OSError):
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
                up.settimeout(2)
                up.sendto(data, ("127.0.0.1", self.port))
                answer = up.recv(65535)
            self.sock.sendto(self.change(answer), client)

    def close(self):
        self.done.set()
        self.thread.join(2)
        self.sock.close()


def _strip_tsig(answer: bytes) -> bytes:
    from edgeddns.providers import dnsmsg

    msg = dnsmsg.parse(answer)
    t = msg.additional[-1]
    arcount = struct.unpack_from("!H", answer, 10)[0]
    return answer[:10] + struct.pack("!H", arcount - 1) + answer[12:t.start]


def _flip_answer(answer: bytes) -> bytes:
    from edgeddns.providers import dnsmsg

    msg = dnsmsg.parse(answer)
    if not msg.answer:
        return answer
    off = msg.answer[0].rdata_offset + 3
    return answer[:off] + bytes([answer[off] ^ 1]) + answer[off + 1:]


@pytest.mark.parametrize("change,why", [(_strip_tsig, "not signed"), (_flip_answer, "MAC is wrong")])
def test_unsigned_or_altered_answers_are_not_believed(dns_server, change, why):  # noqa: F811
    srv = dns_server
    # The record already holds V4: a forged "it is already right" must not be believed.
    make(srv).ensure(RecordConfig(name="fixed.example.com", type="A", provider="p"), "192.0.2.10")
    hop = Tamper(srv.port, change)
    try:
        p = make(srv, server=hop.server, zone="example.com")
        with pytest.raises(ProviderError) as e:
            p.ensure(RecordConfig(name="fixed.example.com", type="A", provider="p"), "192.0.2.11")
        assert why in e.value.message and not isinstance(e.value, AuthError)
    finally:
        hop.close()
    assert srv.values("fixed.example.com") == ["192.0.2.10"]


LAZY = r"""
import sys
from edgeddns import config
from edgeddns.clock import SystemClock
from edgeddns.providers import provider_class
from edgeddns.providers.base import ProviderContext
c = config.load(sys.argv[1])
pc = c.providers["p"]
p = provider_class(pc.type)(ProviderContext(pc, SystemClock(), http_factory=None))
print(sorted(m for m in ("hashlib", "hmac", "socket", "requests", "ssl") if m in sys.modules))
"""


def test_loading_and_building_import_no_crypto_or_sockets(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    cfg = config(tmp_path, None, rec("lazy.example.com"), provider=f"""
[providers.p]
type = "rfc2136"
server = "[::1]:5353"
key_name = "ddns-key"
key_secret = "{KEYS['ddns-key'][1]}"
""")
    out = subprocess.run([sys.executable, "-c", LAZY, cfg], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": ROOT, "PATH": "/usr/bin:/bin"}, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_no_ntp_the_servers_signed_time_sets_the_clock(dns_server, tmp_path, faketime):  # noqa: F811
    from tests.clockfix import free_udp_port

    srv = dns_server
    name = f"tsigtime-{srv.kind}.example.com"
    env = dict(faketime.env("-3h"), EDGEDDNS_IGNORE_SYNC_EVIDENCE="1")
    dead = f"127.0.0.1:{free_udp_port()}"
    cfg = config(tmp_path, srv, rec(name), clock=f'mode = "auto"\nntp_servers = ["{dead}"]\ntimeout = 0.5')
    r = update(cfg, env=env)
    assert r["status"] == "updated", r
    # The time came from the server's TSIG-verified answer to one SOA query (its BADTIME other data).
    assert r["clock"]["source"].endswith(":127.0.0.1") and abs(r["clock"]["offset"] - 3 * 3600) < 3, r["clock"]
    assert srv.values(name) == [V4]


def test_a_key_limited_to_one_name(dns_server):  # noqa: F811
    """The least-privilege setup of docs/providers.md: the key may change one name's A/AAAA only."""
    srv = dns_server
    p = make(srv, "narrow-key", zone="example.com")
    assert p.ensure(RecordConfig(name="allowed.example.com", type="A", provider="p"), V4) == "updated"
    s0 = srv.serial()
    # BIND answers REFUSED; Knot answers NOTAUTH/BADKEY when its ACL denies the change.
    with pytest.raises(AuthError, match="(REFUSED|BADKEY).*policy") as e:
        p.ensure(RecordConfig(name="other.example.com", type="A", provider="p"), V4)
    assert e.value.code == "auth" and "narrow-key" in e.value.message
    assert srv.serial() == s0 and srv.values("other.example.com") == [] and srv.values("allowed.example.com") == [V4]


@pytest.mark.parametrize("line,key,text", [
    ('key_secret = "not base64!"', "key_secret", "base64"),
    ('key_secret = "c2hvcnQ="', "key_secret", "shorter than 16 bytes"),
    ('key_algorithm = "hmac-sha1"', "key_algorithm", "hmac-sha256"),
    ('server = "ns1.example.com:99999"', "server", "host:port"),
    ('endpoint = "https://ns1.example.com/"', "endpoint", "server"),
])
def test_config_errors(tmp_path, line, key, text):
    base = {"server": 'server = "[2001:db8::53]:5353"', "key_secret": f'key_secret = "{KEYS["ddns-key"][1]}"',
            "key_algorithm": "", "endpoint": ""}
    base[key] = line
    cfg = config(tmp_path, None, rec("x.example.com"), provider=f"""
[providers.p]
type = "rfc2136"
key_name = "ddns-key"
{chr(10).join(v for v in base.values() if v)}
""")
    p = run_cli("check-config", "-c", cfg)
    assert p.returncode == 2 and f"providers.p.{key}" in p.stderr and text in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and KEYS["ddns-key"][1] not in p.stderr


def test_md5_only_when_asked_and_warned(tmp_path):
    body = f"""
[providers.p]
type = "rfc2136"
server = "127.0.0.1"
key_name = "k"
key_secret = "{KEYS['md5-key'][1]}"
"""
    p = run_cli("check-config", "-c", config(tmp_path, None, rec("x.example.com"), provider=body))
    assert p.returncode == 0 and "key_algorithm" not in p.stderr, p.stderr  # the default is hmac-sha256
    p = run_cli("check-config", "-c", config(tmp_path, None, rec("x.example.com"), sub="md5",
                                             provider=body + 'key_algorithm = "hmac-md5"\n'))
    assert p.returncode == 0 and "providers.p.key_algorithm" in p.stderr and "hmac-md5" in p.stderr, p.stderr


def test_server_forms():
    from edgeddns.providers.rfc2136 import split_server

    assert split_server("ns1.example.com") == ("ns1.example.com", 53)
    assert split_server("192.0.2.53:5353") == ("192.0.2.53", 5353)
    assert split_server("[2001:db8::53]:5353") == ("2001:db8::53", 5353)
    assert split_server("2001:db8::53") == ("2001:db8::53", 53)


def read_message(s):
    from tests.fakes.matrix_servers import read_message as read

    return read(s)


class TcpOnly:
    """A TCP/53 relay to the real server on a port where nothing answers UDP (a firewall passing TCP only)."""

    def __init__(self, port: int):
        from tests.dnsservers import free_port

        self.port = port
        self.listen = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listen.bind(("127.0.0.1", free_port()))
        self.listen.listen(4)
        self.listen.settimeout(0.2)
        self.server = f"127.0.0.1:{self.listen.getsockname()[1]}"
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.is_set():
            try:
                conn, _ = self.listen.accept()
            except (socket.timeout, OSError):
                continue
            with conn, socket.create_connection(("127.0.0.1", self.port), timeout=2) as up:
                conn.settimeout(2)
                try:
                    up.sendall(read_message(conn))
                    conn.sendall(read_message(up))
                except (OSError, struct.error):
                    pass

    def close(self):
        self.done.set()
        self.thread.join(2)
        self.listen.close()


def test_no_udp_answer_falls_back_to_tcp(dns_server):  # noqa: F811
    srv = dns_server
    relay = TcpOnly(srv.port)
    try:
        p = make(srv, server=relay.server, zone="example.com")
        assert p.ensure(RecordConfig(name="tcponly.example.com", type="A", provider="p"), V4) == "updated"
        assert p.transport["tcp"] == 2 and p.transport["udp"] == 2  # read and write: UDP tried, TCP answered
    finally:
        relay.close()
    assert srv.values("tcponly.example.com") == [V4]


def test_a_cname_is_reported_not_silently_kept(dns_server):  # noqa: F811
    srv = dns_server
    s0 = srv.serial()
    with pytest.raises(ProviderError, match="is a CNAME"):
        make(srv, zone="example.com").ensure(RecordConfig(name="alias.example.com", type="A", provider="p"), V4)
    assert srv.serial() == s0


def test_zone_apex_found_by_soa(dns_server):  # noqa: F811
    srv = dns_server
    p = make(srv)  # no zone: the SOA is in the answer section at the apex
    assert p.ensure(RecordConfig(name="example.com", type="AAAA", provider="p"), V6) == "updated"
    assert p.zone_for(RecordConfig(name="example.com", type="AAAA", provider="p")) == "example.com"
    assert srv.values("example.com", "AAAA") == [V6]
    assert make(srv).ensure(RecordConfig(name="example.com", type="AAAA", provider="p"), V6) == "unchanged"


def test_server_over_ipv6_loopback(dns_server):  # noqa: F811
    from tests.dnsservers import has_ipv6_loopback

    srv = dns_server
    if not has_ipv6_loopback(0):
        pytest.skip("no IPv6 loopback here (the servers listen on 127.0.0.1 only)")
    p = make(srv, server=f"[::1]:{srv.port}")
    assert p.ensure(RecordConfig(name="v6server.example.com", type="A", provider="p"), V4) == "updated"
    assert srv.values("v6server.example.com") == [V4]
