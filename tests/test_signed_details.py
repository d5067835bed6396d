"""Provider-specific behaviour of the signed providers, in process over real HTTPS.

Zone detection (longest owned suffix, asked once and cached), a given hosted
zone id, the server time a clock-skew error carries, the engine's single
resync-and-retry, and the request each provider actually sends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import pytest

from edgeddns.clock import Clock, ClockInfo
from edgeddns.config import load
from edgeddns.engine import Engine, UpdateRequest
from edgeddns.errors import ClockSkewError
from edgeddns.state import StateStore
from tests.fakes.fixtures import SIGNED_KINDS, signed_config
from tests.fakes.matrix_signed import SignedEntry

ZONE_LIST = {"dnspod": "DescribeDomainList", "huaweicloud": "GET /v2/zones",
             "route53": "GET /2013-04-01/hostedzonesbyname", "alidns-v3": "DescribeDomains"}


@dataclass
class CorrectingClock(Clock):
    """Learns the provider's time from a refused timestamp, as the NTP-backed clock does."""

    offset: float = 0.0
    skews: list = field(default_factory=list)

    def now(self) -> float:
        return time.time() + self.offset

    def info(self) -> ClockInfo:
        return ClockInfo(self.offset, "test")

    def on_skew(self, host: str, server_time: Optional[float]) -> bool:
        self.skews.append((host, server_time))
        if server_time is None:
            return False
        self.offset = server_time - time.time()
        return True


def engine_for(cfg_path: str, clock: Clock) -> Engine:
    cfg = load(cfg_path)
    return Engine(cfg, clock, StateStore.open(cfg.agent.state_dir), sleep=lambda s: None)


@pytest.fixture
def nested(request, ca_file, server_context):
    """A fake whose account owns example.com and the delegated dyn.example.com."""
    entry = SignedEntry(request.param, zones=("example.com", "dyn.example.com", "example.net"))
    fake, toml = entry.start(ca_file, server_context)
    fake.toml = toml
    fake.kind = request.param
    yield fake
    entry.stop()


@pytest.mark.parametrize("nested", SIGNED_KINDS, indirect=True)
def test_zone_is_longest_owned_suffix_and_cached(tmp_path, nested):
    cfg = signed_config(tmp_path, nested, records="""
        [[records]]
        name = "nas.dyn.example.com"
        provider = "p"

        [[records]]
        name = "router.dyn.example.com"
        provider = "p"

        [[records]]
        name = "www.example.com"
        provider = "p"
    """)
    eng = engine_for(cfg, CorrectingClock())
    res = eng.run(UpdateRequest())
    eng.close()
    assert [r.status for r in res] == ["updated"] * 3, [r.error for r in res]
    assert nested.values("nas.dyn.example.com", "A") == ["8.8.8.8"]
    # The account's zones were asked for once for all three records.
    assert sum(1 for c in nested.calls if c == ZONE_LIST[nested.kind]) == 1, nested.calls


@pytest.mark.parametrize("kind", ["dnspod", "huaweicloud", "route53"])
def test_clock_skew_carries_server_time(tmp_path, ca_file, server_context, kind):
    entry = SignedEntry(kind)
    fake, toml = entry.start(ca_file, server_context)
    fake.toml = toml
    ahead = 2 * 3600
    fake.server.clock = lambda: time.time() + ahead
    try:
        cfg = load(signed_config(tmp_path, fake))
        eng = engine_for(cfg.path, CorrectingClock())
        provider = eng.provider("p")
        with pytest.raises(ClockSkewError) as ei:
            provider.find(cfg.records[0])
        eng.close()
    finally:
        entry.stop()
    # Taken from the error text itself (the Date header would say the same, to the second).
    assert ei.value.server_time == pytest.approx(time.time() + ahead, abs=5)


def test_route53_skew_in_future_parses_server_time(tmp_path, ca_file, server_context):
    entry = SignedEntry("route53")
    fake, toml = entry.start(ca_file, server_context)
    fake.toml = toml
    fake.server.clock = lambda: time.time() - 3600
    try:
        cfg = load(signed_config(tmp_path, fake))
        eng = engine_for(cfg.path, CorrectingClock())
        with pytest.raises(ClockSkewError) as ei:
            eng.provider("p").find(cfg.records[0])
        eng.close()
    finally:
        entry.stop()
    assert "not yet current" in ei.value.message
    assert ei.value.server_time == pytest.approx(time.time() - 3600, abs=5)


@pytest.mark.parametrize("ahead", [3 * 3600, -86400])
def test_refused_timestamp_resyncs_and_retries_once(tmp_path, signed, ahead):
    signed.server.clock = lambda: time.time() + ahead
    clock = CorrectingClock()
    eng = engine_for(signed_config(tmp_path, signed), clock)
    (res,) = eng.run(UpdateRequest())
    eng.close()
    assert res.status == "updated", res.error
    assert "clock_retry" in res.extra and len(clock.skews) == 1
    assert clock.offset == pytest.approx(ahead, abs=5)
    assert signed.values("home.example.com", "A") == ["8.8.8.8"]


