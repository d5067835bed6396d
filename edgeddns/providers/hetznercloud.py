"""Hetzner DNS in the Hetzner Cloud API (``https://api.hetzner.cloud/v1``), with a bearer token.

Hetzner moves DNS zones from the DNS Console to the Cloud Console; there a
zone's records are RRsets: ``GET /zones/{zone}/rrsets/{name}/{type}`` reads one
(404 when absent), ``POST /zones/{zone}/rrsets`` creates it, and the actions
``.../actions/set_records`` and ``.../actions/change_ttl`` change it. A zone is
addressed by its name, so no zone id is looked up. Errors are
``{"error": {"code", "message"}}``.
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

ENDPOINT = "https://api.hetzner.cloud/v1"


class _Absent(Exception):
    pass


class HetznercloudProvider(JsonApiProvider):
    OPTIONS = {
        "api_token": Opt(Secret, required=True, doc="a Cloud project API token with Read & Write permission"),
        "ttl": Opt(int, default=300, check=lambda v: None if 60 <= v <= 2147483647 else "must be at least 60",
                   doc="TTL of new RRsets whose record sets no ttl"),
    }
    ENDPOINT = ENDPOINT
    DISPLAY = "Hetzner Cloud"
    ZONES_OF = "zone of this project"

    def call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None, *,
             params: Optional[Dict[str, str]] = None, absent_ok: bool = False) -> Any:
        headers = {"Authorization": "Bearer " + self.options["api_token"].reveal()}
        resp = self.ctx.http.request(method, self.base + path, json=body, params=params, headers=headers)
        if absent_ok and resp.status == 404:
            raise _Absent()
        return self._check(resp)

    def _check(self, resp: HttpResponse) -> Any:
        if 200 <= resp.status < 300:
            return resp.json() if resp.body else None
        data = error_body(resp)
        err = data.get("error") if isinstance(data, dict) else None
        code = str(err.get("code") or "") if isinstance(err, dict) else ""
        message = str(err.get("message") or "") if isinstance(err, dict) else ""
        text = f"Hetzner Cloud {code or 'HTTP ' + str(resp.status)}: {message}"[:300]
        raise status_error(resp.status, text, resp.retry_after(), rate_limited=code == "rate_limit_exceeded",
                           auth=code in ("unauthorized", "forbidden", "token_readonly"))

    def _list_zones(self) -> Dict[str, str]:
        from edgeddns.providers.zones import MAX_PAGES, dig, page_number, too_many_pages

        found: Dict[str, str] = {}
        page = 1
        while True:
            data = self.call("GET", "/zones", params={"per_page": "50", "page": str(page)})
            zones = dig(data, "zones")
            for z in zones if isinstance(zones, list) else []:
                if isinstance(z, dict) and z.get("name"):
                    found[str(z["name"]).lower()] = str(z.get("id", ""))
            nxt = page_number(dig(data, "meta", "pagination", "next_page"))
            if not nxt:
                return found
            if page >= MAX_PAGES or nxt <= page:  # a "next" that goes back would loop
                raise too_many_pages("Hetzner Cloud")
            page = nxt

    def _rrset_path(self, zone: str, record: RecordConfig) -> str:
        return (f"/zones/{quote(zone, safe='')}/rrsets/{quote(split_name(record.name, zone), safe='@')}/"
                f"{record.type}")

    def read(self, zone: str, record: RecordConfig) -> Tuple[Optional[List[str]], Optional[int]]:
        """(values, ttl); values None when the RRset does not exist."""
        try:
            data = self.call("GET", self._rrset_path(zone, record), absent_ok=True) or {}
        except _Absent:
            return None, None
        rrset = data.get("rrset") or {}
        ttl = rrset.get("ttl")
        values = [str(r.get("value", "")) for r in rrset.get("records") or [] if isinstance(r, dict)]
        return values, ttl if isinstance(ttl, int) else None

    def ensure(self, record: RecordConfig, value: str) -> str:
        zone = self.zone_for(record)
        values, ttl = self.read(zone, record)
        if values == [value] and (record.ttl is None or ttl == record.ttl):
            return "unchanged"
        path = self._rrset_path(zone, record)
        if values is None:
            self.call("POST", f"/zones/{quote(zone, safe='')}/rrsets",
                      {"name": split_name(record.name, zone), "type": record.type,
                       "ttl": record.ttl or self.options.get("ttl") or 300, "records": [{"value": value}]})
            return "updated"
        if values != [value]:
            self.call("POST", path + "/actions/set_records", {"records": [{"value": value}]})
        if record.ttl is not None and ttl != record.ttl:
            self.call("POST", path + "/actions/change_ttl", {"ttl": record.ttl})
        return "updated"
