"""GoDaddy Domains API v1, with ``Authorization: sso-key <key>:<secret>``.

``GET /v1/domains/{domain}/records/{type}/{name}`` reads the RRset,
``PUT`` to the same URL replaces it. Errors are ``{"code", "message"}``;
``ACCESS_DENIED`` ("Authenticated user is not allowed access") is what
GoDaddy answers accounts it does not admit to the API, whatever the key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple
from urllib.parse import quote

from edgeddns.errors import ProviderError
from edgeddns.options import Opt, Secret
from edgeddns.providers._jsonapi import JsonApiProvider, error_body, status_error
from edgeddns.providers.base import split_name

if TYPE_CHECKING:
    from edgeddns.config import RecordConfig
    from edgeddns.http import HttpResponse

ENDPOINT = "https://api.godaddy.com/v1"
MIN_TTL = 600

NOT_ADMITTED = ("GoDaddy refuses this account API access (ACCESS_DENIED): the key is valid, but GoDaddy only "
                "opens its Domains API to some accounts (by number of domains or plan); move the zone's DNS "
                "elsewhere or ask GoDaddy")


def map_error(status: int, code: str, message: str, retry_after: Optional[float]) -> ProviderError:
    text = f"GoDaddy {code or 'HTTP ' + str(status)}: {message}"[:300]
    denied = code == "ACCESS_DENIED"
    return status_error(status, text, retry_after, rate_limited=code == "TOO_MANY_REQUESTS",
                        auth=denied or code in ("UNABLE_TO_AUTHENTICATE", "NOT_AUTHORIZED"),
                        not_found=code in ("UNKNOWN_DOMAIN", "NOT_FOUND"),
                        auth_text=f"{NOT_ADMITTED} ({message})"[:400] if denied else None)


class GodaddyProvider(JsonApiProvider):
    OPTIONS = {
        "api_key": Opt(str, required=True, header=True, doc="production API key (developer.godaddy.com/keys)"),
        "api_secret": Opt(Secret, required=True, doc="its secret"),
    }
    ENDPOINT = ENDPOINT
    DISPLAY = "GoDaddy"
    ZONES_OF = "active domain of this account"

    def call(self, method: str, path: str, body: Any = None, params: Optional[Dict[str, str]] = None) -> Any:
        headers = {"Authorization": f"sso-key {self.options['api_key']}:{self.options['api_secret'].reveal()}",
                   "Accept": "application/json"}
        return self._check(self.ctx.http.request(method, self.base + path, json=body, params=params,
                                                 headers=headers))

    def _check(self, resp: HttpResponse) -> Any:
        if 200 <= resp.status < 300:
            return resp.json() if resp.body.strip() else None
        data = error_body(resp)
        code = message = ""
        retry = resp.retry_after()
        if isinstance(data, dict):
            code, message = str(data.get("code") or ""), str(data.get("message") or "")
            if retry is None and isinstance(data.get("retryAfterSec"), (int, float)):
                retry = float(data["retryAfterSec"])
        raise map_error(resp.status, code, message, retry)

    def _list_zones(self) -> Dict[str, str]:
        data = self.call("GET", "/domains", params={"statuses": "ACTIVE", "limit": "1000"}) or []
        return {str(d["domain"]).lower(): "" for d in data if isinstance(d, dict) and d.get("domain")}

    def _url(self, record: RecordConfig) -> str:
        zone = self.zone_for(record)
        return f"/domains/{quote(zone, safe='')}/records/{record.type}/{quote(split_name(record.name, zone), safe='@')}"

    def read(self, record: RecordConfig) -> Tuple[List[str], Optional[int]]:
        data = self.call("GET", self._url(record)) or []
        recs = [r for r in data if isinstance(r, dict) and str(r.get("type", record.type)).upper() == record.type]
        ttl = recs[0].get("ttl") if recs else None
        return [str(r.get("data", "")) for r in recs], ttl if isinstance(ttl, int) else None

    def ensure(self, record: RecordConfig, value: str) -> str:
        values, ttl = self.read(record)
        want_ttl = max(record.ttl or MIN_TTL, MIN_TTL)
        if values == [value] and (record.ttl is None or ttl == want_ttl):
            return "unchanged"
        self.call("PUT", self._url(record), [{"data": value, "ttl": want_ttl}])
        return "updated"
