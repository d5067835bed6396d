"""The HTTP API providers of issue 15 against their fakes: error mapping, rate limits, and the
request shapes the services document (known answers where the documentation gives them).

The update flow itself (create, unchanged, update, AAAA) is tests/test_provider_matrix.py.
"""

from __future__ import annotations

import base64
import json

import pytest

from edgeddns.clock import SystemClock
from edgeddns.config import ProviderConfig, RecordConfig
from edgeddns.engine import default_http_factory
from edgeddns.errors import AuthError, NotFoundError, ProviderError, RateLimitedError
from edgeddns.options import Secret
from edgeddns.providers import provider_class
from edgeddns.providers.base import ProviderContext
from edgeddns.providers.namecheap import parse_answer
from tests.fakes.digitalocean import FakeDigitalocean
from tests.fakes.gandi import FakeGandi
from tests.fakes.godaddy import FakeGodaddy
from tests.fakes.hetzner import FakeHetzner
from tests.fakes.namecheap import FakeNamecheap
from tests.fakes.porkbun import FakePorkbun
from tests.fakes.server import FakeServer

ZONES = ["example.com", "example.net"]


@pytest.fixture
def serve(server_context):
    started = []

    def run(fake) -> FakeServer:
        srv = FakeServer(fake, ssl_context=server_context).start()
        started.append(srv)
        return srv

    yield run
    for s in started:
        s.stop()


def make(ptype: str, endpoint: str, ca_file: str, **options):
    cls = provider_class(ptype)
    opts = {k: o.default for k, o in cls.OPTIONS.items()}
    opts.update({k: Secret(v, "inline") if cls.OPTIONS[k].kind is Secret else v for k, v in options.items()})
    pc = ProviderConfig(name="p", type=ptype, options=opts, endpoint=endpoint, ca_file=ca_file, timeout=5)
    clock = SystemClock()
    return cls(ProviderContext(pc, clock, default_http_factory(clock)))


def rec(name: str = "home.example.com", rtype: str = "A", **kw) -> RecordConfig:
    return RecordConfig(name=name, type=rtype, provider="p", **kw)


# -- Porkbun -------------------------------------------------------------------------

def test_porkbun_requests_and_errors(serve, ca_file):
    fake = FakePorkbun({"pk1_k": "sk1_s"}, ZONES, opted_out={"example.net"})
    srv = serve(fake)
    p = make("porkbun", f"{srv.url}api/json/v3", ca_file, api_key="pk1_k", secret_api_key="sk1_s")
    assert p.ensure(rec(), "8.8.8.8") == "updated"
    assert p.ensure(rec(), "1.1.1.1") == "updated"
    # The documented shapes: the key pair in every JSON body; edit by name and type.
    edit = srv.requests[-1]
    assert edit.path == "/api/json/v3/dns/editByNameType/example.com/A/home"
    assert json.loads(edit.body) == {"apikey": "pk1_k", "secretapikey": "sk1_s", "content": "1.1.1.1", "ttl": "600"}
    assert "authorization" not in edit.headers and "sk1_s" not in edit.path + edit.query_string
    with pytest.raises(AuthError, match="opted in to API access.*API ACCESS"):
        p.ensure(rec("home.example.net"), "8.8.8.8")
    bad = make("porkbun", f"{srv.url}api/json/v3", ca_file, api_key="pk1_k", secret_api_key="wrong")
    with pytest.raises(AuthError, match=r"Invalid API key. \(002\)"):
        bad.ensure(rec(zone="example.com"), "8.8.8.8")
    with pytest.raises(NotFoundError):
        p.ensure(rec("home.example.org"), "8.8.8.8")  # no domain of the account
    with pytest.raises(NotFoundError, match="Invalid domain"):
        p.ensure(rec("home.example.org", zone="example.org"), "8.8.8.8")
    fake.throttle = 1
    with pytest.raises(RateLimitedError):
        p.ensure(rec(), "9.9.9.9")


# -- Namecheap -----------------------------------------------------------------------

