"""A real PowerDNS Authoritative server (sqlite3 backend, HTTP API on) on the loopback.

The fixture writes pdns.conf and a fresh database from the package's schema
into a temp dir, starts ``pdns_server`` in the foreground, waits until the API
answers and the zone answers an SOA query, and stops it by pid. Module-scoped.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, List, Optional

import pytest

from tests.dnsservers import free_port, serial, values

API_KEY = "pdns-test-api-key-0123456789"
ZONES = ["example.com", "example.net"]
SCHEMAS = ["/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql",
           "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql"]


@dataclass
class Pdns:
    dir: str
    dns_port: int
    api_port: int
    proc: subprocess.Popen
    log: str

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def api(self, method: str, path: str, body: Any = None, key: str = API_KEY):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.endpoint + path, data=data, method=method,
                                     headers={"X-API-Key": key, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")

    def values(self, name: str, rtype: str = "A") -> List[str]:
        return values(self.dns_port, name, rtype)

    def serial(self, zone: str = "example.com") -> int:
        return serial(self.dns_port) if zone == "example.com" else 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, 9)
                self.proc.wait(5)


def _schema() -> Optional[str]:
    found = [p for p in SCHEMAS if os.path.exists(p)] + glob.glob("/usr/share/**/schema.sqlite3.sql", recursive=True)
    return found[0] if found else None


def start_pdns(d: str) -> Pdns:
    exe = shutil.which("pdns_server") or ("/usr/sbin/pdns_server" if os.path.exists("/usr/sbin/pdns_server") else None)
    schema = _schema()
    if exe is None or schema is None:
        pytest.skip("pdns-server / pdns-backend-sqlite3 are not installed (scripts/test installs them)")
    db = os.path.join(d, "pdns.sqlite3")
    with open(schema) as f, sqlite3.connect(db) as conn:
        conn.executescript(f.read())
    dns_port, api_port = free_port(), free_port()
    with open(os.path.join(d, "pdns.conf"), "w") as f:
        f.write(f"""launch=gsqlite3
gsqlite3-database={db}
local-address=127.0.0.1
local-port={dns_port}
api=yes
api-key={API_KEY}
webserver=yes
webserver-address=127.0.0.1
webserver-port={api_port}
webserver-allow-from=127.0.0.0/8
socket-dir={d}
guardian=no
daemon=no
disable-syslog=yes
loglevel=4
distributor-threads=1
receiver-threads=1
security-poll-suffix=
dnsupdate=yes
allow-dnsupdate-from=127.0.0.0/8
""")
    log_path = os.path.join(d, "pdns.log")
    with open(log_path, "w") as log:
        # Root stays root unless setuid/setgid are set: the temp dir and database are root's.
        proc = subprocess.Popen([exe, f"--config-dir={d}"], stdout=log, stderr=subprocess.STDOUT, cwd=d)
    srv = Pdns(d, dns_port, api_port, proc, log_path)
    deadline = time.monotonic() + 20
    while True:
        try:
            status, _ = srv.api("GET", "/api/v1/servers/localhost")
            if status == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            srv.stop()
            with open(log_path) as f:
                pytest.fail(f"pdns_server did not start: {f.read()[-1500:]}")
        time.sleep(0.05)
    for z in ZONES:
        status, body = srv.api("POST", "/api/v1/servers/localhost/zones", {
            "name": z + ".", "kind": "Native", "nameservers": [f"ns1.{z}."],
            "rrsets": [{"name": f"fixed.{z}.", "type": "A", "ttl": 300,
                        "records": [{"content": "192.0.2.10", "disabled": False}]}]})
        assert status == 201, body
    while True:  # the readiness signal for DNS: the zone answers an SOA query
        try:
            srv.serial()
            return srv
        except (OSError, StopIteration):
            if time.monotonic() > deadline:
                srv.stop()
                pytest.fail("pdns_server does not answer SOA queries")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def pdns(tmp_path_factory):
    srv = start_pdns(str(tmp_path_factory.mktemp("pdns")))
    yield srv
    srv.stop()
