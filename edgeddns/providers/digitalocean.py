"""DigitalOcean DNS (API v2, domain records), with a bearer token.

``GET /v2/domains/{domain}/records?type=&name=<fqdn>`` reads, ``POST`` creates,
``PATCH /v2/domains/{domain}/records/{id}`` changes the data (and the TTL when
the record sets one). Errors are ``{"id": "...", "message": "..."}``; 429
carries ``ratelimit-reset`` (epoch seconds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional
from urllib.parse import quote

from edgeddns.errors import RateLimitedError
from edgeddns.options import Opt, Secret
from edgeddns.providers._jsonapi import JsonApiProvider, error_body, status_error
from edgeddns.providers.base import RemoteRecord, split_name

if TYPE_CHECKING:
    from edgeddns.config import RecordConfig
    from edgeddns.http import HttpResponse

ENDPOINT = "https://api.digitalocean.com/v2"


class DigitaloceanProvider(JsonApiProvider):
    OPTIONS = {
        "api_token": Opt(Secret, required=True, doc="personal access token (domain read/update scopes)"),
    }
    ENDPOINT = ENDPOINT
    DISPLAY = "DigitalOcean"
    ZONES_OF = "domain of this account"

    def call(self, method: str, path: str, *, params: Optional[Dict[str, str]] = None,
             body: Optional[Dict[str, Any]] = None) -> Any:
        headers = {"Authorization": "Bearer " + self.options["api_token"].reveal()}
        return self._check(self.ctx.http.request(method, self.base + path, params=params, json=body,
                                                 headers=headers))

    def _check(self, resp: HttpResponse) -> Any:
        if 200 <= resp.status < 300:
            return resp.json() if resp.body else None
        data = error_body(resp)
        ident = message = ""
        if isinstance(data, dict):
            ident, message = str(data.get("id") or ""), str(data.get("message") or "")
        text = f"DigitalOcean {ident or 'HTTP ' + str(resp.status)}: {message}"[:300]
        if resp.status == 429 or ident == "too_many_requests":
            wait = resp.retry_after()
            reset = resp.headers.get("ratelimit-reset")
            if wait is None and reset and reset.isdigit():
                wait = max(0.0, float(reset) - self.ctx.clock.now())
            raise RateLimitedError(text, retry_after=wait)
        raise status_error(resp.status, text)

    def _list_zones(self) -> Dict[str, str]:
        from edgeddns.providers.zones import MAX_PAGES, dig, too_many_pages

        found: Dict[str, str] = {}
        page = 1
        while True:
            data = self.call("GET", "/domains", params={"per_page": "200", "page": str(page)})
            doms = dig(data, "domains")
            doms = doms if isinstance(doms, list) else []
            found.update({str(d["name"]).lower(): "" for d in doms if isinstance(d, dict) and d.get("name")})
            if not dig(data, "links", "pages", "next") or not doms:
                return found
            if page >= MAX_PAGES:
                raise too_many_pages("DigitalOcean")
            page += 1

    def find(self, record: RecordConfig) -> List[RemoteRecord]:
        zone = self.zone_for(record)
        data = self.call("GET", f"/domains/{quote(zone, safe='')}/records",
                         params={"type": record.type, "name": record.name, "per_page": "200"}) or {}
        out = []
        for r in data.get("domain_records") or []:
            if not isinstance(r, dict) or str(r.get("type", "")).upper() != record.type:
                continue
            # Names come back relative to the domain ("@" for the apex).
            if str(r.get("name", "")).lower() != split_name(record.name, zone):
                continue
            ttl = r.get("ttl")
            out.append(RemoteRecord(str(r.get("id")), record.name, record.type, str(r.get("data", "")),
                                    ttl if isinstance(ttl, int) else None, {"zone": zone}))
        return out

    def create(self, record: RecordConfig, value: str) -> RemoteRecord:
        zone = self.zone_for(record)
        body: Dict[str, Any] = {"type": record.type, "name": split_name(record.name, zone), "data": value}
        if record.ttl:
            body["ttl"] = max(record.ttl, 30)
        data = self.call("POST", f"/domains/{quote(zone, safe='')}/records", body=body) or {}
        rid = str((data.get("domain_record") or {}).get("id"))
        return RemoteRecord(rid, record.name, record.type, value, record.ttl, {"zone": zone})

    def update(self, record: RecordConfig, remote: RemoteRecord, value: str) -> RemoteRecord:
        zone = remote.extra.get("zone") or self.zone_for(record)
        body: Dict[str, Any] = {"type": record.type, "data": value}
        if record.ttl:
            body["ttl"] = max(record.ttl, 30)
        self.call("PATCH", f"/domains/{quote(zone, safe='')}/records/{quote(remote.id, safe='')}", body=body)
        return RemoteRecord(remote.id, record.name, record.type, value, record.ttl or remote.ttl, remote.extra)
