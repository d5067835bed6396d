"""Gandi LiveDNS (API v5), with a personal access token (``Authorization: Bearer``).

One RRset per name and type: ``GET /v5/livedns/domains/{fqdn}/records/{name}/{type}``
reads it (404 when absent), ``PUT`` to the same URL replaces its values (and
creates it). Errors are ``{"code", "message", "object", "cause"}``. The zone
is the record's ``zone``, else the longest of ``GET /v5/livedns/domains``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple
from urllib.parse import quote

from edgeddns.options import Opt, Secret
from edgeddns.providers._jsonapi import JsonApiProvider, error_body, status_error
from edgeddns.providers.base import split_name

if TYPE_CHECKING:
    from edgeddns.config import RecordConfig
    from edgeddns.http import HttpResponse

ENDPOINT = "https://api.gandi.net/v5/livedns"
MIN_TTL = 300


class _Absent(Exception):
    pass


class GandiProvider(JsonApiProvider):
    OPTIONS = {
        "token": Opt(Secret, required=True, doc="personal access token with the 'Manage domain name technical "
                                                "configurations' permission"),
        "ttl": Opt(int, default=300, check=lambda v: None if MIN_TTL <= v <= 2592000 else "must be 300..2592000",
                   doc="TTL of records whose ttl is not set"),
    }
    ENDPOINT = ENDPOINT
    DISPLAY = "Gandi"
    ZONES_OF = "LiveDNS domain of this account"

    def call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None, *, absent_ok: bool = False) -> Any:
        headers = {"Authorization": "Bearer " + self.options["token"].reveal()}
        resp = self.ctx.http.request(method, self.base + path, json=body, headers=headers)
        if absent_ok and resp.status == 404:
            raise _Absent()
        return self._check(resp)

    def _check(self, resp: HttpResponse) -> Any:
        if 200 <= resp.status < 300:
            return resp.json() if resp.body else None
        data = error_body(resp)
        message = str(data.get("message") or "") if isinstance(data, dict) else ""
        text = f"Gandi HTTP {resp.status}: {message or resp.text[:100]}"[:300]
        hint = " (does the token have the domain's technical-configuration permission?)"
        raise status_error(resp.status, text, resp.retry_after(), auth_text=text + hint if resp.status == 403 else None)

    def _list_zones(self) -> Dict[str, str]:
        data = self.call("GET", "/domains") or []
        return {str(d["fqdn"]).lower(): "" for d in data if isinstance(d, dict) and d.get("fqdn")}

    def _url(self, record: RecordConfig) -> str:
        zone = self.zone_for(record)
        return (f"/domains/{quote(zone, safe='')}/records/{quote(split_name(record.name, zone), safe='@')}/"
                f"{record.type}")

    def read(self, record: RecordConfig) -> Tuple[List[str], Optional[int]]:
        try:
            data = self.call("GET", self._url(record), absent_ok=True) or {}
        except _Absent:
            return [], None
        ttl = data.get("rrset_ttl")
        return [str(v) for v in data.get("rrset_values") or []], ttl if isinstance(ttl, int) else None

    def ensure(self, record: RecordConfig, value: str) -> str:
        values, ttl = self.read(record)
        want_ttl = max(record.ttl or self.options.get("ttl") or MIN_TTL, MIN_TTL)
        if values == [value] and (record.ttl is None or ttl == want_ttl):
            return "unchanged"
        self.call("PUT", self._url(record), {"rrset_values": [value], "rrset_ttl": want_ttl})
        return "updated"
