"""Tencent Cloud DNSPod, API 3.0 (version 2021-03-23).

Every call is ``POST /`` with a JSON body, signed with TC3-HMAC-SHA256 as
Tencent documents it ("Signature v3"): a canonical request over the method,
``/``, the signed headers and the SHA-256 of the body; a key derived from
``"TC3" + SecretKey`` through the UTC date, the service name and
``tc3_request``. ``X-TC-Timestamp`` comes from the clock we are given, and the
service accepts it only within 5 minutes of its own.

Errors arrive with HTTP 200 inside ``Response.Error``; they are mapped to the
agent's stable codes below.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from edgeddns.errors import (
    AuthError,
    ClockSkewError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
)
from edgeddns.options import Opt, Secret
from edgeddns.providers._signed import hmac_sha256, host_header, sha256_hex
from edgeddns.providers.base import Provider, RemoteRecord, split_name

if TYPE_CHECKING:
    from edgeddns.config import RecordConfig
    from edgeddns.http import HttpResponse

ENDPOINT = "https://dnspod.tencentcloudapi.com/"
API_VERSION = "2021-03-23"
SERVICE = "dnspod"
ALGORITHM = "TC3-HMAC-SHA256"
CONTENT_TYPE = "application/json; charset=utf-8"
DEFAULT_LINE = "默认"  # the name DNSPod gives its default resolution line


def tc3_signature(secret_key: str, *, service: str, timestamp: int, method: str, path: str, query: str,
                  headers: Mapping[str, str], signed_headers: List[str], payload: bytes) -> Tuple[str, str]:
    """(signature, credential date) for one request, per Tencent's TC3-HMAC-SHA256 description.

    ``headers`` maps lower-case names to values; only ``signed_headers`` are used.
    """
    date = time.strftime("%Y-%m-%d", time.gmtime(timestamp))
    canonical_headers = "".join(f"{h}:{headers[h].strip()}\n" for h in signed_headers)
    canonical = "\n".join([method, path, query, canonical_headers, ";".join(signed_headers), sha256_hex(payload)])
    scope = f"{date}/{service}/tc3_request"
    to_sign = f"{ALGORITHM}\n{timestamp}\n{scope}\n{sha256_hex(canonical.encode('utf-8'))}"
    key = hmac_sha256(("TC3" + secret_key).encode("utf-8"), date)
    key = hmac_sha256(key, service)
    key = hmac_sha256(key, "tc3_request")
    return hmac_sha256(key, to_sign).hex(), date


_SERVER_TIME = re.compile(r"server time (\d{9,11})")


def parse_server_time(message: str) -> Optional[float]:
    """Newer SignatureExpire messages end with the server's unix time."""
    m = _SERVER_TIME.search(message)
    return float(m.group(1)) if m else None


AUTH_CODES = {
    "AuthFailure.SecretIdNotFound", "AuthFailure.SignatureFailure", "AuthFailure.InvalidSecretId",
    "AuthFailure.InvalidAuthorization", "AuthFailure.TokenFailure", "AuthFailure.UnauthorizedOperation",
    "AuthFailure.MFAFailure", "UnauthorizedOperation", "OperationDenied.AccessDenied",
}
NOT_FOUND_CODES = {
    "InvalidParameter.DomainInvalid", "ResourceNotFound.NoDataOfDomain", "InvalidParameterValue.DomainNotExists",
    "InvalidParameter.DomainIdInvalid", "OperationDenied.DomainOwnerAllowedOnly",
}


def map_error(code: str, message: str, *, date_time: Optional[float]) -> ProviderError:
    text = f"DNSPod {code}: {message}"[:300]
    if code == "AuthFailure.SignatureExpire":
        return ClockSkewError(text, server_time=parse_server_time(message) or date_time)
    if code in AUTH_CODES or code.startswith("AuthFailure."):
        return AuthError(text, server_time=date_time)
    if code.startswith("RequestLimitExceeded"):
        return RateLimitedError(text)
    if code in NOT_FOUND_CODES:
        return NotFoundError(text)
    retryable = code.startswith("InternalError") or code in ("ResourceUnavailable", "FailedOperation.Timeout")
    return ProviderError(text, retryable=retryable, server_time=date_time)


