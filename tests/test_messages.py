"""Messages a new user meets, made precise (issue 14 §4)."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import ROOT, run_cli, write_config

BASE = """
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[ip]
{ip}
[[records]]
name = "home.lan"
provider = "lan"
{rec}
"""


@pytest.mark.parametrize("address,expected", [
    ("203.0.113.7", "203.0.113.7 is in 203.0.113.0/24 (TEST-NET-3, reserved for documentation, RFC 5737)"),
    ("192.0.2.1", "192.0.2.1 is in 192.0.2.0/24 (TEST-NET-1, reserved for documentation, RFC 5737)"),
    ("198.51.100.4", "198.51.100.4 is in 198.51.100.0/24 (TEST-NET-2, reserved for documentation, RFC 5737)"),
    ("2001:db8::7", "2001:db8::7 is in 2001:db8::/32 (reserved for documentation, RFC 3849)"),
    ("3fff::1", "3fff::1 is in 3fff::/20 (reserved for documentation, RFC 9637)"),
    ("198.18.0.1", "198.18.0.1 is in 198.18.0.0/15 (reserved for benchmarking, RFC 2544)"),
    ("192.168.1.20", "192.168.1.20 is in 192.168.0.0/16 (a private network, RFC 1918)"),
    ("8.8.8.8", None),
])
def test_non_public_ranges_are_named(address, expected):
    from edgeddns.ipsource import why_not_public

    assert why_not_public(address) == expected


def test_the_readme_address_is_called_documentation_not_private(tmp_path):
    cfg = write_config(tmp_path, BASE.format(d=tmp_path, ip='ipv4 = ["static:203.0.113.7"]', rec=""))
    r = run_cli("update", "--json", "-c", cfg)
    res = json.loads(r.stdout.splitlines()[0])
    assert res["status"] == "skipped"
    assert "documentation" in res["error"]["message"] and "private" not in res["error"]["message"], res


def test_no_config_names_every_path_tried(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "EDGEDDNS_CONFIG"}
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "edgeddns", "check-config"], capture_output=True, text=True,
                       cwd=str(tmp_path), env={**env, "PYTHONPATH": ROOT})
    assert r.returncode == 2
    assert f"{tmp_path}/config.toml" in r.stderr and "/etc/edgeddns/config.toml" in r.stderr, r.stderr
    assert "EDGEDDNS_CONFIG" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # The agent's clients too (when /etc/edgeddns/config.toml does not exist on this machine).
    if not os.path.exists("/etc/edgeddns/config.toml"):
        for argv in (["status"], ["trigger"], ["status", "--json"]):
            r = subprocess.run([sys.executable, "-m", "edgeddns", *argv], capture_output=True, text=True,
                               cwd=str(tmp_path), env={**env, "PYTHONPATH": ROOT})
            assert r.returncode == 2 and f"{tmp_path}/config.toml" in r.stderr, (argv, r.stderr)


@pytest.mark.parametrize("ip,rec,key,words", [
    ('ipv6 = ["static:192.0.2.1"]', 'type = "AAAA"', "ip.ipv6[0]", "IPv4 address"),
    ('ipv4 = ["static:192.0.2.1"]', 'type = "AAAA"\nip = ["static:192.0.2.1"]', "records[0].ip[0]", "AAAA"),
    ('ipv4 = ["static:999.1.1.1"]', "", "ip.ipv4[0]", "999.1.1.1 is not an IP address"),
    ('ipv4 = ["static:2001:db8::1"]', "", "ip.ipv4[0]", "IPv6 address"),
])
def test_static_sources_that_can_never_serve_are_config_errors(tmp_path, ip, rec, key, words):
    cfg = write_config(tmp_path, BASE.format(d=tmp_path, ip=ip, rec=rec))
    r = run_cli("check-config", "-c", cfg)
    assert r.returncode == 2 and r.stdout == "", r.stdout
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert f"{cfg}: {key}: " in line and words in line, line


@pytest.mark.parametrize("server,ok", [
    ("pool.ntp.org:abc", False), ("pool.ntp.org:0", False), ("pool.ntp.org:70000", False), ("pool.ntp.org:", False),
    ("pool.ntp.org", True), ("pool.ntp.org:123", True), ("[2001:db8::1]:123", True), ("2001:db8::1", True),
])
def test_ntp_server_ports_are_checked_at_load(tmp_path, server, ok):
    cfg = write_config(tmp_path, f'[clock]\nntp_servers = ["{server}"]\n'
                       + BASE.format(d=tmp_path, ip='ipv4 = ["static:192.0.2.1"]', rec=""))
    r = run_cli("check-config", "-c", cfg)
    if ok:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode == 2 and f"{cfg}: clock.ntp_servers[0]: " in r.stderr and "port" in r.stderr, r.stderr
