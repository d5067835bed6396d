"""Alidns: the signer against Alibaba's published example, and end to end over HTTPS."""

from __future__ import annotations

import pytest

from edgeddns.providers.alidns import sign, string_to_sign
from tests.conftest import ALI_SECRET, alidns_config, run_cli
from tests.conftest import json_results as results
from tests.fakes.alidns import expected_signature

# The worked example of Alibaba Cloud's RPC signature documentation
# (ECS DescribeRegions, AccessKey "testid" / "testsecret").
DOC_PARAMS = {
    "Timestamp": "2016-02-23T12:46:24Z", "Format": "XML", "AccessKeyId": "testid",
    "Action": "DescribeRegions", "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "Version": "2014-05-26",
    "SignatureVersion": "1.0",
}
DOC_STRING_TO_SIGN = (
    "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1"
    "%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0"
    "%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
)
DOC_SIGNATURE = "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_signer_matches_published_example():
    assert string_to_sign("GET", DOC_PARAMS) == DOC_STRING_TO_SIGN
    assert sign("GET", DOC_PARAMS, "testsecret") == DOC_SIGNATURE


def test_fake_server_verifier_matches_published_example():
    assert expected_signature("GET", DOC_PARAMS, "testsecret") == DOC_SIGNATURE


def test_percent_encoding_edges_agree_with_fake():
    params = dict(DOC_PARAMS, Value="a b*c~d/é+=&")
    assert sign("POST", params, "k") == expected_signature("POST", params, "k")
    assert "a%2520b%252Ac~d%252F%25C3%25A9%252B%253D%2526" in string_to_sign("POST", params)




def test_create_then_unchanged_then_update(tmp_path, alidns, ca_file):
    cfg = alidns_config(tmp_path, alidns, ca_file, ip="static:8.8.8.8")
    p = run_cli("update", "-c", cfg, "--json")
    assert p.returncode == 0, p.stderr
    (r,) = results(p)
    assert r["status"] == "updated" and r["ip"] == "8.8.8.8" and r["previous_ip"] is None
    assert r["error"] is None and r["clock"]["source"] == "system"
    assert [x["Value"] for x in alidns.find("home.example.com", "A")] == ["8.8.8.8"]
    assert "AddDomainRecord" in alidns.calls

    # Nothing changed: zero provider calls.
    before = len(alidns.calls)
    p = run_cli("update", "-c", cfg, "--json")
    assert p.returncode == 0 and results(p)[0]["status"] == "unchanged"
    assert len(alidns.calls) == before

    # The address changes: one read, one update.
    cfg = alidns_config(tmp_path, alidns, ca_file, ip="static:1.1.1.1")
    p = run_cli("update", "-c", cfg, "--json")
    (r,) = results(p)
    assert r["status"] == "updated" and r["ip"] == "1.1.1.1" and r["previous_ip"] == "8.8.8.8"
    assert alidns.calls[before:] == ["DescribeSubDomainRecords", "UpdateDomainRecord"]
    assert [x["Value"] for x in alidns.find("home.example.com", "A")] == ["1.1.1.1"]
    assert len(alidns.find("home.example.com")) == 1


def test_record_already_right_makes_no_write(tmp_path, alidns, ca_file):
    alidns.add("home", "example.com", "A", "8.8.8.8")
    cfg = alidns_config(tmp_path, alidns, ca_file)
    p = run_cli("update", "-c", cfg, "--json")
    assert results(p)[0]["status"] == "unchanged"
    assert alidns.writes == 0 and alidns.calls == ["DescribeSubDomainRecords"]


def test_force_asks_provider_again(tmp_path, alidns, ca_file):
    cfg = alidns_config(tmp_path, alidns, ca_file)
    run_cli("update", "-c", cfg)
    n = len(alidns.calls)
    p = run_cli("update", "-c", cfg, "--force", "--json")
    assert results(p)[0]["status"] == "unchanged" and len(alidns.calls) == n + 1


