"""AWS Route 53 (API version 2013-04-01).

Reads with ``ListResourceRecordSets``, writes with one ``UPSERT`` in
``ChangeResourceRecordSets`` (an XML body), finds hosted zones with
``ListHostedZonesByName``. Requests are signed with Signature Version 4 as
AWS documents it, for region ``us-east-1`` and service ``route53``;
``X-Amz-Date`` comes from the clock we are given and must be within 5 minutes
of AWS's clock. XML is handled with the standard library only.
"""

from __future__ import annotations

import calendar
import re
import time
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import quote, urlsplit

from edgeddns.errors import (
    AuthError,
    ClockSkewError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
)
from edgeddns.options import Opt, Secret
from edgeddns.providers._signed import (
    canonical_query,
    hmac_sha256,
    host_header,
    sha256_hex,
)
from edgeddns.providers.base import Provider, RemoteRecord

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

    from edgeddns.config import ProviderConfig, RecordConfig
    from edgeddns.http import HttpResponse

ENDPOINT = "https://route53.amazonaws.com"
API = "/2013-04-01"
NS = "https://route53.amazonaws.com/doc/2013-04-01/"
ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE = "%Y%m%dT%H%M%SZ"


def escape(text: str) -> str:
    """XML character data (xml.sax.saxutils.escape pulls in urllib.request, http.client and ssl)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def sigv4_signature(secret_key: str, *, method: str, path: str, query: Mapping[str, str],
                    headers: Mapping[str, str], signed_headers: List[str], payload: bytes, amz_date: str,
                    region: str, service: str) -> Tuple[str, str]:
    """(signature, credential scope) per AWS Signature Version 4.

    ``headers`` maps lower-case names to values; ``path`` is already in its
    URI-encoded form (for services other than S3 each segment is encoded once
    more, which changes nothing for the plain paths Route 53 uses).
    """
    uri = "/".join(quote(seg, safe="-_.~") for seg in path.split("/")) or "/"
    canonical_headers = "".join(f"{h}:{' '.join(headers[h].split())}\n" for h in signed_headers)
    canonical = "\n".join([method, uri, canonical_query(query), canonical_headers, ";".join(signed_headers),
                           sha256_hex(payload)])
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{sha256_hex(canonical.encode('utf-8'))}"
    key = hmac_sha256(("AWS4" + secret_key).encode("utf-8"), date)
    for part in (region, service, "aws4_request"):
        key = hmac_sha256(key, part)
    return hmac_sha256(key, to_sign).hex(), scope


_STAMP = re.compile(r"\((\d{8}T\d{6}Z) [-+] \d+ min\.\)")


def parse_server_time(message: str) -> Optional[float]:
    """'Signature expired: A is now earlier than B (NOW - 5 min.)': NOW is the server's clock."""
    m = _STAMP.search(message)
    if not m:
        return None
    return float(calendar.timegm(time.strptime(m.group(1), AMZ_DATE)))


AUTH_CODES = {"SignatureDoesNotMatch", "InvalidClientTokenId", "IncompleteSignature", "AccessDenied",
              "AccessDeniedException", "MissingAuthenticationToken", "UnrecognizedClientException",
              "ExpiredToken", "InvalidSignatureException", "NotAuthorizedException"}
RATE_CODES = {"Throttling", "ThrottlingException", "PriorRequestNotComplete", "RequestLimitExceeded"}


def map_error(status: int, code: str, message: str, *, date_time: Optional[float],
              retry: Optional[float] = None) -> ProviderError:
    text = f"Route 53 {code or 'HTTP ' + str(status)}: {message}"[:300]
    if code == "RequestExpired" or (code in ("SignatureDoesNotMatch", "InvalidSignatureException")
                                    and ("expired" in message.lower() or "not yet current" in message.lower())):
        return ClockSkewError(text, server_time=parse_server_time(message) or date_time)
    if code in AUTH_CODES:
        return AuthError(text)
    if code in RATE_CODES or status == 429:
        return RateLimitedError(text, retry_after=retry)
    if code in ("NoSuchHostedZone", "HostedZoneNotFound"):
        return NotFoundError(text)
    return ProviderError(text, retryable=status >= 500 or code in ("ServiceUnavailable", "InternalFailure"),
                         retry_after=retry, server_time=date_time)


def _tag(el: ET.Element) -> str:
    return el.tag.rsplit("}", 1)[-1]