# Namecheap's documented answers (knowledge base: "How do I use a browser to dynamically update the host's IP?").
NC_OK = """<?xml version="1.0"?>
<interface-response><Command>SETDNSHOST</Command><Language>eng</Language><IP>127.1.0.1</IP>
<ErrCount>0</ErrCount><ResponseCount>0</ResponseCount><Done>true</Done><debug><![CDATA[]]></debug>
</interface-response>"""
NC_FAIL = """<?xml version="1.0"?>
<interface-response><Command>SETDNSHOST</Command><Language>eng</Language><ErrCount>1</ErrCount>
<errors><Err1>No Records updated. A record not Found;</Err1></errors><ResponseCount>1</ResponseCount>
<responses><response><ResponseNumber>380091</ResponseNumber><ResponseString>No updates; A record not Found;
</ResponseString></response></responses><Done>true</Done><debug><![CDATA[]]></debug></interface-response>"""


def test_namecheap_documented_answers():
    assert parse_answer(NC_OK) == (0, [], "127.1.0.1")
    assert parse_answer(NC_FAIL) == (1, ["No Records updated. A record not Found;"], None)


def test_namecheap_http_200_errors_are_mapped(serve, ca_file):
    fake = FakeNamecheap({"example.com": "ddns-pw"}, ["home.example.com", "example.com"])
    srv = serve(fake)
    p = make("namecheap", f"{srv.url}update", ca_file, domain="example.com", password="ddns-pw")
    assert p.ensure(rec(), "8.8.8.8") == "updated"
    assert fake.calls[-1] == {"host": "home", "domain": "example.com", "password": "ddns-pw", "ip": "8.8.8.8"}
    assert p.ensure(rec("example.com"), "8.8.8.8") == "updated" and fake.calls[-1]["host"] == "@"
    with pytest.raises(NotFoundError, match="A record not Found"):
        p.ensure(rec("nohost.example.com"), "8.8.8.8")
    wrong = make("namecheap", f"{srv.url}update", ca_file, domain="example.com", password="account-pw")
    with pytest.raises(AuthError, match="Passwords do not match.*Dynamic DNS password") as e:
        wrong.ensure(rec(), "8.8.8.8")
    assert "account-pw" not in str(e.value)
    other = make("namecheap", f"{srv.url}update", ca_file, domain="example.net", password="x")
    with pytest.raises(NotFoundError, match="Domain name not found"):
        other.ensure(rec("home.example.net"), "8.8.8.8")


# -- GoDaddy -------------------------------------------------------------------------

def test_godaddy_sso_key_and_refused_accounts(serve, ca_file):
    fake = FakeGodaddy({"key": "secret", "small": "account"}, ZONES, not_admitted={"small"})
    srv = serve(fake)
    p = make("godaddy", f"{srv.url}v1", ca_file, api_key="key", api_secret="secret")
    assert p.ensure(rec(), "8.8.8.8") == "updated"
    put = srv.requests[-1]
    assert (put.method, put.path) == ("PUT", "/v1/domains/example.com/records/A/home")
    assert put.headers["authorization"] == "sso-key key:secret"
    assert json.loads(put.body) == [{"data": "8.8.8.8", "ttl": 600}]
    refused = make("godaddy", f"{srv.url}v1", ca_file, api_key="small", api_secret="account")
    with pytest.raises(AuthError, match="GoDaddy refuses this account API access") as e:
        refused.ensure(rec(zone="example.com"), "8.8.8.8")
    assert e.value.code == "auth" and "account" not in e.value.message.split("(")[-1]
    with pytest.raises(AuthError, match="UNABLE_TO_AUTHENTICATE"):
        make("godaddy", f"{srv.url}v1", ca_file, api_key="key", api_secret="nope").ensure(rec(), "8.8.8.8")
    fake.throttle = 1
    with pytest.raises(RateLimitedError) as e:
        p.ensure(rec(), "1.1.1.1")
    assert e.value.retry_after == 1


# -- DigitalOcean --------------------------------------------------------------------

