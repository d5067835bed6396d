"""Small fixes to the existing providers (issue 15 §4), each with the test that failed before it.

- Huawei: the canonical query is sorted by the *raw* keys, as the official SDKs do.
- User-Agent: ``edgeddns/<version> (+<project URL>)`` by default, on every HTTP provider;
  ``check-config`` warns when a No-IP provider's User-Agent names no contact.
- DuckDNS: a record not under duckdns.org is a config error; only the subdomain is sent.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

import pytest

from edgeddns import __version__
from edgeddns.providers.huaweicloud import sdk_signature
from tests.conftest import run_cli, write_config
from tests.fakes import huaweicloud as fake_huawei

# Raw order: "a~" (0x7E) < "aé" (0xE9). Encoded order: "a%C3%A9" < "a~" ('%' is 0x25).
QUERY = {"aé": "2", "a~": "1", "limit": "10"}


def sdk_rule(sk: str, query: dict, date: str) -> str:
    """Huawei's SDK signer, written from its code's rule: sort the raw keys, then encode each pair."""
    q = "&".join(f"{quote(k, safe='-_.~')}={quote(query[k], safe='-_.~')}" for k in sorted(query))
    headers = "host:dns.example.com\nx-sdk-date:" + date + "\n"
    creq = "\n".join(["GET", "/v2/zones/", q, headers, "host;x-sdk-date", hashlib.sha256(b"").hexdigest()])
    sts = f"SDK-HMAC-SHA256\n{date}\n{hashlib.sha256(creq.encode()).hexdigest()}"
    return hmac.new(sk.encode(), sts.encode(), hashlib.sha256).hexdigest()


def test_huawei_sorts_raw_query_keys_like_the_sdk():
    date = "20260101T000000Z"
    want = sdk_rule("SK", QUERY, date)
    got = sdk_signature("SK", method="GET", path="/v2/zones", query=QUERY,
                        headers={"host": "dns.example.com", "x-sdk-date": date},
                        signed_headers=["host", "x-sdk-date"], body=b"", sdk_date=date)
    assert got == want
    raw = "&".join(f"{quote(k)}={v}" for k, v in QUERY.items())
    assert fake_huawei.sdk_expected("SK", "GET", "/v2/zones", raw, {"host": "dns.example.com", "x-sdk-date": date},
                                    "host;x-sdk-date", b"", date) == want


def test_default_user_agent_names_version_and_project():
    from edgeddns import USER_AGENT
    from edgeddns.http import USER_AGENT as HTTP_UA
    from edgeddns.providers.dyndns2 import DEFAULT_USER_AGENT

    assert USER_AGENT.startswith(f"edgeddns/{__version__} (+https://")
    assert HTTP_UA == USER_AGENT and DEFAULT_USER_AGENT == USER_AGENT


def _noip(tmp_path, ua_line: str) -> str:
    return write_config(tmp_path, f"""
[ip]
ipv4 = ["static:8.8.8.8"]

[providers.noip]
type = "dyndns2"
preset = "noip"
username = "u"
password = "p"
{ua_line}

[[records]]
name = "home.ddns.net"
provider = "noip"
""")


def test_noip_without_a_contact_warns(tmp_path):
    p = run_cli("check-config", "-c", _noip(tmp_path, ""))
    assert p.returncode == 0, p.stderr
    assert "providers.noip.user_agent" in p.stderr and "contact" in p.stderr
    p = run_cli("check-config", "-c", _noip(tmp_path, 'user_agent = "edgeddns/0.1 admin@example.com"'))
    assert p.returncode == 0 and "user_agent" not in p.stderr, p.stderr


@pytest.mark.parametrize("name", ["home.example.com", "a.b.duckdns.org", "duckdns.org"])
def test_duckdns_record_must_be_one_label_under_duckdns_org(tmp_path, name):
    cfg = write_config(tmp_path, f"""
[ip]
ipv4 = ["static:8.8.8.8"]

[providers.duck]
type = "dyndns2"
preset = "duckdns"
token = "t"

[[records]]
name = "{name}"
provider = "duck"
""")
    p = run_cli("check-config", "-c", cfg)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "records[0].name" in p.stderr and "duckdns.org" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_dynv6_preset_sets_a_records_only(tmp_path, server_context, ca_file):
    from tests.conftest import json_results
    from tests.fakes.dyndns2 import FakeDyndns2
    from tests.fakes.server import FakeServer

    fake = FakeDyndns2({"none": "dynv6-token"}, ["home.dynv6.net"])
    srv = FakeServer(fake, ssl_context=server_context).start()
    try:
        body = f"""
[agent]
state_dir = "{tmp_path}/state"

[ip]
ipv4 = ["static:8.8.8.8"]
ipv6 = ["static:2001:4860:4860::8888"]

[providers.d6]
type = "dyndns2"
preset = "dynv6"
username = "none"
password = "dynv6-token"
endpoint = "{srv.url}nic/update"
ca_file = "{ca_file}"

[[records]]
name = "home.dynv6.net"
provider = "d6"
"""
        p = run_cli("update", "-c", write_config(tmp_path, body), "--json")
        (r,) = json_results(p)
        assert r["status"] == "updated", p.stdout + p.stderr
        assert fake.calls == [{"hostname": "home.dynv6.net", "myip": "8.8.8.8"}]
        p = run_cli("check-config", "-c", write_config(tmp_path, body + 'type = "AAAA"\n', name="v6.toml"))
        assert p.returncode == 2 and "records[0].type" in p.stderr and "dynv6" in p.stderr, p.stderr
    finally:
        srv.stop()


@pytest.mark.parametrize("where", ["secret_id", "secret_key"])
def test_dnspod_legacy_id_token_is_a_clear_config_error(tmp_path, where):
    legacy = "123456,0123456789abcdef0123456789abcdef"
    sid = legacy if where == "secret_id" else "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
    skey = legacy if where == "secret_key" else "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
    cfg = write_config(tmp_path, f"""
[ip]
ipv4 = ["static:8.8.8.8"]

[providers.tx]
type = "dnspod"
secret_id = "{sid}"
secret_key = "{skey}"

[[records]]
name = "home.example.com"
provider = "tx"
""")
    p = run_cli("check-config", "-c", cfg)
    assert p.returncode == 2, p.stdout + p.stderr
    assert f"providers.tx.{where}" in p.stderr and "ID,Token" in p.stderr and "SecretId" in p.stderr
    assert "0123456789abcdef0123456789abcdef" not in p.stderr


@pytest.mark.parametrize("ptype,extra", [
    ("rfc2136", 'server = "127.0.0.1"\nkey_name = "k"\nkey_secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="'),
    ("powerdns", 'endpoint = "http://127.0.0.1:8081"\napi_key = "k"'),
])
def test_provider_zone_must_hold_the_record(tmp_path, ptype, extra):
    cfg = write_config(tmp_path, f"""
[ip]
ipv4 = ["static:8.8.8.8"]

[providers.p]
type = "{ptype}"
zone = "example.net"
{extra}

[[records]]
name = "home.example.com"
provider = "p"
""")
    p = run_cli("check-config", "-c", cfg)
    assert p.returncode == 2 and "records[0].name" in p.stderr and "example.net" in p.stderr, p.stderr
