"""Matrix entries for the signed providers' fakes (dnspod, huaweicloud, route53, alidns v1/v3).

``ENTRIES[name]()`` returns an entry; ``entry.start(ca_file, server_context)``
starts the fake over HTTPS and returns ``(fake, provider_toml)``, where the TOML
is the ``[providers.p]`` table for a provider named ``p``. Every fake holds the
zones example.com and example.net and offers ``values(name, rtype)``,
``seed(name, rtype, value)``, ``calls``, ``writes``, ``keys`` (key id -> secret),
``throttle`` (answer that many next calls with the provider's rate-limit error)
and ``server`` (whose ``clock`` the fake judges timestamps by).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

from tests.fakes.server import FakeServer

ZONES = ["example.com", "example.net"]

# Credentials the fakes accept; obviously fake, never real.
DNSPOD_ID, DNSPOD_KEY = "AKIDfakeDnspodSecretId0001", "fake-dnspod-secret-key-0123456789"
HUAWEI_AK, HUAWEI_SK = "FAKEHUAWEIAK0000001", "fake-huawei-sk-0123456789abcdefghij"
AWS_ID, AWS_SECRET = "AKIAFAKEROUTE53KEY01", "fake/aws+secret0123456789abcdefghijklmn"
ALI_ID, ALI_SECRET = "LTAI5tFakeMatrixKey", "fake-ali-secret-0123456789abcdef"

SECRETS = {"dnspod": DNSPOD_KEY, "huaweicloud": HUAWEI_SK, "route53": AWS_SECRET, "alidns": ALI_SECRET,
           "alidns-v3": ALI_SECRET}


def _make(kind: str, zones):
    if kind == "dnspod":
        from tests.fakes.dnspod import FakeDnspod

        return FakeDnspod({DNSPOD_ID: DNSPOD_KEY}, zones)
    if kind == "huaweicloud":
        from tests.fakes.huaweicloud import FakeHuaweiDns

        return FakeHuaweiDns({HUAWEI_AK: HUAWEI_SK}, zones)
    if kind == "route53":
        from tests.fakes.route53 import FakeRoute53

        return FakeRoute53({AWS_ID: AWS_SECRET}, zones)
    from tests.fakes.alidns import FakeAlidns

    return FakeAlidns({ALI_ID: ALI_SECRET}, zones)


def _toml(kind: str, url: str, ca_file: str) -> str:
    common = f'endpoint = "{url}"\nca_file = "{ca_file}"\ntimeout = 3\n'
    if kind == "dnspod":
        creds = f'type = "dnspod"\nsecret_id = "{DNSPOD_ID}"\nsecret_key = "{DNSPOD_KEY}"\n'
    elif kind == "huaweicloud":
        creds = f'type = "huaweicloud"\naccess_key = "{HUAWEI_AK}"\nsecret_key = "{HUAWEI_SK}"\n'
    elif kind == "route53":
        creds = f'type = "route53"\naccess_key_id = "{AWS_ID}"\nsecret_access_key = "{AWS_SECRET}"\n'
    else:
        sig = "v3" if kind == "alidns-v3" else "v1"
        creds = (f'type = "alidns"\naccess_key_id = "{ALI_ID}"\naccess_key_secret = "{ALI_SECRET}"\n'
                 f'signature = "{sig}"\n')
    return "[providers.p]\n" + creds + common


@dataclass
class SignedEntry:
    kind: str
    zones: Tuple[str, ...] = tuple(ZONES)
    secret: str = ""
    fake: Any = None
    server: Optional[FakeServer] = None
    _stopped: bool = field(default=False, repr=False)

    def start(self, ca_file: str, server_context) -> Tuple[Any, str]:
        self.fake = _make(self.kind, list(self.zones))
        self.server = FakeServer(self.fake, ssl_context=server_context).start()
        self.fake.server = self.server
        self.fake.url = self.server.url
        self.secret = SECRETS[self.kind]
        return self.fake, _toml(self.kind, self.server.url, ca_file)

    def stop(self) -> None:
        if self.server is not None and not self._stopped:
            self._stopped = True
            self.server.stop()


def _entry(kind: str) -> Callable[[], SignedEntry]:
    return lambda: SignedEntry(kind)


ENTRIES: Dict[str, Callable[[], SignedEntry]] = {
    "dnspod": _entry("dnspod"),
    "huaweicloud": _entry("huaweicloud"),
    "route53": _entry("route53"),
    "alidns": _entry("alidns"),
    "alidns-v3": _entry("alidns-v3"),
}
