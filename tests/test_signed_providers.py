"""The signed providers end to end: the real CLI, over HTTPS, against each fake.

``signed`` is parametrised over dnspod, huaweicloud, route53 and alidns with
``signature = "v3"``; every fake verifies signatures with its own code and
judges timestamps by its own clock.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import json_results as results
from tests.conftest import run_cli
from tests.fakes.fixtures import signed_config


def one(proc):
    rs = results(proc)
    assert len(rs) == 1, proc.stdout + proc.stderr
    return rs[0]


def test_create_unchanged_update(tmp_path, signed):
    cfg = signed_config(tmp_path, signed, ip="static:8.8.8.8")
    p = run_cli("update", "-c", cfg, "--json")
    r = one(p)
    assert p.returncode == 0 and r["status"] == "updated" and r["error"] is None, p.stdout + p.stderr
    assert signed.values("home.example.com", "A") == ["8.8.8.8"]
    assert signed.writes == 1

    # Nothing changed: zero provider calls.
    before = len(signed.calls)
    p = run_cli("update", "-c", cfg, "--json")
    assert one(p)["status"] == "unchanged" and len(signed.calls) == before

    # The address changes: read, then one write; the zone lookup was not repeated needlessly.
    cfg = signed_config(tmp_path, signed, ip="static:1.1.1.1")
    p = run_cli("update", "-c", cfg, "--json")
    r = one(p)
    assert r["status"] == "updated" and r["previous_ip"] == "8.8.8.8", p.stdout + p.stderr
    assert signed.values("home.example.com", "A") == ["1.1.1.1"]
    assert signed.writes == 2
    assert "SECRET" not in p.stdout and signed.secret not in p.stdout + p.stderr


def test_already_right_makes_no_write(tmp_path, signed):
    signed.seed("home.example.com", "A", "8.8.8.8")
    p = run_cli("update", "-c", signed_config(tmp_path, signed), "--json")
    assert one(p)["status"] == "unchanged", p.stdout + p.stderr
    assert signed.writes == 0 and len(signed.calls) >= 1


def test_a_and_aaaa_and_apex(tmp_path, signed):
    cfg = signed_config(tmp_path, signed, records="""
        [[records]]
        name = "home.example.com"
        type = "A"
        provider = "p"

        [[records]]
        name = "home.example.com"
        type = "AAAA"
        provider = "p"

        [[records]]
        name = "example.net"
        type = "AAAA"
        provider = "p"
        zone = "example.net"
        ttl = 600
    """)
    p = run_cli("update", "-c", cfg, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert [r["status"] for r in results(p)] == ["updated"] * 3
    assert signed.values("home.example.com", "A") == ["8.8.8.8"]
    assert signed.values("home.example.com", "AAAA") == ["2001:4860:4860::8888"]
    assert signed.values("example.net", "AAAA") == ["2001:4860:4860::8888"]
    # A second, forced pass reads each record and writes nothing.
    writes = signed.writes
    p = run_cli("update", "-c", cfg, "--json", "--force")
    assert [r["status"] for r in results(p)] == ["unchanged"] * 3 and signed.writes == writes


def test_wrong_secret_is_auth(tmp_path, signed):
    key_id = next(iter(signed.keys))
    signed.keys[key_id] = "a-different-secret"
    p = run_cli("update", "-c", signed_config(tmp_path, signed), "--json")
    r = one(p)
    assert p.returncode == 1 and r["status"] == "failed" and r["error"]["code"] == "auth", p.stdout
    assert signed.secret not in p.stdout + p.stderr and "Traceback" not in p.stderr


def test_unknown_key_is_auth(tmp_path, signed):
    signed.keys = {"SOMEONEELSE": "x"}
    p = run_cli("update", "-c", signed_config(tmp_path, signed), "--json")
    assert one(p)["error"]["code"] == "auth"


@pytest.mark.parametrize("ahead", [3600, -3600])
def test_provider_clock_elsewhere_is_clock_skew(tmp_path, signed, ahead):
    signed.server.clock = lambda: time.time() + ahead
    p = run_cli("update", "-c", signed_config(tmp_path, signed), "--json")
    r = one(p)
    assert r["status"] == "failed" and r["error"]["code"] == "clock_skew", p.stdout + p.stderr
    assert signed.writes == 0


def test_throttling_once_is_retried(tmp_path, signed):
    signed.throttle = 1
    p = run_cli("update", "-c", signed_config(tmp_path, signed), "--json")
    r = one(p)
    assert r["status"] == "updated" and r.get("attempts") == 2, p.stdout + p.stderr


def test_persistent_throttling_is_rate_limited(tmp_path, signed):
    signed.throttle = 100
    p = run_cli("update", "-c", signed_config(tmp_path, signed), "--json")
    r = one(p)
    assert r["error"]["code"] == "rate_limited", p.stdout + p.stderr
    assert len(signed.calls) == 3  # bounded: the engine's three attempts


def test_name_outside_every_zone_is_not_found(tmp_path, signed):
    cfg = signed_config(tmp_path, signed, records="""
        [[records]]
        name = "home.example.org"
        provider = "p"
    """)
    p = run_cli("update", "-c", cfg, "--json")
    assert one(p)["error"]["code"] == "not_found", p.stdout + p.stderr
    assert signed.writes == 0


def test_given_zone_not_in_account_is_not_found(tmp_path, signed):
    cfg = signed_config(tmp_path, signed, records="""
        [[records]]
        name = "home.example.org"
        provider = "p"
        zone = "example.org"
    """)
    p = run_cli("update", "-c", cfg, "--json")
    assert one(p)["error"]["code"] == "not_found", p.stdout + p.stderr
