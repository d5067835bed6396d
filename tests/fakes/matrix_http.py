"""Matrix entries (tests/test_provider_matrix.py) for the HTTP API providers of issue 15.

Same contract as tests/fakes/matrix.py: ``start(ca_file, server_context)`` ->
``(fake, provider_toml)`` for a provider named ``p``; zones example.com and
example.net. ``families = ("A",)`` marks services that can only set A records
(the flow then checks that an AAAA record is refused at load instead).
"""

from __future__ import annotations

from tests.fakes.desec import FakeDesec
from tests.fakes.digitalocean import FakeDigitalocean
from tests.fakes.gandi import FakeGandi
from tests.fakes.godaddy import FakeGodaddy
from tests.fakes.hetzner import FakeHetzner
from tests.fakes.hetznercloud import FakeHetznerCloud
from tests.fakes.namecheap import FakeNamecheap
from tests.fakes.porkbun import FakePorkbun
from tests.fakes.server import FakeServer

ZONES = ["example.com", "example.net"]
HOSTS = ["matrix.example.com", "matrix.example.net", "seeded.example.com", "seeded.example.net"]


def _serve(fake, server_context) -> FakeServer:
    srv = FakeServer(fake, ssl_context=server_context).start()
    fake.stop = srv.stop
    return srv


def _toml(ptype: str, ca_file: str, endpoint: str, body: str) -> str:
    return f"""
[providers.p]
type = "{ptype}"
endpoint = "{endpoint}"
ca_file = "{ca_file}"
timeout = 5
{body}
"""


def start_porkbun(ca_file, server_context):
    fake = FakePorkbun({"pk1_matrix": "sk1_matrix_secret"}, ZONES)
    srv = _serve(fake, server_context)
    return fake, _toml("porkbun", ca_file, f"{srv.url}api/json/v3",
                       'api_key = "pk1_matrix"\nsecret_api_key = "sk1_matrix_secret"')


def start_digitalocean(ca_file, server_context):
    fake = FakeDigitalocean(["dop_v1_matrix"], ZONES)
    srv = _serve(fake, server_context)
    return fake, _toml("digitalocean", ca_file, f"{srv.url}v2", 'api_token = "dop_v1_matrix"')


def start_hetzner(ca_file, server_context):
    fake = FakeHetzner(["hetzner-matrix-token"], ZONES)
    srv = _serve(fake, server_context)
    return fake, _toml("hetzner", ca_file, f"{srv.url}api/v1", 'api_token = "hetzner-matrix-token"')


def start_hetznercloud(ca_file, server_context):
    fake = FakeHetznerCloud({"hcloud-matrix": True}, ZONES)
    srv = _serve(fake, server_context)
    return fake, _toml("hetznercloud", ca_file, f"{srv.url}v1", 'api_token = "hcloud-matrix"')


def start_gandi(ca_file, server_context):
    fake = FakeGandi({"gandi-pat-matrix": None}, ZONES)
    srv = _serve(fake, server_context)
    return fake, _toml("gandi", ca_file, f"{srv.url}v5/livedns", 'token = "gandi-pat-matrix"')


def start_godaddy(ca_file, server_context):
    fake = FakeGodaddy({"gd-key": "gd-secret"}, ZONES)
    srv = _serve(fake, server_context)
    return fake, _toml("godaddy", ca_file, f"{srv.url}v1", 'api_key = "gd-key"\napi_secret = "gd-secret"')


def start_namecheap(ca_file, server_context):
    fake = FakeNamecheap({"example.com": "nc-ddns-password"}, ["matrix.example.com", "seeded.example.com"])
    srv = _serve(fake, server_context)
    fake.families = ("A",)
    return fake, _toml("namecheap", ca_file, f"{srv.url}update",
                       'domain = "example.com"\npassword = "nc-ddns-password"')


def start_desec(ca_file, server_context):
    fake = FakeDesec(["desec-token"], HOSTS)
    srv = _serve(fake, server_context)
    return fake, _toml("dyndns2", ca_file, f"{srv.url}nic/update",
                       'preset = "desec"\nusername = "example.com"\npassword = "desec-token"')


STARTERS = {
    "porkbun": start_porkbun,
    "digitalocean": start_digitalocean,
    "hetzner": start_hetzner,
    "hetznercloud": start_hetznercloud,
    "gandi": start_gandi,
    "godaddy": start_godaddy,
    "namecheap": start_namecheap,
    "desec": start_desec,
}
