"""The pieces the HTTP JSON providers share (edgeddns/providers/_jsonapi.py, Provider.held_zone):
one status -> error mapping with its retry rules, and one "no zone holds this name" answer per service.
"""

from __future__ import annotations

import pytest

from edgeddns.clock import SystemClock
from edgeddns.config import ProviderConfig, RecordConfig
from edgeddns.errors import AuthError, NotFoundError, ProviderError, RateLimitedError
from edgeddns.providers import provider_class
from edgeddns.providers._jsonapi import status_error
from edgeddns.providers.base import ProviderContext
from edgeddns.providers.zones import ZoneResolver


@pytest.mark.parametrize("status,cls,retryable", [
    (429, RateLimitedError, True),
    (401, AuthError, False),
    (403, AuthError, False),
    (404, NotFoundError, False),
    (400, ProviderError, False),
    (409, ProviderError, False),
    (422, ProviderError, False),
    (500, ProviderError, True),
    (502, ProviderError, True),
    (503, ProviderError, True),
])
def test_status_classes_and_retry(status, cls, retryable):
    e = status_error(status, "Svc HTTP x: why", 7.0)
    assert type(e) is cls
    assert e.retryable is retryable
    assert e.message == "Svc HTTP x: why"


def test_retry_after_is_kept_for_throttling_and_server_errors_only_when_given():
    assert status_error(429, "t", 12.5).retry_after == 12.5
    assert status_error(503, "t", 30.0).retry_after == 30.0
    assert status_error(429, "t").retry_after is None


def test_service_signs_add_to_the_status_in_a_fixed_order():
    # A body code that means the same as a status, on an answer whose status says something else.
    assert type(status_error(400, "t", 3.0, rate_limited=True)) is RateLimitedError
    assert status_error(400, "t", 3.0, rate_limited=True).retry_after == 3.0
    assert type(status_error(400, "t", auth=True)) is AuthError
    assert type(status_error(400, "t", not_found=True)) is NotFoundError
    # Throttling wins over auth, auth over not found (a throttled answer is retried, not reported as a bad key).
    assert type(status_error(429, "t", auth=True, not_found=True)) is RateLimitedError
    assert type(status_error(403, "t", not_found=True)) is AuthError


def test_auth_text_is_used_for_auth_errors_only():
    assert status_error(403, "t", auth_text="t (hint)").message == "t (hint)"
    assert status_error(400, "t", auth=True, auth_text="t (hint)").message == "t (hint)"
    assert status_error(404, "t", auth_text="t (hint)").message == "t"
    assert status_error(500, "t", auth_text="t (hint)").message == "t"


def _provider(ptype: str, endpoint: str = ""):
    cls = provider_class(ptype)
    opts = {k: o.default for k, o in cls.OPTIONS.items()}
    pc = ProviderConfig(name="p", type=ptype, options=opts, endpoint=endpoint, ca_file=None, timeout=5)

    def no_http(_cfg):
        raise AssertionError("no request expected")

    return cls(ProviderContext(pc, SystemClock(), no_http))


# Each service's words, as they were before the zone lookup moved to Provider.held_zone.
NO_ZONE = {
    "digitalocean": "DigitalOcean: no domain of this account holds",
    "gandi": "Gandi: no LiveDNS domain of this account holds",
    "godaddy": "GoDaddy: no active domain of this account holds",
    "hetzner": "Hetzner DNS: no zone of this account holds",
    "hetznercloud": "Hetzner Cloud: no zone of this project holds",
    "porkbun": "Porkbun: no domain of this account holds",
    "powerdns": "PowerDNS: no zone on server localhost holds",
    "cloudflare": "Cloudflare: no zone visible to this API token holds",
    "alidns": "Alidns: no domain in this account holds",
    "dnspod": "DNSPod: no domain in this account holds",
    "huaweicloud": "Huawei Cloud: no public zone in this account holds",
    "route53": "Route 53: no public hosted zone in this account holds",
}
# The method each service looks its zone up with.
LOOKUP = {"huaweicloud": "zone_of", "route53": "hosted_zone"}


@pytest.mark.parametrize("ptype", sorted(NO_ZONE))
def test_no_zone_names_the_service_and_the_record(ptype):
    p = _provider(ptype, "http://127.0.0.1:8081" if ptype == "powerdns" else "")
    p.zones = ZoneResolver(monotonic=lambda: 0.0, list_zones=lambda: {"example.org": "z1"},
                           lookup=lambda zone: None)
    with pytest.raises(NotFoundError) as ei:
        getattr(p, LOOKUP.get(ptype, "zone_for"))(RecordConfig(name="home.example.com", type="A", provider="p"))
    assert ei.value.message == NO_ZONE[ptype] + " home.example.com"


# Services addressed by zone id, when the record names a zone the account does not have.
MISSING = {
    "hetzner": "Hetzner DNS: zone example.com is not in this account",
    "cloudflare": "Cloudflare: zone example.com is not visible to this API token",
    "huaweicloud": "Huawei Cloud: zone example.com is not in this account",
    "route53": "Route 53: no public hosted zone named example.com in this account",
}


@pytest.mark.parametrize("ptype", sorted(MISSING))
def test_a_named_zone_the_account_lacks(ptype):
    p = _provider(ptype)
    ids = {"example.org": "z1"}
    p.zones = ZoneResolver(monotonic=lambda: 0.0, list_zones=lambda: ids, lookup=ids.get)
    with pytest.raises(NotFoundError) as ei:
        getattr(p, LOOKUP.get(ptype, "zone_for"))(RecordConfig(name="home.example.com", type="A", provider="p",
                                                                zone="example.com"))
    assert ei.value.message == MISSING[ptype]
    found = getattr(p, LOOKUP.get(ptype, "zone_for"))(RecordConfig(name="a.example.org", type="A", provider="p",
                                                                    zone="example.org"))
    assert found in (("example.org", "z1"), "z1")


@pytest.mark.parametrize("ptype,want", [
    ("digitalocean", "api.digitalocean.com"), ("gandi", "api.gandi.net"), ("godaddy", "api.godaddy.com"),
    ("hetzner", "dns.hetzner.com"), ("hetznercloud", "api.hetzner.cloud"), ("porkbun", "api.porkbun.com"),
    ("cloudflare", "api.cloudflare.com"),
])
def test_host_is_the_default_endpoints_host(ptype, want):
    assert _provider(ptype).host == want
    assert _provider(ptype, "https://fake.test:8443/v9/").host == "fake.test"
