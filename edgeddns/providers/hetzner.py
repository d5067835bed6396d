"""Hetzner DNS (the DNS Console API, ``https://dns.hetzner.com/api/v1``), with ``Auth-API-Token``.

Zones come from ``GET /zones`` (paged); records are read with
``GET /records?zone_id=``, created with ``POST /records`` and changed with
``PUT /records/{id}``. Names are relative to the zone ("@" for the apex).
Errors are ``{"message": ...}`` from the gateway (401, 429) or
``{"error": {"message": ..., "code": ...}}`` from the service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple
from urllib.parse import quote

from edgeddns.options import Opt, Secret
from edgeddns.providers._jsonapi import JsonApiProvider, error_body, status_error
from edgeddns.providers.base import RemoteRecord, split_name

if TYPE_CHECKING:
    from edgeddns.config import RecordConfig
    from edgeddns.http import HttpResponse

ENDPOINT = "https://dns.hetzner.com/api/v1"


def _message(data: Any) -> str:
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if data.get("message"):
            return str(data["message"])
    return ""


class HetznerProvider(JsonApiProvider):
    OPTIONS = {
        "api_token": Opt(Secret, required=True, doc="DNS Console API token (sent as Auth-API-Token)"),
    }
    ENDPOINT = ENDPOINT
    DISPLAY = "Hetzner DNS"

    def call(self, method: str, path: str, *, params: Optional[Dict[str, str]] = None,
             body: Optional[Dict[str, Any]] = None) -> Any:
        headers = {"Auth-API-Token": self.options["api_token"].reveal()}
        return self._check(self.ctx.http.request(method, self.base + path, params=params, json=body,
                                                 headers=headers))

    def _check(self, resp: HttpResponse) -> Any:
        if 200 <= resp.status < 300:
            return resp.json()
        data = error_body(resp)
        text = f"Hetzner DNS HTTP {resp.status}: {_message(data) or resp.text[:100]}"[:300]
        raise status_error(resp.status, text, resp.retry_after())

    def _list_zones(self) -> Dict[str, str]:
        from edgeddns.providers.zones import MAX_PAGES, dig, page_number, too_many_pages

        found: Dict[str, str] = {}
        page = 1
        while True:
            data = self.call("GET", "/zones", params={"per_page": "100", "page": str(page)})
            zones = dig(data, "zones")
            for z in zones if isinstance(zones, list) else []:
                if isinstance(z, dict) and z.get("name") and z.get("id"):
                    found[str(z["name"]).lower()] = str(z["id"])
            if page >= (page_number(dig(data, "meta", "pagination", "last_page")) or 1):
                return found
            if page >= MAX_PAGES:
                raise too_many_pages("Hetzner DNS")
            page += 1

    def zone_for(self, record: RecordConfig) -> Tuple[str, str]:
        return self.zone_with_id(record)

    def find(self, record: RecordConfig) -> List[RemoteRecord]:
        zone, zid = self.zone_for(record)
        data = self.call("GET", "/records", params={"zone_id": zid}) or {}
        rel = split_name(record.name, zone)
        out = []
        for r in data.get("records") or []:
            if not isinstance(r, dict) or str(r.get("type", "")).upper() != record.type:
                continue
            if str(r.get("name", "")).lower() != rel:
                continue
            ttl = r.get("ttl")
            out.append(RemoteRecord(str(r.get("id")), record.name, record.type, str(r.get("value", "")),
                                    ttl if isinstance(ttl, int) else None, {"zone_id": zid, "name": rel}))
        return out

    def _body(self, record: RecordConfig, zone: str, zid: str, value: str, ttl: Optional[int]) -> Dict[str, Any]:
        body: Dict[str, Any] = {"value": value, "type": record.type, "name": split_name(record.name, zone),
                                "zone_id": zid}
        if ttl:
            body["ttl"] = ttl
        return body

    def create(self, record: RecordConfig, value: str) -> RemoteRecord:
        zone, zid = self.zone_for(record)
        data = self.call("POST", "/records", body=self._body(record, zone, zid, value, record.ttl)) or {}
        rid = str((data.get("record") or {}).get("id"))
        return RemoteRecord(rid, record.name, record.type, value, record.ttl, {"zone_id": zid})

    def update(self, record: RecordConfig, remote: RemoteRecord, value: str) -> RemoteRecord:
        zone, zid = self.zone_for(record)
        ttl = record.ttl or remote.ttl
        self.call("PUT", f"/records/{quote(remote.id, safe='')}", body=self._body(record, zone, zid, value, ttl))
        return RemoteRecord(remote.id, record.name, record.type, value, ttl, remote.extra)
