"""A fake GoDaddy Domains API v1, from GoDaddy's API reference (developer.godaddy.com).

``Authorization: sso-key KEY:SECRET``. Errors ``{"code", "message"}``: 401
``UNABLE_TO_AUTHENTICATE`` "Unauthorized : Could not authenticate API
key/secret"; 403 ``ACCESS_DENIED`` "Authenticated user is not allowed access"
for a valid key of an account GoDaddy does not admit to the API; 404
``UNKNOWN_DOMAIN``; 422 ``INVALID_BODY`` with ``fields``; 429
``TOO_MANY_REQUESTS`` with ``retryAfterSec``. Records: ``[{"data", "name",
"ttl", "type"}]``; TTL at least 600.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from typing import Dict, List, Set, Tuple

from tests.fakes.server import Reply, Request

PREFIX = "/v1"


class FakeGodaddy:
    def __init__(self, keys: Dict[str, str], domains: List[str], *, not_admitted: Set[str] = frozenset()):
        self.keys = dict(keys)  # key -> secret
        self.not_admitted = set(not_admitted)  # keys of accounts without API access
        self.domains = [d.lower() for d in domains]
        self.rrsets: Dict[Tuple[str, str, str], List[Dict]] = {}
        self.calls: List[str] = []
        self.writes = 0
        self.throttle = 0
        self.lock = threading.Lock()

    @staticmethod
    def error(status: int, code: str, message: str, **extra) -> Reply:
        return Reply.json(status, dict(code=code, message=message, **extra))

    def _split(self, fqdn: str) -> Tuple[str, str]:
        d = max((d for d in self.domains if fqdn == d or fqdn.endswith("." + d)), key=len)
        return d, "@" if fqdn == d else fqdn[: -len(d) - 1]

    def values(self, name: str, rtype: str) -> List[str]:
        d, n = self._split(name)
        return [r["data"] for r in self.rrsets.get((d, rtype, n), [])]

    def seed(self, name: str, rtype: str, value: str) -> None:
        d, n = self._split(name)
        self.rrsets[(d, rtype, n)] = [{"data": value, "name": n, "ttl": 600, "type": rtype}]

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            return self._handle(req)

    def _handle(self, req: Request) -> Reply:
        if not req.path.startswith(PREFIX + "/"):
            return self.error(404, "NOT_FOUND", "The requested resource was not found")
        path = req.path[len(PREFIX):]
        self.calls.append(f"{req.method} {path}")
        m = re.fullmatch(r"sso-key ([^:]+):(.+)", req.headers.get("authorization", ""))
        if not m or self.keys.get(m.group(1)) != m.group(2):
            return self.error(401, "UNABLE_TO_AUTHENTICATE", "Unauthorized : Could not authenticate API key/secret")
        if m.group(1) in self.not_admitted:
            return self.error(403, "ACCESS_DENIED", "Authenticated user is not allowed access")
        if self.throttle:
            self.throttle -= 1
            return self.error(429, "TOO_MANY_REQUESTS", "Too many requests received within interval",
                              retryAfterSec=1)
        if path == "/domains" and req.method == "GET":
            return Reply.json(200, [{"domain": d, "domainId": 1000 + i, "status": "ACTIVE", "expires":
                                     "2027-01-01T00:00:00.000Z", "renewAuto": True, "locked": True}
                                    for i, d in enumerate(self.domains)])
        m = re.fullmatch(r"/domains/([^/]+)/records/([A-Z]+)/([^/]+)", path)
        if not m:
            return self.error(404, "NOT_FOUND", "The requested resource was not found")
        domain, rtype, name = m.group(1).lower(), m.group(2), m.group(3).lower()
        if domain not in self.domains:
            return self.error(404, "UNKNOWN_DOMAIN", f"The given domain is not registered, or does not have a zone "
                              f"file : {domain}")
        key = (domain, rtype, name)
        if req.method == "GET":
            return Reply.json(200, self.rrsets.get(key, []))
        if req.method != "PUT":
            return self.error(405, "METHOD_NOT_ALLOWED", "Method not allowed")
        body = req.json() if req.body else None
        fields = []
        if not isinstance(body, list) or not body:
            fields.append({"code": "UNEXPECTED_TYPE", "message": "is not a array", "path": "records"})
        else:
            for i, r in enumerate(body):
                try:
                    ok = ipaddress.ip_address(str(r.get("data"))).version == (4 if rtype == "A" else 6)
                except ValueError:
                    ok = False
                if not ok:
                    fields.append({"code": "INVALID_VALUE_ENUM", "message": "data is not a valid IP address",
                                   "path": f"records[{i}].data"})
                if int(r.get("ttl", 600)) < 600:
                    fields.append({"code": "UNEXPECTED_VALUE", "message": "ttl must be >= 600",
                                   "path": f"records[{i}].ttl"})
        if fields:
            return self.error(422, "INVALID_BODY", "Request body doesn't fulfill schema, see details in `fields`",
                              fields=fields)
        self.writes += 1
        self.rrsets[key] = [{"data": r["data"], "name": name, "ttl": int(r.get("ttl", 600)), "type": rtype}
                            for r in body]
        return Reply(200, b"", {"Content-Type": "application/json"})
