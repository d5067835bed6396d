"""Real authoritative DNS servers on the loopback for the rfc2136 tests: BIND 9 and Knot.

Each fixture writes its own config, zone file and TSIG keys into a temp dir,
starts the daemon in the foreground on a free port, waits until it answers an
SOA query, and stops it by pid. They are module-scoped: one daemon per test module.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import pytest

from edgeddns.providers import dnsmsg

ZONE = "example.com"
#: name -> (algorithm, base64 secret); fixed so failures are reproducible
KEYS = {
    "ddns-key": ("hmac-sha256", base64.b64encode(bytes(range(32))).decode()),
    "sha512-key": ("hmac-sha512", base64.b64encode(bytes(range(64, 128))).decode()),
    "md5-key": ("hmac-md5", base64.b64encode(bytes(range(100, 116))).decode()),
    # least privilege, as docs/providers.md shows it: may change A/AAAA of one name only
    "narrow-key": ("hmac-sha256", base64.b64encode(bytes(range(140, 172))).decode()),
}
WIDE = ["ddns-key", "sha512-key", "md5-key"]
BIG = [f"10.0.{i // 200}.{i % 200 + 1}" for i in range(60)]  # too large for a 512-byte UDP answer


def zone_text() -> str:
    lines = [f"$ORIGIN {ZONE}.", "$TTL 300",
             "@ SOA ns1 hostmaster 1 3600 600 86400 300", "@ NS ns1", "ns1 A 127.0.0.1",
             "fixed A 192.0.2.10", "alias CNAME fixed"]
    lines += [f"big A {a}" for a in BIG]
    return "\n".join(lines) + "\n"


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port


def has_ipv6_loopback(port: int) -> bool:
    """True when ::1 can be bound (the servers then listen there too)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as u, socket.socket(socket.AF_INET6) as t:
            u.bind(("::1", port))
            t.bind(("::1", port))
        return True
    except OSError:
        return False


def query(port: int, name: str, rtype: int, timeout: float = 1.0) -> dnsmsg.Message:
    """An unsigned query over TCP (never truncated): what the server really holds."""
    wire = dnsmsg.build_query(0x4242, name, rtype)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(struct.pack("!H", len(wire)) + wire)
        buf = b""
        while len(buf) < 2 or len(buf) < 2 + struct.unpack_from("!H", buf)[0]:
            chunk = s.recv(65535)
            if not chunk:
                raise OSError("closed")
            buf += chunk
    return dnsmsg.parse(buf[2:])


def serial(port: int, zone: str = ZONE) -> int:
    msg = query(port, zone, dnsmsg.TYPE_SOA)
    soa = next(r for r in msg.answer if r.rtype == dnsmsg.TYPE_SOA)
    _, off = dnsmsg.read_name(msg.raw, soa.rdata_offset)
    _, off = dnsmsg.read_name(msg.raw, off)
    return struct.unpack_from("!I", msg.raw, off)[0]


def values(port: int, name: str, rtype: str = "A") -> List[str]:
    t = dnsmsg.TYPES[rtype]
    return sorted(r.address() for r in query(port, name, t).answer if r.rtype == t and r.name == name)


@dataclass
class DnsServer:
    kind: str  # "bind" or "knot"
    port: int
    dir: str
    proc: subprocess.Popen
    log: str
    keys: Dict[str, tuple] = field(default_factory=lambda: dict(KEYS))

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def serial(self) -> int:
        return serial(self.port)

    def values(self, name: str, rtype: str = "A") -> List[str]:
        return values(self.port, name, rtype)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, 9)
                self.proc.wait(5)


