"""Every provider's fake, behind one contract, for tests/test_provider_matrix.py.

An entry's ``start(ca_file, server_context)`` starts the fake over HTTPS and
returns ``(fake, provider_toml)``: ``provider_toml`` is the ``[providers.p]``
table (type, credentials, endpoint, ca_file) for a provider named ``p``. The
fake offers ``values(name, rtype) -> [str]``, ``calls`` (a list, one item per
API request), ``writes`` (records created or changed), ``seed(name, rtype,
value)`` to pre-create a record, and ``stop()``. A fake whose service cannot
tell "already right" sets ``readable = False`` (on the fake or the entry).
Zones: example.com and example.net.

Entries for the signed providers live in ``matrix_signed.py`` (same contract)
and are merged in when that module exists.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

from tests.fakes.alidns import FakeAlidns
from tests.fakes.cloudflare import FakeCloudflare
from tests.fakes.dyndns2 import FakeDyndns2
from tests.fakes.server import FakeServer
from tests.fakes.webhook import FakeWebhook

ZONES = ["example.com", "example.net"]
#: host names the matrix uses; services that need hosts registered in advance get these
HOSTS = ["matrix.example.com", "matrix.example.net", "seeded.example.com", "seeded.example.net"]


@dataclass
class Entry:
    start: Callable[[str, ssl.SSLContext], Tuple[Any, str]]
    readable: bool = True


def _serve(app, server_context) -> FakeServer:
    srv = FakeServer(app, ssl_context=server_context).start()
    app.stop = srv.stop
    return srv


class _AlidnsAdapter:
    """The foundation's FakeAlidns, seen through the matrix contract."""

    def __init__(self, fake: FakeAlidns, srv: FakeServer):
        self.fake = fake
        self.stop = srv.stop

    @property
    def calls(self) -> List[str]:
        return self.fake.calls

    @property
    def writes(self) -> int:
        return self.fake.writes

    def values(self, name: str, rtype: str) -> List[str]:
        return [r["Value"] for r in self.fake.find(name, rtype)]

    def seed(self, name: str, rtype: str, value: str) -> None:
        zone = self.fake._domain_of(name)
        self.fake.add("@" if name == zone else name[: -len(zone) - 1], zone, rtype, value)


def start_alidns(ca_file: str, server_context: ssl.SSLContext):
    key_id, secret = "LTAI5tMatrixKeyId", "matrix-Ali-secret-0123456789"
    fake = FakeAlidns({key_id: secret}, ZONES)
    srv = FakeServer(fake, ssl_context=server_context).start()
    return _AlidnsAdapter(fake, srv), f"""
[providers.p]
type = "alidns"
access_key_id = "{key_id}"
access_key_secret = "{secret}"
endpoint = "{srv.url}"
ca_file = "{ca_file}"
timeout = 5
"""


class _CloudflareMatrix(FakeCloudflare):
    def values(self, name: str, rtype: str) -> List[str]:
        return [r["content"] for r in self.find(name, rtype)]

    def seed(self, name: str, rtype: str, value: str) -> None:
        self.add(name, rtype, value)


def start_cloudflare(ca_file: str, server_context: ssl.SSLContext):
    token = "matrix-cf-token-abcdef0123456789"
    fake = _CloudflareMatrix({token: None}, ZONES)
    srv = _serve(fake, server_context)
    return fake, f"""
[providers.p]
type = "cloudflare"
api_token = "{token}"
endpoint = "{srv.url}client/v4"
ca_file = "{ca_file}"
timeout = 5
"""


def start_dyndns2(ca_file: str, server_context: ssl.SSLContext):
    user, password = "matrix-user", "matrix-Pa55"
    fake = FakeDyndns2({user: password}, HOSTS, v6_param="myipv6")
    # The protocol cannot read records back, but "nochg" tells us the host already had the address.
    fake.readable = True
    srv = _serve(fake, server_context)
    return fake, f"""
[providers.p]
type = "dyndns2"
preset = "noip"
username = "{user}"
password = "{password}"
endpoint = "{srv.url}nic/update"
ca_file = "{ca_file}"
timeout = 5
"""


def start_webhook(ca_file: str, server_context: ssl.SSLContext):
    token = "matrix-hook-token"
    fake = FakeWebhook(token=token)
    srv = _serve(fake, server_context)
    return fake, f"""
[providers.p]
type = "webhook"
url = "{srv.url}update?name={{record}}&type={{type}}&ip={{ip}}&previous={{previous_ip}}"
secret = "{token}"
headers = {{ Authorization = "Bearer {{secret}}" }}
ca_file = "{ca_file}"
timeout = 5
"""


ENTRIES: Dict[str, Entry] = {
    "alidns": Entry(start_alidns),
    "cloudflare": Entry(start_cloudflare),
    "dyndns2": Entry(start_dyndns2),
    "webhook": Entry(start_webhook, readable=False),
}

try:
    from tests.fakes.matrix_signed import ENTRIES as _SIGNED
except ModuleNotFoundError as e:  # that helper's branch is not merged (yet)
    if e.name != "tests.fakes.matrix_signed":
        raise
    _SIGNED = {}


def _from_factory(factory: Callable[[], Any]) -> Entry:
    """matrix_signed gives entry factories (one stateful entry per run); adapt them."""

    def start(ca_file: str, server_context: ssl.SSLContext) -> Tuple[Any, str]:
        entry = factory()
        fake, toml = entry.start(ca_file, server_context)
        if not hasattr(fake, "stop"):
            fake.stop = entry.stop
        return fake, toml

    return Entry(start)


for _name, _entry in _SIGNED.items():
    ENTRIES.setdefault(_name, _entry if hasattr(_entry, "start") else _from_factory(_entry))

from tests.fakes.matrix_http import STARTERS as _HTTP  # noqa: E402  (issue 15's HTTP API providers)

for _name, _start in _HTTP.items():
    ENTRIES.setdefault(_name, Entry(_start))

from tests.fakes.matrix_servers import STARTERS as _SERVERS  # noqa: E402  (real BIND and PowerDNS)

for _name, _start in _SERVERS.items():
    ENTRIES.setdefault(_name, Entry(_start))
