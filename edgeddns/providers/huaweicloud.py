"""Huawei Cloud DNS (public zones, v2 API).

Requests are signed with the API Gateway's AK/SK scheme, SDK-HMAC-SHA256, as
Huawei documents it: a canonical request over the method, the path with a
trailing ``/``, the sorted query, the signed headers and the SHA-256 of the
body; the string to sign names the algorithm and ``X-Sdk-Date``; the key is
the raw SK. ``X-Sdk-Date`` comes from the clock we are given; the gateway
accepts it within 15 minutes of its own clock.

Record sets hold a list of values; the agent keeps exactly one.
"""

from __future__ import annotations

import calendar
import json
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
    hmac_sha256,
    host_header,
    rfc3986,
    sha256_hex,
)
from edgeddns.providers.base import Provider, RemoteRecord

if TYPE_CHECKING:
    from edgeddns.config import RecordConfig
    from edgeddns.http import HttpResponse

ENDPOINT = "https://dns.myhuaweicloud.com"
ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"


def canonical_query(params: Mapping[str, str]) -> str:
    """Sorted by the raw key, then each pair RFC 3986 encoded: the official SDKs' order.

    (Sorting the encoded keys differs only for keys with characters outside
    A-Z a-z 0-9 - _ . ~, which edgeddns never sends; the SDKs are the reference.)
    """
    return "&".join(f"{rfc3986(k)}={rfc3986(params[k])}" for k in sorted(params))


def canonical_uri(path: str) -> str:
    """Each segment RFC 3986 encoded, and always a trailing slash (the gateway's rule)."""
    uri = "/".join(quote(seg, safe="-_.~") for seg in path.split("/"))
    return uri if uri.endswith("/") else uri + "/"


def sdk_signature(secret_key: str, *, method: str, path: str, query: Mapping[str, str],
                  headers: Mapping[str, str], signed_headers: List[str], body: bytes, sdk_date: str) -> str:
    """Hex HMAC-SHA256 of the string to sign, keyed with the SK itself (no derivation chain)."""
    canonical_headers = "".join(f"{h}:{headers[h].strip()}\n" for h in signed_headers)
    canonical = "\n".join([method, canonical_uri(path), canonical_query(query), canonical_headers,
                           ";".join(signed_headers), sha256_hex(body)])
    to_sign = f"{ALGORITHM}\n{sdk_date}\n{sha256_hex(canonical.encode('utf-8'))}"
    return hmac_sha256(secret_key.encode("utf-8"), to_sign).hex()


_SERVER_TIME = re.compile(r"server time:\s*(\d{8}T\d{6}Z)")


def parse_server_time(message: str) -> Optional[float]:
    """The expired-signature message carries ``server time:20211217T065804Z``."""
    m = _SERVER_TIME.search(message)
    if not m:
        return None
    return float(calendar.timegm(time.strptime(m.group(1), DATE_FORMAT)))


def map_error(status: int, code: str, message: str, *, date_time: Optional[float],
              retry: Optional[float] = None) -> ProviderError:
    text = f"Huawei Cloud {code or 'HTTP ' + str(status)}: {message}"[:300]
    low = message.lower()
    if code.startswith("APIGW.") and ("expired" in low or "signature time" in low):
        return ClockSkewError(text, server_time=parse_server_time(message) or date_time)
    if code == "APIGW.0308" or status == 429:
        return RateLimitedError(text, retry_after=retry)
    if code in ("APIGW.0301", "APIGW.0302", "APIGW.0303", "APIGW.0305", "APIGW.0306") or status in (401, 403):
        return AuthError(text)
    if status == 404:
        return NotFoundError(text)
    return ProviderError(text, retryable=status >= 500, retry_after=retry, server_time=date_time)