def test_aaaa_record_and_apex(tmp_path, alidns, ca_file):
    cfg = alidns_config(tmp_path, alidns, ca_file, records="""
        [[records]]
        name = "example.net"
        type = "AAAA"
        provider = "ali"
        ttl = 600
    """)
    p = run_cli("update", "-c", cfg, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    (rec,) = alidns.find("example.net", "AAAA")
    assert rec["RR"] == "@" and rec["Value"] == "2001:4860:4860::8888"


def test_wrong_secret_is_auth_error_without_secret_in_output(tmp_path, alidns, ca_file):
    alidns.keys[next(iter(alidns.keys))] = "another-secret"
    cfg = alidns_config(tmp_path, alidns, ca_file)
    p = run_cli("update", "-c", cfg, "--json")
    assert p.returncode == 1
    (r,) = results(p)
    assert r["status"] == "failed" and r["error"]["code"] == "auth"
    assert ALI_SECRET not in p.stdout + p.stderr
    assert "Traceback" not in p.stderr


def test_unknown_key_id_is_auth(tmp_path, alidns, ca_file):
    alidns.keys = {"other": "x"}
    p = run_cli("update", "-c", alidns_config(tmp_path, alidns, ca_file), "--json")
    assert results(p)[0]["error"]["code"] == "auth"


def test_expired_timestamp_is_clock_skew(tmp_path, alidns, ca_file):
    import time

    alidns.clock = lambda: time.time() + 3 * 3600  # the provider lives three hours ahead
    alidns.server.clock = alidns.clock
    cfg = alidns_config(tmp_path, alidns, ca_file, extra='\n[clock]\nmode = "system"\n')
    p = run_cli("update", "-c", cfg, "--json")
    (r,) = results(p)
    assert r["error"]["code"] == "clock_skew" and "expired" in r["error"]["message"]


def test_throttling_is_retried_then_succeeds(tmp_path, alidns, ca_file):
    alidns.throttle = 1
    p = run_cli("update", "-c", alidns_config(tmp_path, alidns, ca_file), "--json")
    (r,) = results(p)
    assert r["status"] == "updated" and r.get("attempts") == 2


def test_persistent_throttling_is_rate_limited(tmp_path, alidns, ca_file):
    alidns.throttle = 10
    p = run_cli("update", "-c", alidns_config(tmp_path, alidns, ca_file), "--json")
    (r,) = results(p)
    assert r["error"]["code"] == "rate_limited"
    assert alidns.calls.count("DescribeSubDomainRecords") == 3  # bounded


def test_unknown_zone_is_not_found(tmp_path, alidns, ca_file):
    cfg = alidns_config(tmp_path, alidns, ca_file, records="""
        [[records]]
        name = "home.example.org"
        provider = "ali"
    """)
    p = run_cli("update", "-c", cfg, "--json")
    assert results(p)[0]["error"]["code"] == "not_found"


def test_wrong_ca_is_tls_error(tmp_path, alidns, ca_file):
    import trustme

    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    cfg = alidns_config(tmp_path, alidns, str(other))
    p = run_cli("update", "-c", cfg, "--json")
    assert results(p)[0]["error"]["code"] == "tls"


def test_provider_down_is_network_error(tmp_path, alidns, ca_file):
    url = alidns.url
    alidns.server.stop()
    alidns.url = url
    p = run_cli("update", "-c", alidns_config(tmp_path, alidns, ca_file), "--json")
    assert results(p)[0]["error"]["code"] == "network"


def test_malformed_json_is_provider_error(tmp_path, alidns, ca_file):
    from tests.fakes.server import Reply

    alidns.server.faults = [Reply(200, b"{not json", {"Content-Type": "application/json"})]
    p = run_cli("update", "-c", alidns_config(tmp_path, alidns, ca_file), "--json")
    (r,) = results(p)
    assert r["error"]["code"] == "provider" and "malformed JSON" in r["error"]["message"]


def test_cgnat_address_is_skipped_with_reason(tmp_path, alidns, ca_file):
    p = run_cli("update", "-c", alidns_config(tmp_path, alidns, ca_file, ip="static:100.72.1.2"), "--json")
    (r,) = results(p)
    assert p.returncode == 0
    assert r["status"] == "skipped" and "CGNAT" in r["error"]["message"]
    assert alidns.calls == []


def test_dry_run_changes_nothing(tmp_path, alidns, ca_file):
    p = run_cli("update", "-c", alidns_config(tmp_path, alidns, ca_file), "--dry-run")
    assert p.returncode == 0 and "would_update" in p.stdout
    assert alidns.calls == [] and ALI_SECRET not in p.stdout + p.stderr


def test_system_store_is_read_lazily_and_still_verifies(tmp_path, alidns, ca, monkeypatch):
    """A hashed CA directory is read on demand (no CA in memory up front), and verification holds."""
    import shutil
    import subprocess

    from edgeddns.tls import make_context

    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command to name the CA by its hash")
    d = tmp_path / "certs"
    d.mkdir()
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    h = subprocess.run(["openssl", "x509", "-subject_hash", "-noout", "-in", str(pem)], capture_output=True,
                       text=True, check=True).stdout.strip()
    shutil.copy(pem, d / f"{h}.0")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(d))
    ctx = make_context()
    assert ctx.cert_store_stats()["x509_ca"] == 0  # nothing loaded yet
    import socket
    import ssl

    with socket.create_connection(("127.0.0.1", alidns.server.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.version()
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "empty"))
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection(("127.0.0.1", alidns.server.port), timeout=5) as raw:
            make_context().wrap_socket(raw, server_hostname="127.0.0.1")
