"""Alibaba Cloud DNS (Alidns, API version 2015-01-09).

Requests are signed with the RPC signature Alibaba Cloud documents: sorted
parameters, RFC 3986 percent-encoding, ``METHOD&%2F&<encoded query>``, and
HMAC-SHA1 keyed with ``secret + "&"``. ``Timestamp`` comes from the clock we
are given, never from the system clock directly. Requests are POSTed as a form
so that signatures and key ids stay out of URLs and proxy logs.

``signature = "v3"`` signs with Alibaba Cloud's newer ACS3-HMAC-SHA256 instead
(the "V3 request structure and signature" document, which Alidns accepts like
every API listed in OpenAPI Explorer): action and version travel as
``x-acs-action`` / ``x-acs-version`` headers, the time as ``x-acs-date``, and
the signature covers a canonical request with a SHA-256 of the body.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import quote

from edgeddns.errors import (
    AuthError,
    ClockSkewError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
)
from edgeddns.options import Opt, Secret
from edgeddns.providers._signed import host_header, sha256_hex
from edgeddns.providers.base import Provider, RemoteRecord, split_name

if TYPE_CHECKING:
    from edgeddns.config import RecordConfig
    from edgeddns.http import HttpResponse

ENDPOINT = "https://alidns.aliyuncs.com/"
API_VERSION = "2015-01-09"


def percent_encode(value: str) -> str:
    """RFC 3986: only A-Z a-z 0-9 - _ . ~ stay literal; space is %20, never +."""
    return quote(value, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def sign(method: str, params: Mapping[str, str], secret: str) -> str:
    import base64
    import hashlib
    import hmac

    digest = hmac.new((secret + "&").encode(), string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def timestamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


ACS3 = "ACS3-HMAC-SHA256"


def acs3_signature(secret: str, *, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str],
                   signed_headers: List[str], payload: bytes) -> str:
    """Hex HMAC-SHA256 (keyed with the raw secret) of ``ACS3-HMAC-SHA256\\n<hex sha256(canonical request)>``."""
    import hashlib
    import hmac

    canonical_headers = "".join(f"{h}:{headers[h].strip()}\n" for h in signed_headers)
    canonical = "\n".join([method, path, canonical_query(query), canonical_headers, ";".join(signed_headers),
                           hashlib.sha256(payload).hexdigest()])
    to_sign = f"{ACS3}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"
    return hmac.new(secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()



def _uuid4() -> str:
    import uuid  # with its platform probe, only once a request is signed

    return str(uuid.uuid4())


# Alidns error codes mapped to ours; prefixes end with "*".
ERROR_MAP = {
    "InvalidTimeStamp.Expired": ClockSkewError,
    "InvalidTimeStamp.Format": ClockSkewError,
    "InvalidAccessKeyId.NotFound": AuthError,
    "InvalidAccessKeyId": AuthError,
    "InvalidAccessKeyId.Inactive": AuthError,
    "SignatureDoesNotMatch": AuthError,
    "IncompleteSignature": AuthError,
    "InvalidSecurityToken.Expired": AuthError,
    "InvalidSecurityToken.Malformed": AuthError,
    "Forbidden.RAM": AuthError,
    "Forbidden": AuthError,
    "IncorrectDomainUser": NotFoundError,
    "InvalidDomainName.NoExist": NotFoundError,
    "DomainRecordNotBelongToUser": NotFoundError,
    "Throttling*": RateLimitedError,
    "ServiceUnavailable": ProviderError,
}


def map_error(status: int, code: str, message: str, *, server_time: Optional[float]) -> ProviderError:
    cls = ERROR_MAP.get(code)
    if cls is None:
        cls = next((c for k, c in ERROR_MAP.items() if k.endswith("*") and code.startswith(k[:-1])), None)
    text = f"Alidns {code}: {message}"
    if code == "SignatureDoesNotMatch":
        # The server echoes its string-to-sign; it holds our key id. Keep it out of logs.
        text = f"Alidns {code}: the signature did not match (wrong AccessKey secret?)"
    if cls is None:
        return ProviderError(text, retryable=status >= 500 or code in ("ServiceUnavailable", "InternalError"),
                             server_time=server_time)
    return cls(text, server_time=server_time)


class AlidnsProvider(Provider):
    OPTIONS = {
        "access_key_id": Opt(str, required=True, header=True, doc="AccessKey ID"),
        "access_key_secret": Opt(Secret, required=True, doc="AccessKey secret"),
        "security_token": Opt(Secret, doc="STS token, with temporary credentials"),
        "line": Opt(str, default="default", doc="resolution line for new records"),
        "signature": Opt(str, default="v1", choices=("v1", "v3"),
                         doc='"v1" (RPC, HMAC-SHA1) or "v3" (ACS3-HMAC-SHA256)'),
    }
    SIGNED = True
    DISPLAY = "Alidns"
    ZONES_OF = "domain in this account"

    def __init__(self, ctx, nonce: Callable[[], str] = _uuid4):
        super().__init__(ctx)
        self.endpoint = self.config.endpoint or ENDPOINT
        self.nonce = nonce
        from edgeddns.providers.zones import ZoneResolver

        self.zones = ZoneResolver(monotonic=ctx.monotonic, list_zones=self._owned_domains)

    @property
    def host(self) -> str:
        from urllib.parse import urlsplit

        return urlsplit(self.endpoint).hostname or "alidns"

    def signed_params(self, action: str, params: Dict[str, str], method: str = "POST") -> Dict[str, str]:
        p = {
            "Action": action,
            "Version": API_VERSION,
            "Format": "JSON",
            "AccessKeyId": self.options["access_key_id"],
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": self.nonce(),
            "Timestamp": timestamp(self.ctx.clock.now()),
        }
        token = self.options.get("security_token")
        if token is not None:
            p["SecurityToken"] = token.reveal()
        p.update(params)
        p["Signature"] = sign(method, p, self.options["access_key_secret"].reveal())
        return p

    def v3_request(self, action: str, params: Dict[str, str], method: str = "POST") -> Tuple[str, Dict[str, str]]:
        """(url, headers) of one ACS3-signed call; the parameters go in the query, the body stays empty."""
        from urllib.parse import urlsplit

        payload = b""
        parts = urlsplit(self.endpoint)
        path = parts.path or "/"
        headers = {
            "host": host_header(self.endpoint),
            "x-acs-action": action,
            "x-acs-version": API_VERSION,
            "x-acs-date": timestamp(self.ctx.clock.now()),
            "x-acs-signature-nonce": self.nonce(),
            "x-acs-content-sha256": sha256_hex(payload),
        }
        token = self.options.get("security_token")
        if token is not None:
            headers["x-acs-security-token"] = token.reveal()
        signed = sorted(headers)
        sig = acs3_signature(self.options["access_key_secret"].reveal(), method=method, path=path, query=params,
                             headers=headers, signed_headers=signed, payload=payload)
        headers["Authorization"] = (f"{ACS3} Credential={self.options['access_key_id']},"
                                    f"SignedHeaders={';'.join(signed)},Signature={sig}")
        url = f"{parts.scheme}://{parts.netloc}{path}"
        if params:
            url += "?" + canonical_query(params)
        return url, headers

    def call(self, action: str, params: Dict[str, str]) -> Dict[str, Any]:
        if self.options.get("signature") == "v3":
            url, headers = self.v3_request(action, params)
            return self._check(self.ctx.http.request("POST", url, headers=headers))
        body = self.signed_params(action, params)
        resp = self.ctx.http.request("POST", self.endpoint, data=body,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        return self._check(resp)

    def _check(self, resp: HttpResponse) -> Dict[str, Any]:
        if resp.status == 200:
            data = resp.json()
            if not isinstance(data, dict):
                raise ProviderError("Alidns: unexpected answer (not a JSON object)")
            return data
        try:
            data = resp.json()
        except ProviderError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("Code"), str):
            raise map_error(resp.status, data["Code"], str(data.get("Message", "")),
                            server_time=resp.server_time())
        retry_after = resp.retry_after()
        if resp.status == 429:
            raise RateLimitedError("Alidns: HTTP 429", retry_after=retry_after)
        raise ProviderError(f"Alidns: HTTP {resp.status}", retryable=resp.status >= 500,
                            retry_after=retry_after)

    def find(self, record: RecordConfig) -> List[RemoteRecord]:
        params = {"SubDomain": record.name, "Type": record.type, "PageSize": "100"}
        if record.zone:
            params["DomainName"] = record.zone
        data = self.call("DescribeSubDomainRecords", params)
        recs = (data.get("DomainRecords") or {}).get("Record") or []
        out = []
        for r in recs:
            if not isinstance(r, dict) or str(r.get("Type", "")).upper() != record.type:
                continue
            zone = str(r.get("DomainName", ""))
            rr = str(r.get("RR", ""))
            fqdn = zone if rr == "@" else f"{rr}.{zone}"
            if fqdn.lower() != record.name:
                continue
            if zone and self.zones is not None:
                self.zones.learn(record.name, zone.lower())
            ttl = r.get("TTL")
            out.append(RemoteRecord(str(r.get("RecordId")), record.name, record.type, str(r.get("Value", "")),
                                    int(ttl) if isinstance(ttl, (int, str)) and str(ttl).isdigit() else None,
                                    {"RR": rr, "DomainName": zone, "Status": r.get("Status")}))
        return out

    def _owned_domains(self) -> Dict[str, str]:
        """Every domain of the account (by name: this API needs no zone ids), paged."""
        found: Dict[str, str] = {}
        page = 1
        while True:
            data = self.call("DescribeDomains", {"PageNumber": str(page), "PageSize": "100"})
            doms = (data.get("Domains") or {}).get("Domain") or []
            found.update((str(d.get("DomainName", "")).lower(), "") for d in doms if isinstance(d, dict))
            total = int(data.get("TotalCount") or 0)
            if page * 100 >= total or not doms:
                return found
            page += 1

    def create(self, record: RecordConfig, value: str) -> RemoteRecord:
        zone = self.zone_for(record)
        params = {"DomainName": zone, "RR": split_name(record.name, zone), "Type": record.type,
                  "Value": value, "Line": self.options.get("line") or "default"}
        if record.ttl:
            params["TTL"] = str(record.ttl)
        data = self.call("AddDomainRecord", params)
        return RemoteRecord(str(data.get("RecordId")), record.name, record.type, value, record.ttl)

    def update(self, record: RecordConfig, remote: RemoteRecord, value: str) -> RemoteRecord:
        params = {"RecordId": remote.id, "RR": remote.extra.get("RR") or split_name(record.name,
                                                                                    self.zone_for(record)),
                  "Type": record.type, "Value": value}
        ttl = record.ttl or remote.ttl
        if ttl:
            params["TTL"] = str(ttl)
        try:
            self.call("UpdateDomainRecord", params)
        except ProviderError as e:
            # The record already holds these values: that is success, not failure.
            if "DomainRecordDuplicate" not in e.message:
                raise
        return RemoteRecord(remote.id, record.name, record.type, value, ttl, remote.extra)