def test_digitalocean_records_and_errors(serve, ca_file):
    fake = FakeDigitalocean(["dop_v1_t"], ZONES)
    srv = serve(fake)
    p = make("digitalocean", f"{srv.url}v2", ca_file, api_token="dop_v1_t")
    assert p.ensure(rec(ttl=120), "8.8.8.8") == "updated"
    post = srv.requests[-1]
    assert (post.method, post.path, post.headers["authorization"]) == ("POST", "/v2/domains/example.com/records",
                                                                        "Bearer dop_v1_t")
    assert json.loads(post.body) == {"type": "A", "name": "home", "data": "8.8.8.8", "ttl": 120}
    assert p.ensure(rec(ttl=120), "8.8.8.8") == "unchanged"
    assert p.ensure(rec("example.com"), "8.8.8.8") == "updated"  # the apex is "@"
    assert fake.values("example.com", "A") == ["8.8.8.8"]
    with pytest.raises(AuthError, match="Unable to authenticate you"):
        make("digitalocean", f"{srv.url}v2", ca_file, api_token="bad").ensure(rec(), "8.8.8.8")
    fake.throttle = 1
    with pytest.raises(RateLimitedError) as e:
        p.ensure(rec(), "1.1.1.1")
    assert e.value.retry_after is not None and e.value.retry_after <= 2


# -- Hetzner -------------------------------------------------------------------------

def test_hetzner_records_and_errors(serve, ca_file):
    fake = FakeHetzner(["htz"], ZONES)
    srv = serve(fake)
    p = make("hetzner", f"{srv.url}api/v1", ca_file, api_token="htz")
    assert p.ensure(rec(), "8.8.8.8") == "updated"
    post = srv.requests[-1]
    assert post.headers["auth-api-token"] == "htz" and "authorization" not in post.headers
    body = json.loads(post.body)
    assert body == {"value": "8.8.8.8", "type": "A", "name": "home", "zone_id": fake.records[next(iter(
        fake.records))]["zone_id"]}
    assert p.ensure(rec(), "1.1.1.1") == "updated" and srv.requests[-1].method == "PUT"
    assert fake.values("home.example.com", "A") == ["1.1.1.1"]
    with pytest.raises(AuthError, match="Invalid authentication credentials"):
        make("hetzner", f"{srv.url}api/v1", ca_file, api_token="bad").ensure(rec(), "8.8.8.8")
    with pytest.raises(NotFoundError):
        p.ensure(rec("home.example.org", zone="example.org"), "8.8.8.8")
    fake.throttle = 1
    with pytest.raises(RateLimitedError):
        p.ensure(rec(), "9.9.9.9")


# -- Gandi ---------------------------------------------------------------------------

def test_gandi_rrset_put_and_errors(serve, ca_file):
    fake = FakeGandi({"pat": None, "pat-net-only": {"example.net"}}, ZONES)
    srv = serve(fake)
    p = make("gandi", f"{srv.url}v5/livedns", ca_file, token="pat")
    assert p.ensure(rec(), "8.8.8.8") == "updated"
    put = srv.requests[-1]
    assert (put.method, put.path) == ("PUT", "/v5/livedns/domains/example.com/records/home/A")
    assert put.headers["authorization"] == "Bearer pat"
    assert json.loads(put.body) == {"rrset_values": ["8.8.8.8"], "rrset_ttl": 300}
    assert p.ensure(rec(), "8.8.8.8") == "unchanged"
    limited = make("gandi", f"{srv.url}v5/livedns", ca_file, token="pat-net-only")
    with pytest.raises(AuthError, match="403.*permission"):
        limited.ensure(rec(zone="example.com"), "8.8.8.8")
    with pytest.raises(AuthError, match="401"):
        make("gandi", f"{srv.url}v5/livedns", ca_file, token="nope").ensure(rec(), "8.8.8.8")
    fake.throttle = 1
    with pytest.raises(RateLimitedError):
        p.ensure(rec(), "1.1.1.1")


def test_no_secret_in_error_messages(serve, ca_file):
    fake = FakePorkbun({"pk1_k": "sk1_s"}, ZONES)
    srv = serve(fake)
    with pytest.raises(ProviderError) as e:
        make("porkbun", f"{srv.url}api/json/v3", ca_file, api_key="pk1_k",
             secret_api_key="sk1_TOPSECRET").ensure(rec(), "8.8.8.8")
    assert "TOPSECRET" not in str(e.value) and "TOPSECRET" not in repr(e.value.as_dict())
    assert base64.b64encode(b"sk1_TOPSECRET").decode() not in str(e.value)


# Porkbun's API documentation: the retrieveByNameType answer and the editByNameType request, as printed
# there (domain borseth.ink, subdomain www).
PB_DOC_RETRIEVE = {"status": "SUCCESS", "records": [{"id": "106926659", "name": "www.borseth.ink", "type": "A",
                                                      "content": "1.1.1.1", "ttl": "600", "prio": "0",
                                                      "notes": ""}]}
