"""The one zone resolver: entries expire after an hour and are dropped on ``not_found``.

End to end against the fake Cloudflare API (over HTTPS) with one long-lived
engine, as the agent holds one: fixing a token's permission or moving a zone
must work without a restart.
"""

from __future__ import annotations

from edgeddns.clock import SystemClock
from edgeddns.config import load
from edgeddns.engine import Engine, UpdateRequest
from edgeddns.state import StateStore
from tests.test_cloudflare import TOKEN, cf_config
from tests.test_cloudflare import cf as cf_fixture

cf = cf_fixture  # the fake Cloudflare API, shared with test_cloudflare


class Mono:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def engine(cfg_path: str, mono: Mono) -> Engine:
    cfg = load(cfg_path)
    return Engine(cfg, SystemClock(), StateStore.open(cfg.agent.state_dir), monotonic=mono, sleep=lambda s: None)


def test_token_permission_fixed_works_without_restart(tmp_path, cf, ca_file):
    cf.tokens[TOKEN] = {"example.net"}  # the token cannot see example.com yet
    eng = engine(cf_config(tmp_path, cf, ca_file), Mono())
    try:
        (r,) = eng.run(UpdateRequest())
        assert r.error and r.error["code"] == "not_found", r
        cf.tokens[TOKEN] = None  # the user fixes the token's permission
        (r,) = eng.run(UpdateRequest())
        assert r.status == "updated", r.error
        assert [x["content"] for x in cf.find("home.example.com", "A")] == ["8.8.8.8"]
    finally:
        eng.close()


def test_zone_recreated_with_new_id_is_found_again(tmp_path, cf, ca_file):
    eng = engine(cf_config(tmp_path, cf, ca_file), Mono())
    try:
        (r,) = eng.run(UpdateRequest())
        assert r.status == "updated"
        # The zone is deleted and added again at Cloudflare: it gets a new id.
        old = cf.zone_id("example.com")
        del cf.zones[old]
        cf.records.clear()
        cf.zones["f" * 32] = "example.com"
        (r,) = eng.run(UpdateRequest(force=True))
        assert r.error and r.error["code"] == "not_found"  # the cached id answers 7003 once
        (r,) = eng.run(UpdateRequest(force=True))
        assert r.status == "updated", r.error
        assert cf.find("home.example.com", "A")[0]["zone_id"] == "f" * 32
    finally:
        eng.close()


def test_zone_lookups_expire_after_an_hour(tmp_path, cf, ca_file):
    mono = Mono()
    eng = engine(cf_config(tmp_path, cf, ca_file), mono)
    try:
        eng.run(UpdateRequest())
        lookups = cf.calls.count("GET /zones")
        assert lookups >= 1
        mono.t += 1800
        eng.run(UpdateRequest(force=True))
        assert cf.calls.count("GET /zones") == lookups  # within the hour: cached
        mono.t += 1801
        eng.run(UpdateRequest(force=True))
        assert cf.calls.count("GET /zones") == 2 * lookups  # past the hour: asked again
    finally:
        eng.close()


def test_resolver_unit():
    from edgeddns.providers.zones import ZoneResolver

    mono = Mono()
    asked = []

    def lookup(zone):
        asked.append(zone)
        return {"example.com": "id1"}.get(zone)

    z = ZoneResolver(monotonic=mono, lookup=lookup)
    assert z.find("a.b.example.com") == ("example.com", "id1")
    assert asked == ["a.b.example.com", "b.example.com", "example.com"]
    assert z.find("a.b.example.com") == ("example.com", "id1") and len(asked) == 3
    assert z.find("x.example.org") is None  # a negative answer is cached too ...
    n = len(asked)
    assert z.find("x.example.org") is None and len(asked) == n
    z.forget()  # ... until a not_found drops it
    z.find("x.example.org")
    assert len(asked) > n
    listed = []
    z2 = ZoneResolver(monotonic=mono,
                      list_zones=lambda: listed.append(1) or {"example.com": "1", "dyn.example.com": "2"})
    assert z2.find("nas.dyn.example.com") == ("dyn.example.com", "2")
    assert z2.find("www.example.com") == ("example.com", "1") and listed == [1]
    assert z2.zone_id("example.com") == "1" and z2.zone_id("nope.com") is None
    mono.t += 3601
    z2.find("www.example.com")
    assert listed == [1, 1]


def test_resolver_search_expires_and_is_forgotten():
    mono = Mono()
    asked = []
    z = ZoneResolverFor(mono, asked)
    assert z.find("nas.example.com") == ("example.com", "") and asked == ["nas.example.com"]
    z.find("nas.example.com")
    assert len(asked) == 1
    mono.t += 3601
    z.find("nas.example.com")
    assert len(asked) == 2
    z.forget()
    z.find("nas.example.com")
    assert len(asked) == 3


def ZoneResolverFor(mono, asked):
    from edgeddns.providers.zones import ZoneResolver

    return ZoneResolver(monotonic=mono, search=lambda n: asked.append(n) or ("example.com", ""))
