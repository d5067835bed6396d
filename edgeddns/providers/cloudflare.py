"""Cloudflare DNS, API v4, with an API token.

Requests carry ``Authorization: Bearer <token>`` and no timestamp, so the
clock never matters here. Every answer is the v4 envelope
``{"success", "errors": [{"code", "message"}], "messages", "result"}``; errors
are mapped from the numeric ``code`` first and the HTTP status second.

The ``proxied`` flag belongs to the user: it is sent only when the record sets
it, so an update never turns Cloudflare's proxy on or off behind their back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from edgeddns.errors import AuthError, NotFoundError, ProviderError, RateLimitedError
from edgeddns.options import Opt, Secret
from edgeddns.providers._jsonapi import JsonApiProvider
from edgeddns.providers.base import RemoteRecord

if TYPE_CHECKING:
    from edgeddns.config import RecordConfig
    from edgeddns.http import HttpResponse

ENDPOINT = "https://api.cloudflare.com/client/v4"

# Cloudflare error codes mapped to ours. 9109: invalid access token; 10000:
# authentication error (a valid token without permission for the resource);
# 1000: invalid API token; 6003/6111: malformed Authorization header;
# 7003/7000: no route (a bad zone or record id); 81044: record does not exist;
# 1001/1049: invalid zone identifier / zone not found for this account.
AUTH_CODES = {9109, 10000, 1000, 6003, 6111, 9103, 9106}
NOT_FOUND_CODES = {7003, 7000, 81044, 1001, 1049}
# "Record already exists" / "An identical record already exists": the record
# holds what we wanted, which is success, not failure.
DUPLICATE_CODES = {81057, 81058}
RATE_CODES = {971, 10429}


class _Duplicate(ProviderError):
    """Internal: the write was refused because the record already holds that value."""


def _zone_id_ok(v: str) -> Optional[str]:
    if not (len(v) == 32 and all(c in "0123456789abcdef" for c in v)):
        return "must be the 32-character hexadecimal zone ID shown on the zone's overview page"
    return None


def map_error(status: int, errors: List[Dict[str, Any]], retry_after: Optional[float]) -> ProviderError:
    """The error class for an envelope's ``errors`` (first known code wins)."""
    pairs: List[Tuple[int, str]] = []
    for e in errors:
        if isinstance(e, dict):
            try:
                code = int(e.get("code", 0))
            except (TypeError, ValueError):
                code = 0
            pairs.append((code, str(e.get("message", ""))[:200]))
    text = "; ".join(f"{c}: {m}" for c, m in pairs) or f"HTTP {status}"
    message = f"Cloudflare {text}"
    codes = {c for c, _ in pairs}
    if codes & DUPLICATE_CODES:
        return _Duplicate(message)
    if status == 429 or codes & RATE_CODES:
        return RateLimitedError(message, retry_after=retry_after)
    if codes & AUTH_CODES:
        return AuthError(message)
    if codes & NOT_FOUND_CODES:
        return NotFoundError(message)
    if not pairs and status in (401, 403):
        return AuthError(message)
    if not pairs and status == 404:
        return NotFoundError(message)
    return ProviderError(message, retryable=status >= 500, retry_after=retry_after)