def _start(kind: str, args: List[str], d: str, port: int) -> DnsServer:
    log_path = os.path.join(d, f"{kind}.log")
    log = open(log_path, "w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=d)
    log.close()
    srv = DnsServer(kind, port, d, proc, log_path)
    deadline = time.monotonic() + 20
    while True:
        try:
            srv.serial()  # the readiness signal: the zone is loaded and answers
            return srv
        except (OSError, StopIteration, dnsmsg.WireError):
            if proc.poll() is not None or time.monotonic() > deadline:
                srv.stop()
                with open(log_path) as f:
                    pytest.fail(f"{kind} did not start: {f.read()[-1500:]}")
            time.sleep(0.05)


def _exe(name: str) -> str:
    exe = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if exe is None:
        pytest.skip(f"{name} is not installed (scripts/test installs it)")
    return exe


def start_bind(d: str, extra_zones: Tuple[str, ...] = ()) -> DnsServer:
    exe = _exe("named")
    port = free_port()
    with open(os.path.join(d, f"{ZONE}.zone"), "w") as f:
        f.write(zone_text())
    for z in extra_zones:  # bare zones: SOA and NS only
        with open(os.path.join(d, f"{z}.zone"), "w") as f:
            f.write(f"$ORIGIN {z}.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\n"
                    "ns1 A 127.0.0.1\n")
    v6 = has_ipv6_loopback(port)
    keys = "".join(f'key "{n}" {{ algorithm {a}; secret "{s}"; }};\n' for n, (a, s) in KEYS.items())
    grants = " ".join(f"grant {n} zonesub ANY;" for n in WIDE) + f" grant narrow-key name allowed.{ZONE} A AAAA;"
    conf = os.path.join(d, "named.conf")
    with open(conf, "w") as f:
        f.write(f"""options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 port {port} {{ {"::1;" if v6 else "none;"} }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
{keys}
zone "{ZONE}" {{ type primary; file "{ZONE}.zone"; update-policy {{ {grants} }}; }};
""" + "".join(f'zone "{z}" {{ type primary; file "{z}.zone"; update-policy {{ {grants} }}; }};\n'
              for z in extra_zones))
    # Debian's AppArmor profile for /usr/sbin/named only lets it read /etc/bind and friends, so on a
    # host that enforces AppArmor it could not read this temp dir. Profiles attach by path: a copy of
    # the binary in the temp dir runs unconfined, as a test's own daemon should.
    copy = os.path.join(d, "named")
    shutil.copy2(exe, copy)
    # -g: foreground, log to stderr; -n 1: one worker (2 cores shared by the whole suite).
    # As root named stays root unless -u is given: the temp dir is root's, so that is what we want.
    return _start("bind", [copy, "-g", "-n", "1", "-c", conf], d, port)


def start_knot(d: str) -> DnsServer:
    exe = _exe("knotd")
    port = free_port()
    os.makedirs(os.path.join(d, "db"), exist_ok=True)  # journal and timers; Knot does not create it
    with open(os.path.join(d, f"{ZONE}.zone"), "w") as f:
        f.write(zone_text())
    keys = "".join(f"  - id: {n}\n    algorithm: {a}\n    secret: {s}\n" for n, (a, s) in KEYS.items())
    conf = os.path.join(d, "knot.conf")
    with open(conf, "w") as f:
        f.write(f"""server:
    rundir: "{d}"
    listen: [127.0.0.1@{port}{f", ::1@{port}" if has_ipv6_loopback(port) else ""}]
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
control:
    listen: "{d}/knot.sock"
database:
    storage: "{d}/db"
log:
  - target: stderr
    any: info
key:
{keys}acl:
  - id: update
    key: [{", ".join(WIDE)}]
    action: update
  - id: narrow
    key: narrow-key
    action: update
    update-owner: name
    update-owner-match: equal
    update-owner-name: [allowed]
    update-type: [A, AAAA]
template:
  - id: default
    storage: "{d}"
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: changes
zone:
  - domain: {ZONE}
    acl: [update, narrow]
""")
    # Knot runs as the user that starts it unless server.user says otherwise.
    return _start("knot", [exe, "-c", conf], d, port)


@pytest.fixture(scope="module", params=["bind", "knot"])
def dns_server(request, tmp_path_factory):
    d = str(tmp_path_factory.mktemp(request.param))
    srv = start_bind(d) if request.param == "bind" else start_knot(d)
    yield srv
    srv.stop()


def provider_toml(srv: DnsServer, key: str = "ddns-key", *, secret: Optional[str] = None,
                  name: str = "p", extra: str = "") -> str:
    alg, sec = KEYS.get(key, ("hmac-sha256", KEYS["ddns-key"][1]))
    return f"""
[providers.{name}]
type = "rfc2136"
server = "{srv.server}"
key_name = "{key}"
key_algorithm = "{alg}"
key_secret = "{secret or sec}"
timeout = 3
{extra}
"""
