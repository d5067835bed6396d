"""Porkbun, API v3 (JSON over POST; the key pair travels in every body).

Read with ``/dns/retrieveByNameType/{domain}/{type}/{subdomain}``; a new
record with ``/dns/create/{domain}``; a changed one with
``/dns/editByNameType/{domain}/{type}/{subdomain}``, which rewrites every
record of that name and type at once. The DNS endpoints take the registered
domain only, so the zone is the record's ``zone`` or the longest domain of
``/domain/listAll``. Every answer is ``{"status": "SUCCESS"|"ERROR", ...}``;
errors come with HTTP 400 and a ``message``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional
from urllib.parse import quote

from edgeddns.errors import ProviderError
from edgeddns.options import Opt, Secret
from edgeddns.providers._jsonapi import JsonApiProvider, status_error
from edgeddns.providers.base import RemoteRecord, split_name

if TYPE_CHECKING:
    from edgeddns.config import RecordConfig
    from edgeddns.http import HttpResponse

ENDPOINT = "https://api.porkbun.com/api/json/v3"
MIN_TTL = 600  # Porkbun's minimum (and default)


def map_error(status: int, message: str, retry_after: Optional[float]) -> ProviderError:
    text = f"Porkbun: {message or 'HTTP ' + str(status)}"[:300]
    low = message.lower()
    hint = " (enable API ACCESS for the domain in Porkbun's Domain Management)" if "opted in" in low else ""
    return status_error(status, text, retry_after, rate_limited="rate limit" in low or "too many" in low,
                        auth="api key" in low or "opted in to api access" in low,
                        not_found="invalid domain" in low, auth_text=text + hint)


class PorkbunProvider(JsonApiProvider):
    OPTIONS = {
        "api_key": Opt(str, required=True, header=False, doc="API key (pk1_...), sent in the JSON body"),
        "secret_api_key": Opt(Secret, required=True, header=False, doc="secret API key (sk1_...), in the body"),
    }
    ENDPOINT = ENDPOINT
    DISPLAY = "Porkbun"
    ZONES_OF = "domain of this account"

    def call(self, path: str, body: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        payload = {"apikey": self.options["api_key"], "secretapikey": self.options["secret_api_key"].reveal()}
        payload.update(body or {})
        return self._check(self.ctx.http.request("POST", self.base + path, json=payload))

    def _check(self, resp: HttpResponse) -> Dict[str, Any]:
        try:
            data = resp.json()
        except ProviderError:
            if resp.status == 429 or resp.status >= 500:
                raise map_error(resp.status, "", resp.retry_after()) from None
            raise
        if not isinstance(data, dict):
            raise ProviderError("Porkbun: unexpected answer (not a JSON object)")
        if resp.status == 200 and data.get("status") == "SUCCESS":
            return data
        raise map_error(resp.status, str(data.get("message") or ""), resp.retry_after())

    def _list_zones(self) -> Dict[str, str]:
        from edgeddns.providers.zones import MAX_PAGES, too_many_pages

        found: Dict[str, str] = {}
        start = 0
        while True:  # 1000 domains per page
            page = self.call("/domain/listAll", {"start": str(start)}).get("domains") or []
            found.update({str(d["domain"]).lower(): "" for d in page if isinstance(d, dict) and d.get("domain")})
            if len(page) < 1000:
                return found
            if start >= 1000 * (MAX_PAGES - 1):
                raise too_many_pages("Porkbun")
            start += len(page)

    def _path(self, action: str, record: RecordConfig) -> str:
        zone = self.zone_for(record)
        sub = split_name(record.name, zone)
        tail = "" if sub == "@" else "/" + quote(sub, safe="")
        return f"/dns/{action}/{quote(zone, safe='')}/{record.type}{tail}"

    def find(self, record: RecordConfig) -> List[RemoteRecord]:
        data = self.call(self._path("retrieveByNameType", record))
        out = []
        for r in data.get("records") or []:
            if not isinstance(r, dict) or str(r.get("type", "")).upper() != record.type:
                continue
            if str(r.get("name", "")).rstrip(".").lower() != record.name:
                continue
            ttl = str(r.get("ttl", ""))  # Porkbun sends numbers as strings
            out.append(RemoteRecord(str(r.get("id")), record.name, record.type, str(r.get("content", "")),
                                    int(ttl) if ttl.isdigit() else None))
        return out

    def _ttl(self, record: RecordConfig) -> str:
        return str(max(record.ttl or MIN_TTL, MIN_TTL))

    def create(self, record: RecordConfig, value: str) -> RemoteRecord:
        zone = self.zone_for(record)
        sub = split_name(record.name, zone)
        data = self.call(f"/dns/create/{quote(zone, safe='')}",
                         {"name": "" if sub == "@" else sub, "type": record.type, "content": value,
                          "ttl": self._ttl(record)})
        return RemoteRecord(str(data.get("id")), record.name, record.type, value, int(self._ttl(record)))

    def update(self, record: RecordConfig, remote: RemoteRecord, value: str) -> RemoteRecord:
        self.call(self._path("editByNameType", record), {"content": value, "ttl": self._ttl(record)})
        return RemoteRecord(remote.id, record.name, record.type, value, int(self._ttl(record)))

    def ensure(self, record: RecordConfig, value: str) -> str:
        existing = self.find(record)
        # editByNameType rewrites every record of the name and type: one value is what we keep.
        if [r.value for r in existing] == [value] and (record.ttl is None or existing[0].ttl == max(record.ttl,
                                                                                                     MIN_TTL)):
            return "unchanged"
        if existing:
            self.update(record, existing[0], value)
        else:
            self.create(record, value)
        return "updated"
