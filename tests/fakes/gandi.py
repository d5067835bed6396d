"""A fake Gandi LiveDNS API v5 (``/v5/livedns``), from Gandi's API documentation.

Personal access tokens as ``Authorization: Bearer``; errors in Gandi's shape
``{"code": 401, "message": ..., "object": "HTTPUnauthorized", "cause": "Unauthorized"}``;
a missing RRset is 404 "Can't find the DNS record NAME/TYPE in the zone";
PUT on ``.../records/{name}/{type}`` replaces (or creates) the RRset and
answers 201 ``{"message": "DNS Record Created"}``. TTL 300..2592000.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from typing import Dict, List, Optional, Set, Tuple

from tests.fakes.server import Reply, Request

PREFIX = "/v5/livedns"


class FakeGandi:
    def __init__(self, tokens: Dict[str, Optional[Set[str]]], domains: List[str]):
        self.tokens = dict(tokens)  # token -> domains it may change (None: all)
        self.domains = [d.lower() for d in domains]
        self.rrsets: Dict[Tuple[str, str, str], Dict] = {}  # (domain, name, type) -> rrset
        self.calls: List[str] = []
        self.writes = 0
        self.throttle = 0
        self.lock = threading.Lock()

    @staticmethod
    def error(status: int, message: str, obj: str, cause: str) -> Reply:
        return Reply.json(status, {"code": status, "message": message, "object": obj, "cause": cause})

    def _split(self, fqdn: str) -> Tuple[str, str]:
        d = max((d for d in self.domains if fqdn == d or fqdn.endswith("." + d)), key=len)
        return d, "@" if fqdn == d else fqdn[: -len(d) - 1]

    def values(self, name: str, rtype: str) -> List[str]:
        d, n = self._split(name)
        rs = self.rrsets.get((d, n, rtype))
        return list(rs["rrset_values"]) if rs else []

    def seed(self, name: str, rtype: str, value: str, ttl: int = 10800) -> None:
        d, n = self._split(name)
        self.rrsets[(d, n, rtype)] = {"rrset_name": n, "rrset_type": rtype, "rrset_ttl": ttl,
                                      "rrset_values": [value],
                                      "rrset_href": f"https://api.gandi.net/v5/livedns/domains/{d}/records/{n}/{rtype}"}

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            return self._handle(req)

    def _handle(self, req: Request) -> Reply:
        if not req.path.startswith(PREFIX + "/"):
            return self.error(404, "The requested URL was not found on the server.", "HTTPNotFound", "Not Found")
        path = req.path[len(PREFIX):]
        self.calls.append(f"{req.method} {path}")
        auth = req.headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        if token not in self.tokens:
            return self.error(401, "The server could not verify that you authenticated successfully",
                              "HTTPUnauthorized", "Unauthorized")
        if self.throttle:
            self.throttle -= 1
            return Reply.json(429, {"code": 429, "message": "Too Many Requests", "object": "HTTPTooManyRequests",
                                    "cause": "Too Many Requests"}, {"Retry-After": "1"})
        allowed = self.tokens[token]
        if path == "/domains" and req.method == "GET":
            return Reply.json(200, [{"fqdn": d, "domain_href": f"https://api.gandi.net/v5/livedns/domains/{d}",
                                     "domain_records_href": f"https://api.gandi.net/v5/livedns/domains/{d}/records"}
                                    for d in self.domains if allowed is None or d in allowed])
        m = re.fullmatch(r"/domains/([^/]+)/records/([^/]+)/([A-Z]+)", path)
        if not m:
            return self.error(404, "The requested URL was not found on the server.", "HTTPNotFound", "Not Found")
        domain, name, rtype = m.group(1).lower(), m.group(2).lower(), m.group(3)
        if domain not in self.domains:
            return self.error(404, f"The domain {domain} doesn't exist", "domain", "Not Found")
        if allowed is not None and domain not in allowed:
            return self.error(403, "Access was denied to this resource.", "HTTPForbidden", "Forbidden")
        key = (domain, name, rtype)
        if req.method == "GET":
            if key not in self.rrsets:
                return self.error(404, f"Can't find the DNS record {name}/{rtype} in the zone", "dns-records",
                                  "Not Found")
            return Reply.json(200, self.rrsets[key])
        if req.method != "PUT":
            return self.error(405, "The method is not allowed for the requested URL.", "HTTPMethodNotAllowed",
                              "Method Not Allowed")
        body = req.json() if req.body else {}
        vals, ttl = body.get("rrset_values"), body.get("rrset_ttl", 10800)
        try:
            ok = bool(vals) and all(ipaddress.ip_address(v).version == (4 if rtype == "A" else 6) for v in vals)
        except (ValueError, TypeError):
            ok = False
        if not ok or not isinstance(ttl, int) or not 300 <= ttl <= 2592000:
            return Reply.json(400, {"code": 400, "message": "Validation error", "object": "dns-records",
                                    "cause": "Bad Request", "errors": [{"location": "body", "name": "rrset_values",
                                                                        "description": "invalid value"}]})
        self.writes += 1
        self.seed(f"{name}.{domain}" if name != "@" else domain, rtype, vals[0], ttl)
        self.rrsets[key]["rrset_values"] = list(vals)
        return Reply.json(201, {"message": "DNS Record Created"})