def _find(el: Optional[ET.Element], *path: str) -> Optional[ET.Element]:
    """Child by local names, whatever namespace the answer uses."""
    for name in path:
        if el is None:
            return None
        el = next((c for c in el if _tag(c) == name), None)
    return el


def _text(el: Optional[ET.Element], *path: str) -> str:
    found = _find(el, *path)
    return (found.text or "").strip() if found is not None else ""


def _all(el: Optional[ET.Element], name: str) -> List[ET.Element]:
    return [c for c in el if _tag(c) == name] if el is not None else []


def decode_name(name: str) -> str:
    """Route 53 returns some characters as octal escapes (``*`` is ``\\052``); undo that."""
    name = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), name)
    return name.rstrip(".").lower()


def change_batch(name: str, rtype: str, value: str, ttl: int) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<ChangeResourceRecordSetsRequest xmlns="{NS}"><ChangeBatch><Comment>edgeddns</Comment><Changes>'
        f"<Change><Action>UPSERT</Action><ResourceRecordSet><Name>{escape(name)}.</Name><Type>{rtype}</Type>"
        f"<TTL>{int(ttl)}</TTL><ResourceRecords><ResourceRecord><Value>{escape(value)}</Value>"
        "</ResourceRecord></ResourceRecords></ResourceRecordSet></Change>"
        "</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"
    ).encode()


# OpenWrt ships xml as an add-on the package does not pull in (only Route 53 needs it).
NO_XML = ("Route 53 answers in XML, and this Python has no xml package "
          "(on OpenWrt: opkg install python3-xml)")


def _xml() -> Any:
    """``xml.etree.ElementTree``, or None where the standard library was installed without it."""
    try:
        import xml.etree.ElementTree as ET
    except ImportError:
        return None
    return ET


