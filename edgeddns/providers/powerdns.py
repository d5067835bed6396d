"""PowerDNS Authoritative Server, through its HTTP API (``/api/v1``).

Auth is the ``X-API-Key`` header; no timestamp is signed. The record is read
with ``GET /servers/{id}/zones/{zone}?rrset_name=&rrset_type=`` (older servers
ignore the filter and send the whole zone: the answer is filtered here too),
and written with one ``PATCH`` of the zone carrying the RRset with
``changetype: REPLACE``, which PowerDNS applies atomically and which bumps
the SOA serial according to the zone's SOA-EDIT-API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple
from urllib.parse import quote

from edgeddns.errors import ProviderError
from edgeddns.options import Opt, Secret
from edgeddns.providers._jsonapi import JsonApiProvider, status_error
from edgeddns.providers.base import zone_holds

if TYPE_CHECKING:
    from edgeddns.config import ProviderConfig, RecordConfig
    from edgeddns.http import HttpResponse


def _ttl_ok(v: int) -> Optional[str]:
    return None if 0 < v <= 604800 else "must be between 1 and 604800"


class PowerdnsProvider(JsonApiProvider):
    OPTIONS = {
        "api_key": Opt(Secret, required=True, doc="the server's api-key (X-API-Key)"),
        "server_id": Opt(str, default="localhost", doc="the server id in the API path"),
        "zone": Opt(str, doc="the zone; else the longest matching zone of the server's list"),
        "ttl": Opt(int, default=300, check=_ttl_ok, doc="TTL of records whose ttl is not set"),
    }

    DISPLAY = "PowerDNS"

    def __init__(self, ctx):
        super().__init__(ctx)
        base = self.base if self.base.endswith("/api/v1") else self.base + "/api/v1"
        self.base = f"{base}/servers/{quote(self.options.get('server_id') or 'localhost', safe='')}"
        self.ZONES_OF = f"zone on server {self.options.get('server_id')}"

    @classmethod
    def check_config(cls, cfg: ProviderConfig, resolve_path) -> Optional[Tuple[str, str]]:
        if not cfg.endpoint:
            return "endpoint", "is required: the API's base URL, e.g. http://127.0.0.1:8081"
        return None

    @classmethod
    def check_record(cls, cfg: ProviderConfig, record: RecordConfig) -> Optional[Tuple[str, str]]:
        return zone_holds(cfg, record)

    # -- transport ----------------------------------------------------------

    def call(self, method: str, path: str, *, params: Optional[Dict[str, str]] = None,
             body: Optional[Dict[str, Any]] = None) -> Any:
        headers = {"X-API-Key": self.options["api_key"].reveal(), "Accept": "application/json"}
        resp = self.ctx.http.request(method, self.base + path, params=params, json=body, headers=headers)
        return self._check(resp)

    def _check(self, resp: HttpResponse) -> Any:
        if resp.status == 204:
            return None
        if 200 <= resp.status < 300:
            return resp.json()
        # Errors are {"error": "..."} (422, 400, 500) or plain text ("Unauthorized", "Not Found").
        text = resp.text.strip()
        try:
            data = resp.json()
            if isinstance(data, dict) and isinstance(data.get("error"), str):
                text = data["error"]
        except ProviderError:
            pass
        text = "".join(c if c.isprintable() else " " for c in text[:200])
        message = f"PowerDNS HTTP {resp.status}: {text}"
        raise status_error(resp.status, message, resp.retry_after(), auth_text=message + " (check api_key)")

    # -- zones ----------------------------------------------------------------

    def _list_zones(self) -> Dict[str, str]:
        found: Dict[str, str] = {}
        for z in self.call("GET", "/zones") or []:
            if isinstance(z, dict) and z.get("name") and z.get("id"):
                found[str(z["name"]).rstrip(".").lower()] = str(z["id"])
        return found

    def zone_for(self, record: RecordConfig) -> Tuple[str, str]:
        """(zone name, zone id): the record's or provider's zone, else the longest one the server has."""
        zone = record.zone or (self.options.get("zone") or "").rstrip(".").lower() or None
        if zone is not None:
            # The id of a zone is its name with the final dot (PowerDNS escapes "/" as "=2F").
            return zone, zone + "."
        return self.held_zone(record.name)

    # -- records ------------------------------------------------------------

    def read(self, record: RecordConfig, zone_id: str) -> Tuple[List[str], Optional[int]]:
        data = self.call("GET", f"/zones/{quote(zone_id, safe='.=')}",
                         params={"rrset_name": record.name + ".", "rrset_type": record.type})
        for rs in (data or {}).get("rrsets") or []:
            if not isinstance(rs, dict) or str(rs.get("type", "")).upper() != record.type:
                continue
            if str(rs.get("name", "")).rstrip(".").lower() != record.name:
                continue
            recs = [r for r in rs.get("records") or [] if isinstance(r, dict)]
            # A disabled record is not served: it does not count as holding the address.
            values = [str(r.get("content", "")) for r in recs if not r.get("disabled")]
            ttl = rs.get("ttl")
            return values, ttl if isinstance(ttl, int) else None
        return [], None

    def ensure(self, record: RecordConfig, value: str) -> str:
        _, zone_id = self.zone_for(record)
        values, ttl = self.read(record, zone_id)
        if values == [value] and (record.ttl is None or ttl == record.ttl):
            return "unchanged"
        rrset = {"name": record.name + ".", "type": record.type, "ttl": record.ttl or self.options.get("ttl") or 300,
                 "changetype": "REPLACE", "records": [{"content": value, "disabled": False}]}
        self.call("PATCH", f"/zones/{quote(zone_id, safe='.=')}", body={"rrsets": [rrset]})
        return "updated"