class DnspodProvider(Provider):
    OPTIONS = {
        "secret_id": Opt(str, required=True, header=True, doc="SecretId of a Tencent Cloud API key"),
        "secret_key": Opt(Secret, required=True, doc="SecretKey"),
        "token": Opt(Secret, doc="STS session token, with temporary credentials"),
        "line": Opt(str, default=DEFAULT_LINE, doc="resolution line for new records"),
    }
    SIGNED = True
    DISPLAY = "DNSPod"
    ZONES_OF = "domain in this account"

    @classmethod
    def check_config(cls, cfg, resolve_path):
        import re

        legacy = re.compile(r"\d+,[0-9a-fA-F]{16,}")
        for key in ("secret_id", "secret_key"):
            value = cfg.options.get(key)
            text = value.reveal() if isinstance(value, Secret) else str(value or "")
            if legacy.fullmatch(text.strip()):
                return key, ("looks like a legacy DNSPod \"ID,Token\" credential, which this type does not take: "
                             "create a Tencent Cloud API 3.0 key (CAM -> API keys) and give its SecretId and "
                             "SecretKey")
        return None

    def __init__(self, ctx):
        super().__init__(ctx)
        self.endpoint = self.config.endpoint or ENDPOINT
        from edgeddns.providers.zones import ZoneResolver

        self.zones = ZoneResolver(monotonic=ctx.monotonic, list_zones=self._owned_domains)

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).hostname or "dnspod"

    # -- transport -------------------------------------------------------

    def call(self, action: str, params: Dict[str, Any]) -> Dict[str, Any]:
        payload = json.dumps(params, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        ts = int(self.ctx.clock.now())
        host = host_header(self.endpoint)
        headers = {"content-type": CONTENT_TYPE, "host": host, "x-tc-action": action.lower()}
        signed = ["content-type", "host", "x-tc-action"]
        secret_id = self.options["secret_id"]
        sig, date = tc3_signature(self.options["secret_key"].reveal(), service=SERVICE, timestamp=ts,
                                  method="POST", path="/", query="", headers=headers, signed_headers=signed,
                                  payload=payload)
        send = {
            "Content-Type": CONTENT_TYPE, "Host": host, "X-TC-Action": action,
            "X-TC-Version": API_VERSION, "X-TC-Timestamp": str(ts),
            "Authorization": f"{ALGORITHM} Credential={secret_id}/{date}/{SERVICE}/tc3_request, "
                             f"SignedHeaders={';'.join(signed)}, Signature={sig}",
        }
        token = self.options.get("token")
        if token is not None:
            send["X-TC-Token"] = token.reveal()
        resp = self.ctx.http.request("POST", self.endpoint, data=payload, headers=send)
        return self._check(resp)

    def _check(self, resp: HttpResponse) -> Dict[str, Any]:
        if resp.status == 429:
            raise RateLimitedError("DNSPod: HTTP 429", retry_after=resp.retry_after())
        if resp.status != 200:
            raise ProviderError(f"DNSPod: HTTP {resp.status}", retryable=resp.status >= 500,
                                retry_after=resp.retry_after())
        data = resp.json()
        body = data.get("Response") if isinstance(data, dict) else None
        if not isinstance(body, dict):
            raise ProviderError("DNSPod: unexpected answer (no Response object)")
        err = body.get("Error")
        if isinstance(err, dict):
            raise map_error(str(err.get("Code", "")), str(err.get("Message", "")),
                            date_time=resp.server_time())
        return body

    # -- zones -------------------------------------------------------------

    def _owned_domains(self) -> Dict[str, str]:
        """Every domain of the account (by name: this API needs no zone ids), paged."""
        owned: Dict[str, str] = {}
        offset = 0
        while True:
            try:
                body = self.call("DescribeDomainList", {"Offset": offset, "Limit": 3000})
            except NotFoundError:
                return owned  # an account without domains answers NoDataOfDomain
            doms = body.get("DomainList") or []
            owned.update((str(d.get("Name", "")).lower(), "") for d in doms if isinstance(d, dict))
            total = (body.get("DomainCountInfo") or {}).get("AllTotal") or \
                (body.get("DomainCountInfo") or {}).get("DomainTotal") or 0
            offset += len(doms)
            if not doms or offset >= int(total):
                return owned

    # -- records -----------------------------------------------------------

    def find(self, record: RecordConfig) -> List[RemoteRecord]:
        zone = self.zone_for(record)
        sub = split_name(record.name, zone)
        try:
            body = self.call("DescribeRecordList", {"Domain": zone, "Subdomain": sub,
                                                    "RecordType": record.type, "Limit": 100})
        except ProviderError as e:
            # "No records" is an error code in this API, not an empty list.
            if "ResourceNotFound.NoDataOfRecord" in e.message:
                return []
            raise
        out = []
        for r in body.get("RecordList") or []:
            if not isinstance(r, dict) or str(r.get("Type", "")).upper() != record.type:
                continue
            if str(r.get("Name", "")).lower() != sub:
                continue
            ttl = r.get("TTL")
            out.append(RemoteRecord(str(r.get("RecordId")), record.name, record.type, str(r.get("Value", "")),
                                    int(ttl) if isinstance(ttl, int) else None,
                                    {"zone": zone, "sub": sub, "line": r.get("Line"), "line_id": r.get("LineId")}))
        return out

    def create(self, record: RecordConfig, value: str) -> RemoteRecord:
        zone = self.zone_for(record)
        params: Dict[str, Any] = {"Domain": zone, "SubDomain": split_name(record.name, zone),
                                  "RecordType": record.type, "RecordLine": self.options.get("line") or DEFAULT_LINE,
                                  "Value": value}
        if record.ttl:
            params["TTL"] = record.ttl
        body = self.call("CreateRecord", params)
        return RemoteRecord(str(body.get("RecordId")), record.name, record.type, value, record.ttl)

    def update(self, record: RecordConfig, remote: RemoteRecord, value: str) -> RemoteRecord:
        zone = remote.extra.get("zone") or self.zone_for(record)
        params: Dict[str, Any] = {
            "Domain": zone, "SubDomain": remote.extra.get("sub") or split_name(record.name, zone),
            "RecordType": record.type, "RecordId": int(remote.id), "Value": value,
            # Keep the line the record is on; an update must not move it.
            "RecordLine": remote.extra.get("line") or self.options.get("line") or DEFAULT_LINE,
        }
        if remote.extra.get("line_id"):
            params["RecordLineId"] = str(remote.extra["line_id"])
        ttl = record.ttl or remote.ttl
        if ttl:
            params["TTL"] = ttl
        self.call("ModifyRecord", params)
        return RemoteRecord(remote.id, record.name, record.type, value, ttl, remote.extra)