class CloudflareProvider(JsonApiProvider):
    OPTIONS = {
        "api_token": Opt(Secret, required=True, doc="API token with Zone.DNS:Edit (and Zone:Read for lookup)"),
        "zone_id": Opt(str, check=_zone_id_ok, doc="zone ID; skips the zone lookup for every record"),
    }
    RECORD_OPTIONS = {
        "proxied": Opt(bool, doc="proxy through Cloudflare; unset keeps an existing record's flag"),
    }

    ENDPOINT = ENDPOINT
    DISPLAY = "Cloudflare"
    ZONES_OF = "zone visible to this API token"
    ZONE_MISSING = "zone {zone} is not visible to this API token"

    def _zone_sources(self):
        return {"lookup": self._lookup_zone}  # a token may see zones it cannot list

    # -- transport --------------------------------------------------------
    def call(self, method: str, path: str, *, params: Optional[Dict[str, str]] = None,
             body: Optional[Dict[str, Any]] = None) -> Any:
        headers = {"Authorization": "Bearer " + self.options["api_token"].reveal()}
        resp = self.ctx.http.request(method, self.base + path, params=params, json=body, headers=headers)
        return self._check(resp)

    def _check(self, resp: HttpResponse) -> Any:
        retry_after = resp.retry_after()
        try:
            data = resp.json()
        except ProviderError:
            if resp.status == 429:
                raise RateLimitedError("Cloudflare: HTTP 429", retry_after=retry_after) from None
            if resp.status >= 500:
                raise ProviderError(f"Cloudflare: HTTP {resp.status}", retryable=True,
                                    retry_after=retry_after) from None
            raise
        if not isinstance(data, dict):
            raise ProviderError("Cloudflare: unexpected answer (not a JSON object)")
        if resp.status < 300 and data.get("success") is True:
            return data.get("result")
        raise map_error(resp.status, data.get("errors") or [], retry_after)

    # -- zones ------------------------------------------------------------
    def _lookup_zone(self, name: str) -> Optional[str]:
        """The id of zone ``name``, or None when this token cannot see it."""
        result = self.call("GET", "/zones", params={"name": name, "per_page": "50"})
        for z in result or []:
            if isinstance(z, dict) and str(z.get("name", "")).lower() == name and z.get("id"):
                return str(z["id"])
        return None

    def zone_for(self, record: RecordConfig) -> Tuple[str, str]:
        """(zone name, zone id): the configured one, else the longest suffix the token can see."""
        fixed = self.options.get("zone_id")
        if fixed:
            return record.zone or "", fixed
        return self.zone_with_id(record)

    # -- records ----------------------------------------------------------
    def find(self, record: RecordConfig) -> List[RemoteRecord]:
        _, zid = self.zone_for(record)
        result = self.call("GET", f"/zones/{zid}/dns_records",
                           params={"type": record.type, "name": record.name, "per_page": "100"})
        out = []
        for r in result or []:
            if not isinstance(r, dict) or str(r.get("type", "")).upper() != record.type:
                continue
            if str(r.get("name", "")).rstrip(".").lower() != record.name:
                continue
            ttl = r.get("ttl")
            out.append(RemoteRecord(str(r.get("id")), record.name, record.type, str(r.get("content", "")),
                                    ttl if isinstance(ttl, int) else None,
                                    {"proxied": bool(r.get("proxied", False))}))
        return out

    def create(self, record: RecordConfig, value: str) -> RemoteRecord:
        _, zid = self.zone_for(record)
        proxied = record.options.get("proxied")
        body: Dict[str, Any] = {"type": record.type, "name": record.name, "content": value,
                                "ttl": record.ttl or 1, "proxied": bool(proxied)}
        r = self.call("POST", f"/zones/{zid}/dns_records", body=body)
        rid = str(r.get("id")) if isinstance(r, dict) else ""
        return RemoteRecord(rid, record.name, record.type, value, record.ttl, {"proxied": bool(proxied)})

    def update(self, record: RecordConfig, remote: RemoteRecord, value: str) -> RemoteRecord:
        _, zid = self.zone_for(record)
        body: Dict[str, Any] = {"content": value}
        if record.ttl:
            body["ttl"] = record.ttl
        proxied = record.options.get("proxied")
        if proxied is not None:  # unset: PATCH leaves Cloudflare's flag as it is
            body["proxied"] = proxied
        self.call("PATCH", f"/zones/{zid}/dns_records/{remote.id}", body=body)
        extra = {"proxied": remote.extra.get("proxied") if proxied is None else proxied}
        return RemoteRecord(remote.id, record.name, record.type, value, record.ttl or remote.ttl, extra)

    def _right(self, record: RecordConfig, r: RemoteRecord, value: str) -> bool:
        if r.value != value:
            return False
        proxied = record.options.get("proxied")
        if proxied is not None and r.extra.get("proxied") != proxied:
            return False
        # Proxied records always report ttl 1 ("automatic"): a set ttl cannot apply to them.
        if record.ttl is not None and r.ttl is not None and not r.extra.get("proxied"):
            return r.ttl == record.ttl
        return True

    def ensure(self, record: RecordConfig, value: str) -> str:
        existing = self.find(record)
        if any(self._right(record, r, value) for r in existing):
            return "unchanged"
        try:
            if existing:
                self.update(record, existing[0], value)
            else:
                self.create(record, value)
        except _Duplicate:
            return "unchanged"
        return "updated"
