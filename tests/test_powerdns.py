"""powerdns against a real PowerDNS Authoritative server (sqlite3 backend, API on).

The SOA serial counts writes: PowerDNS raises it on every PATCH (SOA-EDIT-API DEFAULT).
"""

from __future__ import annotations

from tests.conftest import json_results, run_cli, write_config
from tests.pdnsserver import API_KEY, pdns  # noqa: F401

V4, V4B, V6 = "8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"


def config(tmp_path, srv, records: str, *, ip: str = V4, key: str = API_KEY, extra: str = "", sub: str = "") -> str:
    d = tmp_path / sub if sub else tmp_path
    d.mkdir(exist_ok=True)
    return write_config(d, f"""
[agent]
node_id = "t"
state_dir = "{d}/state"

[clock]
mode = "system"

[ip]
ipv4 = ["static:{ip}"]
ipv6 = ["static:{V6}"]

[providers.p]
type = "powerdns"
endpoint = "{srv.endpoint}"
api_key = "{key}"
timeout = 5
{extra}
{records}
""")


def rec(name: str, rtype: str = "A", extra: str = "") -> str:
    return f'\n[[records]]\nname = "{name}"\ntype = "{rtype}"\nprovider = "p"\n{extra}\n'


def update(cfg: str, *args: str) -> dict:
    p = run_cli("update", "-c", cfg, "--json", *args)
    assert "Traceback" not in p.stderr, p.stderr
    out = json_results(p)
    assert len(out) == 1, p.stdout + p.stderr
    return out[0]


def test_create_unchanged_update_aaaa(pdns, tmp_path):  # noqa: F811
    name = "home.example.com"
    s0 = pdns.serial()
    cfg = config(tmp_path, pdns, rec(name))
    r = update(cfg)  # zone from the server's zone list
    assert r["status"] == "updated" and r["error"] is None, r
    assert pdns.values(name) == [V4] and pdns.serial() > s0
    s1 = pdns.serial()

    r = update(cfg, "--force")  # right at the server: read only
    assert r["status"] == "unchanged", r
    assert pdns.serial() == s1

    cfg = config(tmp_path, pdns, rec(name), ip=V4B)
    r = update(cfg)
    assert r["status"] == "updated" and r["previous_ip"] == V4, r
    assert pdns.values(name) == [V4B] and pdns.serial() > s1

    cfg6 = config(tmp_path, pdns, rec("home.example.net", "AAAA", 'ttl = 120'), sub="v6")
    r = update(cfg6)
    assert r["status"] == "updated" and r["ip"] == V6, r
    code, zone = pdns.api("GET", "/api/v1/servers/localhost/zones/example.net.")
    rrsets = {(x["name"], x["type"]): x for x in zone["rrsets"]}
    assert rrsets[("home.example.net.", "AAAA")]["records"] == [{"content": V6, "disabled": False}]
    assert rrsets[("home.example.net.", "AAAA")]["ttl"] == 120


def test_fixed_zone_and_a_record_already_right(pdns, tmp_path):  # noqa: F811
    # fixed.example.com holds 192.0.2.10 from the start; a static source may publish it with allow_private.
    s0 = pdns.serial()
    cfg = config(tmp_path, pdns, rec("fixed.example.com", extra='allow_private = true\nip = ["static:192.0.2.10"]'),
                 extra='zone = "example.com"')
    r = update(cfg)
    assert r["status"] == "unchanged", r
    assert pdns.serial() == s0


def test_wrong_api_key_is_auth(pdns, tmp_path):  # noqa: F811
    s0 = pdns.serial()
    r = update(config(tmp_path, pdns, rec("nokey.example.com"), key="not-the-key"))
    assert r["status"] == "failed" and r["error"]["code"] == "auth", r
    assert "not-the-key" not in str(r) and pdns.serial() == s0


def test_name_outside_every_zone_is_not_found(pdns, tmp_path):  # noqa: F811
    r = update(config(tmp_path, pdns, rec("home.example.org")))
    assert r["status"] == "failed" and r["error"]["code"] == "not_found", r
    # a configured zone the server does not have: PowerDNS answers 404
    r = update(config(tmp_path, pdns, rec("home.example.org"), extra='zone = "example.org"', sub="z"))
    assert r["status"] == "failed" and r["error"]["code"] == "not_found", r
    # a server_id the API does not have
    r = update(config(tmp_path, pdns, rec("home.example.com"), extra='server_id = "nope"', sub="sid"))
    assert r["status"] == "failed" and r["error"]["code"] == "not_found", r


def test_rfc2136_against_powerdns(pdns, tmp_path):  # noqa: F811
    """The rfc2136 type against PowerDNS's own DNS UPDATE support: the third real server."""
    import base64

    import pytest

    from edgeddns.config import RecordConfig
    from edgeddns.errors import AuthError
    from tests.dnsservers import KEYS
    from tests.test_rfc2136 import make

    code, _ = pdns.api("POST", "/api/v1/servers/localhost/tsigkeys",
                       {"name": "ddns-key", "algorithm": "hmac-sha256", "key": KEYS["ddns-key"][1]})
    assert code == 201
    code, _ = pdns.api("PUT", "/api/v1/servers/localhost/zones/example.com./metadata/TSIG-ALLOW-DNSUPDATE",
                       {"metadata": ["ddns-key"]})
    assert code == 200

    class Server:
        server = f"127.0.0.1:{pdns.dns_port}"

    rec = RecordConfig(name="tsig.example.com", type="A", provider="p")
    s0 = pdns.serial()
    assert make(Server).ensure(rec, V4) == "updated"  # the zone from an SOA query, every answer verified
    assert pdns.values("tsig.example.com") == [V4]
    s1 = pdns.serial()
    assert s1 > s0
    assert make(Server).ensure(rec, V4) == "unchanged" and pdns.serial() == s1
    assert make(Server).ensure(rec, V4B) == "updated" and pdns.values("tsig.example.com") == [V4B]
    wrong = base64.b64encode(b"w" * 32).decode()
    with pytest.raises(AuthError, match="without a signature.*secret"):
        make(Server, secret=wrong).ensure(rec, V4)
    # PowerDNS answers a wrong time the same way (unsigned, no BADTIME): the message says so.
    import time

    from edgeddns.clock import SystemClock

    with pytest.raises(AuthError, match="clock more than 5 minutes off"):
        make(Server, clock=SystemClock(wall=lambda: time.time() - 3 * 3600)).ensure(rec, V4)
    assert pdns.values("tsig.example.com") == [V4B]
