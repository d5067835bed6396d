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
from urllib.parse import quote, urlsplit

from edgeddns.errors import AuthError, NotFoundError, ProviderError, RateLimitedError
from edgeddns.options import Opt, Secret
from edgeddns.providers.base import Provider, split_name

if TYPE_CHECKING:
    from edgeddns.config import RecordConfig
    from edgeddns.http import HttpResponse

ENDPOINT = "https://api.hetzner.cloud/v1"


class _Absent(Exception):
    pass


class HetznercloudProvider(Provider):
    OPTIONS = {
        "api_token": Opt(Secret, required=True, doc="a Cloud project API token with Read & Write permission"),
        "ttl": Opt(int, default=300, check=lambda v: None if 60 <= v <= 2147483647 else "must be at least 60",
                   doc="TTL of new RRsets whose record sets no ttl"),
    }

    def __init__(self, ctx):
        super().__init__(ctx)
        self.base = (self.config.endpoint or ENDPOINT).rstrip("/")
        from edgeddns.providers.zones import ZoneResolver

        self.zones = ZoneResolver(monotonic=ctx.monotonic, list_zones=self._list_zones)

    @property
    def host(self) -> str:
        return urlsplit(self.base).hostname or "hetznercloud"

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
        try:
            data = resp.json()
        except ProviderError:
            data = None
        err = data.get("error") if isinstance(data, dict) else None
        code = str(err.get("code") or "") if isinstance(err, dict) else ""
        message = str(err.get("message") or "") if isinstance(err, dict) else ""
        text = f"Hetzner Cloud {code or 'HTTP ' + str(resp.status)}: {message}"[:300]
        if resp.status == 429 or code == "rate_limit_exceeded":
            raise RateLimitedError(text, retry_after=resp.retry_after())
        if resp.status in (401, 403) or code in ("unauthorized", "forbidden", "token_readonly"):
            raise AuthError(text)
        if resp.status == 404:
            raise NotFoundError(text)
        raise ProviderError(text, retryable=resp.status >= 500, retry_after=resp.retry_after())

    def _list_zones(self) -> Dict[str, str]:
        from edgeddns.providers.zones import MAX_PAGES, too_many_pages

        found: Dict[str, str] = {}
        page = 1
        while True:
            data = self.call("GET", "/zones", params={"per_page": "50", "page": str(page)}) or {}
            for z in data.get("zones") or []:
                if isinstance(z, dict) and z.get("name"):
                    found[str(z["name"]).lower()] = str(z.get("id", ""))
            nxt = (((data.get("meta") or {}).get("pagination") or {}).get("next_page"))
            if not nxt:
                return found
            if page >= MAX_PAGES or int(nxt) <= page:  # a "next" that goes back would loop
                raise too_many_pages("Hetzner Cloud")
            page = int(nxt)

    def zone_for(self, record: RecordConfig) -> str:
        if record.zone:
            return record.zone
        assert self.zones is not None
        found = self.zones.find(record.name)
        if found is None:
            raise NotFoundError(f"Hetzner Cloud: no zone of this project holds {record.name}")
        return found[0]

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
