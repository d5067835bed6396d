"""Cloudflare v4 end to end over HTTPS against the fake API."""

from __future__ import annotations

import textwrap

import pytest

from edgeddns.providers.cloudflare import AuthError, NotFoundError, RateLimitedError, map_error
from tests.conftest import json_results as results
from tests.conftest import provider_config, record_toml, run_cli
from tests.fakes.cloudflare import FakeCloudflare
from tests.fakes.server import FakeServer, Reply

TOKEN = "cf-token-0123456789abcdefABCDEF"


@pytest.fixture
def cf(server_context):
    fake = FakeCloudflare({TOKEN: None}, ["example.com", "example.net", "sub.example.com"])
    srv = FakeServer(fake, ssl_context=server_context).start()
    fake.server = srv
    fake.url = srv.url + "client/v4"
    yield fake
    srv.stop()


def cf_config(tmp_path, fake, ca_file, *, ip="static:8.8.8.8", records=None, extra="", token=TOKEN):
    return provider_config(tmp_path, f"""
[providers.cf]
type = "cloudflare"
api_token = "{token}"
endpoint = "{fake.url}"
ca_file = "{ca_file}"
timeout = 3
{textwrap.dedent(extra)}
""", records if records is not None else record_toml("cf"), ip=ip)


def update(cfg, *args):
    p = run_cli("update", "-c", cfg, "--json", *args)
    assert "Traceback" not in p.stderr, p.stderr
    return p, results(p)


def test_create_unchanged_update(tmp_path, cf, ca_file):
    cfg = cf_config(tmp_path, cf, ca_file)
    p, (r,) = update(cfg)
    assert p.returncode == 0 and r["status"] == "updated", p.stdout + p.stderr
    (rec,) = cf.find("home.example.com", "A")
    assert rec["content"] == "8.8.8.8" and rec["proxied"] is False and rec["ttl"] == 1
    zid = cf.zone_id("example.com")
    # Zone detection: the longest suffix first, then the record list, then the create.
    assert cf.calls == ["GET /zones", "GET /zones", f"GET /zones/{zid}/dns_records",
                        f"POST /zones/{zid}/dns_records"]
    assert [q.query["name"] for q in cf.requests[:2]] == ["home.example.com", "example.com"]
    assert all(q.headers["authorization"] == "Bearer " + TOKEN for q in cf.requests)

    n = len(cf.calls)
    _, (r,) = update(cfg)
    assert r["status"] == "unchanged" and len(cf.calls) == n

    cfg = cf_config(tmp_path, cf, ca_file, ip="static:1.1.1.1")
    _, (r,) = update(cfg)
    assert r["status"] == "updated" and r["previous_ip"] == "8.8.8.8"
    assert cf.calls[-1] == f"PATCH /zones/{zid}/dns_records/{rec['id']}"
    assert cf.requests[-1].json() == {"content": "1.1.1.1"}  # proxied untouched when unset
    assert [x["content"] for x in cf.find("home.example.com")] == ["1.1.1.1"]


def test_aaaa_in_delegated_subzone(tmp_path, cf, ca_file):
    cfg = cf_config(tmp_path, cf, ca_file, records="""
        [[records]]
        name = "nas.sub.example.com"
        type = "AAAA"
        provider = "cf"
        ttl = 300
    """)
    _, (r,) = update(cfg)
    assert r["status"] == "updated"
    (rec,) = cf.find("nas.sub.example.com", "AAAA")
    assert rec["zone_name"] == "sub.example.com" and rec["content"] == "2001:4860:4860::8888"
    assert rec["ttl"] == 300


def test_proxied_kept_when_unset_and_set_when_given(tmp_path, cf, ca_file):
    rid = cf.add("home.example.com", "A", "9.9.9.9", proxied=True)
    _, (r,) = update(cf_config(tmp_path, cf, ca_file))
    assert r["status"] == "updated"
    assert cf.records[rid]["proxied"] is True and cf.records[rid]["content"] == "8.8.8.8"

    # The user now asks for proxied = false: the right address alone is not enough.
    cfg = cf_config(tmp_path, cf, ca_file, records="""
        [[records]]
        name = "home.example.com"
        provider = "cf"
        proxied = false
    """)
    _, (r,) = update(cfg, "--force")
    assert r["status"] == "updated" and cf.records[rid]["proxied"] is False
    assert cf.requests[-1].json() == {"content": "8.8.8.8", "proxied": False}