class Route53Provider(Provider):
    OPTIONS = {
        "access_key_id": Opt(str, required=True, header=True, doc="AWS access key ID"),
        "secret_access_key": Opt(Secret, required=True, doc="AWS secret access key"),
        "session_token": Opt(Secret, doc="STS session token, with temporary credentials"),
        "hosted_zone_id": Opt(str, doc="skip zone lookup: the hosted zone every record of this provider is in"),
        "region": Opt(str, default="us-east-1", doc="signing region (cn-northwest-1 for the China partition)"),
        "ttl": Opt(int, default=300, doc="TTL of records written when the record sets none"),
    }
    SIGNED = True
    DISPLAY = "Route 53"
    ZONES_OF = "public hosted zone in this account"
    ZONE_MISSING = "no public hosted zone named {zone} in this account"

    @classmethod
    def config_warnings(cls, cfg: ProviderConfig) -> List[Tuple[str, str]]:
        if _xml() is None:
            return [("type", NO_XML)]
        return []

    def __init__(self, ctx):
        super().__init__(ctx)
        self.endpoint = (self.config.endpoint or ENDPOINT).rstrip("/")
        from edgeddns.providers.zones import ZoneResolver

        self.zones = ZoneResolver(monotonic=ctx.monotonic, list_zones=self._owned_zones, lookup=self._lookup_zone)

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).hostname or "route53"

    # -- transport -------------------------------------------------------

    def call(self, method: str, path: str, query: Optional[Dict[str, str]] = None,
             body: Optional[bytes] = None) -> ET.Element:
        query = query or {}
        payload = body or b""
        amz_date = time.strftime(AMZ_DATE, time.gmtime(self.ctx.clock.now()))
        headers = {"host": host_header(self.endpoint), "x-amz-date": amz_date}
        if body is not None:
            headers["content-type"] = "application/xml"
        token = self.options.get("session_token")
        if token is not None:
            headers["x-amz-security-token"] = token.reveal()
        signed = sorted(headers)
        sig, scope = sigv4_signature(self.options["secret_access_key"].reveal(), method=method, path=path,
                                     query=query, headers=headers, signed_headers=signed, payload=payload,
                                     amz_date=amz_date, region=self.options.get("region") or "us-east-1",
                                     service="route53")
        send = {k.title(): v for k, v in headers.items()}
        send["Authorization"] = (f"{ALGORITHM} Credential={self.options['access_key_id']}/{scope}, "
                                 f"SignedHeaders={';'.join(signed)}, Signature={sig}")
        url = self.endpoint + path
        if query:
            url += "?" + canonical_query(query)
        resp = self.ctx.http.request(method, url, data=body, headers=send)
        return self._check(resp)

    def _check(self, resp: HttpResponse) -> ET.Element:
        ET = _xml()  # expat, loaded once a reply is read
        if ET is None:
            raise ProviderError(NO_XML)

        root: Optional[ET.Element]
        try:
            root = ET.fromstring(resp.body) if resp.body.strip() else None
        except ET.ParseError:
            root = None
        if 200 <= resp.status < 300:
            if root is None:
                snippet = resp.text[:120].replace("\n", " ")
                raise ProviderError(f"Route 53: HTTP {resp.status}: malformed XML: {snippet!r}")
            return root
        err = _find(root, "Error") if root is not None else None
        raise map_error(resp.status, _text(err, "Code"), _text(err, "Message"),
                        date_time=resp.server_time(), retry=resp.retry_after())

    # -- zones -------------------------------------------------------------

    @staticmethod
    def _bare(zone_id: str) -> str:
        return zone_id.rsplit("/", 1)[-1]

    @staticmethod
    def _public(hz: ET.Element) -> bool:
        return _text(hz, "Config", "PrivateZone").lower() != "true"

    def _owned_zones(self) -> Dict[str, str]:
        """name -> id of every public hosted zone, paged by NextDNSName/NextHostedZoneId."""
        owned: Dict[str, str] = {}
        query: Dict[str, str] = {"maxitems": "100"}
        while True:
            root = self.call("GET", f"{API}/hostedzonesbyname", query)
            for hz in _all(_find(root, "HostedZones"), "HostedZone"):
                name = decode_name(_text(hz, "Name"))
                if self._public(hz) and name not in owned:
                    owned[name] = self._bare(_text(hz, "Id"))
            if _text(root, "IsTruncated").lower() != "true":
                return owned
            query = {"maxitems": "100", "dnsname": _text(root, "NextDNSName"),
                     "hostedzoneid": _text(root, "NextHostedZoneId")}

    def _lookup_zone(self, zone: str) -> Optional[str]:
        root = self.call("GET", f"{API}/hostedzonesbyname", {"dnsname": zone, "maxitems": "10"})
        # Results start at dnsname in DNS order; the zone may not be there at all.
        for hz in _all(_find(root, "HostedZones"), "HostedZone"):
            if decode_name(_text(hz, "Name")) == zone and self._public(hz):
                return self._bare(_text(hz, "Id"))
        return None

    def hosted_zone(self, record: RecordConfig) -> str:
        given = self.options.get("hosted_zone_id")
        if given:
            return self._bare(given)
        return self.zone_with_id(record)[1]

    # -- records -----------------------------------------------------------

    def find(self, record: RecordConfig) -> List[RemoteRecord]:
        zid = self.hosted_zone(record)
        root = self.call("GET", f"{API}/hostedzone/{zid}/rrset",
                         {"name": record.name + ".", "type": record.type, "maxitems": "1"})
        out = []
        # The list starts at name/type; the first set may be a different one.
        for rrs in _all(_find(root, "ResourceRecordSets"), "ResourceRecordSet"):
            if decode_name(_text(rrs, "Name")) != record.name or _text(rrs, "Type") != record.type:
                continue
            if _find(rrs, "AliasTarget") is not None or _text(rrs, "SetIdentifier"):
                continue  # alias and routing-policy sets are not ours to rewrite
            values = [_text(v, "Value") for v in _all(_find(rrs, "ResourceRecords"), "ResourceRecord")]
            ttl = _text(rrs, "TTL")
            out.append(RemoteRecord(f"{record.name}/{record.type}", record.name, record.type,
                                    values[0] if len(values) == 1 else ",".join(values),
                                    int(ttl) if ttl.isdigit() else None, {"zone_id": zid}))
        return out

    def _upsert(self, record: RecordConfig, zid: str, value: str, ttl: int) -> RemoteRecord:
        self.call("POST", f"{API}/hostedzone/{zid}/rrset/", body=change_batch(record.name, record.type, value, ttl))
        return RemoteRecord(f"{record.name}/{record.type}", record.name, record.type, value, ttl, {"zone_id": zid})

    def create(self, record: RecordConfig, value: str) -> RemoteRecord:
        return self._upsert(record, self.hosted_zone(record), value, record.ttl or self.options.get("ttl") or 300)

    def update(self, record: RecordConfig, remote: RemoteRecord, value: str) -> RemoteRecord:
        zid = remote.extra.get("zone_id") or self.hosted_zone(record)
        return self._upsert(record, zid, value, record.ttl or remote.ttl or self.options.get("ttl") or 300)