class HuaweicloudProvider(Provider):
    OPTIONS = {
        "access_key": Opt(str, required=True, header=True, doc="AK (access key ID)"),
        "secret_key": Opt(Secret, required=True, doc="SK (secret access key)"),
        "project_id": Opt(str, header=True, doc="sent as X-Project-Id when set"),
    }
    SIGNED = True
    DISPLAY = "Huawei Cloud"
    ZONES_OF = "public zone in this account"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.endpoint = (self.config.endpoint or ENDPOINT).rstrip("/")
        from edgeddns.providers.zones import ZoneResolver

        self.zones = ZoneResolver(monotonic=ctx.monotonic, list_zones=self._owned_zones, lookup=self._lookup_zone)

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).hostname or "huaweicloud"

    # -- transport ----------------------------------------------------------

    def call(self, method: str, path: str, query: Optional[Dict[str, str]] = None,
             body: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        query = query or {}
        raw = json.dumps(body, separators=(",", ":")).encode("utf-8") if body is not None else b""
        sdk_date = time.strftime(DATE_FORMAT, time.gmtime(self.ctx.clock.now()))
        headers = {"content-type": "application/json", "host": host_header(self.endpoint), "x-sdk-date": sdk_date}
        if self.options.get("project_id"):
            headers["x-project-id"] = self.options["project_id"]
        signed = sorted(headers)
        sig = sdk_signature(self.options["secret_key"].reveal(), method=method, path=path, query=query,
                            headers=headers, signed_headers=signed, body=raw, sdk_date=sdk_date)
        send = {k.title() if k != "x-sdk-date" else "X-Sdk-Date": v for k, v in headers.items()}
        send["Authorization"] = (f"{ALGORITHM} Access={self.options['access_key']}, "
                                 f"SignedHeaders={';'.join(signed)}, Signature={sig}")
        url = self.endpoint + path
        if query:
            url += "?" + canonical_query(query)
        resp = self.ctx.http.request(method, url, data=raw if body is not None else None, headers=send)
        return self._check(resp)

    def _check(self, resp: HttpResponse) -> Dict[str, Any]:
        if 200 <= resp.status < 300:
            data = resp.json()
            if not isinstance(data, dict):
                raise ProviderError("Huawei Cloud: unexpected answer (not a JSON object)")
            return data
        try:
            data = resp.json()
        except ProviderError:
            data = None
        code = message = ""
        if isinstance(data, dict):
            # The gateway says error_code/error_msg; the DNS service itself says code/message.
            code = str(data.get("error_code") or data.get("code") or "")
            message = str(data.get("error_msg") or data.get("message") or "")
        raise map_error(resp.status, code, message, date_time=resp.server_time(), retry=resp.retry_after())

    # -- zones -------------------------------------------------------------

    def _owned_zones(self) -> Dict[str, str]:
        """name -> id of every public zone in the account, paged."""
        owned: Dict[str, str] = {}
        offset = 0
        while True:
            data = self.call("GET", "/v2/zones", {"type": "public", "limit": "500", "offset": str(offset)})
            zones = data.get("zones") or []
            for z in zones:
                if isinstance(z, dict) and z.get("name") and z.get("id"):
                    owned[str(z["name"]).rstrip(".").lower()] = str(z["id"])
            total = int((data.get("metadata") or {}).get("total_count") or 0)
            offset += len(zones)
            if not zones or offset >= total:
                return owned

    def _lookup_zone(self, zone: str) -> Optional[str]:
        # name= is a filter, not an exact lookup: pick the exact match from the answer.
        data = self.call("GET", "/v2/zones", {"type": "public", "name": zone + "."})
        for z in data.get("zones") or []:
            if isinstance(z, dict) and str(z.get("name", "")).rstrip(".").lower() == zone:
                return str(z["id"])
        return None

    def zone_of(self, record: RecordConfig) -> Tuple[str, str]:
        """(zone name, id): the given zone, or the longest suffix among the account's public zones."""
        return self.zone_with_id(record)

    # -- records -----------------------------------------------------------

    def find(self, record: RecordConfig) -> List[RemoteRecord]:
        _, zid = self.zone_of(record)
        data = self.call("GET", f"/v2/zones/{zid}/recordsets", {"name": record.name + ".", "type": record.type})
        out = []
        for rs in data.get("recordsets") or []:
            if not isinstance(rs, dict) or str(rs.get("type", "")).upper() != record.type:
                continue
            if str(rs.get("name", "")).rstrip(".").lower() != record.name:
                continue
            values = [str(v) for v in rs.get("records") or []]
            # More than one value never equals the one address we publish, so it gets rewritten.
            value = values[0] if len(values) == 1 else ",".join(values)
            ttl = rs.get("ttl")
            out.append(RemoteRecord(str(rs.get("id")), record.name, record.type, value,
                                    int(ttl) if isinstance(ttl, int) else None, {"zone_id": zid}))
        return out

    def create(self, record: RecordConfig, value: str) -> RemoteRecord:
        _, zid = self.zone_of(record)
        body: Dict[str, Any] = {"name": record.name + ".", "type": record.type, "records": [value]}
        if record.ttl:
            body["ttl"] = record.ttl
        data = self.call("POST", f"/v2/zones/{zid}/recordsets", body=body)
        return RemoteRecord(str(data.get("id")), record.name, record.type, value, record.ttl, {"zone_id": zid})

    def update(self, record: RecordConfig, remote: RemoteRecord, value: str) -> RemoteRecord:
        zid = remote.extra.get("zone_id") or self.zone_of(record)[1]
        body: Dict[str, Any] = {"name": record.name + ".", "type": record.type, "records": [value]}
        ttl = record.ttl or remote.ttl
        if ttl:
            body["ttl"] = ttl
        self.call("PUT", f"/v2/zones/{zid}/recordsets/{remote.id}", body=body)
        return RemoteRecord(remote.id, record.name, record.type, value, ttl, remote.extra)