def test_zone_given_and_zone_id_given(tmp_path, cf, ca_file):
    cfg = cf_config(tmp_path, cf, ca_file, records="""
        [[records]]
        name = "a.example.net"
        zone = "example.net"
        provider = "cf"
    """)
    update(cfg)
    assert [q.query.get("name") for q in cf.requests[:1]] == ["example.net"]
    cf.calls.clear()
    zid = cf.zone_id("example.com")
    (tmp_path / "b").mkdir()
    cfg = cf_config(tmp_path / "b", cf, ca_file, extra=f'zone_id = "{zid}"')
    _, (r,) = update(cfg)
    assert r["status"] == "updated" and cf.calls[0] == f"GET /zones/{zid}/dns_records"


def test_identical_record_race_is_unchanged(tmp_path, cf, ca_file):
    # Someone else created the record between our read and our write.
    for code in (81058, 81057):
        cf.dup_code = code
        cf.stale_reads = 1
        cf.records.clear()
        cf.add("home.example.com", "A", "8.8.8.8")
        d = tmp_path / str(code)
        d.mkdir()
        _, (r,) = update(cf_config(d, cf, ca_file))
        assert r["status"] == "unchanged" and r["error"] is None


def test_invalid_token_is_auth_without_token_in_output(tmp_path, cf, ca_file):
    p, (r,) = update(cf_config(tmp_path, cf, ca_file, token="wrong-token-abcdef"))
    assert p.returncode == 1 and r["error"]["code"] == "auth" and "9109" in r["error"]["message"]
    assert "wrong-token-abcdef" not in p.stdout + p.stderr


def test_token_without_zone_permission_is_auth(tmp_path, cf, ca_file):
    cf.tokens[TOKEN] = {"example.net"}
    zid = cf.zone_id("example.com")
    _, (r,) = update(cf_config(tmp_path, cf, ca_file, extra=f'zone_id = "{zid}"'))
    assert r["error"]["code"] == "auth" and "10000" in r["error"]["message"]


def test_zone_not_visible_is_not_found(tmp_path, cf, ca_file):
    cf.tokens[TOKEN] = {"example.net"}
    _, (r,) = update(cf_config(tmp_path, cf, ca_file))
    assert r["error"]["code"] == "not_found"


def test_bad_zone_id_is_not_found(tmp_path, cf, ca_file):
    _, (r,) = update(cf_config(tmp_path, cf, ca_file, extra='zone_id = "0123456789abcdef0123456789abcdef"'))
    assert r["error"]["code"] == "not_found" and "7003" in r["error"]["message"]


def test_429_is_retried_honouring_retry_after(tmp_path, cf, ca_file):
    cf.throttle = 1
    _, (r,) = update(cf_config(tmp_path, cf, ca_file))
    assert r["status"] == "updated" and r["attempts"] == 2


def test_persistent_429_is_rate_limited(tmp_path, cf, ca_file):
    cf.throttle = 10
    _, (r,) = update(cf_config(tmp_path, cf, ca_file))
    assert r["error"]["code"] == "rate_limited" and len(cf.calls) == 3


def test_5xx_html_is_retryable_provider_error(tmp_path, cf, ca_file):
    cf.server.faults = [Reply(502, b"<html>Bad gateway</html>", {"Content-Type": "text/html"})] * 3
    _, (r,) = update(cf_config(tmp_path, cf, ca_file))
    assert r["error"]["code"] == "provider" and "502" in r["error"]["message"]
    assert len(cf.server.requests) == 3  # retried, bounded


def test_bad_zone_id_option_is_config_error(tmp_path, cf, ca_file):
    p = run_cli("check-config", "-c", cf_config(tmp_path, cf, ca_file, extra='zone_id = "nope"'))
    assert p.returncode == 2 and "providers.cf.zone_id" in p.stderr


def test_map_error_table():
    assert isinstance(map_error(403, [{"code": 9109, "message": "Invalid access token"}], None), AuthError)
    assert isinstance(map_error(403, [{"code": 10000, "message": "Authentication error"}], None), AuthError)
    assert isinstance(map_error(400, [{"code": 7003, "message": "x"}], None), NotFoundError)
    assert isinstance(map_error(404, [{"code": 81044, "message": "Record does not exist."}], None), NotFoundError)
    e = map_error(429, [{"code": 971, "message": "Please wait"}], 7.0)
    assert isinstance(e, RateLimitedError) and e.retry_after == 7.0
    e = map_error(400, [{"code": 9005, "message": "Content for A record is invalid."}], None)
    assert e.code == "provider" and not e.retryable and "9005" in e.message
    assert map_error(503, [], None).retryable
