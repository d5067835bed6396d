"""Namecheap Dynamic DNS: ``GET /update?host=&domain=&password=&ip=`` with the domain's DDNS password.

Write-only (nothing can be read back), IPv4 only (the service sets A
records). Namecheap answers **HTTP 200 whatever happens**; the outcome is in
the XML body: ``<ErrCount>0</ErrCount>`` and ``<IP>`` on success, else
``<errors><Err1>...</Err1></errors>``, which is mapped here. The password
is per domain, so a provider serves one ``domain``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, List, Optional, Tuple
from urllib.parse import urlsplit

from edgeddns.errors import AuthError, NotFoundError, ProviderError
from edgeddns.options import Opt, Secret
from edgeddns.providers.base import Provider, split_name

if TYPE_CHECKING:
    from edgeddns.config import ProviderConfig, RecordConfig
    from edgeddns.http import HttpResponse

ENDPOINT = "https://dynamicdns.park-your-domain.com/update"


def _domain_ok(v: str) -> Optional[str]:
    v = v.strip().rstrip(".").lower()
    return None if re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", v) else "must be the domain name, e.g. example.com"


_ENTITIES = {"&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'", "&amp;": "&"}


def _text(fragment: str) -> str:
    fragment = re.sub(r"<!\[CDATA\[(.*?)\]\]>", r"\1", fragment, flags=re.S)
    return re.sub(r"&(lt|gt|quot|apos|amp);", lambda m: _ENTITIES[m.group(0)], fragment).strip()


def parse_answer(body: str) -> Tuple[int, List[str], Optional[str]]:
    """(ErrCount, error texts, IP) from the ``interface-response`` XML.

    Read with patterns, not an XML parser: the answer is flat and small, and
    OpenWrt ships ``xml.etree`` in a package of its own (python3-xml). The
    service declares ``encoding="utf-16"`` while sending UTF-8; that is ignored.
    """
    if "<interface-response" not in body:
        raise ProviderError("Namecheap: the answer is not the expected XML")

    def one(tag: str) -> Optional[str]:
        m = re.search(rf"<{tag}>(.*?)</{tag}>", body, re.S)
        return _text(m.group(1)) if m else None

    try:
        count = int(one("ErrCount") or "0")
    except ValueError:
        count = 1
    block = re.search(r"<errors>(.*?)</errors>", body, re.S)
    errors = [_text(t) for t in re.findall(r"<Err\d+>(.*?)</Err\d+>", block.group(1), re.S)] if block else []
    return count, errors, one("IP")


def map_errors(errors: List[str]) -> ProviderError:
    text = "; ".join(errors)[:200] or "an error without text"
    low = text.lower()
    message = f"Namecheap: {text}"
    if "password" in low:
        return AuthError(message + " (use the Dynamic DNS password of this domain, not the account password)")
    if "not found" in low or "domain name not" in low:
        return NotFoundError(message + " (Dynamic DNS must be enabled for the domain, with an A record for the host)")
    return ProviderError(message)


class NamecheapProvider(Provider):
    OPTIONS = {
        "domain": Opt(str, required=True, check=_domain_ok, doc="the domain the Dynamic DNS password belongs to"),
        "password": Opt(Secret, required=True, header=False,
                        doc="the domain's Dynamic DNS password (Advanced DNS page)"),
    }
    WRITE_ONLY = True

    def __init__(self, ctx):
        super().__init__(ctx)
        self.url = self.config.endpoint or ENDPOINT
        self.domain = self.options["domain"].strip().rstrip(".").lower()

    @classmethod
    def check_record(cls, cfg: ProviderConfig, record: RecordConfig) -> Optional[Tuple[str, str]]:
        domain = str(cfg.options.get("domain") or "").strip().rstrip(".").lower()
        if record.type != "A":
            return "type", "Namecheap Dynamic DNS sets only A (IPv4) records"
        if not (record.name == domain or record.name.endswith("." + domain)):
            return "name", f"is not in the provider's domain {domain}"
        return None

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "namecheap"

    def ensure(self, record: RecordConfig, value: str) -> str:
        params = {"host": split_name(record.name, self.domain), "domain": self.domain,
                  "password": self.options["password"].reveal(), "ip": value}
        resp = self.ctx.http.request("GET", self.url, params=params)
        return self._check(resp, value)

    def _check(self, resp: HttpResponse, value: str) -> str:
        if resp.status != 200:
            raise ProviderError(f"Namecheap: HTTP {resp.status}", retryable=resp.status >= 500 or resp.status == 429,
                                retry_after=resp.retry_after())
        count, errors, ip = parse_answer(resp.text)
        if count or errors:
            raise map_errors(errors)
        if ip is not None and ip != value:
            raise ProviderError(f"Namecheap: the service set {ip}, not {value}")
        return "updated"
