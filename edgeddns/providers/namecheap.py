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


MAX_FIELD = 1024  # an error text or an address; what is longer is cut before it is unescaped


def _text(fragment: str) -> str:
    fragment = fragment[:MAX_FIELD]
    fragment = re.sub(r"<!\[CDATA\[(.*?)\]\]>", r"\1", fragment, flags=re.S)
    return re.sub(r"&(lt|gt|quot|apos|amp);", lambda m: _ENTITIES[m.group(0)], fragment).strip()


def _between(body: str, start: str, end: "re.Pattern[str]", pos: int = 0) -> Optional[Tuple[str, int]]:
    """The text after the first ``start`` from ``pos`` up to the next ``end``, and where ``end`` stops.

    ``find`` and one forward search, never a lazy ``(.*?)`` scanned again from each opening tag: that
    took time quadratic in the body (a 1 MiB answer of repeated ``<ErrCount>`` kept the worker busy for
    half an hour)."""
    i = body.find(start, pos)
    if i < 0:
        return None
    m = end.search(body, i + len(start))
    return (body[i + len(start):m.start()], m.end()) if m else None


def parse_answer(body: str) -> Tuple[int, List[str], Optional[str]]:
    """(ErrCount, error texts, IP) from the ``interface-response`` XML.

    Read with patterns, not an XML parser: the answer is flat and small, and
    OpenWrt ships ``xml.etree`` in a package of its own (python3-xml). The
    service declares ``encoding="utf-16"`` while sending UTF-8; that is ignored.
    Every step is linear in the body, which comes from the network.
    """
    if "<interface-response" not in body:
        raise ProviderError("Namecheap: the answer is not the expected XML")

    def one(tag: str) -> Optional[str]:
        got = _between(body, f"<{tag}>", re.compile(re.escape(f"</{tag}>")))
        return _text(got[0]) if got else None

    try:
        count = int(one("ErrCount") or "0")
    except ValueError:
        count = 1
    errors: List[str] = []
    block = _between(body, "<errors>", re.compile("</errors>"))
    if block:
        opening, closing, pos = re.compile(r"<Err\d+>"), re.compile(r"</Err\d+>"), 0
        while len(errors) < 16:
            m = opening.search(block[0], pos)
            got = _between(block[0], m.group(0), closing, m.start()) if m else None
            if got is None:
                break
            errors.append(_text(got[0]))
            pos = got[1]
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