def test_route53_hosted_zone_id_skips_lookup(tmp_path, ca_file, server_context):
    entry = SignedEntry("route53")
    fake, toml = entry.start(ca_file, server_context)
    fake.toml = toml
    zid = next(z for z, name in fake.zones.items() if name == "example.com")
    try:
        cfg = signed_config(tmp_path, fake, provider_extra=f'hosted_zone_id = "/hostedzone/{zid}"\n')
        eng = engine_for(cfg, CorrectingClock())
        (res,) = eng.run(UpdateRequest())
        eng.close()
    finally:
        entry.stop()
    assert res.status == "updated", res.error
    assert fake.calls == [f"GET /2013-04-01/hostedzone/{zid}/rrset", f"POST /2013-04-01/hostedzone/{zid}/rrset/"]


AUTH_SCHEME = {"dnspod": "TC3-HMAC-SHA256 ", "huaweicloud": "SDK-HMAC-SHA256 ", "route53": "AWS4-HMAC-SHA256 ",
               "alidns-v3": "ACS3-HMAC-SHA256 "}


def test_each_request_is_signed_with_the_owners_scheme(tmp_path, signed):
    eng = engine_for(signed_config(tmp_path, signed), CorrectingClock())
    (res,) = eng.run(UpdateRequest())
    eng.close()
    assert res.status == "updated"
    kind = signed.kind
    for req in signed.server.requests:
        assert req.headers["authorization"].startswith(AUTH_SCHEME[kind])
        # Signing material stays out of URLs.
        assert "Signature" not in req.query_string and "AccessKeyId" not in req.query_string


def test_dnspod_empty_record_list_is_not_an_error(tmp_path, ca_file, server_context):
    entry = SignedEntry("dnspod")
    fake, toml = entry.start(ca_file, server_context)
    fake.toml = toml
    try:
        cfg = load(signed_config(tmp_path, fake))
        eng = engine_for(cfg.path, CorrectingClock())
        assert eng.provider("p").find(cfg.records[0]) == []
        eng.close()
    finally:
        entry.stop()
    assert fake.calls == ["DescribeDomainList", "DescribeRecordList"]


def test_huawei_multi_value_recordset_is_rewritten_to_one(tmp_path, ca_file, server_context):
    entry = SignedEntry("huaweicloud")
    fake, toml = entry.start(ca_file, server_context)
    fake.toml = toml
    try:
        zid = fake.zone_of("home.example.com")
        fake._add(zid, "home.example.com.", "A", ["8.8.8.8", "192.0.2.9"], 300)
        eng = engine_for(signed_config(tmp_path, fake), CorrectingClock())
        (res,) = eng.run(UpdateRequest())
        eng.close()
    finally:
        entry.stop()
    assert res.status == "updated" and fake.values("home.example.com", "A") == ["8.8.8.8"]


def test_error_mapping_tables():
    from edgeddns.providers import dnspod, huaweicloud, route53

    d = dnspod.map_error
    assert d("AuthFailure.SignatureExpire", "The signature is expired, please request again.",
             date_time=1000.0).server_time == 1000.0  # the 2021 text has no time: the Date header is used
    for code in ("AuthFailure.SecretIdNotFound", "AuthFailure.SignatureFailure", "UnauthorizedOperation"):
        assert d(code, "", date_time=None).code == "auth"
    assert d("RequestLimitExceeded.UinLimitExceeded", "", date_time=None).code == "rate_limited"
    for code in ("InvalidParameter.DomainInvalid", "ResourceNotFound.NoDataOfDomain"):
        assert d(code, "", date_time=None).code == "not_found"
    assert d("InternalError", "", date_time=None).retryable

    h = huaweicloud.map_error
    assert h(401, "APIGW.0301", "Incorrect IAM authentication information: verify aksk signature fail",
             date_time=None).code == "auth"
    assert h(401, "APIGW.0303", "Incorrect app authentication information", date_time=None).code == "auth"
    assert h(401, "APIGW.0301", "calc aksk signature fail:signature expired, signature time:20211217T064303Z,"
             "server time:20211217T065804Z", date_time=None).code == "clock_skew"
    assert h(429, "APIGW.0308", "The throttling threshold has been reached", date_time=None).code == "rate_limited"
    assert h(404, "DNS.0101", "zone", date_time=None).code == "not_found"
    assert h(503, "", "", date_time=None).retryable

    r = route53.map_error
    assert r(400, "RequestExpired", "Request timestamp: Thu, 11 Aug 2011 09:17:16 GMT expired.  It must be "
             "within 300 secs/ of server time.", date_time=1313054236.0).server_time == 1313054236.0
    assert r(403, "SignatureDoesNotMatch", "The request signature we calculated does not match",
             date_time=None).code == "auth"
    assert r(403, "InvalidClientTokenId", "", date_time=None).code == "auth"
    for code in ("Throttling", "PriorRequestNotComplete"):
        assert r(400, code, "Rate exceeded", date_time=None).code == "rate_limited"
    assert r(404, "NoSuchHostedZone", "", date_time=None).code == "not_found"
    assert r(400, "InvalidChangeBatch", "", date_time=None).code == "provider"