PB_DOC_EDIT = {"secretapikey": "YOUR_SECRET_API_KEY", "apikey": "YOUR_API_KEY", "content": "1.1.1.2", "ttl": "600"}


def test_porkbun_documented_exchange(serve, ca_file):
    from tests.fakes.server import Reply

    seen = []

    def app(req):
        seen.append(req)
        if "retrieveByNameType" in req.path:
            return Reply.json(200, PB_DOC_RETRIEVE)
        return Reply.json(200, {"status": "SUCCESS"})

    srv = serve(app)
    p = make("porkbun", f"{srv.url}api/json/v3", ca_file, api_key="YOUR_API_KEY",
             secret_api_key="YOUR_SECRET_API_KEY")
    r = rec("www.borseth.ink", zone="borseth.ink")
    (found,) = p.find(r)
    assert (found.id, found.value, found.ttl) == ("106926659", "1.1.1.1", 600)
    assert p.ensure(r, "1.1.1.1") == "unchanged" and len(seen) == 2
    assert p.ensure(r, "1.1.1.2") == "updated"
    assert seen[-1].path == "/api/json/v3/dns/editByNameType/borseth.ink/A/www"
    assert json.loads(seen[-1].body) == PB_DOC_EDIT


# -- Hetzner Cloud ---------------------------------------------------------------------

def test_hetznercloud_rrset_actions_and_errors(serve, ca_file):
    from tests.fakes.hetznercloud import FakeHetznerCloud

    fake = FakeHetznerCloud({"rw": True, "ro": False}, ZONES)
    srv = serve(fake)
    p = make("hetznercloud", f"{srv.url}v1", ca_file, api_token="rw")
    assert p.ensure(rec(), "8.8.8.8") == "updated"
    create = srv.requests[-1]
    assert (create.method, create.path, create.headers["authorization"]) == ("POST", "/v1/zones/example.com/rrsets",
                                                                             "Bearer rw")
    assert json.loads(create.body) == {"name": "home", "type": "A", "ttl": 300, "records": [{"value": "8.8.8.8"}]}
    assert p.ensure(rec(), "8.8.8.8") == "unchanged" and srv.requests[-1].method == "GET"
    assert p.ensure(rec(ttl=600), "1.1.1.1") == "updated"
    assert [r.path for r in srv.requests[-2:]] == ["/v1/zones/example.com/rrsets/home/A/actions/set_records",
                                                   "/v1/zones/example.com/rrsets/home/A/actions/change_ttl"]
    assert fake.values("home.example.com", "A") == ["1.1.1.1"]
    with pytest.raises(AuthError, match="token_readonly"):
        make("hetznercloud", f"{srv.url}v1", ca_file, api_token="ro").ensure(rec(), "9.9.9.9")
    with pytest.raises(AuthError, match="unauthorized"):
        make("hetznercloud", f"{srv.url}v1", ca_file, api_token="nope").ensure(rec(), "9.9.9.9")
    with pytest.raises(NotFoundError):
        p.ensure(rec("home.example.org"), "8.8.8.8")
    fake.secondary.add(101)  # example.net served as a secondary: changes are refused
    with pytest.raises(ProviderError, match="incorrect_zone_mode"):
        p.ensure(rec("home.example.net"), "8.8.8.8")
    fake.throttle = 1
    with pytest.raises(RateLimitedError):
        p.ensure(rec(), "9.9.9.9")


def test_namecheap_needs_no_xml_package():
    """OpenWrt ships xml.etree separately (python3-xml): reading Namecheap's answer must not need it."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys\nfrom edgeddns.providers.namecheap import parse_answer\n"
            "parse_answer('<interface-response><ErrCount>0</ErrCount><IP>1.2.3.4</IP></interface-response>')\n"
            "print('xml.etree' in sys.modules, 'xml.parsers.expat' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": ROOT, "PATH": "/usr/bin:/bin"}, timeout=30)
    assert out.stdout.split() == ["False", "False"], out.stderr
    with pytest.raises(ProviderError, match="not the expected XML"):
        parse_answer("<html><body>502 Bad Gateway</body></html>")
